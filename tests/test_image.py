"""The Docker image, built with podman (tests/image/build.sh) and run for real.

Building and running it takes minutes on a shared 2-core machine, so `make test` runs it
only when asked (T0ADMIN_IMAGE_TESTS=1); .ci/run always asks. Otherwise pytest reports
it as skipped, with the reason below. By hand:
    tests/image/build.sh && T0ADMIN_IMAGE_TESTS=1 .venv/bin/pytest tests/test_image.py
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import ROOT, free_port
from tests.pgserver import postgres_server
from tests.static_checks import assert_collected_static_served

if os.environ.get("T0ADMIN_IMAGE_TESTS") != "1":
    pytest.skip(
        "the image tests build and run the Docker image with podman (minutes of work); "
        ".ci/run runs them. Here: T0ADMIN_IMAGE_TESTS=1 make test, or tests/image/build.sh "
        "then T0ADMIN_IMAGE_TESTS=1 .venv/bin/pytest tests/test_image.py",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

IMAGE = "localhost/t0admin:test"
PODMAN = str(ROOT / "tests" / "image" / "podman.sh")
# Under slirp4netns with allow_host_loopback, the host's 127.0.0.1 is this address.
HOST_LOOPBACK = "10.0.2.2"
# A read-only root as Docker makes it (podman would add a tmpfs /tmp of its own), plus the
# one writable place that the README asks for: temp files of gunicorn and PostgreSQL.
READ_ONLY = ("--read-only", "--read-only-tmpfs=false", "--tmpfs=/tmp")
# What the app adds on top of its base image (Python and Debian): checked, and reported.
APP_SHARE_LIMIT = 150_000_000


def podman(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, f"podman {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="module")
def image() -> str:
    for tool in ("podman", "runc", "mmdebstrap"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install podman runc mmdebstrap (.ci/run does)")
    build = subprocess.run(
        [str(ROOT / "tests" / "image" / "build.sh"), IMAGE],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-6000:] + build.stderr[-6000:]
    return IMAGE


@dataclass
class Container:
    name: str
    url: str

    def logs(self) -> str:
        result = podman("logs", self.name)
        return result.stdout + result.stderr

    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *argv, check=False)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=3) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            state = podman("inspect", "--format", "{{.State.Status}}", self.name).stdout.strip()
            assert state == "running", f"container {state}:\n{self.logs()}"
            assert time.monotonic() < deadline, f"not ready in {timeout} s:\n{self.logs()}"
            time.sleep(0.5)

    def stop(self) -> float:
        """`podman stop` as an orchestrator does (SIGTERM, then SIGKILL after 10 s)."""
        started = time.monotonic()
        podman("stop", "--time", "10", self.name, timeout=60)
        took = time.monotonic() - started
        print(f"image: {self.name} stopped in {took:.1f} s")  # pytest -s shows it
        return took

    def exit_code(self) -> int:
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout)


@contextlib.contextmanager
def running(image: str, *options: str, env: dict[str, str] | None = None) -> Iterator[Container]:
    name = f"t0admin-test-{secrets.token_hex(4)}"
    port = free_port()
    env_args = [f"--env={key}={value}" for key, value in (env or {}).items()]
    podman(
        "run",
        "--detach",
        f"--name={name}",
        f"--publish=127.0.0.1:{port}:4000",
        *options,
        *env_args,
        image,
    )
    container = Container(name, f"http://127.0.0.1:{port}")
    try:
        container.wait_ready()
        yield container
    finally:
        podman("rm", "--force", "--volumes", "--time", "0", name, check=False)


def first_admin_password(logs: str) -> str:
    found = re.search(r"Sign in as 'admin' with the password\nt0admin:\s+(\S+)\n", logs)
    assert found, logs
    return found[1]


def assert_sign_in_opens_the_keys(url: str, password: str) -> None:
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    with opener.open(url + "/api-keys", timeout=10) as response:  # follows to the sign-in page
        assert response.url == url + "/sign-in?next=/api-keys"
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.read().decode())
    assert token
    form = {"csrfmiddlewaretoken": token[1], "username": "admin", "password": password}
    form["next"] = "/api-keys"
    request = urllib.request.Request(
        url + "/sign-in",
        data=urllib.parse.urlencode(form).encode(),
        headers={"Referer": url + "/sign-in"},
    )
    with opener.open(request, timeout=10) as response:
        assert response.url == url + "/api-keys"
        assert "Generate API Key" in response.read().decode()


def assert_healthy(container: Container) -> None:
    # No systemd here to run the HEALTHCHECK on its interval: run it by hand, as CI does.
    podman("healthcheck", "run", container.name)
    state = json.loads(podman("inspect", container.name).stdout)[0]["State"]
    assert (state.get("Health") or state["Healthcheck"])["Status"] == "healthy"


def assert_not_root(container: Container) -> None:
    status = container.exec("cat", "/proc/1/status").stdout
    uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert uids and uids[1] == uids[2] == "10001", status


def test_embedded_postgres_in_a_volume_on_a_read_only_root(image: str) -> None:
    volume = f"t0admin-test-{secrets.token_hex(4)}"
    try:
        with running(image, *READ_ONLY, f"--volume={volume}:/data") as container:
            logs = container.logs()
            assert "t0admin: starting the embedded PostgreSQL in /data/postgres" in logs
            # Start messages name what works from outside the container.
            assert "(docker exec -it CONTAINER python manage.py changepassword admin)" in logs
            assert ".venv/bin/python" not in logs
            assert "docker stop CONTAINER to stop" in logs
            assert_sign_in_opens_the_keys(container.url, first_admin_password(logs))
            assert_healthy(container)
            assert_not_root(container)
            assert_collected_static_served(container.url)
            # The build made no data folder of its own: /data (the volume) is the only one.
            assert container.exec("test", "-e", "/app/.data").returncode == 1

            created = container.exec(
                "python", "manage.py", "create_api_key", "--description", "kept across a restart"
            )
            assert created.returncode == 0, created.stderr
            assert re.fullmatch(r"sk-t0-[A-Za-z0-9]{12}-[A-Za-z0-9]{48}\n", created.stdout)

            took = container.stop()
            assert took < 10, f"stopping took {took:.1f} s"
            assert container.exit_code() == 0
            assert "t0admin: embedded PostgreSQL stopped" in container.logs()

            podman("start", container.name)
            container.wait_ready()
            listed = container.exec("python", "manage.py", "list_api_keys", "--json")
            assert listed.returncode == 0, listed.stderr
            assert [key["description"] for key in json.loads(listed.stdout)] == [
                "kept across a restart"
            ]
            assert (
                "Sign in as 'admin'" not in container.logs().split("embedded PostgreSQL stopped")[1]
            )
            # PostgreSQL's own word that the stop was clean: no recovery on the second start.
            server_log = container.exec("cat", "/data/postgres/log").stdout
            assert "database system is shut down" in server_log
            assert "not properly shut down" not in server_log
            assert "automatic recovery" not in server_log
    finally:
        podman("volume", "rm", "--force", volume, check=False)


def test_external_postgres_on_the_host(image: str) -> None:
    """A PostgreSQL on the host's loopback, with an empty `tensorzero` database."""
    with postgres_server() as host:
        with psycopg.connect(host.url(), autocommit=True) as admin:
            admin.execute("CREATE DATABASE tensorzero")
        url = f"postgresql://postgres@{HOST_LOOPBACK}:{host.port}/tensorzero"
        env = {"TENSORZERO_POSTGRES_URL": url, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}
        network = "--network=slirp4netns:allow_host_loopback=true"
        with running(image, *READ_ONLY, network, env=env) as container:
            logs = container.logs()
            assert "embedded PostgreSQL" not in logs
            assert_sign_in_opens_the_keys(container.url, first_admin_password(logs))
            assert_healthy(container)
            assert_not_root(container)
            created = container.exec("python", "manage.py", "create_api_key")
            assert created.returncode == 0, created.stderr
            public_id = created.stdout.split("-")[2]
            took = container.stop()
            assert took < 10, f"stopping took {took:.1f} s"
            assert container.exit_code() == 0
        # The key is in the host's database, where a gateway would look for it.
        with psycopg.connect(host.url("tensorzero")) as conn:
            rows = conn.execute(
                "SELECT public_id FROM public.tensorzero_auth_api_key WHERE disabled_at IS NULL"
            ).fetchall()
        assert rows == [(public_id,)]


def test_the_apps_share_of_the_image_stays_under_150_mb(image: str) -> None:
    """The base (Python on Debian) is not ours; the rest is: the venv (Django, the embedded
    PostgreSQL, psycopg, ...), the app and its collected static files."""
    base = re.search(r"^FROM (\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert base
    size = int(podman("image", "inspect", "--format", "{{.Size}}", image).stdout)
    base_size = int(podman("image", "inspect", "--format", "{{.Size}}", base[1]).stdout)
    print(f"image: {size / 1e6:.0f} MB, of which {(size - base_size) / 1e6:.0f} MB the app's")
    assert size - base_size < APP_SHARE_LIMIT, f"{(size - base_size) / 1e6:.0f} MB"
