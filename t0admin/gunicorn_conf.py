"""Gunicorn's settings, in one place: `make run`, the image and the tests all start
gunicorn with `-c python:t0admin.gunicorn_conf` (README, "Configuration").

Only the bind address, the pid file and the log destination differ between them, and
those come from the command line or the environment.
"""

from __future__ import annotations

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

# Worker recycling (max_requests, max_requests_jitter) belongs here too, when it comes.

# Gunicorn itself reads X-Forwarded-Proto (for wsgi.url_scheme) from these addresses:
# exactly the proxies t0admin trusts, and none when none is configured.
forwarded_allow_ips = ",".join(str(network) for network in trusted_proxies())

accesslog = "-"
graceful_timeout = 10
# Several t0admin servers may run on one machine (tests, staging, several instances): a
# shared control socket in $HOME would collide, and nothing here uses it.
control_socket_disable = True
