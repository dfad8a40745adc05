"""The browser collector: a signed per-page token, strict validation, limits, then the usual hand-off."""
from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views.decorators.csrf import csrf_exempt

from eventtrail.capture import emit, internal, tracking_refused
from eventtrail.conf import get_config
from eventtrail.draft import Draft
from eventtrail.privacy import session_hash
from eventtrail.registry import EventType, registry
from eventtrail.stats import counters

logger = logging.getLogger("eventtrail.collect")

TOKEN_SALT = "eventtrail.collect"
BODY_KEYS = frozenset({"token", "events"})
EVENT_KEYS = frozenset({"type", "fields", "age"})
MAX_KEYWORD = 256
# Generic bounds for the fields of any declared browser type.
MAX_LONG = 2**31 - 1
MAX_FLOAT = 1e7
KEYWORD_RE = re.compile(r"^[\w.:/#@+-]{1,256}$")

# Tighter rules for the built-in fields: a set of allowed values or an inclusive range.
QUARTILES = frozenset({25, 50, 75, 100})
FIELD_RULES: dict[str, frozenset[Any] | tuple[float, float]] = {
    "eventtrail.browser.scroll_depth": QUARTILES,
    "eventtrail.video.progress": QUARTILES,
    "eventtrail.browser.visibility": frozenset({"hidden", "visible"}),
    "eventtrail.browser.viewport.width": (0, 100_000),
    "eventtrail.browser.viewport.height": (0, 100_000),
    "eventtrail.browser.time_on_page": (0, 366 * 24 * 3600 * 1000),
    "eventtrail.video.position": (0, 7 * 24 * 3600),
    "eventtrail.video.duration": (0, 7 * 24 * 3600),
}


class Rejected(Exception):
    """A whole request refused: an HTTP status and a short reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Page:
    """What the token vouches for: the page the script runs on and whose session it served."""

    url_name: str
    kwargs: dict[str, str]
    path: str
    session: str


# --- the per-page token ------------------------------------------------------------------------


def _session_hash_of(request: HttpRequest) -> str:
    session = getattr(request, "session", None)
    key = getattr(session, "session_key", None) if session is not None else None
    return session_hash(key) if key else ""


def make_token(request: HttpRequest) -> str:
    """A token for the page being rendered: its URL name and kwargs, the session, a timestamp."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        try:
            match = resolve(request.path_info)
        except Resolver404:
            match = None
    url_name = (match.url_name if match is not None else "") or ""
    kwargs = {str(k): str(v) for k, v in (match.kwargs if match is not None else {}).items()}
    payload = {"u": url_name, "k": kwargs, "p": request.path_info, "s": _session_hash_of(request)}
    return signing.dumps(payload, salt=TOKEN_SALT, compress=True)


def read_token(token: Any, request: HttpRequest) -> Page:
    """The page a token vouches for, if it is ours, fresh, and made for this session."""
    if not isinstance(token, str) or not token or len(token) > 4096:
        raise Rejected(403, "missing_token")
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=get_config()["COLLECT_TOKEN_MAX_AGE"])
    except signing.SignatureExpired as exc:
        raise Rejected(403, "expired_token") from exc
    except (signing.BadSignature, ValueError) as exc:
        raise Rejected(403, "bad_token") from exc
    if data.get("s") != _session_hash_of(request):
        raise Rejected(403, "foreign_token")
    return Page(url_name=data["u"], kwargs=data["k"], path=data["p"], session=data["s"])


# --- origin, size, throttling ------------------------------------------------------------------


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: HttpRequest) -> None:
    """The request must come from a page of this site: Origin, or else Referer, names this host."""
    claimed = request.META.get("HTTP_ORIGIN") or ""
    if not claimed or claimed == "null":
        claimed = _origin_of(request.META.get("HTTP_REFERER") or "") or ""
    if not claimed:
        raise Rejected(403, "no_origin")
    try:
        own = f"{request.scheme}://{request.get_host()}".lower()
    except Exception as exc:  # DisallowedHost and friends: not a host we serve
        raise Rejected(400, "bad_host") from exc
    trusted = {o.lower() for o in getattr(settings, "CSRF_TRUSTED_ORIGINS", [])}
    if claimed.lower() != own and claimed.lower() not in trusted:
        raise Rejected(403, "wrong_origin")


def read_body(request: HttpRequest) -> bytes:
    """At most COLLECT_MAX_BYTES from the stream; more than that is refused, never read."""
    cap: int = get_config()["COLLECT_MAX_BYTES"]
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError as exc:
        raise Rejected(400, "bad_length") from exc
    if declared > cap:
        raise Rejected(413, "too_large")
    body = request.read(cap + 1)
    if len(body) > cap:
        raise Rejected(413, "too_large")
    return body


def _rate(text: str) -> tuple[int, int]:
    count, _, per = text.partition("/")
    seconds = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400}
    return int(count), seconds[per.strip().lower()]


def throttle(request: HttpRequest, page: Page) -> None:
    """Fixed-window counters in Django's cache, per session (or token) and per client IP."""
    rules: Mapping[str, str] = get_config()["COLLECT_THROTTLE"]
    ip = request.META.get("REMOTE_ADDR") or "-"
    subjects = {"session": page.session or f"anon:{ip}", "ip": ip}
    now = int(time.time())
    for scope, rule in rules.items():
        if scope not in subjects or not rule:
            continue
        limit, window = _rate(rule)
        key = f"eventtrail:collect:{scope}:{subjects[scope]}:{now // window}"
        cache.add(key, 0, timeout=window + 1)
        try:
            hits = cache.incr(key)
        except ValueError:  # evicted between add and incr: start again
            cache.set(key, 1, timeout=window + 1)
            hits = 1
        if hits > limit:
            raise Rejected(429, f"throttled_{scope}")


# --- validation ----------------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse(body: bytes) -> Mapping[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise Rejected(400, "bad_json") from exc
    if not isinstance(data, dict):
        raise Rejected(400, "not_an_object")
    return data


def check_value(name: str, pytype: type, value: Any) -> str | None:
    """None when ``value`` fits field ``name``; else the reason it does not."""
    if pytype is bool:
        return None if isinstance(value, bool) else "wrong_type"
    if isinstance(value, bool):
        return "wrong_type"  # JSON true is not a number
    if pytype is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            return "wrong_type"
        if not 0 <= value <= MAX_LONG:
            return "out_of_range"
    elif pytype is float:
        if not isinstance(value, int | float):
            return "wrong_type"
        if not math.isfinite(value) or not 0 <= value <= MAX_FLOAT:
            return "out_of_range"
    elif pytype is str:
        if not isinstance(value, str):
            return "wrong_type"
        if not KEYWORD_RE.match(value):
            return "out_of_range"
    rule = FIELD_RULES.get(name)
    if isinstance(rule, frozenset) and value not in rule:
        return "out_of_range"
    if isinstance(rule, tuple) and not rule[0] <= value <= rule[1]:
        return "out_of_range"
    return None


def validate(item: Any, allowed: Mapping[str, EventType]) -> tuple[EventType, dict[str, Any], int]:
    """(type, fields, age in ms) of one event, or ValueError with the reason."""
    if not isinstance(item, dict):
        raise ValueError("not_an_object")
    if not set(item) <= EVENT_KEYS:
        raise ValueError("unknown_key")
    name = item.get("type")
    event_type = allowed.get(name) if isinstance(name, str) else None
    if event_type is None:
        raise ValueError("unknown_type")
    fields = item.get("fields", {})
    if not isinstance(fields, dict):
        raise ValueError("wrong_type")
    declared = event_type.browser_fields
    if not set(fields) <= set(declared):
        raise ValueError("unknown_field")
    if set(declared) - set(fields):
        raise ValueError("missing_field")
    clean: dict[str, Any] = {}
    for name, pytype in declared.items():
        reason = check_value(name, pytype, fields[name])
        if reason:
            raise ValueError(reason)
        value = fields[name]
        clean[name] = int(value) if pytype is int else float(value) if pytype is float else value
    age = item.get("age", 0)
    if isinstance(age, bool) or not isinstance(age, int):
        raise ValueError("wrong_type")
    if not 0 <= age <= get_config()["COLLECT_MAX_EVENT_AGE"] * 1000:
        raise ValueError("out_of_range")
    return event_type, clean, age


# --- the view ------------------------------------------------------------------------------------


def draft_of(request: HttpRequest, page: Page, event_type: EventType, fields: dict[str, Any],
             age_ms: int, now_ns: int) -> Draft:
    """A draft like the middleware's, with the page's identity from the token and the session."""
    meta = request.META
    draft = Draft(
        ts=now_ns - age_ms * 1_000_000,
        source="browser",
        type=event_type,
        remote=meta.get("REMOTE_ADDR"),
        xff=meta.get("HTTP_X_FORWARDED_FOR"),
        kwargs=page.kwargs,
        url_type=registry.by_url_name.get(page.url_name),
        fields={"url.path": page.path, "user_agent.original": meta.get("HTTP_USER_AGENT"),
                **fields},
    )
    draft.identify(request)
    return draft


def _count_rejected(reason: str, amount: int = 1) -> None:
    counters.incr(f"collect.rejected.{reason}", amount)


def _invalid(reason: str) -> None:
    # Refused before the hand-off, and told to the browser (422): never enqueued, so counted
    # only here, not among the delivery's drops.
    counters.incr(f"collect.invalid.{reason}")


def _answer(status: int, body: dict[str, Any]) -> HttpResponse:
    if status == 204:
        return HttpResponse(status=204)
    return JsonResponse(body, status=status)


@csrf_exempt
def collect(request: HttpRequest) -> HttpResponse:
    """Accept a batch of browser events: 202 all kept, 422 some or none kept (listed), 4xx refused."""
    try:
        return _collect(request)
    except Exception:  # a bug must not turn hostile input into a 500; it is counted and logged
        counters.incr("internal_error")
        logger.exception("Event Trail collector error")
        return _answer(400, {"error": "bad_request"})


def _collect(request: HttpRequest) -> HttpResponse:
    config = get_config()
    if not config["ENABLED"]:
        return _answer(204, {})
    if request.method != "POST":
        response = _answer(405, {"error": "method_not_allowed"})
        response["Allow"] = "POST"
        return response
    try:
        if tracking_refused(request.META):
            return _answer(204, {})  # asked not to be tracked: nothing read, nothing kept
        check_origin(request)
        data = parse(read_body(request))
        if not set(data) <= BODY_KEYS:
            raise Rejected(400, "unknown_key")  # e.g. a "user": identity is never the payload's
        page = read_token(data.get("token"), request)
        throttle(request, page)
        events = data.get("events")
        if not isinstance(events, list):
            raise Rejected(400, "no_events")
        if len(events) > config["COLLECT_MAX_EVENTS"]:
            raise Rejected(413, "too_many_events")
    except Rejected as refused:
        _count_rejected(refused.reason)
        return _answer(refused.status, {"error": refused.reason})

    now_ns = time.time_ns()
    allowed = registry.browser
    errors: list[dict[str, Any]] = []
    accepted = 0
    for index, item in enumerate(events):
        try:
            event_type, fields, age = validate(item, allowed)
        except ValueError as exc:
            reason = str(exc)
            _invalid(reason)
            errors.append({"index": index, "reason": reason})
            continue
        with internal("collect"):
            emit(draft_of(request, page, event_type, fields, age, now_ns))
            accepted += 1
    counters.incr("collect.accepted", accepted)
    if errors:
        return _answer(422, {"accepted": accepted, "errors": errors})
    return _answer(202, {"accepted": accepted})
