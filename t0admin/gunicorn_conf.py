"""Gunicorn's settings, in one place: `make run`, the image and the tests all start
gunicorn with `-c python:t0admin.gunicorn_conf` (README, "Configuration").

Only the bind address, the pid file and the log destination differ between them, and
those come from the command line or the environment.
"""

from __future__ import annotations

import gc
import os

from t0admin.environment import env_int, trusted_proxies

wsgi_app = "t0admin.wsgi:application"
bind = [os.environ.get("T0ADMIN_BIND", "").strip() or "127.0.0.1:4000"]

# Threads, not only processes: a request waiting on a stuck database holds one thread for
# at most the database timeouts (settings.py), and /healthz, which never touches the
# database, is answered by another one meanwhile instead of queueing behind it.
worker_class = "gthread"
workers = env_int("T0ADMIN_WORKERS", 2)
threads = env_int("T0ADMIN_THREADS", 8)

# A worker is replaced now and then, the jitter keeping the workers from restarting
# together: a safety net, since a big page (?limit=10000) leaves a worker at about 70 MB
# (bench/RESULTS.md). Rarely: a worker retiring while its requests wait on a frozen
# database leaves one worker fewer until they end (tests/test_database_freeze.py sends
# about 2,000 requests, and 1,000 here restarted workers in the middle of it).
max_requests = 10_000
max_requests_jitter = 1_000

# Gunicorn itself reads X-Forwarded-Proto (for wsgi.url_scheme) from these addresses:
# exactly the proxies t0admin trusts, and none when none is configured.
forwarded_allow_ips = ",".join(str(network) for network in trusted_proxies())

accesslog = "-"
graceful_timeout = 10
# Several t0admin servers may run on one machine (tests, staging, several instances): a
# shared control socket in $HOME would collide, and nothing here uses it.
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    """Once a worker has loaded Django and the app, its ~90,000 long-lived objects move out
    of the garbage collector's way (gc.freeze): each full collection no longer walks them.
    A 10,000-row page makes millions of short-lived objects, so it triggers many
    collections: its rows rendered in 202 ms instead of 268 ms (bench/RESULTS.md)."""
    gc.freeze()
