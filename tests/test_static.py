"""Static files are served as collectstatic made them, never from the source folders."""

from __future__ import annotations

import pytest

from tests.static_checks import assert_collected_static_served


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_the_collected_compressed_hashed_files(live_server_url: str) -> None:
    assert_collected_static_served(live_server_url)
