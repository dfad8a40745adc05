"""Event Trail: record what users do on a Django site and ship it to ELK or an embedded store."""

from eventtrail.draft import suppressed
from eventtrail.registry import (
    browser_event,
    model_event,
    signal_event,
    state_event,
    url_event,
)

__all__ = [
    "browser_event",
    "model_event",
    "signal_event",
    "state_event",
    "suppressed",
    "url_event",
]
