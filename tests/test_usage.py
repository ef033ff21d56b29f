"""Usage from the gateway's observability tables: the rollup, the key page, the list column
and filters. The tables are made as GATEWAY.md lists them (tests/gateway_observability.py)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from keys import service, usage
from keys.models import KeyLastUsed, ModelUsageHour, UsageHour, UsageState
from tests import gateway_observability as obs
from tests import servers

pytestmark = pytest.mark.django_db


@pytest.fixture
def tables():  # type: ignore[no-untyped-def]
    """The gateway's observability tables, with partitions for yesterday to tomorrow (UTC);
    older rows land in the default partition. Yields a cursor to write rows with."""
    today = timezone.now().astimezone(UTC).date()
    with connection.cursor() as cursor:
        obs.create(cursor, [today + timedelta(days=d) for d in (-1, 0, 1)])
        yield cursor


def new_key(description: str = "k") -> str:
    return service.create_key(actor="t", description=description).api_key.public_id


def rolled_up(public_id: str) -> int:
    return sum(UsageHour.objects.filter(public_id=public_id).values_list("inferences", flat=True))


def test_windows_since_tokens_cost_and_last_used_are_exact(tables) -> None:  # type: ignore[no-untyped-def]
    public_id, other = new_key(), new_key()
    now = timezone.now()
    rng = random.Random(8)
    times = [now - timedelta(seconds=rng.uniform(5, 35 * 86400)) for _ in range(300)]
    times += [now - timedelta(minutes=m) for m in (1, 7, 59)]
    for at in times:
        obs.insert(tables, public_id, at, calls=[("gpt-a", 100, 20, Decimal("0.5"))])
    # Another key's and an unauthenticated inference never count for this key.
    obs.insert(tables, other, now - timedelta(minutes=3), calls=[("gpt-a", 1, 1, None)])
    obs.insert(tables, None, now - timedelta(minutes=4))
    # One inference with two model calls, one without a recorded cost, in a JSON function.
    obs.insert(
        tables,
        public_id,
        now - timedelta(minutes=2),
        table="json_inferences",
        function="extract",
        calls=[("gpt-a", 10, 2, Decimal("0.25")), ("gpt-b", 7, 3, None)],
    )
    times.append(now - timedelta(minutes=2))
    assert usage.catch_up()

    available, current = usage.refresh()
    since = now - timedelta(hours=5, minutes=17, seconds=3)
    result = usage.key_usage(public_id, available, current, since=since)
    until = current.complete_until
    assert until is not None
    ids = [obs.id_time(obs.uuid7(at)) for at in times]  # times as the ids carry them
    expected = {
        label: sum(1 for at in ids if until - span <= at < until) for label, span in usage.WINDOWS
    }
    assert {w.label: w.count for w in result.windows} == expected
    assert result.since is not None
    assert result.since.count == sum(1 for at in ids if since <= at < until)
    assert result.last_used is not None and abs(result.last_used - max(ids)) < timedelta(seconds=1)

    functions = {row.name: row for row in result.functions}
    month = [at for at in ids if at >= result.breakdown_since]
    assert functions["answer"].count == len(month) - 1
    assert functions["extract"].count == 1
    assert (functions["extract"].input_tokens, functions["extract"].output_tokens) == (17, 5)
    assert functions["extract"].cost == Decimal("0.25")
    models = {row.name: row for row in result.models}
    assert models["gpt-a"].count == len(month)
    assert models["gpt-a"].input_tokens == 100 * (len(month) - 1) + 10
    assert models["gpt-a"].cost == Decimal("0.5") * (len(month) - 1) + Decimal("0.25")
    assert (models["gpt-b"].count, models["gpt-b"].input_tokens, models["gpt-b"].cost) == (
        1,
        7,
        None,
    )
    assert len(result.latest) == usage.LATEST
    assert result.latest[0].function_name == "answer"  # 1 minute ago, the newest
    assert [r.at for r in result.latest] == sorted((r.at for r in result.latest), reverse=True)


def test_latest_inferences_and_feedback_of_a_quiet_key(tables) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    now = timezone.now()
    first = obs.insert(tables, public_id, now - timedelta(days=3), calls=[("m", 5, 6, None)])
    obs.insert_feedback(tables, public_id)
    obs.insert_feedback(tables, public_id, "comment_feedback")
    obs.insert_feedback(tables, new_key())
    usage.catch_up()
    available, current = usage.refresh()
    result = usage.key_usage(public_id, available, current)
    assert [(r.id, r.models, r.input_tokens, r.output_tokens) for r in result.latest] == [
        (first, "m", 5, 6)
    ]
    assert result.feedback == 2


def test_late_rows_are_counted_once(tables, settings) -> None:  # type: ignore[no-untyped-def]
    settings.USAGE_LATE_SECONDS = 15 * 60
    public_id = new_key()
    now = timezone.now()
    obs.insert(tables, public_id, now - timedelta(minutes=30))
    assert usage.catch_up()
    watermark = UsageState.objects.get().complete_until
    # The gateway writes rows whose ids are older than the watermark: within the late
    # window they are counted, exactly once however often the rollup catches up.
    obs.insert(tables, public_id, watermark - timedelta(minutes=5))
    obs.insert(tables, public_id, watermark - timedelta(seconds=1))
    for _ in range(3):
        assert usage.catch_up()
    assert rolled_up(public_id) == 3
    assert UsageState.objects.get().complete_until > watermark
    # Later than the late window, a row is missed (README: T0ADMIN_USAGE_LATE_SECONDS).
    obs.insert(tables, public_id, watermark - timedelta(hours=2))
    assert usage.catch_up()
    assert rolled_up(public_id) == 3


def test_a_dropped_partition_keeps_its_counts(tables) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    now = timezone.now()
    yesterday = (now - timedelta(days=1)).astimezone(UTC).replace(hour=12, minute=0)
    for minutes in range(4):
        obs.insert(tables, public_id, yesterday + timedelta(minutes=minutes))
    obs.insert(tables, public_id, now - timedelta(days=10))  # the default partition
    assert usage.catch_up()
    assert rolled_up(public_id) == 5
    # The gateway's retention drops yesterday's partitions, and makes a new one.
    for table in obs.PARTITIONED:
        tables.execute(f"DROP TABLE tensorzero.{obs.partition(table, yesterday.date())}")
    obs.add_partition(tables, "chat_inferences", (now + timedelta(days=2)).date())
    obs.insert(tables, public_id, now - timedelta(seconds=2))
    assert usage.catch_up()
    assert rolled_up(public_id) == 6
    last = KeyLastUsed.objects.get(public_id=public_id).last_used
    assert abs(last - (now - timedelta(seconds=2))) < timedelta(seconds=1)


def test_catch_up_waits_for_nobody_while_another_instance_feeds(tables) -> None:  # type: ignore[no-untyped-def]
    new_key()
    with psycopg.connect(servers.test_database_url(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [usage.LOCK])
        assert usage.catch_up() is False
        assert not UsageState.objects.exists()
        # Let go of it here: a closed connection's server process ends (and frees its
        # locks) a moment after the client has gone, which the next line could beat.
        other.execute("SELECT pg_advisory_unlock(%s)", [usage.LOCK])
    assert usage.catch_up() is True


@pytest.mark.django_db(transaction=True)
def test_two_instances_feeding_at_once_count_every_row_once() -> None:
    today = timezone.now().astimezone(UTC).date()
    with connection.cursor() as cursor:
        obs.drop(cursor)
        obs.create(cursor, [today + timedelta(days=d) for d in (-2, -1, 0, 1)])
    try:
        keys = [new_key(f"k{i}") for i in range(5)]
        now = timezone.now()
        rng = random.Random(2)
        with connection.cursor() as cursor:
            for _ in range(600):
                at = now - timedelta(seconds=rng.uniform(10, 3 * 86400))
                obs.insert(cursor, rng.choice(keys), at, calls=[("m", 3, 4, Decimal("0.01"))])
        errors: list[BaseException] = []
        start = threading.Barrier(3)

        def feed() -> None:
            try:
                start.wait()
                for _ in range(40):
                    usage.catch_up(chunk=timedelta(hours=1))
            except BaseException as error:  # reported by the main thread
                errors.append(error)
            finally:
                connection.close()

        def write() -> None:
            try:
                start.wait()
                with connection.cursor() as cursor:
                    for _ in range(100):
                        obs.insert(cursor, rng.choice(keys), timezone.now() - timedelta(seconds=1))
            except BaseException as error:
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=feed), threading.Thread(target=feed)]
        threads.append(threading.Thread(target=write))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors
        assert usage.catch_up()
        until = usage.uuid_floor(UsageState.objects.get().complete_until)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT tags->>%s, count(*) FROM (SELECT tags, id FROM tensorzero.chat_inferences) i "
                "WHERE id < %s GROUP BY 1",
                [obs.TAG, until],
            )
            raw = dict(cursor.fetchall())
            cursor.execute(
                "SELECT count(*), sum(m.input_tokens) FROM tensorzero.model_inferences m "
                "WHERE m.inference_id < %s",
                [until],
            )
            calls, tokens = cursor.fetchone()
        assert sum(raw.values()) == 700
        assert {k: rolled_up(k) for k in keys} == {k: raw.get(k, 0) for k in keys}
        assert sum(ModelUsageHour.objects.values_list("calls", flat=True)) == calls
        assert sum(ModelUsageHour.objects.values_list("input_tokens", flat=True)) == tokens
    finally:
        with connection.cursor() as cursor:
            obs.drop(cursor)


# --- pages ---------------------------------------------------------------------------------


def test_key_page_shows_the_key_and_its_usage(tables, admin_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TENSORZERO_UI_URL = "https://ui.example"
    created = service.create_key(actor="alice", description="Billing")
    public_id = created.api_key.public_id
    rotation = service.rotate_key(actor="bob", public_id=public_id)
    new_id = rotation.created.api_key.public_id
    now = timezone.now()
    inference = obs.insert(
        tables, public_id, now - timedelta(minutes=30), calls=[("gpt-a", 11, 22, None)]
    )
    obs.insert(tables, public_id, now - timedelta(days=3))
    assert usage.catch_up()
    since = (now - timedelta(hours=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = admin_client.get(f"/api-keys/{public_id}?since={since}")
    assert response.status_code == 200
    html = response.content.decode()
    for text in ("Billing", "Disabled", "default", "Created", "Updated", "Usage as of"):
        assert text in html
    assert f'href="/api-keys/{new_id}"' in html  # replaced by
    assert "Rotated" in html and "bob" in html  # its history
    assert f"{{ api_key_public_id = &quot;{public_id}&quot; }}" in html
    assert "[[rate_limiting.rules]]" in html
    assert '<td class="num" data-label="inferences" id="since-count">1</td>' in html
    assert f'href="https://ui.example/observability/inferences/{inference}"' in html
    assert "gpt-a" in html and ">11<" in html and ">22<" in html
    assert "0 inferences arrived after it was disabled" in html
    new_page = admin_client.get(f"/api-keys/{new_id}").content.decode()
    assert f'href="/api-keys/{public_id}"' in new_page  # replaces
    assert "Never" in new_page
    partial = admin_client.get(f"/api-keys/{public_id}?since={since}", HTTP_HX_REQUEST="true")
    assert partial.content.decode().lstrip().startswith('<section id="usage"')


def test_use_after_disable_beyond_the_cache_ttl_is_flagged(tables, admin_client: Client) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    service.disable_key(actor="t", public_id=public_id)
    from keys.models import ApiKey

    disabled_at = ApiKey.objects.get(public_id=public_id).disabled_at
    ApiKey.objects.filter(public_id=public_id).update(
        disabled_at=disabled_at - timedelta(minutes=10)
    )
    disabled_at -= timedelta(minutes=10)
    obs.insert(tables, public_id, disabled_at - timedelta(minutes=1))
    obs.insert(tables, public_id, disabled_at + timedelta(milliseconds=300))  # within the TTL
    obs.insert(tables, public_id, disabled_at + timedelta(minutes=2))  # a gateway still lets it in
    assert usage.catch_up()
    html = admin_client.get(f"/api-keys/{public_id}").content.decode()
    assert "Used after it was disabled" in html
    assert "2 inferences arrived after" in html
    assert "1 of them more than the gateway's auth cache TTL (1000 ms) later" in html


@pytest.mark.parametrize(
    "since",
    ["9999-12-31T23:30:00Z", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00%2B14:00"],
)
def test_a_since_at_the_ends_of_the_calendar_is_a_400_in_words(
    admin_client: Client, since: str
) -> None:
    """Found by a probe: hours counted around these overflowed into a 500."""
    response = admin_client.get(f"/api-keys/{new_key()}?since={since}")
    assert response.status_code == 400
    assert "since must be between the years 1970 and 8999" in response.content.decode()


def test_key_page_answers_in_words_for_bad_input(admin_client: Client) -> None:
    assert admin_client.get("/api-keys/AAAAAAAAAAAA").status_code == 404
    response = admin_client.get(f"/api-keys/{new_key()}?since=yesterday")
    assert response.status_code == 400
    assert "since must be a date and time" in response.content.decode()
    # The converter takes exactly 12 letters or digits: other pages keep their URLs.
    assert admin_client.get("/api-keys/new").status_code == 200
    assert admin_client.get("/api-keys/audit").status_code == 200
    assert admin_client.get("/api-keys/abc").status_code == 404


def test_viewer_sees_the_key_page_without_write_controls(viewer_client: Client) -> None:
    public_id = new_key()
    html = viewer_client.get(f"/api-keys/{public_id}").content.decode()
    assert public_id in html
    assert f"/api-keys/{public_id}/disable" not in html


def test_list_shows_last_used_and_never(tables, admin_client: Client) -> None:  # type: ignore[no-untyped-def]
    used, unused = new_key("used"), new_key("unused")
    obs.insert(tables, used, timezone.now() - timedelta(hours=2))
    assert usage.catch_up()
    html = admin_client.get("/api-keys").content.decode()
    assert ">Last used</th>" in html
    used_row = html[html.index(f'id="key-{used}"') :].split("</tr>")[0]
    unused_row = html[html.index(f'id="key-{unused}"') :].split("</tr>")[0]
    assert '<td class="last-used"><time' in used_row
    assert '<td class="last-used">Never</td>' in unused_row
    assert f'href="/api-keys/{used}"' in used_row
    assert "Usage as of" in html


def test_stale_filter_with_counts_and_paging(tables, admin_client: Client) -> None:  # type: ignore[no-untyped-def]
    from keys.models import ApiKey

    keys = [new_key(f"old{i}") for i in range(5)]
    ApiKey.objects.filter(public_id__in=keys).update(
        created_at=timezone.now() - timedelta(days=200)
    )
    fresh = new_key("made today")  # new, not stale
    obs.insert(tables, keys[0], timezone.now() - timedelta(days=5))  # used lately
    obs.insert(tables, keys[1], timezone.now() - timedelta(days=60))  # used 60 days ago
    service.disable_key(actor="t", public_id=keys[2])
    # Unbounded here: a page's 2-second catch-up of 60 days may not finish on a busy machine
    # (test_a_bounded_catch_up_says_how_far_it_got covers that case).
    assert usage.catch_up()
    html = admin_client.get("/api-keys?unused=30").content.decode()
    listed = {k for k in [*keys, fresh] if f'id="key-{k}"' in html}
    assert listed == {keys[1], keys[2], keys[3], keys[4]}
    assert 'Not used in 30 days <span class="count">4</span>' in html
    assert 'Not used in 90 days <span class="count">3</span>' in html
    assert 'Disabled <span class="count">1</span>' in html
    assert 'All <span class="count">6</span>' in html
    ninety = admin_client.get("/api-keys?unused=90&status=active").content.decode()
    assert {k for k in keys if f'id="key-{k}"' in ninety} == {keys[3], keys[4]}
    # Keyset paging and ?limit= keep the filter.
    first = admin_client.get("/api-keys?unused=30&limit=2").content.decode()
    assert first.count('<tr id="key-') == 2
    assert "unused=30" in first.split('rel="next"')[1].split(">")[0]
    assert "limit=2" in first.split('rel="next"')[1].split(">")[0]
    second_url = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = admin_client.get("/api-keys" + second_url).content.decode()
    assert second.count('<tr id="key-') == 2
    assert {k for k in keys if f'id="key-{k}"' in first + second} == {
        keys[1],
        keys[2],
        keys[3],
        keys[4],
    }
    counts = admin_client.get("/api-keys/counts", HTTP_HX_REQUEST="true").content.decode()
    assert 'Active <span class="count">5</span>' in counts
    assert admin_client.get("/api-keys?unused=7").status_code == 400
    assert admin_client.get("/api-keys?status=gone").status_code == 400


def test_without_observability_tables_every_usage_element_says_so(
    admin_client: Client, client
) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    page = admin_client.get(f"/api-keys/{public_id}")
    assert page.status_code == 200
    assert usage.ABSENT in page.content.decode()
    listing = admin_client.get("/api-keys").content.decode()
    assert ">Last used</th>" not in listing
    assert usage.ABSENT in admin_client.get("/api-keys/counts").content.decode()
    stale = admin_client.get("/api-keys?unused=30")
    assert stale.status_code == 200
    assert "Cannot tell which keys are unused" in stale.content.decode()
    assert usage.catch_up() is False
    assert client.get("/readyz").status_code == 200


def test_catch_up_command_counts_everything(tables) -> None:  # type: ignore[no-untyped-def]
    from io import StringIO

    from django.core.management import call_command

    public_id = new_key()
    for days in (1, 20, 29):
        obs.insert(tables, public_id, timezone.now() - timedelta(days=days))
    out = StringIO()
    call_command("catch_up_usage", stdout=out)
    assert out.getvalue().startswith("Usage counted up to ")
    assert rolled_up(public_id) == 3


def test_catch_up_command_says_when_there_is_nothing_to_read() -> None:
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="no TensorZero observability tables"):
        call_command("catch_up_usage")


def test_latest_of_a_busy_key_are_its_newest_fifty(tables) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    now = timezone.now()
    ids = [obs.insert(tables, public_id, now - timedelta(seconds=10 + s)) for s in range(70)]
    ids.append(obs.insert(tables, public_id, now - timedelta(seconds=5), table="json_inferences"))
    obs.insert(tables, new_key(), now - timedelta(seconds=1))  # someone else's, newer
    usage.catch_up()
    available, current = usage.refresh()
    latest = usage.key_usage(public_id, available, current).latest
    assert [row.id for row in latest] == sorted(ids, reverse=True)[: usage.LATEST]


def test_a_bounded_catch_up_says_how_far_it_got(tables, admin_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.USAGE_CATCH_UP_SECONDS = 0.001
    public_id = new_key()
    now = timezone.now()
    obs.insert(tables, public_id, now - timedelta(days=10))
    obs.insert(tables, public_id, now - timedelta(minutes=1))
    html = admin_client.get(f"/api-keys/{public_id}").content.decode()
    until = UsageState.objects.get().complete_until
    assert until < now - timedelta(days=9)  # one chunk, then the time was up
    assert "days ago)" in html  # and the page says how old its figures are
    window = html[html.index("Last hour") :].split("</tr>")[0]
    # Nothing newer than "as of" is claimed.
    assert '<td class="num" data-label="inferences">0</td>' in window


def test_an_unbounded_catch_up_outlasts_the_request_statement_timeout(tables) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    for days in range(1, 20):
        obs.insert(tables, public_id, timezone.now() - timedelta(days=days))
    # Requests' statement timeout, made tiny: catch_up_usage's long chunks must not die of it.
    tables.execute("SET statement_timeout = 1")
    assert usage.catch_up(chunk=timedelta(days=30))
    assert rolled_up(public_id) == 19


def test_rows_without_a_function_or_model_name_are_counted(tables, admin_client: Client) -> None:  # type: ignore[no-untyped-def]
    # GATEWAY.md does not promise these columns are NOT NULL; another writer may leave
    # them empty. One such row must not stop the rollup for every key.
    tables.execute("ALTER TABLE tensorzero.chat_inferences ALTER function_name DROP NOT NULL")
    tables.execute("ALTER TABLE tensorzero.chat_inferences ALTER variant_name DROP NOT NULL")
    tables.execute("ALTER TABLE tensorzero.model_inferences ALTER model_name DROP NOT NULL")
    public_id, other = new_key(), new_key()
    now = timezone.now()
    nameless = obs.insert(tables, public_id, now - timedelta(minutes=5), calls=[("m", 3, 4, None)])
    tables.execute(
        "UPDATE tensorzero.chat_inferences SET function_name = NULL, variant_name = NULL "
        "WHERE id = %s",
        [nameless],
    )
    tables.execute(
        "UPDATE tensorzero.model_inferences SET model_name = NULL WHERE inference_id = %s",
        [nameless],
    )
    obs.insert(tables, public_id, now - timedelta(minutes=4), calls=[("gpt-a", 1, 1, None)])
    obs.insert(tables, other, now - timedelta(minutes=3), calls=[("gpt-a", 1, 1, None)])
    assert usage.catch_up()
    assert (rolled_up(public_id), rolled_up(other)) == (2, 1)
    available, current = usage.refresh()
    result = usage.key_usage(public_id, available, current)
    assert {r.name: r.count for r in result.functions} == {"answer": 1, usage.NO_NAME: 1}
    assert {r.name: r.count for r in result.models} == {"gpt-a": 1, usage.NO_NAME: 1}
    oldest = result.latest[-1]
    assert (oldest.function_name, oldest.variant_name) == (usage.NO_NAME, usage.NO_NAME)
    html = admin_client.get(f"/api-keys/{public_id}").content.decode()
    assert usage.NO_NAME in html and "None" not in html


def insert_odd(cursor, public_id: str, first48: int, created_at, n: int = 0) -> None:  # type: ignore[no-untyped-def]
    """Another writer's row: a UUIDv4 whose first 48 bits (a UUIDv7's milliseconds) are
    `first48`."""
    import uuid

    odd = uuid.UUID(int=(first48 << 80) | (0x4 << 76) | (1 << 63) | n)
    cursor.execute(
        "INSERT INTO tensorzero.chat_inferences (id, function_name, variant_name, episode_id, "
        "input, output, tags, created_at) VALUES (%s, 'answer', 'v1', %s, '{}', '{}', %s, %s)",
        [odd, odd, usage.tag_filter(public_id), created_at],
    )


def counted_since(public_id: str, since) -> int:  # type: ignore[no-untyped-def]
    rows = UsageHour.objects.filter(public_id=public_id, hour__gte=usage.hour_floor(since))
    return sum(rows.values_list("inferences", flat=True))


def test_an_id_that_is_not_a_uuidv7_and_reads_as_1970_costs_no_decades_of_chunks(tables) -> None:  # type: ignore[no-untyped-def]
    public_id = new_key()
    now = timezone.now()
    # 150 of them in one table, sorting before the gateway's own rows in both tables.
    for n in range(150):
        insert_odd(tables, public_id, 0x0000_0000_1234, now - timedelta(hours=2), n)
    obs.insert(tables, public_id, now - timedelta(days=3))
    obs.insert(tables, public_id, now - timedelta(hours=1), table="json_inferences")
    # At six hours a chunk, 1970 to now is over 80,000 chunks: far more than 5 s allows.
    assert usage.catch_up(budget_seconds=5)
    # Every row counts at the time its id carries; none of the gateway's is passed over.
    assert counted_since(public_id, now - timedelta(days=4)) == 2
    assert rolled_up(public_id) == 152


def test_an_id_that_reads_past_year_9999_does_not_break_the_rollup(tables, settings) -> None:  # type: ignore[no-untyped-def]
    # About one UUIDv4 in ten reads past 9999-12-31, the end of Python's datetime
    # (PostgreSQL's timestamptz goes on to year 294276).
    public_id = new_key()
    now = timezone.now()
    insert_odd(tables, public_id, 0xF000_0000_0000, now - timedelta(hours=3))
    obs.insert(tables, public_id, now - timedelta(hours=2))
    assert usage.catch_up()
    # The gateway goes idle: the odd row is the only one after the watermark.
    settings.USAGE_MAX_AGE_SECONDS = 0
    available, current = usage.refresh()
    assert available.ok, available.reason
    assert usage.catch_up()
    assert rolled_up(public_id) == 1  # the odd row is dated past now: not yet counted


def test_an_idle_stretch_is_crossed_in_one_step(tables) -> None:  # type: ignore[no-untyped-def]
    from django.test.utils import CaptureQueriesContext

    public_id = new_key()
    now = timezone.now()
    for at in (now - timedelta(days=25), now - timedelta(days=24, hours=23), now):
        obs.insert(tables, public_id, at)
    with CaptureQueriesContext(connection) as queries:
        assert usage.catch_up(chunk=timedelta(hours=6))
    chunks = sum("pg_try_advisory_xact_lock" in q["sql"] for q in queries.captured_queries)
    assert chunks <= 3, chunks  # not one per six hours of the 25 days (100)
    assert rolled_up(public_id) == 3


def test_a_boosted_details_link_becomes_a_page_of_its_own(admin_client: Client) -> None:
    public_id = new_key()
    response = admin_client.get(
        f"/api-keys/{public_id}", HTTP_HX_REQUEST="true", HTTP_HX_BOOSTED="true"
    )
    assert response["HX-Redirect"] == f"/api-keys/{public_id}"


def test_freshness_reads_the_watermark_and_the_databases_time_in_one_query() -> None:
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        empty = usage.freshness()
    assert len(queries) == 1
    assert empty.complete_until is None and empty.known_since is None and empty.age is None
    assert abs(empty.now - timezone.now()) < timedelta(seconds=5)
    until, since = timezone.now() - timedelta(minutes=3), timezone.now() - timedelta(days=2)
    UsageState.objects.create(pk=1, complete_until=until, known_since=since, fed_at=until)
    current = usage.freshness()
    assert (current.complete_until, current.known_since) == (until, since)
    assert timedelta(minutes=3) <= current.age < timedelta(minutes=4)
    assert current.age_text == "3 min ago"


def _aged(seconds: float) -> None:
    """What this process knows of the tables, as if found `seconds` earlier."""
    known = usage._known
    assert known is not None
    usage._known = (known[0] - seconds, known[1])


def test_pages_look_for_the_tables_once_in_a_while(admin_client: Client) -> None:
    from django.test.utils import CaptureQueriesContext

    new_key("listed")
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            assert ">Last used</th>" not in admin_client.get("/api-keys").content.decode()
    assert sum("to_regclass" in query["sql"] for query in queries) == 1
    today = timezone.now().astimezone(UTC).date()
    with connection.cursor() as cursor:
        obs.create(cursor, [today])
    # Within the window the pages keep the answer; past it they look again.
    assert ">Last used</th>" not in admin_client.get("/api-keys").content.decode()
    _aged(usage.AVAILABILITY_SECONDS)
    assert ">Last used</th>" in admin_client.get("/api-keys").content.decode()


def test_a_catch_up_looks_for_the_tables_afresh(admin_client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    used = new_key("used")
    assert ">Last used</th>" not in admin_client.get("/api-keys").content.decode()
    today = timezone.now().astimezone(UTC).date()
    with connection.cursor() as cursor:
        obs.create(cursor, [today])
        obs.insert(cursor, used, timezone.now() - timedelta(minutes=5))
    assert usage.catch_up()  # the command, or a page whose figures were due
    html = admin_client.get("/api-keys").content.decode()
    assert ">Last used</th>" in html
    assert '<td class="last-used"><time' in html.split(f'id="key-{used}"')[1].split("</tr>")[0]
    # Dropped meanwhile: the catch-up the next page makes finds them gone, and says so.
    settings.USAGE_MAX_AGE_SECONDS = 0
    with connection.cursor() as cursor:
        obs.drop(cursor)
    html = admin_client.get("/api-keys").content.decode()
    assert ">Last used</th>" not in html and usage.ABSENT in html


@pytest.mark.django_db(transaction=True)  # the failed read must not abort the test's own
def test_tables_gone_under_a_key_page_say_so_there_and_are_looked_for_again(
    admin_client: Client,
) -> None:
    today = timezone.now().astimezone(UTC).date()
    with connection.cursor() as cursor:
        obs.drop(cursor)
        obs.create(cursor, [today])
    try:
        public_id = new_key("busy")
        with connection.cursor() as cursor:
            obs.insert(cursor, public_id, timezone.now() - timedelta(minutes=5))
        assert usage.catch_up()
        assert ">Last used</th>" in admin_client.get("/api-keys").content.decode()
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE tensorzero.model_inferences CASCADE")
        # The list keeps its answer for 10 s; the key page reads the gateway's own rows.
        page = admin_client.get(f"/api-keys/{public_id}").content.decode()
        assert escape(usage.UNREADABLE) in page
        assert usage.ABSENT in admin_client.get("/api-keys").content.decode()
    finally:
        with connection.cursor() as cursor:
            obs.drop(cursor)
