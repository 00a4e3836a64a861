"""A subject's live state (主体信用档案): its shape, and how each input is folded into it.

The state is the SET of a subject's inputs, kept so that folding them in any order gives the same
state (every fold below is a commutative, idempotent "keep the newest" merge), plus what the
rules derive from that set (``history``, ``evaluation``: see domain/history.py). It is stored as
JSON (one Redis string per subject); :class:`SubjectState` and :class:`RecordEntry` are its shape.

Identity of a decision (RULES.md 2): source unit + document number (+ the subject, whose state
this is; the record kind keeps a penalty and a licence with the same number apart).

* Versions: every distinct content of a decision is a version; the version that appeared first
  at the latest department time (message timestamp, ties by topic/partition/offset) wins. A re-send
  of an old content, or an older version arriving late, is recorded (``duplicate``/``stale``) and
  changes nothing (RULES.md 3a); a correction is a newer version; a revocation is a newer version
  marked revoked.
* A court's deletion (失信被执行人删除) is kept beside the listing it names, whichever comes first.
* Objections (异议) and repair decisions (信用修复) are kept per objection id / per record key,
  the newest by the credit office's time; whether they apply is decided by the rules, on the
  dates they name, whatever arrived first (a repair sent before its penalty applies once the
  penalty is known).
* Redelivery: every input carries its origin (topic/partition/offset of the department message);
  an origin already folded is ``redelivered``. Because every fold is a merge, a redelivered input
  whose origin was forgotten (``seen`` is bounded) still cannot change anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypedDict, cast

from domain.clock import date_of_ms
from domain.events import LINK_ORIGIN, FeedbackEvent, LinkedEvent, ObjectionEvent, RecordEvent, RepairEvent
from domain.record_maps import with_entry
from domain.types import Doc, View
from domain.validate import content_hash, decision_key

SEEN_ORIGINS_KEPT: Final = 32
VERSIONS_KEPT: Final = 16
NAMES_KEPT: Final = 8
FEEDBACK_KEPT: Final = 200
OBJECTION_STATUSES: Final = ("filed", "upheld", "rejected")
OBJECTION_OUTCOMES: Final = ("corrected", "revoked")
APPLIED: Final = frozenset({"new", "correction", "revocation", "deletion", "registration"})


class RecordEntry(TypedDict, total=False):
    kind: str                 # penalty, license, court_listing, listing_decision, action, linked
    action_kind: str | None
    doc_no: str | None
    source_unit: str | None
    source_unit_code: str | None
    decision_date: str | None
    severity: str | None
    domain: str | None
    content: Doc | None      # the winning version's canonical record (None: only a deletion known)
    status: str               # active / revoked / deleted / awaiting-record
    hash: str | None          # the winning version's content hash
    versions: dict[str, list[Any]]  # content hash -> [department ms, origin] of its first appearance
    others: dict[str, Doc]   # content of the versions that do not win (a later input may flip them)
    version: int              # distinct versions seen
    first_ms: int
    updated_ms: int
    deletion: Doc            # the winning deletion {"reason", "date", "doc_no", "versions"} (merge_version)
    via: str                  # linked records: the organisation
    seen: list[str]


class SubjectState(TypedDict, total=False):
    id: str
    id_kind: str              # uscc / resident_id
    names: list[str]          # oldest first, by the date of the newest record naming each (last: the name now)
    ids: Doc
    category: str | None
    flags: list[str]
    identity_at: Doc          # when each name, identifier and the category was last named: [date, ms, origin]
    records: Mapping[str, RecordEntry]  # a dict, or a large state's persistent map (domain/record_maps.py)
    objections: dict[str, Doc]  # objection id -> {record_key, status, filed, resolved, ...}
    repairs: dict[str, Doc]     # record key -> {approved, granted, doc_no, ms, origin, seen}
    registrations_seen: list[str]
    feedback: dict[str, list[Any]]
    awaiting_feedback: dict[str, str]
    updated_ms: int
    version: int
    as_of: str | None          # the subject's clock: the latest date its inputs name or arrived on
    timeline: Doc             # every list change, past and projected, by track (domain/history.py);
                               #   those effective on or before as_of are the history announced
    facts: Mapping[str, Doc]  # record key -> what the record means for the lists (history.record_facts)
    basis: Doc                # the compact aggregate the lists are assembled from (history.new_basis)
    facts_rules: str           # the rules version the facts were derived with
    evaluation: Doc           # the situation on as_of (lists, publicity, objections, repairs, next_due)


def new_state(subject_id: str, id_kind: str) -> SubjectState:
    return {"id": subject_id, "id_kind": id_kind, "names": [], "ids": {}, "category": None, "flags": [],
            "records": {}, "updated_ms": 0, "version": 0}


def origin_key(origin: str | None) -> tuple[Any, ...]:
    """Order of origins: topic, then partition and offset as numbers (a producer's order)."""
    if not origin:
        return ("", -1, -1)
    topic, _, rest = origin.rpartition("/")
    head, _, partition = topic.rpartition("/")
    try:
        return (head, int(partition), int(rest))
    except ValueError:
        return (origin, -1, -1)


def version_key(ms: int, origin: str | None) -> tuple[Any, ...]:
    return (ms, origin_key(origin))


def status_of(entry: View) -> str:
    content = entry.get("content")
    if content is None:
        return "awaiting-record"
    if content.get("revoked"):
        return "revoked"
    if entry.get("deletion"):
        return "deleted"
    return "active"


def _seen(seen: list[Any] | None, origin: str) -> list[Any]:
    return ((seen or []) + [origin])[-SEEN_ORIGINS_KEPT:]


def merge_version(slot: Doc | None, content: Doc, ms: int, origin: str, rank: int = 0) -> tuple[Doc, str]:
    """Fold one sighting of a versioned fact (a deletion, an objection, a repair decision) into its
    slot: ``{**winning content, "versions": [[content, ms, origin, rank], ...]}``. Each distinct
    content keeps its earliest sighting; the winner is the content with the highest (rank, time of
    first sighting), so the fold is the same whatever the arrival order. Outcomes: applied (the
    winner changed), duplicate (a content already known), stale (a new content that does not win)."""
    versions = [list(v) for v in (slot or {}).get("versions") or ()]
    key = (rank, version_key(ms, origin))
    old_winner = max(versions, key=lambda v: (v[3], version_key(v[1], v[2])))[0] if versions else None
    for v in versions:
        if v[0] == content:
            if key < (v[3], version_key(v[1], v[2])):
                v[1], v[2] = ms, origin
            break
    else:
        versions.append([content, ms, origin, rank])
    versions.sort(key=lambda v: (v[3], version_key(v[1], v[2])))
    del versions[:-VERSIONS_KEPT]
    winner = versions[-1][0]
    out = dict(winner, versions=versions, seen=_seen((slot or {}).get("seen"), origin))
    if winner != old_winner:
        return out, "applied"
    return out, "duplicate" if any(v[0] == content for v in (slot or {}).get("versions") or ()) else "stale"


# ------------------------------------------------------------------------------------ records


def apply_record(state: SubjectState | None, event: RecordEvent | LinkedEvent, *, via: str | None = None,
                 record: Doc | None = None, identity: Doc | None = None) -> tuple[SubjectState, str]:
    """Fold one record event; returns the new state and the outcome. The state passed in is not
    modified. Outcomes: new, correction, revocation, deletion, registration, duplicate, stale,
    redelivered. ``via``: the record is an organisation's, linked onto this person's file (an entry
    of kind ``linked`` whose content is the organisation's record; ``identity``: what it teaches of
    the person)."""
    if state is None:
        state = new_state(event.subject, event.id_kind)
    record = record if record is not None else event.record
    if record.get("kind") == "registration":
        return apply_registration(state, record, event.event_ms, event.origin)
    key = decision_key(record) if via is None else linked_key(decision_key(record), via)
    current = state["records"].get(key)
    origin = event.origin
    if current is not None and origin in (current.get("seen") or ()):
        return state, "redelivered"
    if record.get("kind") == "court_deletion":
        entry, outcome = _fold_deletion(current, record, event, linked=via is not None)
    else:
        entry, outcome = _fold_version(current, record, event, linked=via is not None)
    if via is not None and outcome not in ("duplicate", "stale"):
        entry["via"] = via
    out = _copy(state)
    out["records"] = with_entry(state["records"], key, entry)
    out["updated_ms"] = max(out.get("updated_ms") or 0, event.event_ms)
    if outcome in ("duplicate", "stale"):
        return out, outcome
    if entry.get("content") is not None and entry["hash"] == event.hash:
        _merge_identity(out, record if identity is None else identity, event.event_ms, event.origin)
    out["version"] = (out.get("version") or 0) + 1
    return out, outcome


def _fold_version(current: RecordEntry | None, record: Doc, event: RecordEvent | LinkedEvent, *,
                  linked: bool = False) -> tuple[RecordEntry, str]:
    """The versions of one decision: the newest by the department's own time (``version_key``) is the
    entry's content, whatever order they arrive in. Each version keeps its own content (``others``),
    so the one that wins is always its own (for a linked record: its organisation record)."""
    digest, ms, origin = event.hash, event.event_ms, event.origin
    entry: Doc  # a working copy, a RecordEntry again when returned
    if current is None or current.get("content") is None and not current.get("versions"):
        entry = dict(current or {})
        entry.update(_summary(record, linked), content=record, hash=digest, versions={digest: [ms, origin]}, others={},
                     version=1, first_ms=min(entry.get("first_ms") or ms, ms),
                     updated_ms=max(entry.get("updated_ms") or 0, ms), seen=_seen(entry.get("seen"), origin))
        entry["status"] = status_of(entry)
        return cast(RecordEntry, entry), "revocation" if record.get("revoked") else "new"
    entry = dict(current)
    entry["seen"] = _seen(current.get("seen"), origin)
    entry["first_ms"] = min(current.get("first_ms") or ms, ms)
    entry["updated_ms"] = max(current.get("updated_ms") or 0, ms)
    versions = dict(current.get("versions") or {})
    others = dict(current.get("others") or {})
    new_key = version_key(ms, origin)
    known = versions.get(digest)
    if known is not None:
        if new_key < version_key(*known):
            versions[digest] = [ms, origin]  # an earlier sighting of the same content
        else:
            entry["versions"] = versions
            return cast(RecordEntry, entry), "duplicate"
    else:
        if len(versions) >= VERSIONS_KEPT and new_key < min(version_key(*v) for v in versions.values()):
            return cast(RecordEntry, entry), "stale"  # older than every version kept: it cannot win
        versions[digest] = [ms, origin]
        others[digest] = record
    winner = max(versions, key=lambda h: version_key(*versions[h]))
    while len(versions) > VERSIONS_KEPT:
        oldest = min(versions, key=lambda h: version_key(*versions[h]))
        versions.pop(oldest)
        others.pop(oldest, None)
    entry["versions"] = versions
    entry["version"] = (current.get("version") or 0) + (0 if known is not None else 1)
    if winner == current.get("hash"):
        entry["others"] = others
        return cast(RecordEntry, entry), "stale" if known is None else "duplicate"
    current_hash, current_content = current.get("hash"), current.get("content")
    if current_content is not None and current_hash is not None and current_hash in versions:
        others[current_hash] = current_content
    content = others.pop(winner)
    entry.update(_summary(content, linked), content=content, hash=winner, others=others,
                 updated_ms=max(current.get("updated_ms") or 0, ms))
    entry["status"] = status_of(entry)
    if content.get("revoked"):
        return cast(RecordEntry, entry), "revocation"
    return cast(RecordEntry, entry), "correction"


def _fold_deletion(current: RecordEntry | None, record: Doc, event: RecordEvent | LinkedEvent, *,
                   linked: bool = False) -> tuple[RecordEntry, str]:
    deletion = {"reason": (record.get("fields") or {}).get("deletion_reason"), "date": record.get("decision_date"),
                "doc_no": record.get("doc_no")}
    entry: RecordEntry = dict(current) if current is not None else {  # type: ignore[assignment]
        "kind": "linked" if linked else "court_listing", "doc_no": record.get("doc_no"),
        "source_unit": record.get("source_unit"),
        "source_unit_code": record.get("source_unit_code"), "decision_date": None, "severity": None,
        "domain": record.get("domain"), "content": None, "hash": None, "versions": {}, "others": {},
        "version": 0, "first_ms": event.event_ms, "updated_ms": event.event_ms}
    entry["seen"] = _seen((current or {}).get("seen"), event.origin)
    entry["first_ms"] = min(entry.get("first_ms") or event.event_ms, event.event_ms)
    entry["updated_ms"] = max(entry.get("updated_ms") or 0, event.event_ms)
    slot, outcome = merge_version((current or {}).get("deletion"), deletion, event.event_ms, event.origin)
    slot.pop("seen", None)
    entry["deletion"] = slot
    entry["status"] = status_of(entry)
    return entry, "deletion" if outcome == "applied" else outcome


def deletion_records(entry: RecordEntry) -> list[tuple[int, str, Doc]]:
    """A court listing's deletions as (stamp, origin, court deletion record), one per version its
    deletion slot keeps (``_fold_deletion`` folds such a record into that slot): what a listing
    linked onto a legal representative's file carries with it (domain/engine.py ``_links``)."""
    listing = entry.get("content") or {}
    return [(ms, origin, {"kind": "court_deletion", "source_unit": listing.get("source_unit"),
                          "source_unit_code": listing.get("source_unit_code"), "doc_no": listing.get("doc_no"),
                          "decision_date": deletion.get("date"), "fields": {"deletion_reason": deletion.get("reason")}})
            for deletion, ms, origin, _rank in (entry.get("deletion") or {}).get("versions") or ()]


def _summary(record: Doc, linked: bool = False) -> Doc:
    if linked:  # the organisation's record on its legal representative's file: of kind linked
        return {**_summary(record), "kind": "linked", "action_kind": None}
    return {"kind": record.get("kind"), "action_kind": record.get("action_kind"), "doc_no": record.get("doc_no"),
            "source_unit": record.get("source_unit"), "source_unit_code": record.get("source_unit_code"),
            "decision_date": record.get("decision_date"), "severity": record.get("severity"),
            "domain": record.get("domain")}


LINKED_KEY: Final = "linked:"
"""How the key of an organisation's record on a legal representative's file begins (:func:`linked_key`)."""
_EARLIER_LINKED_KEY: Final = "linked|"


def linked_key(key: str, via: str) -> str:
    """The key the record of key ``key`` (``decision_key``) of the organisation ``via`` has on its
    legal representative's file: ``linked:<organisation>|<unit>|<document number>``, the entry of
    kind ``linked`` that :func:`apply_linked` keeps, and that the objections and repairs linked
    after it aim at (domain/engine.py ``_links``). The same decision, whatever its kind there (a
    court deletion names its listing already). The organisation is part of it: one decision may
    concern several organisations with the same legal representative (a removal decision for a
    batch of them, co-debtors listed under one court case number), each its own record on the
    person's file. (Before ``BASIS_VERSION`` 5 the key was ``linked|<unit>|<document number>``:
    :func:`with_current_linked_keys`.)"""
    return f"{LINKED_KEY}{via}|" + key.split("|", 1)[-1]


def _linking_organisation(origin: str) -> str | None:
    """The organisation a linked input came from: its origin is ``link:<organisation>:<origin>``."""
    if not origin.startswith(LINK_ORIGIN):
        return None
    org, sep, _ = origin[len(LINK_ORIGIN):].partition(":")
    return org if sep and org else None


def current_linked_key(key: str, origin: str) -> str:
    """``key`` as this version writes it: a linked objection's or repair's aim written by an earlier
    version (``linked|...``, read back from the subject-event log) gets the organisation its
    ``origin`` names."""
    if key.startswith(_EARLIER_LINKED_KEY):
        org = _linking_organisation(origin)
        if org is not None:
            return linked_key(key, org)
    return key


def with_current_linked_keys(state: SubjectState) -> SubjectState:
    """A legal representative's file kept by a version before ``BASIS_VERSION`` 5, with its linked
    records, and the objections and repairs aimed at them, keyed as :func:`linked_key` keys them
    now. An earlier entry may hold the versions of two organisations (one decision about both, e.g.
    co-debtors of one court case): its versions, its deletions and its repair decisions are folded
    again, each under the organisation its origin names (``link:<organisation>:...``), as they
    would have been folded from the start; the fold does not depend on their order. Everything
    derived from them is derived again (the basis's version changed). The state passed in is not
    modified; returned as it is when nothing is keyed the earlier way."""
    records, repairs = state.get("records") or {}, cast(Doc, state).get("repairs") or {}
    objections = cast(Doc, state).get("objections") or {}
    earlier = [k for k in records if k.startswith(_EARLIER_LINKED_KEY)]
    earlier_repairs = [k for k in repairs if k.startswith(_EARLIER_LINKED_KEY)]
    if not earlier and not earlier_repairs and not any(
            str(o.get("record_key") or "").startswith(_EARLIER_LINKED_KEY) for o in objections.values()):
        return state
    out = _copy(state)
    out["records"] = {k: v for k, v in records.items() if k not in set(earlier)}
    sid, id_kind = state["id"], state.get("id_kind") or "resident_id"
    for key in sorted(earlier):
        entry = records[key]
        contents: dict[str, Doc] = dict(cast(Doc, entry).get("others") or {})
        if entry.get("hash") and entry.get("content") is not None:
            contents[str(entry["hash"])] = cast(Doc, entry["content"])
        sightings = [(ms, origin, contents[digest], digest)
                     for digest, (ms, origin) in (entry.get("versions") or {}).items() if digest in contents]
        sightings += [(ms, origin, record, content_hash(record)) for ms, origin, record in deletion_records(entry)]
        for ms, origin, record, digest in sorted(sightings, key=lambda v: (v[0], v[1])):
            org = _linking_organisation(origin) or entry.get("via")
            if org:
                out, _ = apply_linked(out, LinkedEvent(origin=origin, subject=sid, event_ms=ms, record=record,
                                                       hash=digest, via=org, id_kind=id_kind))
    slots = {k: v for k, v in repairs.items() if k not in set(earlier_repairs)}
    cast(Doc, out)["repairs"] = slots
    for key in sorted(earlier_repairs):
        for content, ms, origin, _rank in repairs[key].get("versions") or ():
            aim = current_linked_key(key, origin)
            out, _ = apply_repair(out, RepairEvent(origin=origin, subject=sid, event_ms=ms, id_kind=id_kind,
                                                   record_key=aim, decision_date=content["approved"],
                                                   approved=bool(content.get("granted")),
                                                   doc_no=content.get("doc_no")))
    kept: dict[str, Doc] = {}
    for oid, slot in objections.items():
        aim = str(slot.get("record_key") or "")
        if aim.startswith(_EARLIER_LINKED_KEY) and ":" in oid:
            org = oid.split(":", 1)[0]
            slot = dict(slot, record_key=linked_key(aim, org), versions=[
                [dict(v[0], record_key=linked_key(v[0]["record_key"], org))
                 if str(v[0].get("record_key") or "").startswith(_EARLIER_LINKED_KEY) else v[0], *v[1:]]
                for v in slot.get("versions") or ()])
        kept[oid] = slot
    cast(Doc, out)["objections"] = kept
    return out


def apply_linked(state: SubjectState | None, event: LinkedEvent) -> tuple[SubjectState, str]:
    """A severe record of an organisation, linked onto its legal representative's personal record:
    an entry of kind ``linked`` whose content is the organisation's record, ``via`` the organisation;
    the person's names and identifiers are not touched by the organisation's. Its versions fold as
    any record's: the newest by the department's time wins, each with its own content."""
    org = event.record
    content = dict(org, revoked=org.get("revoked", False))
    new, outcome = apply_record(state, event, via=event.via, record=content,
                                identity={"subject_name": event.person_name} if event.person_name else {})
    key = linked_key(decision_key(content), event.via)
    entry = new["records"].get(key)
    if new is not state and entry is not None and (entry.get("content") or {}).get("kind") == "linked":
        # a version kept by an earlier layout, which stored the person's summary, not the organisation's
        # record: the record it stands for is not kept; this event's is the nearest there is
        new["records"] = with_entry(new["records"], key, cast(RecordEntry, {**entry, "content": content}))
        entry = new["records"].get(key)
    if new is not state and entry is not None and entry.get("versions"):
        # the person is sent the organisation's versions at their first sightings, and a sighting that
        # turned out not to be the first only in some orders: its latest stamp is that of the versions
        # it keeps, the same in every order (the organisation's re-sends are not linked)
        latest = max(v[0] for v in entry["versions"].values())
        if entry.get("updated_ms") != latest:
            new["records"] = with_entry(new["records"], key, cast(RecordEntry, {**entry, "updated_ms": latest}))
    return new, outcome


def apply_registration(state: SubjectState, record: Doc, event_ms: int, origin: str) -> tuple[SubjectState, str]:
    """A registration teaches names and identifiers only; a redelivered one (same origin) or one
    that teaches nothing new changes nothing."""
    seen = state.get("registrations_seen") or []
    if origin in seen:
        return state, "redelivered"
    updated = _copy(state)
    updated["registrations_seen"] = (seen + [origin])[-SEEN_ORIGINS_KEPT:]
    _merge_identity(updated, record, event_ms, origin)
    if (updated["names"], updated["ids"], updated["category"], updated["flags"]) == (
            state["names"], state["ids"], state["category"], state["flags"]):
        return updated, "duplicate"
    updated["updated_ms"] = max(state.get("updated_ms") or 0, event_ms)
    updated["version"] = (state.get("version") or 0) + 1
    return updated, "registration"


def _copy(state: SubjectState) -> SubjectState:
    """A copy of ``state`` whose identity parts may be changed in place. Its records are shared with
    ``state``: one is set with ``with_entry`` (domain/record_maps.py), never in place."""
    out: SubjectState = dict(state)  # type: ignore[assignment]
    out["records"] = state.get("records") or {}
    out["names"] = list(state.get("names") or [])
    out["ids"] = {k: (list(v) if isinstance(v, list) else v) for k, v in (state.get("ids") or {}).items()}
    out["flags"] = list(state.get("flags") or [])
    return out


_NEVER: Final[list[Any]] = ["", 0, ""]  # a name or identifier kept before identity_at: older than any


def _merge_identity(state: SubjectState, record: Doc, event_ms: int, origin: str) -> None:
    """Fold what ``record`` says of the subject's identity into ``state`` (modified in place: a
    ``_copy``). The newest by the record's own date (its decision date; else the China date of its
    stamp), then its stamp and origin, wins: the current name, the category and each identifier are
    the newest record's, whatever order the records arrive in (RULES.md 3a: an older decision sent
    late never undoes a newer one); the names are kept oldest first. Flags and other numbers are a
    set (kept sorted). Versions compare as ``[date, ms, origin]`` lists."""
    at: list[Any] = [record.get("decision_date") or date_of_ms(event_ms), event_ms, origin]
    known: Doc = dict(state.get("identity_at") or {})
    name = record.get("subject_name")
    if name:
        named: dict[str, list[Any]] = dict(known.get("names") or {})
        was = named.get(name)
        if was is None or was < at:
            named[name] = at
        names = state["names"]
        if not (names and names[-1] == name):
            # (the current name named again: it stays the newest, its date only grows)
            order = {n: i for i, n in enumerate(names)}
            names = sorted(set(names) | {name}, key=lambda n: (named.get(n) or _NEVER, order.get(n, len(order))))
            state["names"] = names[-NAMES_KEPT:]
        known["names"] = {n: named[n] for n in state["names"] if n in named}
    ids = state["ids"]
    ids_at: dict[str, list[Any]] = dict(known.get("ids") or {})
    changed = False
    for kind, value in (record.get("ids") or {}).items():
        if kind == "other":
            others = ids.get("other") or []
            if any(v not in others for v in value):
                ids["other"] = sorted(set(others) | set(value))
                changed = True
        elif value:
            was = ids_at.get(kind)
            if kind not in ids or was is None or was < at:
                if ids.get(kind) != value:
                    ids[kind] = value
                    changed = True
                ids_at[kind] = at
    if ids_at:
        known["ids"] = ids_at
    if changed:
        state["ids"] = dict(sorted(ids.items()))  # the same document in any order
    if record.get("subject_category"):
        was = known.get("category")
        if state.get("category") is None or was is None or was < at:
            state["category"] = record["subject_category"]
            known["category"] = at
    flags = record.get("id_flags") or ()
    if flags and any(f not in state["flags"] for f in flags):
        state["flags"] = sorted(set(state["flags"]) | set(flags))
    state["identity_at"] = known


def active_records(state: SubjectState) -> list[RecordEntry]:
    return [r for r in state["records"].values() if r.get("status") == "active"]


# ------------------------------------------------------------------------------------ objections


def _fold_slot(state: SubjectState, part: str, key: str, content: Doc, event: ObjectionEvent | RepairEvent,
               rank: int = 0) -> tuple[SubjectState, Doc | None, str]:
    """Fold one versioned credit-office fact into ``state[part][key]`` (merge_version); the state
    counts as changed only when the winner changed."""
    slots: dict[str, Doc] = cast(Doc, state).get(part) or {}
    current = slots.get(key)
    if current is not None and event.origin in (current.get("seen") or ()):
        return state, None, "redelivered"
    slot, outcome = merge_version(current, content, event.event_ms, event.origin, rank=rank)
    out = _copy(state)
    cast(Doc, out)[part] = {**slots, key: slot}
    if outcome == "applied":
        out["updated_ms"] = max(out.get("updated_ms") or 0, event.event_ms)
        out["version"] = (out.get("version") or 0) + 1
    return out, slot, outcome


def apply_objection(state: SubjectState | None, event: ObjectionEvent) -> tuple[SubjectState, str]:
    """Fold an objection (异议). Per objection id the newest wins: a resolution beats a filing
    whatever their arrival order, and of two resolutions the later by the office's time. What it
    does to the lists (suspension from ``filed`` to ``resolved``; an upheld objection revokes or
    corrects the record) is derived by the rules on those dates. Outcomes: objection-filed,
    objection-rejected, objection-revoked, objection-corrected, duplicate, stale, redelivered,
    invalid."""
    content = _parse_objection(event)
    if content is None:
        return state if state is not None else new_state(event.subject, event.id_kind), "invalid"
    if state is None:
        state = new_state(event.subject, event.id_kind)
    out, slot, outcome = _fold_slot(state, "objections", event.objection_id, content, event,
                                     rank=0 if content["status"] == "filed" else 1)
    if outcome != "applied" or slot is None:
        return out, outcome
    if slot["status"] == "upheld":
        return out, f"objection-{slot['outcome']}"
    return out, f"objection-{slot['status']}"


def _parse_objection(event: ObjectionEvent) -> Doc | None:
    status = event.status
    if status not in OBJECTION_STATUSES:
        return None
    resolved = event.resolved
    filed = event.filed or resolved
    if filed is None:
        return None
    outcome = event.outcome
    if status == "filed":
        resolved, outcome = None, None
    else:
        resolved = resolved or filed  # the office's own date; a resolution without one: its filing date
        if resolved < filed:
            return None
        if status == "rejected":
            outcome = None
        elif outcome is None:
            outcome = "corrected"
        elif outcome not in OBJECTION_OUTCOMES:
            return None
    return {"record_key": event.record_key, "status": status, "filed": filed, "resolved": resolved,
            "provider_verification": bool(event.provider_verification), "outcome": outcome}


# ------------------------------------------------------------------------------------ repairs


def apply_repair(state: SubjectState | None, event: RepairEvent) -> tuple[SubjectState, str]:
    """Fold a credit-repair decision (信用修复): per record key the newest decision by the office's
    time wins. Whether it applies (the record known and in force, the approval on or after the
    earliest repair date) is the rules' to decide, on the approval date, so a repair sent before
    its penalty applies once the penalty arrives. Outcomes: repair, repair-refused (the decision
    itself refuses), correction, duplicate, stale, redelivered."""
    if state is None:
        state = new_state(event.subject, event.id_kind)
    content = {"approved": event.decision_date, "granted": bool(event.approved), "doc_no": event.doc_no}
    out, slot, outcome = _fold_slot(state, "repairs", event.record_key, content, event)
    if outcome != "applied" or slot is None:
        return out, outcome
    current = (state.get("repairs") or {}).get(event.record_key)
    if not slot["granted"]:
        return out, "repair-refused"
    return out, "correction" if current is not None else "repair"


# ------------------------------------------------------------------------------------ feedback


def apply_feedback(state: SubjectState | None, event: FeedbackEvent) -> tuple[SubjectState, str]:
    """An implementing unit's feedback on a list change: what measure it took, and when. Recorded
    under ``feedback[change_id]`` (one entry per unit); the change stops awaiting feedback."""
    if state is None:
        state = new_state(event.subject, event.id_kind)
    feedback = state.get("feedback") or {}
    cid = event.change_id
    entries = feedback.get(cid) or []
    if any(event.origin in e.get("seen", ()) for e in entries):
        return state, "redelivered"
    entry = {"feedback_id": event.feedback_id, "unit": event.unit, "measure": event.measure,
             "measure_date": event.measure_date, "seen": [event.origin]}
    same = next((e for e in entries if {k: v for k, v in e.items() if k != "seen"}
                 == {k: v for k, v in entry.items() if k != "seen"}), None)
    new: SubjectState = dict(state)  # type: ignore[assignment]
    new["feedback"] = dict(feedback)
    if same is not None:
        same = dict(same, seen=(same["seen"] + [event.origin])[-8:])
        new["feedback"][cid] = [same if e.get("feedback_id") == same.get("feedback_id") else e for e in entries]
        return new, "duplicate"
    new["feedback"][cid] = (entries + [entry])[-FEEDBACK_KEPT:]
    awaiting = dict(state.get("awaiting_feedback") or {})
    awaiting.pop(cid, None)
    new["awaiting_feedback"] = awaiting
    return new, "feedback"
