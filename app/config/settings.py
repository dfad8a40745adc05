"""Settings for the demo site, read from the environment so one module serves embedded and compose runs."""
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

BASE_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BASE_DIR.parent
VAR_DIR = Path(os.environ.get("EVENTTRAIL_VAR_DIR", REPO_DIR / "var"))


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


def database(url: str, sqlite_default: Path) -> dict:
    """Turn a DATABASE_URL-style string into a Django DATABASES entry."""
    if not url:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(sqlite_default),
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
        }
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(parsed.path) or str(sqlite_default),
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE"},
        }
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": 60,
        }
    raise ValueError(f"unsupported database URL scheme {parsed.scheme!r}")


SECRET_KEY = env("DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "eventtrail",
    "community",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so it sees the request as every other middleware left it.
    "eventtrail.middleware.EventTrailMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": database(env("DATABASE_URL"), VAR_DIR / "site.sqlite3"),
    # Events live on their own alias so event writes never lock the site's tables.
    "events": database(env("EVENTTRAIL_DATABASE_URL"), VAR_DIR / "events.sqlite3"),
}
DATABASE_ROUTERS = ["eventtrail.routers.EventTrailRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env("API_THROTTLE_ANON", "60/min"),
        "user": env("API_THROTTLE_USER", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Event Trail API",
    "DESCRIPTION": "Query the event log: list, filter, search, sort, page and aggregate events.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

EVENTTRAIL = {
    "SINK": env("EVENTTRAIL_SINK", "database"),
    "STORE": env("EVENTTRAIL_STORE", "database"),
    "SPOOL_DIR": str(VAR_DIR / "spool"),
    "SERVICE_NAME": env("EVENTTRAIL_SERVICE_NAME", "community"),
    "ENVIRONMENT": env("EVENTTRAIL_ENVIRONMENT", "development"),
    "DATA_STREAM": env("EVENTTRAIL_DATA_STREAM", "logs-eventtrail-default"),
    "LOGSTASH_HOSTS": env_list("LOGSTASH_HOSTS", "http://127.0.0.1:8080"),
    "LOGSTASH_USER": env("LOGSTASH_USER"),
    "LOGSTASH_PASSWORD": env("LOGSTASH_PASSWORD"),
    "ELASTICSEARCH_HOSTS": env_list("ELASTICSEARCH_HOSTS", "http://127.0.0.1:9200"),
    "ELASTICSEARCH_USER": env("ELASTICSEARCH_API_USER"),
    "ELASTICSEARCH_PASSWORD": env("ELASTICSEARCH_API_PASSWORD"),
    # Unset under compose: Kibana on localhost at its published port, as Kibana itself assumes.
    "KIBANA_URL": env("KIBANA_PUBLIC_URL") or (
        f"http://localhost:{env('KIBANA_PORT')}" if env("KIBANA_PORT") else ""),
    "TRUSTED_PROXIES": env_list("EVENTTRAIL_TRUSTED_PROXIES"),
    "USER_ROLES": "community.event_types.user_roles",
    "MODERATED_COMMUNITIES": "community.event_types.moderated_communities",
    "TARGET_LABELS": "community.event_types.target_labels",
    "LOGSTASH_PIPELINE_DIR": str(REPO_DIR / "logstash" / "pipeline"),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
