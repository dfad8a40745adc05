"""Query stores behind one interface; STORE picks one by short name or dotted path."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

from eventtrail.conf import get_config
from eventtrail.stores.base import Store, StoreUnavailable

BUILTIN = {
    "database": "eventtrail.stores.database.DatabaseStore",
    "elasticsearch": "eventtrail.stores.elasticsearch.ElasticsearchStore",
}

__all__ = ["Store", "StoreUnavailable", "get_store"]


def get_store() -> Store:
    path = get_config()["STORE"]
    return _make(BUILTIN.get(path, path))


@cache
def _make(path: str) -> Store:
    store: Store = import_string(path)()
    return store


def reset() -> None:
    """Forget built stores (settings changed)."""
    _make.cache_clear()


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "EVENTTRAIL":
        reset()
