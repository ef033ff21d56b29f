"""`make run` end to end: embedded PostgreSQL, gunicorn, Ctrl-C, and a second start."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from t0admin.serve import gunicorn_command
from tests.conftest import ROOT, free_port

pytestmark = pytest.mark.slow


def start(
    data: Path,
    port: int,
    command: tuple[str, ...] = ("make", "--no-print-directory", "run"),
    **popen: Any,
) -> subprocess.Popen[str]:
    """The default run (embedded PostgreSQL in `data`), as a user starts it."""
    env = {k: v for k, v in os.environ.items() if k not in {"TENSORZERO_POSTGRES_URL"}}
    env.update(T0ADMIN_DATA_DIR=str(data), T0ADMIN_BIND=f"127.0.0.1:{port}")
    env.pop("DJANGO_SECRET_KEY", None)
    return subprocess.Popen(
        list(command),
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **popen,
    )


SERVE = (sys.executable, "-m", "t0admin.serve")


def stop_or_kill(server: subprocess.Popen[str], data: Path, port: int) -> str:
    """Wait for a stopping server; if it hangs, kill what it left so no test leaves
    servers behind, and return its output either way."""
    try:
        output, _ = server.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        server.kill()
        kill_leftovers(data, port)
        raise
    return output


def assert_nothing_left(data: Path, port: int, grace: float = 10) -> None:
    found = leftovers(data, port, grace)
    kill_leftovers(data, port)  # a failing test must not leave servers behind either
    assert found == []


def wait_ready(port: int, proc: subprocess.Popen[str], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):  # refused, 503, or slow on a busy machine
            pass
        time.sleep(0.3)
    raise AssertionError("make run never became ready")


def ctrl_c(proc: subprocess.Popen[str]) -> str:
    """Send SIGINT to the whole foreground group, as a terminal's Ctrl-C does."""
    os.killpg(proc.pid, signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    return output


def leftovers(data: Path, port: int, grace: float = 10) -> list[str]:
    """Processes of this run still alive once `grace` seconds have passed."""
    deadline = time.monotonic() + grace
    while True:
        found = []
        for process in psutil.process_iter(["name", "cmdline", "status"]):
            cmdline = " ".join(process.info["cmdline"] or [])
            if process.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if str(data) in cmdline or f"127.0.0.1:{port}" in cmdline:
                found.append(f"{process.pid} {cmdline}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def kill_leftovers(data: Path, port: int) -> None:
    """After a failed stop: end what the run left, so a red test leaves no servers."""
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(data) in cmdline or f"127.0.0.1:{port}" in cmdline:
            process.kill()


def socket_dir(data: Path) -> str:
    return (data / "postgres" / "postmaster.pid").read_text().splitlines()[4]


def test_make_run_serves_stops_cleanly_and_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()

    first = start(data, port, start_new_session=True)  # its own group, like a terminal job
    try:
        wait_ready(port, first)
        with psycopg.connect(host=socket_dir(data), dbname="postgres", user="postgres") as conn:
            conn.execute(
                "INSERT INTO public.tensorzero_auth_api_key (organization, workspace, public_id, hash) "
                "VALUES ('default', 'default', 'KEEPMEKEEPME', 'x')"
            )
    finally:
        output = ctrl_c(first)
    assert f"http://localhost:{port}/api-keys" in output
    assert str(data) in output
    assert "Sign in as 'admin'" in output
    # make itself re-raises SIGINT after its child has finished, as on a terminal.
    assert first.returncode in (0, -signal.SIGINT), output
    assert_nothing_left(data, port)

    second = start(data, port, start_new_session=True)
    try:
        wait_ready(port, second)
        with psycopg.connect(host=socket_dir(data), dbname="postgres", user="postgres") as conn:
            kept = conn.execute(
                "SELECT public_id FROM public.tensorzero_auth_api_key WHERE public_id = 'KEEPMEKEEPME'"
            ).fetchall()
    finally:
        output = ctrl_c(second)
    assert kept == [("KEEPMEKEEPME",)]
    assert "Sign in as 'admin'" not in output  # the first run's user is still there
    assert_nothing_left(data, port)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_one_signal_to_serve_stops_gunicorn_and_postgres(tmp_path: Path, signum: int) -> None:
    """Docker stops a container with SIGTERM to its one process, t0admin.serve; and a
    shell that starts it in the background leaves SIGINT ignored, which must not matter."""
    data, port = tmp_path / "data", free_port()
    # As a background job of a script: SIGINT ignored from the start.
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    server = start(data, port, SERVE, preexec_fn=ignore_sigint)  # noqa: PLW1509
    try:
        wait_ready(port, server)
    finally:
        server.send_signal(signum)  # to serve alone, not to its process group
        output = stop_or_kill(server, data, port)
    assert server.returncode == 0, output
    assert "embedded PostgreSQL stopped" in output
    assert_nothing_left(data, port)


def test_a_stop_during_start_up_leaves_nothing_running(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    server = start(data, port, SERVE)
    try:
        assert server.stdout is not None
        assert "starting the embedded PostgreSQL" in server.stdout.readline()
    finally:
        server.send_signal(signal.SIGTERM)  # while PostgreSQL is still starting
        output = stop_or_kill(server, data, port)
    assert server.returncode == 0, output
    assert "Traceback" not in output
    assert_nothing_left(data, port)


def test_stopping_make_alone_stops_everything(tmp_path: Path) -> None:
    """`timeout make run` or a supervisor sends SIGTERM to make alone; GNU make passes it
    on to the recipe, and serve must then stop gunicorn and PostgreSQL too."""
    data, port = tmp_path / "data", free_port()
    server = start(data, port, start_new_session=True)
    try:
        wait_ready(port, server)
    finally:
        os.kill(server.pid, signal.SIGTERM)  # make only, not its process group
        stop_or_kill(server, data, port)
    assert_nothing_left(data, port, grace=30)


def test_after_kill_9_the_next_make_run_clears_what_was_left_and_starts(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    first = start(data, port, start_new_session=True)
    try:
        wait_ready(port, first)
        (serve,) = psutil.Process(first.pid).children()  # make's one child: t0admin.serve
        gunicorn = [p for p in serve.children() if "gunicorn" in " ".join(p.cmdline())]
        assert len(gunicorn) == 1
        serve.kill()
        first.communicate(timeout=30)  # make reports its killed recipe and exits
        # Linux takes gunicorn down with its parent: nothing holds the port for long.
        gunicorn[0].wait(timeout=20)
    except BaseException:
        first.kill()
        kill_leftovers(data, port)
        raise

    second = start(data, port, start_new_session=True)
    try:
        wait_ready(port, second)
    except BaseException:
        kill_leftovers(data, port)  # the first run's too: a red test leaves no servers
        raise
    finally:
        output = ctrl_c(second)
    assert "embedded PostgreSQL stopped" in output, output
    # The PostgreSQL the killed run left is joined, then stopped with this run.
    assert_nothing_left(data, port)


def test_a_gunicorn_left_running_is_found_by_its_pid_file_and_stopped(tmp_path: Path) -> None:
    """Where the OS cannot take children down with their parent, the pid file can: here a
    gunicorn that an earlier run started, with its pid file, still holds the port."""
    data, port = tmp_path / "data", free_port()
    data.mkdir()
    left = subprocess.Popen(  # noqa: S603
        gunicorn_command("--bind", f"127.0.0.1:{port}", "--pid", str(data / "gunicorn.pid")),
        cwd=ROOT,
        env={
            **os.environ,
            "TENSORZERO_POSTGRES_URL": "postgresql://unused@127.0.0.1:1/unused",
            "DJANGO_SECRET_KEY": "x" * 50,
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not (data / "gunicorn.pid").exists():
            assert left.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        server = start(data, port, SERVE)
        try:
            wait_ready(port, server)
        finally:
            server.send_signal(signal.SIGTERM)
            output = stop_or_kill(server, data, port)
        assert left.wait(timeout=5) is not None
    finally:
        left.kill()
        left.wait()
    assert f"stopping gunicorn (pid {left.pid}) left by an earlier run" in output, output
    assert_nothing_left(data, port)


def test_a_port_held_by_another_program_is_named(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        server = start(data, port, SERVE)
        output = stop_or_kill(server, data, port)
    assert server.returncode == 2, output
    assert f"127.0.0.1:{port} is in use by pid {os.getpid()}" in output, output
    assert "Traceback" not in output
    assert_nothing_left(data, port)


def test_a_second_make_run_on_the_same_data_is_refused_by_name(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    first = start(data, port, SERVE)
    try:
        wait_ready(port, first)
        second = start(data, free_port(), SERVE)
        output = stop_or_kill(second, data, port)
        assert second.returncode == 2, output
        assert f"another t0admin (pid {first.pid}) is serving from {data}" in output
        assert wait_ready(port, first) is None  # the first one is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        stop_or_kill(first, data, port)
    assert_nothing_left(data, port)


def test_workers_are_replaced_now_and_then_not_all_at_once() -> None:
    from t0admin import gunicorn_conf

    assert gunicorn_conf.max_requests > 0
    assert gunicorn_conf.max_requests_jitter > 0


def test_workers_freeze_what_they_loaded_at_start() -> None:
    """The hook is one gunicorn knows by that name (a typo would be ignored), and it moves
    the objects loaded so far out of the garbage collector's way."""
    import gc

    from gunicorn.config import Config

    from t0admin import gunicorn_conf

    config = Config()
    config.set("post_worker_init", gunicorn_conf.post_worker_init)
    before = gc.get_freeze_count()
    try:
        config.post_worker_init(object())
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()
