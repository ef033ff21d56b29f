"""keys.leaks: every key in any text, each once, classified with one query."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import given, settings
from hypothesis import strategies as st

from keys import leaks, service, tokens
from keys.leaks import State
from keys.models import ApiKey

ALNUM = tokens.ALPHABET


def key_strategy() -> st.SearchStrategy[str]:
    part = lambda n: st.text(ALNUM, min_size=n, max_size=n)  # noqa: E731
    return st.builds(lambda p, s: f"sk-t0-{p}-{s}", part(12), part(48))


# Noise never holds 12 letters and digits in a row before a dash (every run of them ends
# in "~"), so it can never form a key by itself; it holds everything else: punctuation,
# dashes of every kind, quotes, unicode, newlines, stray prefixes.
noise = st.lists(
    st.one_of(
        st.text(ALNUM, max_size=11).map(lambda run: run + "~"),
        st.text(st.characters(exclude_characters=ALNUM), max_size=8),
        st.sampled_from(["sk-t0-", "Bearer ", "=", '"', "\u2013", "sk", "-", "\n", "?api_key="]),
    ),
    max_size=12,
).map(lambda parts: "".join(parts))


@st.composite
def text_with_keys(draw: st.DrawFn) -> tuple[str, list[str]]:
    keys = draw(st.lists(key_strategy(), max_size=6))
    pieces = []
    for key in keys:
        pieces.append(draw(noise))
        # Something that is not a letter or digit on each side: else it is not a key.
        pieces.append(draw(st.sampled_from([" ", "\n", '"', "'", "=", ":", "(", "\t", "/"])))
        pieces.append(key)
        pieces.append(draw(st.sampled_from([" ", "\n", '"', "'", ",", ")", "&", "\t", "."])))
    pieces.append(draw(noise))
    return "".join(pieces), keys


@settings(max_examples=300, deadline=None)
@given(text_with_keys())
def test_extraction_finds_every_embedded_key_and_invents_none(case: tuple[str, list[str]]) -> None:
    text, keys = case
    found = [f"sk-t0-{k.public_id}-{k.long_key}" for k in leaks.extract(text)]
    assert found == list(dict.fromkeys(keys))


@settings(max_examples=200, deadline=None)
@given(text_with_keys(), st.lists(st.integers(min_value=1, max_value=90), min_size=1))
def test_chunked_reading_finds_the_same_keys(case: tuple[str, list[str]], sizes: list[int]) -> None:
    text, _ = case
    chunks, at = [], 0
    while at < len(text):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(text[at : at + size])
        at += size
    assert leaks.distinct(leaks.iter_keys(chunks)) == leaks.extract(text)


def test_noise_alone_finds_nothing() -> None:
    assert leaks.extract("sk-t0-short-key sk-t0-" + "a" * 11 + "-" + "b" * 48) == []
    # One character too many on either side: not a key the gateway would parse.
    assert leaks.extract("sk-t0-" + "a" * 13 + "-" + "b" * 48) == []
    assert leaks.extract("sk-t0-" + "a" * 12 + "-" + "b" * 49) == []


def test_keys_in_every_usual_wrapping_each_once_in_order() -> None:
    a, b, c, d, e = (tokens.generate() for _ in range(5))
    typographic = e.replace("-", "\u2013")
    text = "\n".join(
        [
            f"curl -H 'Authorization: Bearer {a}' https://gw/inference",
            json.dumps({"api_key": b, "again": a}),
            f"export TENSORZERO_API_KEY={c}",
            f"GET /v1?api_key={d}&x=1",
            f"“{typographic}” said the chat",
            f"{a}{b}",  # a one-line field dropped the newline between two pasted keys
        ]
    )
    found = [f"sk-t0-{k.public_id}-{k.long_key}" for k in leaks.extract(text)]
    assert found == [a, b, c, d, e]


def test_a_key_without_its_prefix_is_still_found() -> None:
    key = tokens.generate()
    (found,) = leaks.extract("token: " + key.removeprefix("sk-t0-"))
    assert found == tokens.parse(key)


def test_repr_of_what_was_found_hides_the_secret() -> None:
    key = tokens.generate()
    classified = leaks.Classified(tokens.parse(key), State.UNKNOWN, None)
    assert tokens.parse(key).long_key not in repr(leaks.extract(key)) + repr(classified)


@pytest.mark.django_db
def test_classifies_every_state_with_one_query() -> None:
    active = service.create_key(actor="t")
    disabled = service.create_key(actor="t")
    service.disable_key(actor="t", public_id=disabled.api_key.public_id)
    expired = service.create_key(actor="t")
    ApiKey.objects.filter(pk=expired.api_key.pk).update(
        expires_at=timezone.now() - timedelta(minutes=5)
    )
    real = service.create_key(actor="t")
    forged = f"sk-t0-{real.api_key.public_id}-{'F' * 48}"
    unknown = tokens.generate()
    text = f"{active.secret} {disabled.secret} {expired.secret} {forged} {unknown} {active.secret}"
    found = leaks.extract(text)
    with CaptureQueriesContext(connection) as queries:
        result = leaks.classify(found)
    assert len(queries) == 1
    assert [(r.public_id, r.state) for r in result] == [
        (active.api_key.public_id, State.ACTIVE),
        (disabled.api_key.public_id, State.DISABLED),
        (expired.api_key.public_id, State.EXPIRED),
        (real.api_key.public_id, State.NOT_A_KEY),
        (tokens.parse(unknown).public_id, State.UNKNOWN),
    ]
    assert result[1].since == ApiKey.objects.get(pk=disabled.api_key.pk).disabled_at
    assert result[2].since is not None
    assert result[3].real_state == "active"
    assert leaks.counts(result)[State.ACTIVE] == 1


@pytest.mark.django_db
def test_one_query_however_many_keys() -> None:
    found = leaks.extract(" ".join(tokens.generate() for _ in range(500)))
    with CaptureQueriesContext(connection) as queries:
        result = leaks.classify(found)
    assert len(queries) == 1
    assert {r.state for r in result} == {State.UNKNOWN}


def test_nothing_found_asks_the_database_nothing() -> None:
    assert leaks.classify([]) == []


@pytest.mark.parametrize(
    "cut",
    [
        lambda k: k[:40] + "\n" + k[40:],  # a hard wrap at 40 columns
        lambda k: k[:30] + "=\r\n" + k[30:],  # quoted-printable's soft line break
        lambda k: k[:64] + "\n    " + k[64:],  # wrapped and indented by a log viewer
        lambda k: k[:50] + "\n> " + k[50:],  # a quoted e-mail reply
        lambda k: k[:10] + "\n" + k[10:],  # cut inside the public ID
        lambda k: k[:33] + "\u00ad" + k[33:],  # a soft hyphen a chat slipped in
        lambda k: k[:20] + "\u200b" + k[20:],  # a zero-width space
    ],
    ids=["wrap", "quoted-printable", "indented", "quoted-reply", "in-public-id", "shy", "zwsp"],
)
def test_a_key_a_line_break_cut_is_found_joined(cut) -> None:  # type: ignore[no-untyped-def]
    key, other = tokens.generate(), tokens.generate()
    text = f"From the incident chat:\nAuthorization: Bearer {cut(key)}\nthanks, and {other}"
    found = [f"sk-t0-{k.public_id}-{k.long_key}" for k in leaks.extract(text)]
    assert found == [key, other]  # in order of first appearance


@pytest.mark.django_db
def test_a_join_that_makes_no_real_key_is_told_apart() -> None:
    # A key cut short at the end of a line, and the next line's text after it: the join
    # is classified by its hash like any key, and a made-up one is never "active".
    real = service.create_key(actor="t")
    short = real.secret[:50]  # 31 of the secret's 48 characters
    text = f"{short}\nABCDEFGHIJKLMNOPQ and more"  # 17 more that are not the rest of it
    assert leaks.extract(f"{short}\nABCDEFGHIJKLMNOPQRS and more") == []  # runs on: no key
    (found,) = leaks.classify(leaks.extract(text))
    assert found.public_id == real.api_key.public_id
    assert found.state is State.NOT_A_KEY


BREAKS = st.sampled_from(["\n", "\r\n", "=\n", "=\r\n", "\n    ", "\n> ", "\u00ad", "\u200b"])


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(key_strategy(), st.integers(7, 66), BREAKS), min_size=1, max_size=4),
    st.lists(st.integers(min_value=1, max_value=90), min_size=1),
)
def test_cut_keys_are_found_in_order_however_the_text_is_read(
    cuts: list[tuple[str, int, str]], sizes: list[int]
) -> None:
    keys = [key for key, _, _ in cuts]
    text = "".join(f"said: {key[:at]}{cut}{key[at:]}\nok\n" for key, at, cut in cuts)
    chunks, at = [], 0
    while at < len(text):
        size = sizes[len(chunks) % len(sizes)]
        chunks.append(text[at : at + size])
        at += size
    found = [f"sk-t0-{k.public_id}-{k.long_key}" for k in leaks.distinct(leaks.iter_keys(chunks))]
    assert found == list(dict.fromkeys(keys))


def test_a_cut_key_must_end_where_an_uncut_one_would() -> None:
    key = tokens.generate()
    # Three more letters after the 48: no key, cut or not.
    assert leaks.extract(f"{key}XYZ") == []
    assert leaks.extract(f"{key[:30]}\u200b{key[30:]}XYZ") == []
