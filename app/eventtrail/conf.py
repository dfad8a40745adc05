"""Event Trail settings: one ``EVENTTRAIL`` dict merged over commented defaults.

Pluggable settings (``SINK``, ``STORE``, ``PROCESSORS`` and the hooks) are resolved here, once,
in the manner of DRF's ``IMPORT_STRINGS``; every error names the setting and the value. The
system checks in ``eventtrail.checks`` resolve and validate everything at start-up.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import ipaddress
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

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
    # Where events go: logstash-http, logstash-tcp, database, jsonl, or the dotted path of a
    # sink class or factory (see the README's "Sinks" section).
    "SINK": "database",
    # Keyword arguments for the sink's factory: how a third-party sink takes its settings.
    "SINK_OPTIONS": {},
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
    # --- tooling ---------------------------------------------------------------------------------
    # The Logstash pipeline directory ``manage.py eventtrail_check`` reads by default.
    "LOGSTASH_PIPELINE_DIR": "logstash/pipeline",
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


def did_you_mean(value: str, choices: Any) -> str:
    """``"; did you mean 'x'?"`` for the nearest of ``choices``, or nothing when none is near."""
    near = difflib.get_close_matches(value, [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {near[0]!r}?" if near else ""


def unknown_key_problems() -> list[str]:
    return [f"Unknown key EVENTTRAIL[{key!r}]{did_you_mean(key, DEFAULTS)}"
            for key in unknown_keys()]




# --- pluggable settings ---------------------------------------------------------------------------

# Setting -> its short names. A value that is not a short name is a dotted path.
ALIASES: dict[str, dict[str, str]] = {
    "SINK": {
        "logstash-http": "eventtrail.delivery.sinks.LogstashHttpSink",
        "logstash-tcp": "eventtrail.delivery.sinks.LogstashTcpSink",
        "jsonl": "eventtrail.delivery.sinks.JsonLinesSink",
        "database": "eventtrail.delivery.sinks.DatabaseSink",
    },
    "STORE": {
        "database": "eventtrail.stores.database.DatabaseStore",
        "elasticsearch": "eventtrail.stores.elasticsearch.ElasticsearchStore",
    },
    "PROCESSORS": {
        "opt_out": "eventtrail.processors.opt_out",
        "anonymize_ip": "eventtrail.processors.anonymize_ip",
        "pseudonymize": "eventtrail.processors.pseudonymize",
    },
}
# Optional hooks: a dotted path to a callable, or None; each with the arguments it is called with.
HOOK_ARGUMENTS = {
    "USER_ROLES": ("user",),
    "OPT_OUT": ("user",),
    "MODERATED_COMMUNITIES": ("user",),
    "TARGET_LABELS": ("viewer", "kind", "ids"),
}
HOOKS = tuple(HOOK_ARGUMENTS)
IMPORT_STRINGS = ("SINK", "STORE", "PROCESSORS", *HOOKS)


def load(setting: str, value: Any) -> Any:
    """Import what ``value`` names for ``setting``: a short name or a dotted path."""
    aliases = ALIASES.get(setting, {})
    if not isinstance(value, str) or not value:
        raise ImproperlyConfigured(
            f"EVENTTRAIL[{setting!r}] = {value!r}: expected a dotted path"
            + (f" or one of {sorted(aliases)}" if aliases else "")
        )
    try:
        found = import_string(aliases.get(value, value))
    except ImportError as exc:
        known = f"; built-in names are {sorted(aliases)}" if aliases else ""
        raise ImproperlyConfigured(
            f"EVENTTRAIL[{setting!r}] = {value!r}: cannot import it ({exc}){known}"
            + _nearest(value, aliases)
        ) from exc
    if not callable(found):
        raise ImproperlyConfigured(f"EVENTTRAIL[{setting!r}] = {value!r}: {found!r} is not callable")
    return found


def _nearest(value: str, aliases: Mapping[str, str]) -> str:
    """The short name, or the name in the named module, that ``value`` most likely meant."""
    if "." not in value:
        return did_you_mean(value, aliases)
    module_path, _, name = value.rpartition(".")
    try:
        module = importlib.import_module(module_path)
    except ImportError:
        return ""  # the module itself is wrong: the error above names the part that failed
    names = [f"{module_path}.{n}" for n in dir(module)
             if not n.startswith("_") and callable(getattr(module, n))]
    return did_you_mean(value, names)


@cache
def resolved(setting: str) -> Any:
    """The object a pluggable setting names, imported once: a callable, None for an unset
    hook, a tuple of callables for ``PROCESSORS``. Raises ImproperlyConfigured naming it."""
    if setting not in IMPORT_STRINGS:
        raise KeyError(setting)
    value = get_config()[setting]
    if setting == "PROCESSORS":
        if not isinstance(value, list | tuple):
            raise ImproperlyConfigured(f"EVENTTRAIL['PROCESSORS'] = {value!r}: expected a list")
        return tuple(load(setting, item) for item in value)
    if setting in HOOKS and value is None:
        return None
    return load(setting, value)


def import_problems() -> list[str]:
    """Every pluggable setting that does not resolve, as messages naming setting and value,
    and SINK_OPTIONS that the sink's factory would not accept."""
    problems = []
    for setting in IMPORT_STRINGS:
        try:
            resolved(setting)
        except ImproperlyConfigured as exc:
            problems.append(str(exc))
    problems += hook_signature_problems()
    problem = sink_options_problem()
    if problem:
        problems.append(problem)
    return problems


def hook_signature_problems() -> list[str]:
    """Hooks that could not be called the way Event Trail calls them (a hook written for an
    earlier signature, say), found from their signatures without calling them."""
    problems = []
    for setting, arguments in HOOK_ARGUMENTS.items():
        try:
            hook = resolved(setting)
            signature = inspect.signature(hook) if hook is not None else None
        except (ImproperlyConfigured, TypeError, ValueError):
            continue  # unresolvable: named by import_problems; no signature: cannot tell
        if signature is None:
            continue
        try:
            signature.bind(*arguments)
        except TypeError as exc:
            problems.append(f"EVENTTRAIL[{setting!r}] = {get_config()[setting]!r}: it is called "
                            f"as hook({', '.join(arguments)}) and cannot take that ({exc})")
    return problems


def sink_options_problem() -> str | None:
    """Whether the SINK's factory accepts SINK_OPTIONS as keyword arguments, checked against its
    signature without building it (building may connect)."""
    options = get_config()["SINK_OPTIONS"]
    if not isinstance(options, dict):
        return None  # value_problems names it
    try:
        factory = resolved("SINK")
        signature = inspect.signature(factory)
    except (ImproperlyConfigured, TypeError, ValueError):
        return None  # unresolvable: named above; no signature (a C callable): cannot tell
    try:
        signature.bind(**options)
    except TypeError as exc:
        return (f"EVENTTRAIL['SINK_OPTIONS'] = {sorted(options)!r}: "
                f"{get_config()['SINK']!r} does not take them ({exc})")
    return None


# --- value checks ---------------------------------------------------------------------------------

_RATE = re.compile(r"^\d+/(s|sec|second|m|min|minute|h|hour|d|day)$")


def _is_bool(v: Any) -> str | None:
    return None if isinstance(v, bool) else "expected True or False"


def _number(low: float, high: float | None = None, *, integer: bool = False,
            strict: bool = False) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or (
            integer and not isinstance(v, int)
        ):
            return "expected an integer" if integer else "expected a number"
        if (v <= low) if strict else (v < low):
            return f"must be {'>' if strict else '>='} {low}"
        if high is not None and v > high:
            return f"must be <= {high}"
        return None
    return check


def _text(empty: bool = True) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, str):
            return "expected a string"
        return None if empty or v else "must not be empty"
    return check


def _optional(inner: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    return lambda v: None if v is None else inner(v)


def _strings(v: Any) -> str | None:
    if not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v):
        return "expected a list of strings"
    return None


def _regexes(v: Any) -> str | None:
    problem = _strings(v)
    if problem:
        return problem
    for pattern in v:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"{pattern!r} is not a valid regular expression ({exc})"
    return None


def _urls(*schemes: str) -> Callable[[Any], str | None]:
    def check(v: Any) -> str | None:
        if not isinstance(v, list | tuple) or not v or not all(isinstance(x, str) for x in v):
            return "expected a non-empty list of URLs"
        for url in v:
            try:
                parts = urlsplit(url)
                parts.port  # noqa: B018  (raises on a bad port)
            except ValueError as exc:
                return f"{url!r} is not a valid URL ({exc})"
            if parts.scheme not in schemes or not parts.hostname:
                return f"{url!r}: expected {' or '.join(s + '://host:port' for s in schemes)}"
        return None
    return check


def _networks(v: Any) -> str | None:
    problem = _strings(v)
    if problem:
        return problem
    for net in v:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            return f"{net!r} is not an IP address or CIDR network"
    return None


def _sampling(v: Any) -> str | None:
    if not isinstance(v, Mapping):
        return "expected a dict of action -> rate"
    for action, rate in v.items():
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
            return f"the rate of {action!r} must be a number in [0, 1], not {rate!r}"
    return None


def _backoff(v: Any) -> str | None:
    if not isinstance(v, list | tuple) or not v:
        return "expected a non-empty list of seconds"
    if any(isinstance(x, bool) or not isinstance(x, int | float) or x < 0 for x in v):
        return "every delay must be a number of seconds >= 0"
    return None


def _throttle(v: Any) -> str | None:
    if not isinstance(v, Mapping) or not set(v) <= {"session", "ip"}:
        return "expected a dict with keys 'session' and/or 'ip'"
    for key, rate in v.items():
        if rate is not None and (not isinstance(rate, str) or not _RATE.match(rate)):
            return f"{key!r}: {rate!r} is not a rate like '120/min'"
    return None


def _rate(v: Any) -> str | None:
    return None if isinstance(v, str) and _RATE.match(v) else f"{v!r} is not a rate like '1200/min'"


def _mapping(v: Any) -> str | None:
    return None if isinstance(v, Mapping) else "expected a dict"


def _tls_verify(v: Any) -> str | None:
    return None if isinstance(v, bool | str) else "expected True, False or a CA bundle path"


VALUE_CHECKS: dict[str, Callable[[Any], str | None]] = {
    "ENABLED": _is_bool, "PAGE_VIEW": _is_bool, "ANONYMIZE_IP": _is_bool,
    "PSEUDONYMIZE_USERS": _is_bool, "HONOR_DNT": _is_bool, "HONOR_GPC": _is_bool,
    "SPOOL": _is_bool, "INCLUDE_BOTS": _is_bool,
    "INCLUDE_PATHS": _regexes, "EXCLUDE_PATHS": _regexes,
    "SAMPLING": _sampling,
    "SERVICE_NAME": _text(False), "ENVIRONMENT": _text(False), "DATA_STREAM": _text(False),
    "TRUSTED_PROXIES": _networks, "REQUEST_ID_HEADER": _text(False),
    "SCRUB_KEYS": _strings, "EXTRA_SCRUB_KEYS": _strings,
    "HASH_KEY": _optional(_text(False)),
    "SINK_OPTIONS": _mapping, "ELASTICSEARCH_OPTIONS": _mapping,
    "QUEUE_SIZE": _number(1, integer=True), "BATCH_SIZE": _number(1, integer=True),
    "FLUSH_INTERVAL": _number(0, 60, strict=True),
    "SPOOL_DIR": _text(False), "SPOOL_MAX_EVENTS": _number(1, integer=True),
    "SPOOL_MAX_AGE": _number(0, strict=True),
    "RETRY_BACKOFF": _backoff,
    "SHUTDOWN_TIMEOUT": _number(0), "SEND_TIMEOUT": _number(0, strict=True),
    "LOGSTASH_HOSTS": _urls("http", "https", "tcp", "tls"),
    "LOGSTASH_USER": _text(), "LOGSTASH_PASSWORD": _text(),
    "LOGSTASH_SSL_VERIFY": _tls_verify,
    "LOGSTASH_SSL_CA": _optional(_text(False)), "LOGSTASH_SSL_CERT": _optional(_text(False)),
    "LOGSTASH_SSL_KEY": _optional(_text(False)),
    "JSONL_PATH": _text(False), "DATABASE_ALIAS": _text(False),
    "COLLECT_MAX_BYTES": _number(1, integer=True), "COLLECT_MAX_EVENTS": _number(1, integer=True),
    "COLLECT_THROTTLE": _throttle,
    "COLLECT_TOKEN_MAX_AGE": _number(1, integer=True),
    "COLLECT_MAX_EVENT_AGE": _number(1, integer=True),
    "ELASTICSEARCH_HOSTS": _urls("http", "https"),
    "ELASTICSEARCH_USER": _text(), "ELASTICSEARCH_PASSWORD": _text(),
    "MAX_PAGE_SIZE": _number(1, integer=True),
    "API_THROTTLE_RATE": _rate, "KIBANA_URL": _text(),
    "TRENDING_DAYS": _number(1, 90, integer=True),
    "TRENDING_HALF_LIFE_DAYS": _number(0, strict=True),
    "ANALYTICS_BASE_TEMPLATE": _text(False), "ANALYTICS_POLL_SECONDS": _number(1, integer=True),
    "LOGSTASH_PIPELINE_DIR": _text(False),
}


# Never echoed in a message: a wrong value may still be most of a password.
SECRETS = frozenset({"HASH_KEY", "LOGSTASH_PASSWORD", "ELASTICSEARCH_PASSWORD"})


def value_problems() -> list[str]:
    """Every setting whose value has the wrong type or range, as messages naming it."""
    config = get_config()
    user = getattr(settings, "EVENTTRAIL", {}) or {}
    problems = []
    for key, check in VALUE_CHECKS.items():
        if key == "HASH_KEY" and user.get(key) is None:
            continue  # defaults to SECRET_KEY
        problem = check(config[key])
        if problem:
            shown = "<hidden>" if key in SECRETS else repr(config[key])
            problems.append(f"EVENTTRAIL[{key!r}] = {shown}: {problem}")
    return problems


def validate() -> None:
    """Raise ImproperlyConfigured with every problem, each naming its setting: what every
    process checks when the app loads (``EventTrailConfig.ready``), gunicorn's included."""
    problems = unknown_key_problems() + value_problems() + import_problems()
    if problems:
        raise ImproperlyConfigured("Event Trail settings:\n" + "\n".join(f"- {p}" for p in problems))


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting in {"EVENTTRAIL", "SECRET_KEY"}:
        get_config.cache_clear()
        resolved.cache_clear()
