"""Timestamps read through t0admin's backend (t0admin/postgres/base.py) are the datetimes
Django's own loader gives, only parsed by psycopg's C loader."""

from __future__ import annotations

from datetime import UTC

import pytest
from django.db import connection, connections
from django.db.backends.postgresql.psycopg_any import register_tzloader
from psycopg.pq import Format

from keys import service
from keys.models import ApiKey
from t0admin.postgres.base import TIMESTAMPTZ, timestamptz_loader

pytestmark = pytest.mark.django_db

STORED = [
    "2024-01-01 00:00:00+00",
    "0001-01-01 00:00:00+00",
    "9999-12-31 23:59:59.999999+00",
    "2024-06-01 12:00:00.5+05:30",
    "1900-01-01 00:00:00+01:23:45",
    "2024-03-31 02:30:00.000001-11",
]
SELECT = "SELECT v::timestamptz FROM unnest(%s::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n"


def test_every_cursor_reads_timestamps_with_the_fast_loader() -> None:
    with connection.cursor() as cursor:
        loader = cursor.connection.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
        own = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
    assert loader is timestamptz_loader(connection.timezone)
    # Django's create_cursor found nothing to override on the cursor.
    assert own is loader


def test_the_datetimes_are_those_djangos_loader_gives() -> None:
    with connection.cursor() as cursor:
        cursor.execute(SELECT, [STORED])
        ours = [row[0] for row in cursor.fetchall()]
    with connection.cursor() as cursor:
        register_tzloader(connection.timezone, cursor.cursor)  # Django's, on this cursor only
        cursor.execute(SELECT, [STORED])
        djangos = [row[0] for row in cursor.fetchall()]
    assert [repr(value) for value in ours] == [repr(value) for value in djangos]
    assert all(value.tzinfo is UTC for value in ours)


def test_models_read_aware_utc_datetimes() -> None:
    created = service.create_key(actor="t").api_key
    read = ApiKey.objects.get(pk=created.pk)
    assert read.created_at.tzinfo is UTC
    assert abs((read.created_at - created.created_at).total_seconds()) < 1e-6


def test_a_connection_in_another_time_zone_reads_what_djangos_loader_reads() -> None:
    """DATABASES[...]["TIME_ZONE"] set: the connection's zone and Django's tzinfo move
    together, and the values still match Django's loader (the last instant of year 9999
    UTC is in year 10000 there, which neither loader can read)."""
    stored = [value for value in STORED if not value.startswith("9999")]
    wrapper = type(connections["default"])
    other = wrapper({**connection.settings_dict, "TIME_ZONE": "Asia/Kolkata"}, alias="kolkata")
    try:
        with other.cursor() as cursor:
            assert str(other.timezone) == "Asia/Kolkata"
            loader = cursor.cursor.adapters.get_loader(TIMESTAMPTZ, Format.TEXT)
            assert loader is timestamptz_loader(other.timezone)
            cursor.execute(SELECT, [stored])
            ours = [row[0] for row in cursor.fetchall()]
        with other.cursor() as cursor:
            register_tzloader(other.timezone, cursor.cursor)
            cursor.execute(SELECT, [stored])
            djangos = [row[0] for row in cursor.fetchall()]
    finally:
        other.close()
    assert [repr(value) for value in ours] == [repr(value) for value in djangos]
    assert all(str(value.tzinfo) == "Asia/Kolkata" for value in ours)
