"""Connects signal, model and state event types to Django's signals as they are declared."""
from __future__ import annotations

from typing import Any

from django.db import router, transaction
from django.db.models.signals import post_init, post_save

from eventtrail.capture import emit, internal, signal_draft
from eventtrail.registry import EventType, registry

_STATE_ATTR = "_eventtrail_loaded"


def _emit_on_commit(event_type: EventType, fields: dict[str, Any], user: Any, using: str) -> None:
    draft = signal_draft(event_type, fields, user)
    if draft is None:
        return
    # A rolled-back change was never made, so it is never recorded.
    transaction.on_commit(lambda: emit(draft), using=using, robust=True)


def _connect_signal(event_type: EventType) -> None:
    handler = event_type.handler
    assert event_type.signal is not None and handler is not None

    def receive(sender: Any, **kwargs: Any) -> None:
        with internal(event_type.action):
            fields = handler(sender=sender, **kwargs)
            if fields is None:
                return
            draft = signal_draft(event_type, fields, kwargs.get("user"))
            if draft is not None:
                emit(draft)

    event_type.signal.connect(
        receive, sender=event_type.sender, weak=False, dispatch_uid=f"eventtrail:{event_type.action}"
    )


def _connect_model(event_type: EventType) -> None:
    hook, condition = event_type.fields, event_type.condition
    assert hook is not None

    def created(sender: Any, instance: Any, created: bool, using: str, **kwargs: Any) -> None:
        if not created or kwargs.get("raw"):
            return
        with internal(event_type.action):
            if condition is None or condition(instance):
                _emit_on_commit(event_type, hook(instance), None, using)

    post_save.connect(
        created, sender=event_type.model, weak=False, dispatch_uid=f"eventtrail:{event_type.action}"
    )


def _connect_state(event_type: EventType) -> None:
    field, hook = event_type.field_name, event_type.fields
    assert field is not None and hook is not None

    def loaded(sender: Any, instance: Any, **kwargs: Any) -> None:
        # Remember the value as loaded, so a save can tell a real transition.
        if field in instance.__dict__:  # a deferred field tells nothing
            instance.__dict__.setdefault(_STATE_ATTR, {})[field] = instance.__dict__[field]

    def saved(sender: Any, instance: Any, created: bool, using: str, **kwargs: Any) -> None:
        remembered = instance.__dict__.setdefault(_STATE_ATTR, {})
        known = field in remembered
        before, after = remembered.get(field), instance.__dict__.get(field)
        remembered[field] = after
        if created or not known or kwargs.get("raw") or before == after:
            return
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and field not in update_fields:
            return
        with internal(event_type.action):
            fields = dict(hook(instance))
            fields["eventtrail.target.state"] = after
            fields["eventtrail.target.previous_state"] = before
            _emit_on_commit(event_type, fields, None, using or router.db_for_write(sender))

    uid = f"eventtrail:{event_type.action}"
    post_init.connect(loaded, sender=event_type.model, weak=False, dispatch_uid=uid)
    post_save.connect(saved, sender=event_type.model, weak=False, dispatch_uid=uid)


def connect(event_type: EventType) -> None:
    if event_type.key == "signal":
        _connect_signal(event_type)
    elif event_type.key == "model":
        _connect_model(event_type)
    elif event_type.key == "state":
        _connect_state(event_type)


def install() -> None:
    registry.on_add(connect)
