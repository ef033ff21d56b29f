"""The gateway's observability tables as GATEWAY.md describes them ("Where usage shows up"):
schema `tensorzero`, partitioned by day on created_at with a default partition, primary
key (id, created_at), a GIN index on tags and the btree indexes the gateway makes. Tests
and bench/usage.py create them here and write rows the way the gateway tags them."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

TAG = "tensorzero::api_key_public_id"
INFERENCES = ("chat_inferences", "json_inferences")
PARTITIONED = (*INFERENCES, "model_inferences")
FEEDBACK = (
    "boolean_metric_feedback",
    "float_metric_feedback",
    "comment_feedback",
    "demonstration_feedback",
)

DDL = """
CREATE SCHEMA tensorzero;
CREATE TABLE tensorzero.chat_inferences (
    id UUID NOT NULL, function_name TEXT NOT NULL, variant_name TEXT NOT NULL,
    episode_id UUID NOT NULL, input JSONB, output JSONB, tags JSONB NOT NULL DEFAULT '{}',
    processing_time_ms INTEGER, created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.json_inferences (
    id UUID NOT NULL, function_name TEXT NOT NULL, variant_name TEXT NOT NULL,
    episode_id UUID NOT NULL, input JSONB, output JSONB, output_schema JSONB,
    tags JSONB NOT NULL DEFAULT '{}', processing_time_ms INTEGER,
    created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE TABLE tensorzero.model_inferences (
    id UUID NOT NULL, inference_id UUID NOT NULL, model_name TEXT NOT NULL,
    model_provider_name TEXT NOT NULL, raw_request TEXT, raw_response TEXT,
    input_tokens INTEGER, output_tokens INTEGER, response_time_ms INTEGER,
    cached BOOLEAN NOT NULL DEFAULT false, cost NUMERIC(18, 9),
    created_at TIMESTAMPTZ NOT NULL, PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
"""

INDEXES = """
CREATE INDEX ON tensorzero.{t} USING GIN (tags);
CREATE INDEX ON tensorzero.{t} (function_name, variant_name, episode_id);
CREATE INDEX ON tensorzero.{t} (episode_id);
CREATE INDEX ON tensorzero.{t} (function_name, id);
"""

FEEDBACK_DDL = """
CREATE TABLE tensorzero.{t} (
    id UUID PRIMARY KEY, target_id UUID NOT NULL, metric_name TEXT,
    value TEXT, tags JSONB NOT NULL DEFAULT '{{}}', created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ON tensorzero.{t} USING GIN (tags);
"""


def create(cursor: Any, days: list[date]) -> None:
    """The tables, a partition for each of `days` and the default partition."""
    cursor.execute(DDL)
    for table in INFERENCES:
        cursor.execute(INDEXES.format(t=table))
    cursor.execute("CREATE INDEX ON tensorzero.model_inferences (inference_id, id)")
    for table in FEEDBACK:
        cursor.execute(FEEDBACK_DDL.format(t=table))
    for table in PARTITIONED:
        cursor.execute(
            f"CREATE TABLE tensorzero.{table}_default PARTITION OF tensorzero.{table} DEFAULT"
        )
        for day in days:
            add_partition(cursor, table, day)


def add_partition(cursor: Any, table: str, day: date) -> None:
    cursor.execute(
        f"CREATE TABLE tensorzero.{partition(table, day)} PARTITION OF tensorzero.{table} "
        f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')"
    )


def partition(table: str, day: date) -> str:
    return f"{table}_{day:%Y_%m_%d}"


def drop(cursor: Any) -> None:
    cursor.execute("DROP SCHEMA IF EXISTS tensorzero CASCADE")


def uuid7(at: datetime) -> uuid.UUID:
    """A UUIDv7 of the millisecond `at`, as the gateway makes its ids."""
    ms = int(at.timestamp() * 1000)
    rand = int.from_bytes(secrets.token_bytes(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return uuid.UUID(int=value)


def id_time(value: uuid.UUID) -> datetime:
    return datetime.fromtimestamp((value.int >> 80) / 1000, UTC)


Call = tuple[str, int | None, int | None, Decimal | None]  # model, input, output, cost


def insert(
    cursor: Any,
    public_id: str | None,
    at: datetime,
    *,
    table: str = "chat_inferences",
    function: str = "answer",
    variant: str = "v1",
    calls: list[Call] | None = None,
) -> uuid.UUID:
    """One inference as the gateway writes it (tagged when a key authenticated it), with
    its model calls. created_at is the id's time, as in the gateway's own rows."""
    inference_id = uuid7(at)
    created = id_time(inference_id)
    tags = {TAG: public_id} if public_id else {}
    cursor.execute(
        f"INSERT INTO tensorzero.{table} (id, function_name, variant_name, episode_id, input, "
        "output, tags, created_at) VALUES (%s, %s, %s, %s, '{}', '{}', %s::jsonb, %s)",
        [inference_id, function, variant, uuid7(at), _json(tags), created],
    )
    for model, input_tokens, output_tokens, cost in calls or []:
        cursor.execute(
            "INSERT INTO tensorzero.model_inferences (id, inference_id, model_name, "
            "model_provider_name, input_tokens, output_tokens, cost, created_at) "
            "VALUES (%s, %s, %s, 'openai', %s, %s, %s, %s)",
            [uuid7(at), inference_id, model, input_tokens, output_tokens, cost, created],
        )
    return inference_id


def insert_feedback(cursor: Any, public_id: str, table: str = "boolean_metric_feedback") -> None:
    cursor.execute(
        f"INSERT INTO tensorzero.{table} (id, target_id, metric_name, value, tags) "
        "VALUES (%s, %s, 'ok', 'true', %s::jsonb)",
        [uuid.uuid4(), uuid.uuid4(), _json({TAG: public_id})],
    )


def _json(value: dict[str, str]) -> str:
    import json

    return json.dumps(value)
