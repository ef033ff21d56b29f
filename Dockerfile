# syntax=docker/dockerfile:1
# t0admin production image: gunicorn on 0.0.0.0:4000 behind your proxy.
# CI builds and runs it with podman (tests/image/build.sh, tests/test_image.py); the quick
# checks in tests/test_dockerfile.py run its collectstatic and HEALTHCHECK lines directly.

FROM python:3.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY requirements.lock ./
# pip and setuptools leave with the build: nothing installs at run time (25 MB less).
RUN python -m venv /venv \
 && /venv/bin/python -m pip install --require-hashes --no-deps -r requirements.lock \
 && /venv/bin/python -m pip uninstall --yes --quiet pip setuptools
COPY manage.py pyproject.toml ./
COPY t0admin ./t0admin
COPY keys ./keys
COPY templates ./templates
COPY static ./static
# Settings need a database URL and a secret key to load; collectstatic uses neither.
RUN T0ADMIN_STATIC_ROOT=/app/staticfiles DJANGO_SECRET_KEY=collectstatic-only TENSORZERO_POSTGRES_URL=postgresql://unused@localhost/unused /venv/bin/python manage.py collectstatic --noinput

FROM python:3.11-slim-bookworm
RUN groupadd --system --gid 10001 t0admin \
 && useradd --system --uid 10001 --gid t0admin --home-dir /app --shell /usr/sbin/nologin t0admin \
 && install -d -o t0admin -g t0admin /data
COPY --from=build /venv /venv
COPY --from=build --chown=root:root /app /app
WORKDIR /app
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    T0ADMIN_BIND=0.0.0.0:4000 \
    T0ADMIN_DATA_DIR=/data \
    T0ADMIN_STATIC_ROOT=/app/staticfiles \
    T0ADMIN_CONTAINER=1
USER t0admin
VOLUME ["/data"]
EXPOSE 4000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:4000/healthz', timeout=4).status != 200)"]
CMD ["python", "-m", "t0admin.serve"]
