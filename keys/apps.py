from django.apps import AppConfig
from django.core.signals import request_started
from django.db.models.signals import post_migrate


class KeysConfig(AppConfig):
    name = "keys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from keys import roles, service

        # After every migrate and every test-database flush, so the roles always exist.
        post_migrate.connect(roles.on_post_migrate, sender=self)
        # Threads serve one request after another: each starts with no saved writes.
        request_started.connect(service.forget_saved_writes, dispatch_uid="forget_saved_writes")
