"""Event Trail settings: one ``EVENTTRAIL`` dict merged over commented defaults."""
from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Master switch. Off: the middleware, signals and collector hand straight back.
    "ENABLED": True,
    # --- what is recorded ---------------------------------------------------------------
    # Regexes matched against request.path_info. Exclude wins over include.
    "INCLUDE_PATHS": [r"^/"],
    "EXCLUDE_PATHS": [
        r"^/static/",
        r"^/media/",
        r"^/favicon\.ico$",
        r"^/robots\.txt$",
        r"^/health",
        r"^/admin/",
        r"^/api/",
        r"^/eventtrail/",
    ],
    # Record GETs that no registered type claims as ``page.view``.
    "PAGE_VIEW": True,
    # Per-action sampling rates in [0, 1]; unlisted actions are always kept.
    "SAMPLING": {},
    # --- identity and context --------------------------------------------------------------
    "SERVICE_NAME": "django",
    "ENVIRONMENT": "production",
    "DATA_STREAM": "logs-eventtrail-default",
    # Proxies whose X-Forwarded-For is believed (IPs or CIDRs). Empty: use REMOTE_ADDR only.
    "TRUSTED_PROXIES": [],
    # Header carrying an upstream request id; one is made when it is absent.
    "REQUEST_ID_HEADER": "HTTP_X_REQUEST_ID",
    # --- privacy -----------------------------------------------------------------------------
    # Keys scrubbed from query strings and captured mappings (substring match, any case).
    "SCRUB_KEYS": [
        "password", "passwd", "secret", "token", "api_key", "apikey", "auth", "credentials",
        "csrf", "session", "cookie", "authorization", "private_key",
    ],
    "EXTRA_SCRUB_KEYS": [],
    "ANONYMIZE_IP": False,  # IPv4 to /24, IPv6 to /48
    "PSEUDONYMIZE_USERS": False,  # user.id becomes a keyed hash; user.name is dropped
    # Key for the keyed hashes (session hash, pseudonyms). Defaults to SECRET_KEY.
    "HASH_KEY": None,
    # Dotted path to ``callable(user) -> iterable of role names`` added to user.roles. It runs on
    # the delivery worker, and its answer is kept per user for a minute.
    "USER_ROLES": None,
    # Dotted path to ``callable(user) -> bool``; True means the user opted out.
    "OPT_OUT": None,
    "HONOR_DNT": False,  # skip requests with DNT: 1
    "HONOR_GPC": False,  # skip requests with Sec-GPC: 1
    # --- processors and delivery ---------------------------------------------------------------
    # Run in order on the delivery worker; each is ``event -> event | None`` (None drops it).
    # Scrubbing secrets is not a processor: it always runs, before these.
    "PROCESSORS": ["opt_out", "anonymize_ip", "pseudonymize"],
    # Where events go: logstash-http, logstash-tcp, database, jsonl, elasticsearch, or a path.
    "SINK": "database",
    "QUEUE_SIZE": 10_000,  # bounded hand-off between request threads and the worker
    "BATCH_SIZE": 500,
    "FLUSH_INTERVAL": 0.5,  # seconds the worker waits to fill a batch
    "SPOOL": True,  # persistent on-disk spool; off only in tests
    "SPOOL_DIR": "var/spool",
    "SPOOL_MAX_EVENTS": 2_000_000,  # oldest are dropped (and counted) past this
    "SPOOL_MAX_AGE": 7 * 24 * 3600,  # seconds
    "RETRY_BACKOFF": [0.5, 1, 2, 5, 10, 30],  # seconds between attempts, last one repeats
    "SHUTDOWN_TIMEOUT": 5.0,
    "SEND_TIMEOUT": 5.0,
    "LOGSTASH_HOSTS": ["http://127.0.0.1:8080"],  # tried in order, for failover
    "LOGSTASH_USER": "",
    "LOGSTASH_PASSWORD": "",
    # TLS: use https:// (http input) or tls:// (tcp input) hosts. Logstash 9 names the matching
    # input options ssl_enabled, ssl_certificate, ssl_key, ssl_certificate_authorities and
    # ssl_client_authentication; the pre-9 names (ssl, ssl_verify, ...) are gone.
    "LOGSTASH_SSL_VERIFY": True,  # verify the server certificate (HTTP: or a CA bundle path)
    "LOGSTASH_SSL_CA": None,  # CA bundle for the tcp transport
    "LOGSTASH_SSL_CERT": None,  # client certificate, when the input requires one
    "LOGSTASH_SSL_KEY": None,
    "JSONL_PATH": "var/events.jsonl",
    "DATABASE_ALIAS": "events",
    # --- browser collector (/eventtrail/collect/) ----------------------------------------------
    "COLLECT_MAX_BYTES": 32_768,  # request bodies above this are refused unread (413)
    "COLLECT_MAX_EVENTS": 50,  # events in one batch; the script never sends more
    # Requests allowed per window, per session and per client IP; past them the answer is 429.
    "COLLECT_THROTTLE": {"session": "120/min", "ip": "600/min"},
    "COLLECT_TOKEN_MAX_AGE": 24 * 3600,  # seconds a page's signed token stays valid
    "COLLECT_MAX_EVENT_AGE": 3600,  # seconds an event may wait in the browser before it is sent
    # --- query side -----------------------------------------------------------------------------
    "STORE": "database",  # database, elasticsearch, or a dotted path
    "ELASTICSEARCH_HOSTS": ["http://127.0.0.1:9200"],
    "ELASTICSEARCH_USER": "",
    "ELASTICSEARCH_PASSWORD": "",
    "ELASTICSEARCH_OPTIONS": {},  # extra keyword arguments for the Elasticsearch client
    "INCLUDE_BOTS": False,  # API excludes bot traffic unless asked
    "MAX_PAGE_SIZE": 1000,
    # Dotted path to ``callable(user) -> iterable of community slugs`` the user moderates;
    # the API shows such users their own events and those of these communities.
    "MODERATED_COMMUNITIES": None,
    # Rate of the API's scoped throttle, unless REST_FRAMEWORK's rates name "eventtrail".
    "API_THROTTLE_RATE": "1200/min",
    "KIBANA_URL": "",
    # --- analytics pages and recommendations ----------------------------------------------------
    "TRENDING_DAYS": 10,  # the trending window, in UTC days ending today
    "TRENDING_HALF_LIFE_DAYS": 3,  # a view loses half its weight every this many days
    "ANALYTICS_BASE_TEMPLATE": "base.html",  # the site template the analytics pages extend
    "ANALYTICS_POLL_SECONDS": 5,  # how often live pages ask for fresh figures
    # Dotted path to ``callable(target_type, ids) -> {id: (label, url or None)}`` so pages can
    # show article titles instead of ids. None: ids are shown.
    "TARGET_LABELS": None,
}


@cache
def get_config() -> dict[str, Any]:
    """Defaults with the user's ``EVENTTRAIL`` dict merged over them."""
    user = getattr(settings, "EVENTTRAIL", {}) or {}
    config = dict(DEFAULTS)
    config.update({k: v for k, v in user.items() if k in DEFAULTS})
    if config["HASH_KEY"] is None:
        config["HASH_KEY"] = settings.SECRET_KEY
    return config


def unknown_keys() -> list[str]:
    user = getattr(settings, "EVENTTRAIL", {}) or {}
    return sorted(set(user) - set(DEFAULTS))


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"EVENTTRAIL", "SECRET_KEY"}:
        get_config.cache_clear()
