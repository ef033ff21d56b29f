# Sessions move from Django's django_session to keys_session, which has the signed-in user's
# id in a column: a page then reads its session, its user and their permissions in one
# round trip, not two (t0admin/sessions.py). Every live session is copied with its user's
# id, so nobody is signed out by the upgrade; undone, they are copied back. The rows stay
# in django_session: during a rolling upgrade an instance still on the older version reads
# them there (README, "Several instances").

from typing import Any

from django.db import migrations, models
from django.utils import timezone

USER_KEY = "_auth_user_id"  # django.contrib.auth.SESSION_KEY
BATCH = 1000


def _user_id(codec: Any, session_data: str) -> int | None:
    # A session Django cannot read (another secret key) decodes to {}: it moves without a
    # user, as it was, and the page asks for its user the usual way.
    try:
        return int(codec.decode(session_data)[USER_KEY])
    except (KeyError, TypeError, ValueError):
        return None


def move(apps: Any, source: str, target: str, with_user: bool) -> None:
    from django.contrib.sessions.backends.db import SessionStore

    codec = SessionStore()  # its class name is in the signature's salt: t0admin's has it too
    old = apps.get_model(*source.split("."))
    new = apps.get_model(*target.split("."))
    live = old.objects.filter(expire_date__gt=timezone.now())
    # A session already in the target (from an earlier move, undone) takes this newer copy.
    fields = ["session_data", "expire_date", *(["user_id"] if with_user else [])]
    batch = []
    for session in live.iterator(chunk_size=BATCH):
        extra = {"user_id": _user_id(codec, session.session_data)} if with_user else {}
        batch.append(
            new(
                session_key=session.session_key,
                session_data=session.session_data,
                expire_date=session.expire_date,
                **extra,
            )
        )
        if len(batch) == BATCH:
            _copy(new, batch, fields)
            batch = []
    _copy(new, batch, fields)


def _copy(model: Any, sessions: list[Any], fields: list[str]) -> None:
    model.objects.bulk_create(
        sessions, update_conflicts=True, unique_fields=["session_key"], update_fields=fields
    )


def forwards(apps: Any, schema_editor: Any) -> None:
    move(apps, "sessions.Session", "keys.Session", with_user=True)


def backwards(apps: Any, schema_editor: Any) -> None:
    move(apps, "keys.Session", "sessions.Session", with_user=False)


class Migration(migrations.Migration):
    dependencies = [
        ("keys", "0009_gateway_table_by_schema"),
        ("sessions", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Session",
            fields=[
                (
                    "session_key",
                    models.CharField(
                        max_length=40, primary_key=True, serialize=False, verbose_name="session key"
                    ),
                ),
                ("session_data", models.TextField(verbose_name="session data")),
                ("expire_date", models.DateTimeField(db_index=True, verbose_name="expire date")),
                ("user_id", models.IntegerField(blank=True, null=True)),
            ],
            options={
                "verbose_name": "session",
                "verbose_name_plural": "sessions",
                "abstract": False,
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
