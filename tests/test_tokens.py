"""The key format, against GATEWAY.md's test vector and by property."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keys import tokens

VECTOR_KEY = "sk-t0-123456789012-" + "a" * 48
VECTOR_HASH = "97daac0ee9998dfcad6c9c0970da5ca411c86233a944c25b47566f6a7bc1ddd5"


def test_gateway_test_vector_parses_to_public_id_and_hash() -> None:
    parsed = tokens.parse(VECTOR_KEY)
    assert parsed.public_id == "123456789012"
    assert parsed.hash == VECTOR_HASH


def test_hash_is_of_the_long_key_alone_not_the_whole_key() -> None:
    assert tokens.hash_long_key("a" * 48) == VECTOR_HASH
    assert tokens.hash_long_key(VECTOR_KEY) != VECTOR_HASH


def test_generated_key_has_the_gateways_shape() -> None:
    key = tokens.generate()
    prefix, version, public_id, long_key = key.split("-")
    assert (prefix, version) == ("sk", "t0")
    assert len(public_id) == 12 and public_id.isalnum() and public_id.isascii()
    assert len(long_key) == 48 and long_key.isalnum() and long_key.isascii()


def test_generated_keys_differ() -> None:
    assert len({tokens.generate() for _ in range(1000)}) == 1000


@given(st.integers(min_value=0, max_value=50))
def test_every_generated_key_parses_and_its_hash_matches(_: int) -> None:
    key = tokens.generate()
    parsed = tokens.parse(key)
    assert key == f"sk-t0-{parsed.public_id}-{parsed.long_key}"
    assert parsed.hash == hashlib.sha256(key.split("-")[3].encode()).hexdigest()


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "sk-t0-123456789012",
        "sk-t1-123456789012-" + "a" * 48,
        "pk-t0-123456789012-" + "a" * 48,
        "sk-t0-12345678901-" + "a" * 49,
        "sk-t0-123456789012-" + "a" * 47,
        "sk-t0-123456789012-" + "a" * 47 + "_",
        "sk-t0-1234567890é2-" + "a" * 48,
        "sk-t0-123456789012-" + "a" * 48 + "-x",
        " sk-t0-123456789012-" + "a" * 48,
    ],
)
def test_parse_rejects_anything_but_the_exact_format(bad: str) -> None:
    with pytest.raises(tokens.InvalidKey):
        tokens.parse(bad)


@given(st.text(max_size=80))
def test_parse_never_fails_otherwise_on_arbitrary_text(text: str) -> None:
    try:
        parsed = tokens.parse(text)
    except tokens.InvalidKey:
        return
    assert len(parsed.public_id) == 12


def test_repr_hides_the_secret() -> None:
    assert "a" * 48 not in repr(tokens.parse(VECTOR_KEY))
