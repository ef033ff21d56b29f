"""Every write to keys: one transaction each, with its audit record.

Views and management commands call only this module to change anything. It writes the
gateway's table exactly as the gateway's own tools do (GATEWAY.md).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

import psycopg
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from keys import text, tokens
from keys.models import ApiKey, AuditEvent
from t0admin.postgres.base import silence

DESCRIPTION_MAX = 255
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ORGANIZATION = WORKSPACE = "default"  # what the gateway's own CLI writes
PUBLIC_ID_ATTEMPTS = 5
# Far enough for any real key; near enough that no time zone arithmetic can overflow.
LATEST_EXPIRATION = timedelta(days=100 * 365)
# After a COMMIT whose answer was lost: how long to wait for the old connection's server
# process to end (its transaction is final then) before saying the outcome is unknown.
CONFIRM_SECONDS = 3.0

log = logging.getLogger("t0admin.writes")


class ServiceError(Exception):
    """A write refused for a reason the user can act on; str() says it in plain words."""


class KeyNotFound(ServiceError):
    pass


class AlreadySubmitted(ServiceError):
    pass


class CannotRotate(ServiceError):
    pass


class DescriptionChanged(ServiceError):
    """Another change to the description came first, after the editor's form was opened:
    saving would overwrite it unseen. `api_key` is the key as it is now."""

    def __init__(self, api_key: ApiKey) -> None:
        self.api_key = api_key
        now = text.editable(api_key.description)
        super().__init__(
            "While you were editing, someone else changed this description"
            + (f" to “{now}”." if now else ": it is now empty.")
            + " Save again to replace it with yours, or cancel to keep it."
        )


class OutcomeUnknown(Exception):
    """The connection broke while the database committed a write, and the database could
    not be asked afterwards: the change may or may not have been saved."""

    def __init__(self, action: str) -> None:
        self.action = action
        super().__init__(f"the outcome of {action} is unknown: the connection broke at COMMIT")


# What the current request has committed, in words, for the error pages: a failure after
# a commit must not be answered with "nothing was changed". Reset as each request starts.
_saved_writes: ContextVar[tuple[str, ...]] = ContextVar("saved_writes", default=())


def saved_writes() -> tuple[str, ...]:
    return _saved_writes.get()


def forget_saved_writes(**kwargs: Any) -> None:
    _saved_writes.set(())


@dataclass
class _Write:
    action: str  # in words: "creating key abc…"
    # Asks, on a fresh connection, whether this write is in the database.
    saved: Callable[[], bool] | None = None


@contextmanager
def _writing(action: str) -> Iterator[_Write]:
    """transaction.atomic() for one write, telling a COMMIT whose answer was lost apart
    from a failure before it. Before COMMIT the database rolls back: nothing changed, and
    the error goes on as it is. At COMMIT it may have committed: the database is asked
    again, and the write either counts as saved or raises OutcomeUnknown."""
    write = _Write(action)
    connection = transaction.get_connection()
    outermost = not connection.in_atomic_block
    committing = False
    backend_pid: int | None = None
    try:
        with transaction.atomic():
            yield write
            if outermost:
                backend_pid = connection.connection.info.backend_pid
                committing = True
    except (OperationalError, InterfaceError) as error:
        if not committing:
            raise
        saved = _ask_again(backend_pid, write)
        if saved is None:
            raise OutcomeUnknown(write.action) from error
        if not saved:
            raise
        log.warning("the answer to COMMIT was lost; %s was saved all the same", write.action)
    if outermost:
        _saved_writes.set((*_saved_writes.get(), write.action))


def _ask_again(backend_pid: int | None, write: _Write) -> bool | None:
    """Whether the write whose COMMIT lost its answer was saved; None if not knowable now.

    Only once the old connection's server process has ended is its transaction final
    either way, so that is waited for (and asked for) first."""
    from django.db import connection

    connection.close()
    if backend_pid is None or write.saved is None:
        return None
    deadline = time.monotonic() + CONFIRM_SECONDS
    # The lost answer has made the process hold back new connections for a moment (a
    # frozen server); this one is let through, as the readiness check is: a link that died
    # under a server that still answers is the case worth asking about. libpq's connect
    # timeout bounds it when the server is frozen after all.
    try:
        with silence.probing(), connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [backend_pid])
            while True:
                cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [backend_pid])
                if cursor.fetchone() is None:
                    break
                if time.monotonic() > deadline:
                    return None
                time.sleep(0.05)
        return write.saved()
    except DatabaseError:
        connection.close()
        return None


@dataclass(frozen=True)
class CreatedKey:
    api_key: ApiKey
    secret: str = field(repr=False)  # the full key: shown once, never stored or logged


def clean_description(description: str | None) -> str | None:
    """An empty description is stored as NULL, as the gateway's CLI leaves it."""
    if description is None:
        return None
    description = description.strip()
    if "\x00" in description:
        raise ServiceError("The description cannot contain NUL characters.")
    if any(unicodedata.category(char) == "Cc" or char in BIDI_CONTROLS for char in description):
        # Escape sequences would reach terminals through list_api_keys and logs, and bidi
        # overrides make one text read as another.
        raise ServiceError("The description cannot contain control characters.")
    hidden = text.invisible_characters(description)
    if hidden:
        first = hidden[0]
        raise ServiceError(
            "The description cannot contain invisible characters: "
            f"{text.name(description[first])} at position {first + 1}. They make two "
            "descriptions that look the same differ. (Emoji joined by U+200D are fine.)"
        )
    if text.holds_secret(description):
        raise ServiceError(
            "The description seems to hold an API key (sk-t0-…, or its 48-character secret "
            "part). A key's secret must never be stored or shown: remove it. Its 12-character "
            "public ID is fine to mention."
        )
    if len(description) > DESCRIPTION_MAX:
        raise ServiceError(f"The description can be at most {DESCRIPTION_MAX} characters.")
    return description or None


def check_expiration(expires_at: datetime | None, now: datetime | None = None) -> None:
    if expires_at is None:
        return
    if timezone.is_naive(expires_at):
        raise ServiceError("The expiration needs a time zone.")
    now = now or timezone.now()
    if expires_at <= now:
        raise ServiceError("Expiration must be in the future.")
    if expires_at > now + LATEST_EXPIRATION:
        raise ServiceError("Expiration must be within 100 years.")


def _is_public_id_collision(error: IntegrityError) -> bool:
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) == "uniq_public_id"


def create_key(
    *,
    actor: str,
    description: str | None = None,
    expires_at: datetime | None = None,
    form_token: uuid.UUID | None = None,
) -> CreatedKey:
    description = clean_description(description)
    check_expiration(expires_at)
    return _insert_key(
        actor=actor, description=description, expires_at=expires_at, form_token=form_token
    )


@sensitive_variables("secret", "parsed")
def _insert_key(
    *,
    actor: str,
    description: str | None,
    expires_at: datetime | None,
    form_token: uuid.UUID | None,
) -> CreatedKey:
    """Insert a fresh key as given: callers have checked (or, rotating, inherited) it."""
    try:
        with _writing("creating a key") as write:
            for _ in range(PUBLIC_ID_ATTEMPTS):
                secret = tokens.generate()
                parsed = tokens.parse(secret)
                try:
                    with transaction.atomic():
                        api_key = ApiKey.objects.create(
                            organization=ORGANIZATION,
                            workspace=WORKSPACE,
                            description=description,
                            public_id=parsed.public_id,
                            hash=parsed.hash,
                            created_at=Now(),  # the database's clock, as every write here
                            updated_at=Now(),
                            expires_at=expires_at,
                        )
                    api_key.refresh_from_db(fields=["created_at", "updated_at"])
                    break
                except IntegrityError as error:
                    if not _is_public_id_collision(error):
                        raise
            else:  # 62^12 public IDs: reaching this means the generator is broken
                raise ServiceError("Could not find a free public ID; nothing was created.")
            public_id, digest = api_key.public_id, api_key.hash
            write.action = f"creating key {public_id}"
            write.saved = ApiKey.objects.filter(public_id=public_id, hash=digest).exists
            AuditEvent.objects.create(
                actor=actor,
                action=AuditEvent.Action.CREATE,
                public_id=api_key.public_id,
                detail={
                    "description": description,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
                form_token=form_token,
            )
    except IntegrityError as error:
        diag = getattr(error.__cause__, "diag", None)
        if form_token is not None and "form_token" in str(getattr(diag, "constraint_name", "")):
            raise already_submitted(form_token) from None
        raise
    return CreatedKey(api_key=api_key, secret=secret)


def already_submitted(form_token: uuid.UUID) -> AlreadySubmitted:
    """The error for a form sent twice, naming the key its first sending created."""
    first = AuditEvent.objects.filter(form_token=form_token).values_list("public_id", flat=True)
    public_id = next(iter(first), None)
    made = f"key {public_id}" if public_id else "a key"
    return AlreadySubmitted(
        f"This form was already submitted: it created {made}, whose secret was shown once "
        f"and cannot be shown again. If nobody copied it, disable {made} and generate a "
        "new one."
    )


def get_key(public_id: str, *, lock: bool = False) -> ApiKey:
    """The key; with `lock` (in a transaction), its row locked until the transaction ends.

    A write reads the key locked, before it changes anything: what it reads (a description's
    old text for the audit trail, whether the key is still active) is then what it changes,
    whatever another request does meanwhile; and its own timestamps (Now(), the statement's
    start) are taken once the lock is held, not before a wait for it."""
    if not tokens.is_public_id(public_id):
        raise KeyNotFound(f"No API key has the public ID {public_id!r}.")
    keys = ApiKey.objects.select_for_update() if lock else ApiKey.objects
    try:
        return keys.get(public_id=public_id)
    except ApiKey.DoesNotExist:
        raise KeyNotFound(f"No API key has the public ID {public_id}.") from None


def _disable(api_key: ApiKey) -> bool:
    """Set disabled_at only where it is still NULL, so the first disable time is kept;
    True when this call disabled the key. The database's clock, as the gateway's CLI."""
    return bool(
        ApiKey.objects.filter(pk=api_key.pk, disabled_at__isnull=True).update(
            disabled_at=Now(), updated_at=Now()
        )
    )


def disable_key(*, actor: str, public_id: str) -> tuple[ApiKey, bool]:
    """Disable a key; returns it and whether this call disabled it.

    Only a key not yet disabled is touched, so the first disable time is kept and a second
    disable changes nothing. There is no re-enable.
    """
    with _writing(f"disabling key {public_id}") as write:
        write.saved = ApiKey.objects.filter(public_id=public_id, disabled_at__isnull=False).exists
        api_key = get_key(public_id, lock=True)
        changed = _disable(api_key)
        api_key.refresh_from_db()
        if changed:
            AuditEvent.objects.create(
                actor=actor, action=AuditEvent.Action.DISABLE, public_id=public_id
            )
    return api_key, changed


MAX_BULK = 10_000  # keys ticked at once: a list page at its largest
# Keys one bulk disable takes: a leak response passes every active key its paste holds, and
# a 1 MB paste holds about 15,000 (find_leaked_keys reads files of any size).
MAX_DISABLE = 100_000


def new_incident(now: datetime | None = None) -> str:
    """A reference for one leak response, short enough to read out and to search for."""
    return f"leak-{(now or timezone.now()):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


INCIDENT = re.compile(r"leak-[0-9]{8}-[0-9]{6}-[0-9a-f]{6}")  # as new_incident() makes them


@dataclass(frozen=True)
class BulkDisable:
    """What one bulk disable did, per public ID asked for (in the order asked)."""

    disabled: dict[str, datetime]  # disabled by this call, at the database's time
    already: dict[str, datetime]  # disabled before, with that first time (kept)
    unknown: list[str]
    incident: str
    # Active, but another transaction held them locked for longer than the lock timeout:
    # not disabled. Asking again disables them once that transaction has ended.
    held: list[str] = field(default_factory=list)
    # Held like those, but disabled by their holder by the time this call ended.
    meanwhile: list[str] = field(default_factory=list)

    def outcome(self, public_id: str) -> tuple[str, datetime | None]:
        if public_id in self.disabled:
            return "disabled now", self.disabled[public_id]
        if public_id in self.already:
            return "already disabled", self.already[public_id]
        if public_id in self._held:
            return HELD, None
        if public_id in self._meanwhile:
            return MEANWHILE, None
        return "unknown", None

    @cached_property
    def _held(self) -> frozenset[str]:
        return frozenset(self.held)

    @cached_property
    def _meanwhile(self) -> frozenset[str]:
        return frozenset(self.meanwhile)

    def is_off(self, public_id: str) -> bool:
        """Disabled, by this call or another: the gateway refuses it."""
        return (
            public_id in self.disabled or public_id in self.already or public_id in self._meanwhile
        )


HELD = "NOT disabled: another change held it"
MEANWHILE = "disabled meanwhile by another change"


# Rows per statement of a bulk disable. 100,000 keys in one statement meant 1.6 MB of SQL
# to lock them and 10.7 MB to record them, and under load those statements outlasted the
# statement timeout: nothing was disabled. In slices each takes a fraction of a second.
SLICE = 10_000


def _slices(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), SLICE):
        yield items[start : start + SLICE]


def _lock_for_disable(valid: list[str]) -> tuple[list[tuple[int, str, Any]], list[str]]:
    """The keys of `valid`, locked, as (id, public_id, disabled_at); and the public IDs of
    active keys that another transaction held past the lock timeout.

    Their ids are read first, then the rows are locked slice by slice in id order: one
    order for every bulk disable, so two at once cannot deadlock.
    """
    ids = sorted(
        pk
        for part in _slices(valid)
        for pk in ApiKey.objects.filter(public_id__in=part).values_list("id", flat=True)
    )
    rows: list[tuple[int, str, Any]] = []
    held: list[str] = []
    for part in _slices(ids):
        locked, part_held = _lock_slice(part)
        rows += locked
        held += part_held
    if held:
        log.warning("a bulk disable left out %d keys another transaction held", len(held))
    return rows, held


def _lock_slice(ids: list[int]) -> tuple[list[tuple[int, str, Any]], list[str]]:
    """One slice of _lock_for_disable.

    One held key must not stop a leak response for all the others: after the wait for it
    times out (undone by its savepoint alone), every key of the slice that nobody holds is
    locked without waiting, and the held ones are named. The wait ends by the lock
    timeout, or by the statement timeout when several waits add up (this indexed read is
    slow only then).
    """
    keys = ApiKey.objects.filter(pk__in=ids).order_by("id")
    columns = ("id", "public_id", "disabled_at")
    try:
        with transaction.atomic():  # a savepoint
            return list(keys.select_for_update().values_list(*columns)), []
    except OperationalError as error:
        waited = (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)
        if not isinstance(error.__cause__, waited):
            raise
    rows = list(keys.select_for_update(skip_locked=True).values_list(*columns))
    locked = {pk for pk, _, _ in rows}
    # The others as last committed: one disabled already counts as such.
    others = [row for row in keys.values_list(*columns) if row[0] not in locked]
    held = [public_id for _, public_id, disabled_at in others if disabled_at is None]
    return rows + [row for row in others if row[2] is not None], held


def disable_keys(
    *, actor: str, public_ids: list[str], reason: str = "", incident: str = ""
) -> BulkDisable:
    """Disable many keys at once: one transaction (its statements in slices of SLICE
    rows), one audit record per key this call disabled, each with `reason` and the shared
    `incident` reference.

    As with disable_key, only keys not yet disabled are touched (their first disable time
    is kept) and there is no re-enable. Unknown public IDs are reported, not an error: a
    leak may name keys of another deployment.
    """
    if reason and reason not in AuditEvent.Reason.values:
        raise ServiceError(f"Unknown reason {reason!r}.")
    wanted = list(dict.fromkeys(public_ids))
    if len(wanted) > MAX_DISABLE:
        raise ServiceError(f"Disable at most {MAX_DISABLE:,} keys at once.")
    valid = [public_id for public_id in wanted if tokens.is_public_id(public_id)]
    named = ", ".join(valid[:10]) + (f" and {len(valid) - 10:,} more" if len(valid) > 10 else "")
    with _writing(f"disabling {len(valid)} keys ({named})") as write:
        rows, held = _lock_for_disable(valid)
        todo = sorted(pk for pk, _, disabled_at in rows if disabled_at is None)
        for part in _slices(todo):
            ApiKey.objects.filter(pk__in=part).update(disabled_at=Now(), updated_at=Now())
        after = {
            public_id: at
            for part in _slices([pk for pk, _, _ in rows])
            for public_id, at in ApiKey.objects.filter(pk__in=part)
            .order_by()
            .values_list("public_id", "disabled_at")
            if at is not None
        }
        changed = {public_id for pk, public_id, disabled_at in rows if disabled_at is None}
        recorded = AuditEvent.objects.bulk_create(
            (
                AuditEvent(
                    actor=actor,
                    action=AuditEvent.Action.DISABLE,
                    public_id=public_id,
                    reason=reason,
                    incident=incident,
                )
                for public_id in wanted
                if public_id in changed
            ),
            batch_size=SLICE,
        )
        # Saved if this write's own audit record is: the keys being disabled could also be
        # another disable's doing, which took their locks once this transaction ended.
        # Nothing to write, nothing to lose.
        write.saved = (
            AuditEvent.objects.filter(pk=recorded[0].pk).exists if recorded else lambda: True
        )
    found = {public_id for _, public_id, _ in rows}.union(held)  # once: 100,000 keys
    try:
        active = still_active(held)  # committed: their holders may have disabled some since
    except DatabaseError:  # the disable stands; what it could not take, it still names
        active = set(held)
    return BulkDisable(
        disabled={p: after[p] for p in wanted if p in changed and p in after},
        already={p: after[p] for p in wanted if p in after and p not in changed},
        unknown=[p for p in wanted if p not in found],
        incident=incident,
        held=[p for p in held if p in active],
        meanwhile=[p for p in held if p not in active],
    )


def still_active(public_ids: list[str]) -> set[str]:
    """Which of these keys are not disabled now."""
    return {
        public_id
        for part in _slices(public_ids)
        for public_id in ApiKey.objects.filter(
            public_id__in=part, disabled_at__isnull=True
        ).values_list("public_id", flat=True)
    }


def edited_from(description: str | None) -> str:
    """What an edit form starts from, and sends back as `was`: the description as its box
    shows it (text.editable: no secret, no invisible character), "" for none."""
    return text.editable(description) or ""


def set_description(
    *, actor: str, public_id: str, description: str | None, was: str | None = None
) -> ApiKey:
    """`was`: edited_from() of the description the editor's form showed; if the stored one
    has changed since, DescriptionChanged instead of overwriting that change unseen."""
    description = clean_description(description)
    with _writing(f"editing the description of key {public_id}") as write:
        write.saved = ApiKey.objects.filter(public_id=public_id, description=description).exists
        api_key = get_key(public_id, lock=True)
        before = api_key.description
        if before == description:  # a form sent twice, or saved unchanged: nothing to record
            return api_key
        if was is not None and edited_from(before) != was:
            raise DescriptionChanged(api_key)
        ApiKey.objects.filter(pk=api_key.pk).update(description=description, updated_at=Now())
        api_key.refresh_from_db()
        AuditEvent.objects.create(
            actor=actor,
            action=AuditEvent.Action.DESCRIBE,
            public_id=public_id,
            detail={"before": text.secrets_hidden(before), "after": description},
        )
    return api_key


@dataclass(frozen=True)
class Rotation:
    created: CreatedKey
    old: ApiKey


def rotation_refusal(old: ApiKey, now: datetime | None = None) -> str | None:
    """Why `old` cannot be rotated, or None. A replacement must never bring back access
    the old key no longer gives, and there is one replacement per key: a second rotation
    during a grace period would copy the shortened expiry and die with the old key."""
    public_id = old.public_id
    if old.disabled_at is not None:
        return (
            f"API key {public_id} is disabled, and disabling is final: generate a new key "
            "instead of rotating it."
        )
    if old.expires_at is not None and old.expires_at <= (now or timezone.now()):
        return f"API key {public_id} has expired: generate a new key instead of rotating it."
    earlier = AuditEvent.objects.filter(action=AuditEvent.Action.ROTATE, public_id=public_id)
    replaced_by = next(iter(earlier.values_list("detail__replaced_by", flat=True)), None)
    if replaced_by is not None:
        return f"API key {public_id} was already rotated: {replaced_by} replaces it."
    return None


@sensitive_variables("created")
def rotate_key(
    *,
    actor: str,
    public_id: str,
    grace: timedelta | None = None,
    form_token: uuid.UUID | None = None,
    incident: str = "",
) -> Rotation:
    """Replace a key: a new one with the same description and expiry, and the old one
    disabled now or, with `grace`, expiring after it (never later than it already would).
    With `incident` (a leak response's reference), the record says the key leaked.

    One transaction: either the new key exists and the old one is on its way out, or
    nothing changed.
    """
    with _writing(f"rotating key {public_id}") as write:
        # Locked: two rotations of one key at once would make two replacements.
        old = get_key(public_id, lock=True)
        if form_token is not None and AuditEvent.objects.filter(form_token=form_token).exists():
            raise already_submitted(form_token)
        now = timezone.now()
        refusal = rotation_refusal(old, now)
        if refusal:
            raise CannotRotate(refusal)
        # As stored, not re-checked: another tool may have written what our forms refuse;
        # only a key or secret in it is not copied (t0admin never writes one).
        created = _insert_key(
            actor=actor,
            description=text.secrets_hidden(old.description),
            expires_at=old.expires_at,
            form_token=form_token,
        )
        new_id = created.api_key.public_id
        write.action = f"rotating key {public_id} (replacement: key {new_id})"
        write.saved = ApiKey.objects.filter(public_id=new_id).exists
        if grace is None:
            _disable(old)
        else:
            ends = now + grace
            if old.expires_at is None or old.expires_at > ends:
                ApiKey.objects.filter(pk=old.pk).update(expires_at=ends, updated_at=Now())
        old.refresh_from_db()
        AuditEvent.objects.create(
            actor=actor,
            action=AuditEvent.Action.ROTATE,
            public_id=public_id,
            detail={
                "replaced_by": created.api_key.public_id,
                "grace_seconds": int(grace.total_seconds()) if grace else 0,
            },
            reason=AuditEvent.Reason.LEAKED if incident else "",
            incident=incident,
        )
    return Rotation(created=created, old=old)
