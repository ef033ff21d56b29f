"""compose.yaml as `podman-compose config` reads it (its images cannot be pulled here)."""

from __future__ import annotations

import ipaddress
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import yaml

from keys import gateway_schema
from tests.conftest import ROOT

PODMAN_COMPOSE = str(Path(sys.executable).parent / "podman-compose")
SECRET = "compose-test-" + "k" * 40


def compose_config(*args: str, secret: str | None = SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    if secret is not None:
        env["DJANGO_SECRET_KEY"] = secret
    return subprocess.run(
        [PODMAN_COMPOSE, *args, "config"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def services(*args: str) -> dict[str, Any]:
    result = compose_config(*args)
    assert result.returncode == 0, result.stderr
    return dict(yaml.safe_load(result.stdout)["services"])


def release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def test_the_stack_validates_and_t0admin_waits_for_the_gateways_migrations() -> None:
    stack = services()
    assert set(stack) == {"postgres", "gateway-run-postgres-migrations", "gateway", "t0admin"}
    assert stack["t0admin"]["depends_on"]["gateway-run-postgres-migrations"] == {
        "condition": "service_completed_successfully"
    }
    assert stack["gateway"]["depends_on"]["gateway-run-postgres-migrations"] == {
        "condition": "service_completed_successfully"
    }


def test_a_missing_secret_key_is_refused_with_what_to_do() -> None:
    result = compose_config(secret=None)
    assert result.returncode != 0
    assert "set DJANGO_SECRET_KEY in .env" in result.stderr


def test_postgres_is_tensorzeros_with_pg_cron_in_its_database() -> None:
    postgres = services()["postgres"]
    assert postgres["image"] == "tensorzero/postgres:17"
    assert postgres["command"] == ["postgres", "-c", "cron.database_name=tensorzero"]
    assert postgres["environment"]["POSTGRES_DB"] == "tensorzero"


def test_the_gateway_is_checked_on_health_with_auth_on() -> None:
    gateway = services()["gateway"]
    assert gateway["healthcheck"]["test"][-1] == "http://localhost:3000/health"
    assert gateway["command"] == ["--config-file", "/app/config/tensorzero.toml"]
    assert "./config:/app/config:ro" in gateway["volumes"]
    config = tomllib.loads((ROOT / "config" / "tensorzero.toml").read_text())
    assert config["gateway"]["auth"]["enabled"] is True


def test_the_pinned_gateway_ships_exactly_t0admins_auth_migrations() -> None:
    stack = services()
    images = {stack[name]["image"] for name in ("gateway", "gateway-run-postgres-migrations")}
    assert len(images) == 1, images
    repository, _, pinned = images.pop().partition(":")
    assert repository == "tensorzero/gateway"
    # The files t0admin creates the table from are the ones MIGRATIONS names, unchanged.
    on_disk = sorted(int(p.name.split("_")[0]) for p in gateway_schema.MIGRATIONS_DIR.glob("*.sql"))
    assert on_disk == [m.version for m in gateway_schema.MIGRATIONS]
    for migration in gateway_schema.MIGRATIONS:
        assert gateway_schema.file_checksum(migration) == migration.checksum
    # Every one of them is in the pinned release, which is no newer than the last release
    # read (a newer one may ship a migration t0admin does not know).
    newest_needed = max(release(m.first_release) for m in gateway_schema.MIGRATIONS)
    assert newest_needed <= release(pinned) <= release(gateway_schema.GATEWAY_RELEASE_CHECKED)
    assert f"tensorzero/gateway:{pinned}" in (ROOT / "README.md").read_text()


def test_t0admin_leaves_port_4000_to_the_tensorzero_ui() -> None:
    assert services()["t0admin"]["ports"] == ["127.0.0.1:4100:4000"]


def test_t0admin_runs_on_a_read_only_root_with_a_temp_dir() -> None:
    t0admin = services()["t0admin"]
    assert t0admin["read_only"] is True
    assert t0admin["tmpfs"] == ["/tmp"]  # noqa: S108  a path inside the container


def test_scale_profile_two_instances_one_database_one_key_behind_a_trusted_proxy() -> None:
    assert "t0admin-2" not in services()
    stack = services("--profile", "scale")
    instances = [stack["t0admin"], stack["t0admin-2"]]
    for name in ("TENSORZERO_POSTGRES_URL", "DJANGO_SECRET_KEY", "T0ADMIN_TRUSTED_PROXIES"):
        assert instances[0]["environment"][name] == instances[1]["environment"][name], name
    assert instances[0]["environment"]["DJANGO_SECRET_KEY"] == SECRET

    proxy = stack["t0admin-proxy"]
    address = ipaddress.ip_address(proxy["networks"]["proxy"]["ipv4_address"])
    trusted = ipaddress.ip_network(instances[0]["environment"]["T0ADMIN_TRUSTED_PROXIES"])
    assert address in trusted
    nginx = (ROOT / "config" / "nginx" / "t0admin.conf").read_text()
    assert re.findall(r"^\s*server (\S+);", nginx, re.M) == ["t0admin:4000", "t0admin-2:4000"]
    assert proxy["volumes"] == ["./config/nginx/t0admin.conf:/etc/nginx/conf.d/default.conf:ro"]
