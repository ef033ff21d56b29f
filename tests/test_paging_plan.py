"""The key list stays keyset-paged: a deep page walks the primary key from its cursor.

These read PostgreSQL's own plans for the SQL that keys.listing sends, so a change back to
OFFSET paging (or to an order no index covers) fails here, in a second, rather than at a
million keys (bench/paging.py measures that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from keys import listing

ROWS = 20_000
DEEP = ROWS // 2
PKEY = "tensorzero_auth_api_key_pkey"

# The TensorZero UI's list query (the gateway's list_key_info), with $1 left NULL.
UI_SQL = (
    "SELECT public_id, organization, workspace, description, created_at, disabled_at, "
    "expires_at FROM public.tensorzero_auth_api_key WHERE (organization = %s OR %s IS NULL) "
    "ORDER BY created_at DESC LIMIT %s OFFSET %s"
)


@pytest.fixture
def many_keys(db: None) -> None:
    """ROWS keys, created_at rising with id as when keys are made one after another.

    Inside the test's transaction, so they vanish with it. ANALYZE (allowed in a
    transaction, and it counts the transaction's own rows) gives the planner the
    statistics a real table has; without it the planner would cost an empty table.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO public.tensorzero_auth_api_key "
            "(organization, workspace, public_id, hash, created_at, updated_at) "
            "SELECT 'default', 'default', lpad(to_hex(g), 12, 'k'), "
            "encode(sha256(int8send(g)), 'hex'), "
            "now() - make_interval(secs => %s - g), now() - make_interval(secs => %s - g) "
            "FROM generate_series(1, %s) AS g",
            [ROWS, ROWS, ROWS],
        )
        cursor.execute("ANALYZE public.tensorzero_auth_api_key")


def public_id_at(depth: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT public_id FROM public.tensorzero_auth_api_key ORDER BY id DESC "
            "OFFSET %s LIMIT 1",
            [depth],
        )
        return str(cursor.fetchone()[0])


def explain(sql: str, params: list[Any] | None = None) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        value = cursor.fetchone()[0]
    plan = value if isinstance(value, list) else json.loads(value)
    return dict(plan[0]["Plan"])


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)


def node_types(plan: dict[str, Any]) -> list[str]:
    return [node["Node Type"] for node in nodes(plan)]


def queries_of(call: Any) -> list[str]:
    """The statements the call sent, with their parameters bound as they were sent."""
    with CaptureQueriesContext(connection) as captured:
        call()
    return [query["sql"] for query in captured.captured_queries]


def pkey_scan(plan: dict[str, Any]) -> dict[str, Any]:
    """The one scan of the table's rows: by the primary key (a cursor's lookup, inside the
    same statement, goes by uniq_public_id)."""
    scans = [n for n in nodes(plan) if "Scan" in n["Node Type"]]
    assert [n.get("Index Name") for n in scans].count(PKEY) == 1, node_types(plan)
    assert all(n.get("Index Name") in (PKEY, "uniq_public_id") for n in scans), node_types(plan)
    return next(n for n in scans if n.get("Index Name") == PKEY)


def test_deep_page_walks_the_primary_key_backwards_from_the_cursor(many_keys: None) -> None:
    cursor_public_id = public_id_at(DEEP)
    # One statement: the cursor's id is looked up inside it.
    (page_sql,) = queries_of(lambda: listing.page(listing.DEFAULT_LIMIT, before=cursor_public_id))

    assert "OFFSET" not in page_sql.upper()
    plan = explain(page_sql)
    scan = pkey_scan(plan)
    assert scan["Scan Direction"] == "Backward"
    assert scan["Index Cond"].startswith("(id <"), scan["Index Cond"]
    assert not {"Sort", "Incremental Sort"} & set(node_types(plan))
    # Constant cost: it reads the page and one row more, never the DEEP rows above it.
    assert scan["Actual Rows"] <= listing.DEFAULT_LIMIT + 1
    assert any(n.get("Index Name") == "uniq_public_id" for n in nodes(plan)), node_types(plan)
    assert "Seq Scan" not in node_types(plan)


def test_previous_page_walks_the_primary_key_forwards_from_the_cursor(many_keys: None) -> None:
    cursor_public_id = public_id_at(DEEP)
    (page_sql,) = queries_of(lambda: listing.page(listing.DEFAULT_LIMIT, after=cursor_public_id))

    plan = explain(page_sql)
    scan = pkey_scan(plan)
    assert scan["Scan Direction"] == "Forward"
    assert not {"Sort", "Incremental Sort"} & set(node_types(plan))
    assert scan["Actual Rows"] <= listing.DEFAULT_LIMIT + 1


def test_first_page_reads_only_the_newest_keys(many_keys: None) -> None:
    (page_sql,) = queries_of(lambda: listing.page(listing.DEFAULT_LIMIT))

    plan = explain(page_sql)
    scan = pkey_scan(plan)
    assert scan["Scan Direction"] == "Backward"
    assert "Sort" not in node_types(plan)
    assert scan["Actual Rows"] <= listing.DEFAULT_LIMIT + 1


def test_the_tensorzero_ui_offset_query_sorts_every_key(many_keys: None) -> None:
    """The contrast the keyset exists for: no index covers ORDER BY created_at."""
    plan = explain(UI_SQL, [None, None, listing.DEFAULT_LIMIT, DEEP])

    assert "Sort" in node_types(plan)
    assert not any("Index" in node_type for node_type in node_types(plan))
    scanned = sum(
        n["Actual Rows"] * n["Actual Loops"] for n in nodes(plan) if "Scan" in n["Node Type"]
    )
    # Parallel workers report rounded per-loop averages, hence approx.
    assert scanned == pytest.approx(ROWS, rel=0.001)
