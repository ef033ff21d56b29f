"""Served list pages of several commits, side by side, on one scratch database.

    python bench/compare.py [--rows 100000] [--turns 120] BASE [OTHER ...]

Each commit (any name git knows; `.` is the working tree) gets its own git worktree and
its own gunicorn with t0admin's configuration, all on the same scratch database with the
same signed-in session. The requests then take turns: five to one server, five to the
next, for every page, `--turns` times, the order of the servers reversed every other
turn. A busy neighbour on a shared machine moves a page of a few milliseconds by a third
from one minute to the next; taken in turns, every commit meets the same moments, and the
differences between them stand out of that noise. (`make bench` measures one commit
against /healthz; this measures commits against each other.) Prints one Markdown table:
the median ms of each page for each commit, and its ratio to that server's own /healthz.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as `python bench/compare.py`

import paging  # noqa: E402  (bench/paging.py, beside this file)
import served  # noqa: E402

from tests.conftest import free_port  # noqa: E402

BLOCK = 5  # requests to one server before the next one's turn


@contextmanager
def worktree(commit: str) -> Iterator[Path]:
    """The tree of `commit`, checked out apart from this one; `.`: this one."""
    if commit == ".":
        yield ROOT
        return
    with tempfile.TemporaryDirectory(prefix="t0admin-compare-") as parent:
        path = Path(parent) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), commit],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], check=False
            )


@contextmanager
def server(tree: Path, database_url: str, secret_key: str) -> Iterator[int]:
    """gunicorn as `make run` starts it, serving `tree`'s code; its port."""
    port = free_port()
    env = {
        **os.environ,
        "TENSORZERO_POSTGRES_URL": database_url,
        "DJANGO_SECRET_KEY": secret_key,
        "T0ADMIN_ALLOWED_HOSTS": "localhost,127.0.0.1",
        # Static files as this tree collected them: the pages only name them.
        "T0ADMIN_STATIC_ROOT": str(ROOT / "staticfiles"),
        "PYTHONPATH": str(tree),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:t0admin.gunicorn_conf"]
    command += ["--bind", f"127.0.0.1:{port}", "--access-logfile", "/dev/null"]
    process = subprocess.Popen(command, cwd=tree, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"gunicorn for {tree} stopped"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, f"gunicorn for {tree} never answered"
                time.sleep(0.2)
        yield port
    finally:
        process.terminate()
        process.wait(30)


def same_session_for_older_commits(database_url: str) -> None:
    """Commits from before migration keys 0010 read their sessions from django_session:
    the bench's session goes there too (the same signed data)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO t0admin.django_session (session_key, session_data, expire_date) "
            "SELECT session_key, session_data, expire_date FROM t0admin.keys_session "
            "ON CONFLICT DO NOTHING"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("commits", nargs="+", help="git commits to compare; `.`: this tree")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=120)
    args = parser.parse_args()

    with paging.postgres_server() as server_url, paging.scratch_database(server_url) as db:
        secret_key = secrets.token_urlsafe(50)
        os.environ["DJANGO_SECRET_KEY"] = secret_key
        paging.setup_django(db)
        paging.load(db, args.rows)  # migrated by this tree: later migrations are its own
        deep = paging.cursor_at(db, args.rows // 2)
        pages = ["/healthz", "/api-keys?limit=1", "/api-keys", f"/api-keys?before={deep}"]
        session = served.session_cookie("bench")
        same_session_for_older_commits(db)
        with ExitStack() as stack:
            clients = {}
            for commit in args.commits:
                tree = stack.enter_context(worktree(commit))
                client = served.Client(stack.enter_context(server(tree, db, secret_key)))
                client.cookies.update({"sessionid": session, "t0admin_tz": "UTC"})
                for page in pages:  # warm-up, and every page answers
                    for _ in range(20):
                        assert client.request("GET", page).status == 200, (commit, page)
                clients[commit] = client
            times: dict[tuple[str, str], list[float]] = {}
            for turn in range(args.turns):
                # Every other turn the other way round: whoever goes first after another
                # server's turn pays for waking up, and that must fall on all alike.
                order = list(clients.items())[:: 1 if turn % 2 else -1]
                for page in pages:
                    for commit, client in order:
                        got = times.setdefault((commit, page), [])
                        for _ in range(BLOCK):
                            answer = client.request("GET", page)
                            assert answer.status == 200, (commit, page, answer.status)
                            got.append(answer.ms)

    head = "| page | " + " | ".join(f"`{c}` ms (× /healthz)" for c in args.commits) + " |"
    print(head)
    print("|---|" + "---:|" * len(args.commits))
    for page in pages:
        cells = []
        for commit in args.commits:
            median = statistics.median(times[(commit, page)])
            healthz = statistics.median(times[(commit, "/healthz")])
            cells.append(f"{median:.2f} ({median / healthz:.1f}×)")
        print(f"| {page.split('=')[0]}{'=…' if '=' in page else ''} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
