# Sessions signed in before t0admin.auth.ModelBackend name Django's own backend, which is
# no longer listed: without this they would all end at the upgrade. Each live one is made to
# name the new backend (the same users and passwords; only how a page reads them changed).

from typing import Any

from django.db import migrations
from django.utils import timezone

OLD = "django.contrib.auth.backends.ModelBackend"
NEW = "t0admin.auth.ModelBackend"
BACKEND_KEY = "_auth_user_backend"  # django.contrib.auth.BACKEND_SESSION_KEY


def to_t0admin_backend(apps: Any, schema_editor: Any) -> None:
    from django.contrib.sessions.backends.db import SessionStore

    session_model = apps.get_model("sessions", "Session")
    codec = SessionStore()
    live = session_model.objects.filter(expire_date__gt=timezone.now())
    for session in live.iterator():
        # A session Django cannot read (another secret key) decodes to {} and stays as it is.
        data = codec.decode(session.session_data)
        if data.get(BACKEND_KEY) == OLD:
            data[BACKEND_KEY] = NEW
            live.filter(pk=session.pk).update(session_data=codec.encode(data))


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0005_usage_rollup"),
        ("sessions", "0001_initial"),
    ]

    operations = [migrations.RunPython(to_t0admin_backend, migrations.RunPython.noop)]
