from django.apps import AppConfig
from django.db.models.signals import post_migrate


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from keys import roles

        # After every migrate and every test-database flush, so the roles always exist.
        post_migrate.connect(roles.on_post_migrate, sender=self)
