"""Logs that stay readable through an outage: one line per failed request with its reason,
and a traceback only the first time in a minute that an error shows up.

During a database outage every request fails the same way; a 7 to 14 KB traceback each
made 33 MB of log for two 10-second outages (issue 9). The filter sits on the handler
(settings.LOGGING), so every logger that passes an exception through it is covered.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
import traceback
from pathlib import Path

WINDOW_SECONDS = 60.0
REASON_LENGTH = 300


def _reason(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if len(text) > REASON_LENGTH:
        text = text[:REASON_LENGTH] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _signature(error: BaseException) -> str:
    """The same error: the same type raised at the same line, whatever its message says
    (messages carry addresses, process IDs and times)."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    kind = f"{type(error).__module__}.{type(error).__qualname__}"
    return hashlib.sha256(f"{kind} {where}".encode()).hexdigest()[:20]


class OneTracebackPerMinute(logging.Filter):
    """Adds the reason to every record that carries an exception, and keeps its traceback
    only if the same error has not been logged with one in the last minute.

    The minute is kept across processes (gunicorn's workers) in small stamp files under
    `directory`, each claimed under an exclusive lock; without a usable directory it is
    kept per process.
    """

    def __init__(self, directory: str | None = None) -> None:
        super().__init__()
        self.directory = Path(directory) if directory else None
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is None:
            return True
        reason = _reason(error)
        if self._first_in_window(_signature(error)):
            suffix = f" [{reason}]"
        else:
            suffix = f" [{reason}] (traceback already logged in the last minute)"
            record.exc_info = None
            record.exc_text = None
            record.stack_info = None
        record.msg = record.getMessage() + suffix
        record.args = ()
        return True

    def _first_in_window(self, signature: str) -> bool:
        now = time.time()
        with self._lock:
            if now - self._last.get(signature, 0.0) < WINDOW_SECONDS:
                return False  # this process logged it lately: no need to ask the others
            last = self._claim(signature, now)
            self._last[signature] = last
            return last == now

    def _claim(self, signature: str, now: float) -> float:
        """When the error was last logged with its traceback: `now` if this call may."""
        if self.directory is None:
            return now
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / signature, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            return now  # no shared stamp: this process's own memory decides
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stamp = os.read(fd, 64).decode("ascii", "replace").strip()
            with contextlib.suppress(ValueError):
                if now - float(stamp) < WINDOW_SECONDS:
                    return float(stamp)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{now!r}".encode())
            return now
        finally:
            os.close(fd)  # also releases the lock
