"""Query stores behind one interface; STORE picks one by short name or dotted path."""

from __future__ import annotations

from functools import cache
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from eventtrail.conf import resolved
from eventtrail.stores.base import Store, StoreUnavailable

__all__ = ["Store", "StoreUnavailable", "get_store"]


@cache
def get_store() -> Store:
    """The configured store, built once (``conf.resolved`` names STORE in any error)."""
    store: Store = resolved("STORE")()
    return store


def reset() -> None:
    """Forget the built store (settings changed)."""
    get_store.cache_clear()


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "EVENTTRAIL":
        reset()
