"""The subject events: the only inputs of the rules core, their only constructors, their wire form.

Every input about a subject travels on the subject-event log (keyed by subject id) as one of these
typed events, JSON on the wire, tagged by ``type``:

* ``record``     a canonical department decision (domain/validate.py) or a registration
* ``objection``  the credit office's objection handling (异议): filed / upheld / rejected
* ``repair``     a credit-repair decision (信用修复), granted or refused
* ``feedback``   an implementing unit's feedback on a list change (联合惩戒反馈)
* ``linked``     a severe record of an organisation, linked onto its legal representative
* ``tick``       a due date passed on the wall clock (written by the timer agent)
* ``detached``   a version of a record attached through a legacy number has moved to another subject
                 (the number's registration changed: sinks/registry_index.py), or a linked copy of it
                 leaves a legal representative's file with it

``decode`` validates as it decodes (msgspec): a message that is not one of these (``{}``,
``[1,2,3]``, ``{"subject": null}``, a wrong type anywhere) raises :class:`BadEvent`, which the
subject agent dead-letters; nothing malformed reaches the core. Unknown fields are ignored, so an
older or newer writer's events still decode.

Times: ``event_ms`` is the ARRIVAL instant (the department message's timestamp): timeliness and
audit only, and the version order of a decision's re-sends (the department's own clock). What an
input means for the lists is dated by the dates its decision names (RULES.md 3a).
"""

from __future__ import annotations

from typing import Annotated, Final, cast

import msgspec

from domain.clock import date_of_ms, due_ms
from domain.types import Doc
from domain.validate import content_hash

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
Millis = Annotated[int, msgspec.Meta(ge=0, le=253_402_300_799_999)]  # up to 9999-12-31
IsoDate = Annotated[str, msgspec.Meta(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class BadEvent(ValueError):
    """Bytes on the subject-event log that are not a subject event."""


class _Event(msgspec.Struct, tag_field="type", forbid_unknown_fields=False, omit_defaults=True):
    origin: NonEmpty
    subject: NonEmpty
    event_ms: Millis

    @property
    def arrival_date(self) -> str:
        return date_of_ms(self.event_ms)

    def named_dates(self) -> tuple[str, ...]:
        """The dates the decision names (what it means is dated by these, never by arrival)."""
        return ()


class RecordEvent(_Event, tag="record"):
    record: Doc
    hash: NonEmpty
    id_kind: str = "uscc"
    attach_gen: Annotated[int, msgspec.Meta(ge=0)] = 0
    """For a record attached through a legacy number: how many times the registry index has moved it
    to another subject when this copy was addressed (sinks/registry_index.py). A subject that was told
    the version moved away at this generation or a later one takes the copy as ``moved-away``."""
    moved: bool = False
    """A copy the move itself sent (not a department message arriving): not counted as an input again."""

    def named_dates(self) -> tuple[str, ...]:
        d = self.record.get("decision_date")
        return (d,) if isinstance(d, str) else ()


class LinkedEvent(_Event, tag="linked"):
    record: Doc
    hash: NonEmpty
    via: NonEmpty
    person_name: str | None = None
    id_kind: str = "resident_id"
    units: list[tuple[str, str]] | None = None  # as ObjectionEvent's
    attach_gen: Annotated[int, msgspec.Meta(ge=0)] = 0  # the organisation's record's (RecordEvent)

    def named_dates(self) -> tuple[str, ...]:
        d = self.record.get("decision_date")
        return (d,) if isinstance(d, str) else ()


class ObjectionEvent(_Event, tag="objection"):
    objection_id: NonEmpty
    record_key: NonEmpty
    status: str
    filed: IsoDate | None = None
    resolved: IsoDate | None = None
    provider_verification: bool = False
    outcome: str | None = None
    id_kind: str = "uscc"
    record: Doc | None = None  # the canonical objection record (audit)
    hash: str | None = None
    units: list[tuple[str, str]] | None = None
    """Linked onto a legal representative's file: the (name, code) pairs the organisation's state
    knows of the unit of the record it aims at (domain/state.py ``learn_unit``)."""

    def named_dates(self) -> tuple[str, ...]:
        return tuple(d for d in (self.filed, self.resolved) if d)


class RepairEvent(_Event, tag="repair"):
    record_key: NonEmpty
    decision_date: IsoDate
    approved: bool = True
    doc_no: str | None = None
    id_kind: str = "uscc"
    record: Doc | None = None
    hash: str | None = None
    units: list[tuple[str, str]] | None = None  # linked: as ObjectionEvent's

    def named_dates(self) -> tuple[str, ...]:
        return (self.decision_date,)


class FeedbackEvent(_Event, tag="feedback"):
    change_id: NonEmpty
    feedback_id: str | None = None
    unit: str | None = None
    measure: str | None = None
    measure_date: str | None = None
    id_kind: str = "uscc"
    record: Doc | None = None
    hash: str | None = None


class TickEvent(_Event, tag="tick"):
    due: IsoDate

    def named_dates(self) -> tuple[str, ...]:
        return (self.due,)


class DetachedEvent(_Event, tag="detached"):
    """One version of a record (``hash``, the content ``record``) leaves this subject's file: it was
    attached through a legacy number that the registry index now gives to ``to`` (存量代码转换 after a
    number moved, or after a department's typing error taught it), at the ``gen``-th move of that
    version; or (``via``) the linked copy of such a version on a legal representative's file, which
    the organisation ``via`` lost. Its ``event_ms`` is the version's latest sighting: it moves no clock."""
    record: Doc
    hash: NonEmpty
    gen: Annotated[int, msgspec.Meta(ge=1)]
    to: str | None = None
    via: str | None = None
    id_kind: str = "uscc"
    whole: bool = False
    """On a legal representative's file (``via``): the organisation no longer links the record to this
    person at all (the version that named the person moved away): every linked copy of it goes."""


SubjectEvent = RecordEvent | LinkedEvent | ObjectionEvent | RepairEvent | FeedbackEvent | TickEvent | DetachedEvent
DEPARTMENT_INPUTS = (RecordEvent, ObjectionEvent, RepairEvent, FeedbackEvent)  # not ticks, not links

_decoder = msgspec.json.Decoder(SubjectEvent)
_encoder = msgspec.json.Encoder()


def decode(raw: bytes) -> SubjectEvent:
    """A subject event from its wire form; :class:`BadEvent` says why it is not one."""
    try:
        return _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise BadEvent(str(exc)) from None


def from_dict(event: Doc | SubjectEvent) -> SubjectEvent:
    """A subject event from its dict form (a parked event, a test); :class:`BadEvent` if not one."""
    if isinstance(event, _Event):
        return event
    try:
        return cast(SubjectEvent, msgspec.convert(event, SubjectEvent))
    except msgspec.ValidationError as exc:
        raise BadEvent(str(exc)) from None


def encode(event: SubjectEvent) -> bytes:
    return _encoder.encode(event)


def to_dict(event: SubjectEvent) -> Doc:
    return cast(Doc, msgspec.to_builtins(event))


# ---------------------------------------------------------------------------------- constructors


def of_record(subject_id: str, id_kind: str, origin: str, record: Doc, event_ms: int) -> SubjectEvent:
    """The subject event of a canonical record (domain/validate.py): ``record`` for decisions and
    registrations, ``objection`` / ``repair`` / ``feedback`` for the credit office's and the
    implementing units' inputs."""
    kind = record["kind"]
    digest = content_hash(record)
    if kind == "objection":
        return ObjectionEvent(origin=origin, subject=subject_id, event_ms=event_ms, id_kind=id_kind,
                              objection_id=record["objection_id"], record_key=record["target_key"],
                              status=record["status"], filed=record.get("filed"), resolved=record.get("resolved"),
                              provider_verification=bool(record.get("provider_verification")),
                              outcome=record.get("outcome"), record=record, hash=digest)
    if kind == "feedback":
        return FeedbackEvent(origin=origin, subject=subject_id, event_ms=event_ms, id_kind=id_kind,
                             change_id=record["change_id"], feedback_id=record.get("feedback_id"),
                             unit=record.get("source_unit"), measure=(record.get("fields") or {}).get("measure"),
                             measure_date=record.get("decision_date"), record=record, hash=digest)
    if kind == "repair":
        return RepairEvent(origin=origin, subject=subject_id, event_ms=event_ms, id_kind=id_kind,
                           record_key=record["target_key"], approved=bool(record.get("approved")),
                           decision_date=record["decision_date"], doc_no=record.get("doc_no"),
                           record=record, hash=digest)
    return RecordEvent(origin=origin, subject=subject_id, event_ms=event_ms, id_kind=id_kind, record=record,
                       hash=digest)


LINK_ORIGIN: Final = "link:"
"""How the origin of an event an organisation's step sent to its legal representative's log begins
(``link:<organisation>:<origin of the organisation's input>``): not a department input there."""


def linked(person_id: str, person_name: str | None, via: str, origin: str, record: Doc, event_ms: int,
           units: list[tuple[str, str]] | None = None, attach_gen: int = 0) -> LinkedEvent:
    """A severe record of organisation ``via`` for its legal representative's personal log; ``units``:
    the (name, code) pairs the organisation knows of the record's unit (domain/state.py ``unit_names``)."""
    return LinkedEvent(origin=f"{LINK_ORIGIN}{via}:{origin}", subject=person_id, event_ms=event_ms, record=record,
                       hash=content_hash(record), via=via, person_name=person_name, units=units or None,
                       attach_gen=attach_gen)


def tick(subject_id: str, due: str) -> TickEvent:
    """A due date passed: written by the timer agent; its id makes a re-sent tick recognisable."""
    return TickEvent(origin=f"tick:{subject_id}:{due}", subject=subject_id, due=due, event_ms=due_ms(due))


def with_subject(event: SubjectEvent, subject_id: str, id_kind: str, attach_gen: int = 0,
                 moved: bool = False) -> SubjectEvent:
    """A parked event, attached once the registry learns its subject; a record attached through a
    legacy number, addressed to the subject the index gives it at its ``attach_gen``-th move (``moved``:
    a copy the move sends)."""
    if (attach_gen or moved) and isinstance(event, RecordEvent):
        return msgspec.structs.replace(event, subject=subject_id, id_kind=id_kind, attach_gen=attach_gen, moved=moved)
    return msgspec.structs.replace(event, subject=subject_id, id_kind=id_kind)


MOVE_ORIGIN: Final = "move:"
"""How the origin of a ``detached`` event begins: ``move:<version's hash>:<gen>`` (deterministic, so
that a re-sent one is a re-delivery)."""


def detached(subject_id: str, record: Doc, digest: str, gen: int, event_ms: int, to: str | None,
             via: str | None = None, whole: bool = False) -> DetachedEvent:
    """The version ``digest`` of ``record`` leaves ``subject_id``'s file at its ``gen``-th move (``whole``:
    every copy of the record linked from ``via``)."""
    origin = f"{MOVE_ORIGIN}{digest[:16]}:{gen}" + (f":{via}" if via else "") + (":whole" if whole else "")
    return DetachedEvent(origin=origin, subject=subject_id, event_ms=event_ms, record=record, hash=digest, gen=gen,
                         to=to, via=via, id_kind="resident_id" if via else "uscc", whole=whole)
