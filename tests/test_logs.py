"""The log filter: a reason on every error line, a traceback once a minute per error."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from t0admin import logs


def make_logger(name: str, directory: Path) -> tuple[logging.Logger, io.StringIO]:
    """One gunicorn worker's logging, as settings.LOGGING sets it up."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(logs.OneTracebackPerMinute(str(directory)))
    logger = logging.getLogger(f"t0admin.test.{name}")
    logger.handlers = [handler]
    logger.propagate = False
    return logger, out


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    yield make_logger("one", tmp_path)


def fail(logger: logging.Logger, message: str = "database gone") -> None:
    try:
        raise ConnectionError(message)
    except ConnectionError:
        logger.exception("Service Unavailable: %s", "/api-keys")


def test_every_error_line_says_why(worker: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = worker
    fail(logger)
    first = out.getvalue().splitlines()[0]
    assert first == "ERROR Service Unavailable: /api-keys [ConnectionError: database gone]"


def test_the_same_error_gets_one_traceback_a_minute(
    worker: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = worker
    for n in range(50):
        fail(logger, f"database gone (attempt {n})")  # the message varies, the error not
    text = out.getvalue()
    assert text.count("Traceback (most recent call last)") == 1
    assert text.count("Service Unavailable") == 50
    assert text.count("(traceback already logged in the last minute)") == 49


def test_a_different_error_gets_its_own_traceback(
    worker: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, out = worker
    fail(logger)
    try:
        {}["missing"]  # noqa: B018
    except KeyError:
        logger.exception("Internal Server Error")
    assert out.getvalue().count("Traceback (most recent call last)") == 2


def test_workers_sharing_a_data_dir_share_the_minute(tmp_path: Path) -> None:
    first, first_out = make_logger("first", tmp_path)
    second, second_out = make_logger("second", tmp_path)
    fail(first)
    fail(second)
    assert "Traceback" in first_out.getvalue()
    assert "Traceback" not in second_out.getvalue()
    assert "[ConnectionError: database gone]" in second_out.getvalue()


def test_a_traceback_comes_again_after_a_minute(
    worker: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch
) -> None:
    logger, out = worker
    fail(logger)
    now = logs.time.time()
    monkeypatch.setattr(logs.time, "time", lambda: now + logs.WINDOW_SECONDS + 1)
    fail(logger)
    assert out.getvalue().count("Traceback (most recent call last)") == 2
