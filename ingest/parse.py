"""Parse one POST body (a JSON array of RayEvents) into validated events.

A body is accepted or rejected whole. `BodyError` names the event index, the field
(spelled as the sender spelled it) and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from ingest.columnar import first_incomplete
from ingest.wire import PAYLOAD_FIELDS, Wire, wire_for
from lake.layout import LayoutError, check_session


class BodyError(ValueError):
    """A body that cannot be ingested; nothing of it is kept."""

    def __init__(self, reason: str, index: int | None = None, field: str | None = None):
        self.reason = reason
        self.index = index
        self.field = field
        where = []
        if index is not None:
            where.append(f"event {index}")
        if field:
            where.append(f"field `{field}`")
        super().__init__(": ".join([*where, reason]))

    def as_json(self) -> dict[str, Any]:
        return {"error": str(self), "event_index": self.index, "field": self.field}


@dataclass(frozen=True)
class ParsedBody:
    wire: Wire
    body: bytes
    events: list[Any]
    """Decoded RayEvent structs, in body order."""


_WHERE = re.compile(
    r"^(?P<what>.*?)(?: - at `\$(?:\[(?P<index>\d+)\])?\.?(?P<field>[^`]*)`)?$", re.S
)


def parse_body(body: bytes) -> ParsedBody:
    """Decode and validate a body. Raises BodyError."""
    wire = wire_for(body)
    try:
        events = wire.events.decode(body)
    except msgspec.ValidationError as exc:
        raise _located(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise BodyError(f"not a JSON array of RayEvents ({exc})") from None
    errors = []
    if (incomplete := first_incomplete(events, PAYLOAD_FIELDS)) >= 0:
        errors.append((incomplete, 0, _check))
    for session in {event.session_name for event in events}:
        try:
            check_session(session)
        except LayoutError:
            index = next(i for i, e in enumerate(events) if e.session_name == session)
            errors.append((index, 1, _check_session))
    if errors:  # the first event's error, as the sender would fix them in order
        index, _, check = min(errors)
        check(wire, index, events[index])
    return ParsedBody(wire, body, events)


def _located(message: str) -> BodyError:
    match = _WHERE.match(message)
    assert match is not None  # the pattern matches any string
    index, field = match["index"], match["field"] or None
    what = match["what"]
    what = what[0].lower() + what[1:] if what else what
    if index is None and field is None:
        return BodyError(f"not a JSON array of RayEvents ({what})")
    return BodyError(what, int(index) if index is not None else None, field)


def _check_session(wire: Wire, index: int, event: Any) -> None:
    try:
        check_session(event.session_name)
    except LayoutError as exc:
        raise BodyError(str(exc), index, wire.spell("session_name")) from None


def _check(wire: Wire, index: int, event: Any) -> None:
    """Raise the error `first_incomplete` found in the event."""
    if not event.event_id:
        raise BodyError("expected a non-empty id", index, wire.spell("event_id"))
    if not event.session_name:
        raise BodyError("expected the Ray session name", index, wire.spell("session_name"))
    payload = PAYLOAD_FIELDS.get(event.event_type)
    if payload is not None and getattr(event, payload) is None:
        raise BodyError(
            f"expected an object for eventType {event.event_type}, found none",
            index,
            wire.spell(payload),
        )
