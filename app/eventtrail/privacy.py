"""Privacy helpers shared by capture and the query side: keyed hashes, scrubbing, IP masks."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventtrail.conf import get_config

SCRUBBED = "[scrubbed]"


def keyed_hash(purpose: str, value: str, key: str | None = None) -> str:
    """HMAC-SHA256 of ``value``, 32 hex chars. ``purpose`` keeps pseudonyms and session hashes apart."""
    secret = (key if key is not None else get_config()["HASH_KEY"]).encode()
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


def pseudonym(user_id: Any) -> str:
    """The pseudonymous ``user.id`` that capture writes when PSEUDONYMIZE_USERS is on."""
    return keyed_hash("user", str(user_id))


def session_hash(session_key: str) -> str:
    return keyed_hash("session", session_key)


def stored_user_id(user_id: Any) -> str:
    """The ``user.id`` as stored for this user under the current settings."""
    return pseudonym(user_id) if get_config()["PSEUDONYMIZE_USERS"] else str(user_id)


def _normalise(key: str) -> str:
    return re.sub(r"[^a-z0-9]", "", key.lower())


@lru_cache(maxsize=8)
def _denylist(keys: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(_normalise(k) for k in keys if _normalise(k))


def scrub_keys() -> tuple[str, ...]:
    config = get_config()
    return _denylist(tuple(config["SCRUB_KEYS"]) + tuple(config["EXTRA_SCRUB_KEYS"]))


def is_secret_key(key: str, denylist: Iterable[str] | None = None) -> bool:
    """Substring match on the normalised key, so ``X-Auth-Token`` and ``csrfmiddlewaretoken`` hit.

    It errs towards scrubbing: ``author`` contains ``auth`` and is scrubbed too.
    """
    normal = _normalise(key)
    return any(entry in normal for entry in (denylist or scrub_keys()))


def scrub_query(query: str) -> str:
    """The query string with the values of secret-looking keys replaced."""
    if not query:
        return query
    denylist = scrub_keys()
    pairs = parse_qsl(query, keep_blank_values=True, errors="replace")
    if not any(is_secret_key(k, denylist) for k, _ in pairs):
        return query
    scrubbed = [(k, SCRUBBED if is_secret_key(k, denylist) else v) for k, v in pairs]
    return urlencode(scrubbed, safe="[]")


def scrub_path(path: str, kwargs: Mapping[str, Any] | None = None) -> str:
    """The path with the values of secret-looking URL kwargs replaced, e.g. the ``token`` of
    Django's password-reset link. ``kwargs`` are the resolver's; without them the path is
    resolved against the site's URLconf (cached, for referrers)."""
    if kwargs is None:
        kwargs = _path_kwargs(path)
    denylist = scrub_keys()
    for key, value in kwargs.items():
        text = str(value)
        if text and is_secret_key(str(key), denylist):
            path = path.replace(text, SCRUBBED)
    return path


def clear_caches() -> None:
    """Forget resolved referrer paths (the URLconf changed, e.g. in tests)."""
    _path_kwargs.cache_clear()


@lru_cache(maxsize=4096)
def _path_kwargs(path: str) -> dict[str, Any]:
    from django.urls import Resolver404, resolve

    try:
        return dict(resolve(path).kwargs)
    except (Resolver404, ValueError, TypeError):
        return {}


def scrub_url(url: str) -> str:
    """A URL with its query and secret path parts scrubbed and any userinfo removed."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return SCRUBBED
    netloc = parts.netloc.rpartition("@")[2]
    path = scrub_path(parts.path) if parts.path else parts.path
    return urlunsplit((parts.scheme, netloc, path, scrub_query(parts.query), ""))


def scrub_mapping(data: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with secret-looking keys' values replaced, at any depth."""
    denylist = scrub_keys()
    out: dict[str, Any] = {}
    for key, value in data.items():
        if is_secret_key(str(key), denylist):
            out[key] = SCRUBBED
        elif isinstance(value, Mapping):
            out[key] = scrub_mapping(value)
        else:
            out[key] = value
    return out


def anonymize_ip(value: str) -> str:
    """Zero the host part: IPv4 to /24, IPv6 to /48."""
    ip = ipaddress.ip_address(value)
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False).network_address)


@lru_cache(maxsize=32)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def client_ip(remote_addr: str | None, forwarded_for: str | None) -> str | None:
    """The client's IP: X-Forwarded-For is believed only hop by hop through trusted proxies."""
    return _client_ip(remote_addr, forwarded_for, tuple(get_config()["TRUSTED_PROXIES"]))


# A client makes many requests: parsing its address (ipaddress, about 3 us) once per address
# and proxy chain, not per event, is a tenth of what the delivery worker spends building one.
@lru_cache(maxsize=4096)
def _client_ip(remote_addr: str | None, forwarded_for: str | None,
               proxies: tuple[str, ...]) -> str | None:
    trusted = _networks(proxies)

    def parse(value: str | None) -> Any:
        try:
            return ipaddress.ip_address((value or "").strip())
        except ValueError:
            return None

    ip = parse(remote_addr)
    if ip is None:
        return None
    if forwarded_for and trusted:
        hops = [h for h in forwarded_for.split(",")][::-1]
        for hop in hops:
            if not any(ip in net for net in trusted):
                break
            candidate = parse(hop)
            if candidate is None:
                break
            ip = candidate
    return str(ip)
