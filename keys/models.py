"""The gateway's table, read and written but never migrated by Django."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.sessions.base_session import AbstractBaseSession
from django.db import models
from django.utils import timezone

# The earliest and latest instants Python's datetime holds in every time zone a viewer
# may be in.
EARLIEST_READABLE = "0001-01-03 00:00:00+00"
LATEST_READABLE = "9999-12-30 00:00:00+00"


def key_status(
    disabled_at: datetime | None, expires_at: datetime | None, now: datetime | None = None
) -> str:
    """Active, Disabled or Expired, by the gateway's own rules."""
    if disabled_at is not None:
        return "Disabled"
    if expires_at is not None and expires_at <= (now or timezone.now()):
        return "Expired"
    return "Active"


class GatewayTimestampField(models.DateTimeField):
    """A timestamp another tool may have set to ±infinity or outside years 1 to 9999,
    which PostgreSQL and the gateway accept and Python cannot load: read clamped to the
    readable range, so that one such row never takes the page down. Filters and the
    gateway's own checks compare the stored value."""

    def select_format(self, compiler: Any, sql: str, params: Any) -> tuple[str, Any]:
        sql, params = super().select_format(compiler, sql, params)
        clamped = (
            f"CASE WHEN {sql} > '{LATEST_READABLE}'::timestamptz "
            f"THEN '{LATEST_READABLE}'::timestamptz "
            f"WHEN {sql} < '{EARLIEST_READABLE}'::timestamptz "
            f"THEN '{EARLIEST_READABLE}'::timestamptz ELSE {sql} END"
        )
        return clamped, (*params, *params, *params)


class ApiKey(models.Model):
    id = models.BigAutoField(primary_key=True)
    organization = models.TextField()
    workspace = models.TextField()
    description = models.TextField(null=True, blank=True)  # noqa: DJ001  the gateway's NULL
    public_id = models.CharField(max_length=12, unique=True)
    hash = models.CharField(max_length=255)
    disabled_at = GatewayTimestampField(null=True, blank=True)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    expires_at = GatewayTimestampField(null=True, blank=True)

    class Meta:
        managed = False  # the gateway owns this table and its migrations
        # Named with its schema: `public` is not on t0admin's search path (settings.py).
        db_table = 'public"."tensorzero_auth_api_key'
        ordering = ["-id"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return self.public_id

    def status(self, now: datetime | None = None) -> str:
        return key_status(self.disabled_at, self.expires_at, now)


class AuditEvent(models.Model):
    """Who did what to which key: one row per write, in the same transaction as the write."""

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        DISABLE = "disable", "Disabled"
        DESCRIBE = "describe", "Edited description"
        ROTATE = "rotate", "Rotated"

    class Reason(models.TextChoices):
        LEAKED = "leaked", "Leaked"

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=255)  # user name, or "cli:<os user>" for commands
    action = models.CharField(max_length=32, choices=Action.choices)
    public_id = models.CharField(max_length=12, db_index=True)
    detail = models.JSONField(default=dict, blank=True)
    # Why, when the write was a response to something: a leak disables every key of one
    # paste under one incident reference, so the evidence can be pulled out together.
    reason = models.CharField(max_length=32, choices=Reason.choices, blank=True, default="")
    incident = models.CharField(max_length=64, blank=True, default="", db_index=True)
    # The one-time token of the form that caused a create; unique, so that a form sent
    # twice (double click, browser retry) creates one key, not two.
    form_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.public_id}"

    @property
    def expires_at(self) -> datetime | None:
        """A created key's expiry, kept as ISO text in `detail`, as a datetime to render."""
        value = (self.detail or {}).get("expires_at")
        return datetime.fromisoformat(value) if isinstance(value, str) else None


# --- Usage: t0admin's own rollup of the gateway's observability tables (keys/usage.py) ---
# Hours are those of the inferences' UUIDv7 ids, in UTC; public IDs as the tag carries them.


class PublicIdField(models.CharField):
    """CHAR(12), the type of the gateway's public_id: compared with it, both sides' indexes
    serve (a VARCHAR against a CHAR compares as text, which uniq_public_id cannot serve)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["max_length"] = 12
        super().__init__(*args, **kwargs)

    def db_type(self, connection: Any) -> str:
        return "char(12)"


class UsageHour(models.Model):
    """One key's inferences of one function in one hour, with their model calls' totals."""

    public_id = PublicIdField()
    hour = models.DateTimeField()
    function_name = models.TextField()
    inferences = models.BigIntegerField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=9, null=True)  # NULL: none recorded
    last_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["public_id", "hour", "function_name"], name="usage_hour_unique"
            )
        ]
        # The catch-up replaces the newest hours: found by hour, not by key.
        indexes = [models.Index(fields=["hour"], name="usage_hour_hour")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.hour:%Y-%m-%d %H:00} {self.function_name}"


class ModelUsageHour(models.Model):
    """One key's model calls to one model in one hour."""

    public_id = PublicIdField()
    hour = models.DateTimeField()
    model_name = models.TextField()
    calls = models.BigIntegerField()
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    cost = models.DecimalField(max_digits=30, decimal_places=9, null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["public_id", "hour", "model_name"], name="model_usage_hour_unique"
            )
        ]
        indexes = [models.Index(fields=["hour"], name="model_usage_hour_hour")]

    def __str__(self) -> str:
        return f"{self.public_id} {self.hour:%Y-%m-%d %H:00} {self.model_name}"


class KeyLastUsed(models.Model):
    """The newest inference seen for a key: one row per key that was ever used, so the
    list and the stale filter read one row per key, never the hourly rollup. It only grows:
    a dropped partition does not make a key unused."""

    public_id = PublicIdField(primary_key=True)
    last_used = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.public_id} {self.last_used:%Y-%m-%d %H:%M:%S}"


class UsageState(models.Model):
    """The rollup's watermark (one row): every inference whose id time is before
    `complete_until` is counted, apart from rows written later than the late window."""

    complete_until = models.DateTimeField()
    known_since = models.DateTimeField()  # the oldest hour the rollup has seen
    # When the last chunk read the gateway's tables: a row written after it can only be
    # late if its id's time is within the late window before it.
    fed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"usage complete until {self.complete_until:%Y-%m-%d %H:%M:%S}"


class Session(AbstractBaseSession):
    """Django's database session, with the id of its signed-in user in a column of its own:
    a page reads its session, its user and their permissions in one round trip instead of
    two (t0admin/sessions.py). The id is the one the signed session data names, copied on
    every save. Django's own table, django_session, is no longer read (migration 0010
    copied its sessions here)."""

    user_id = models.IntegerField(null=True, blank=True)  # None: nobody signed in

    @classmethod
    def get_session_store_class(cls) -> type[Any]:
        from t0admin.sessions import SessionStore

        return SessionStore
