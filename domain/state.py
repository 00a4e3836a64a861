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
* Identity (names, category, identifiers, flags): a function of the records' winning versions in
  force and of the registrations, whatever order they arrive in (``derive_identity``): each says it
  at its ``identity_key`` (the decision's own date, then the earliest sighting of that content,
  then the record key), so a re-send moves nothing and a superseded or revoked version says
  nothing; a new record is merged at the cost of one (``_fold_identity``).
* Moves: a version of a decision attached through a legacy number leaves the subject when the
  number comes to name another organisation (``apply_detached``), and is taken out of the set as if
  it had never come; ``moves`` keeps each such version's move generation, so that its copies and
  the notices of its moves give the same file whatever order they arrive in (``apply_record``).
* Redelivery: every input carries its origin (topic/partition/offset of the department message);
  an origin already folded with the same content is ``redelivered`` (another content at a seen
  origin, a topic deleted and created again, is folded as new: ``_sighted``). Because every fold is
  a merge, a redelivered input whose origin was forgotten (``seen`` is bounded) still cannot change
  anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypedDict, cast

import orjson

from domain.clock import date_of_ms
from domain.digest import hex16
from domain.events import (
    LINK_ORIGIN,
    DetachedEvent,
    FeedbackEvent,
    LinkedEvent,
    ObjectionEvent,
    RecordEvent,
    RepairEvent,
)
from domain.record_maps import editable, finished, with_entry
from domain.types import Doc, View
from domain.validate import content_hash, decision_key

SEEN_ORIGINS_KEPT: Final = 32
VERSIONS_KEPT: Final = 16
EVICTED_KEPT: Final = 256
"""How many versions evicted from a decision (or a versioned fact) it remembers, by a 16-character
prefix of their digest: a version is evicted only when its earliest sighting is older than every
version kept, so it can never win again; remembered, a copy of it that arrives later (stamped later)
is known to be that old version, not taken for a new one that wins. Beyond VERSIONS_KEPT +
EVICTED_KEPT distinct versions of one decision the oldest evicted are forgotten."""
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
    evicted: list[str]        # versions evicted, by their digest's prefix (EVICTED_KEPT)
    resent: dict[str, int]    # a version's latest sighting, when later than its first (a re-send's), by
    #                           content hash (a deletion's: _deletion_digest): where it goes when a
    #                           unit's second code splits the entry's versions (_refold)


class SubjectState(TypedDict, total=False):
    id: str
    id_kind: str              # uscc / resident_id
    names: list[str]          # oldest first, by the date of the newest record naming each (last: the name now)
    ids: Doc
    category: str | None
    flags: list[str]
    identity_at: Doc          # {"v": IDENTITY_FORM, "names": {name: key}, "ids": {kind: key}, "category": key}:
                               #   the identity_key of the source of each name, identifier and the category
    records: Mapping[str, RecordEntry]  # a dict, or a large state's persistent map (domain/record_maps.py)
    objections: dict[str, Doc]  # objection id -> {record_key, status, filed, resolved, ...}
    repairs: dict[str, Doc]     # record key -> {approved, granted, doc_no, ms, origin, seen}
    units: dict[str, list[str]]  # a deciding unit's name -> the codes inputs gave with it, sorted (learn_unit)
    registrations_seen: list[str]
    registered: dict[str, list[Any]]  # registration content hash -> [identity_key, {subject_name, ids, ...}]
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
    moves: dict[str, list[int]]  # a version attached through a legacy number that moved: its mark
    #                              (move_mark) -> [generation, 1 held here / 0 moved away] (apply_detached)


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


def sortable_origin(origin: str) -> str:
    """An origin (``topic/partition/offset``, a link's ``link:<organisation>:`` before it) as text that
    sorts by partition and offset as numbers: each prefixed with its number of digits (two digits and
    a colon: ``penalty/01:3/02:10``, offset 10 after ``penalty/01:3/01:9``). Where origins are compared
    as text (a mapping's version, compared by Redis: domain/attach.py ``mapping_version``; an identity
    key, compared as a list: :func:`identity_key`), offset 10 sorted before offset 9, and the earlier
    of two registrations or record versions with the same date and stamp won. Six characters longer
    than the origin (zero-padding to 10 and 20 digits cost 26, and 51 bytes of Redis per subject). Text
    of another shape, this form among it, is returned as it is."""
    head, _, offset = origin.rpartition("/")
    topic, _, partition = head.rpartition("/")
    if not topic or not (partition.isdecimal() and partition.isascii() and offset.isdecimal() and offset.isascii()) \
            or len(partition) >= 100 or len(offset) >= 100:
        return origin
    return topic + "/" + _DIGITS[len(partition)] + partition + "/" + _DIGITS[len(offset)] + offset


_DIGITS: Final = tuple(f"{n:02d}:" for n in range(100))  # how many digits, as sortable_origin writes it


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
    """The origins seen, ``origin`` last unless it was there already (the same list then)."""
    if seen and origin in seen:
        return seen
    return ((seen or []) + [origin])[-SEEN_ORIGINS_KEPT:]


def merge_version(slot: Doc | None, content: Doc, ms: int, origin: str, rank: int = 0) -> tuple[Doc, str]:
    """Fold one sighting of a versioned fact (a deletion, an objection, a repair decision) into its
    slot: ``{**winning content, "versions": [[content, ms, origin, rank], ...]}``. Each distinct
    content keeps its earliest sighting; the winner is the content with the highest (rank, time of
    first sighting), so the fold is the same whatever the arrival order. Outcomes: applied (the
    winner changed), duplicate (a content already known), stale (a new content that does not win)."""
    versions = [list(v) for v in (slot or {}).get("versions") or ()]
    evicted = list((slot or {}).get("evicted") or ())
    key = (rank, version_key(ms, origin))
    old_winner = max(versions, key=_slot_rank)[0] if versions else None
    for v in versions:
        if v[0] == content:
            if key < (v[3], version_key(v[1], v[2])):
                v[1], v[2] = ms, origin
            break
    else:
        if evicted and _slot_digest(content) in evicted:  # an evicted version again: it cannot win
            out = dict(old_winner or {}, versions=versions, seen=_seen((slot or {}).get("seen"), origin),
                       evicted=evicted)
            return out, "stale"
        versions.append([content, ms, origin, rank])
    versions.sort(key=_slot_rank)
    if len(versions) > VERSIONS_KEPT:
        evicted = _evict(evicted, [_slot_digest(v[0]) for v in versions[:-VERSIONS_KEPT]])
        del versions[:-VERSIONS_KEPT]
    winner = versions[-1][0]
    out = dict(winner, versions=versions, seen=_seen((slot or {}).get("seen"), origin))
    if evicted:
        out["evicted"] = evicted
    if winner != old_winner:
        return out, "applied"
    return out, "duplicate" if any(v[0] == content for v in (slot or {}).get("versions") or ()) else "stale"


def repair_decisions(slot: View | None) -> list[Doc]:
    """The repair decisions of one record's ``repairs`` slot (信用修复决定), granting or refusing,
    earliest approval first (then by document number): of each decision, named by its ``doc_no``
    (修复决定文号), the version that wins as :func:`merge_version` ranks them."""
    if not slot:
        return []
    latest: dict[str, Doc] = {}
    for content, *_ in sorted(slot.get("versions") or (), key=_slot_rank):
        latest[str(content.get("doc_no") or "")] = content
    if not latest:  # (a slot without versions: its content alone)
        latest[""] = cast(Doc, slot)
    return sorted(latest.values(), key=lambda c: (str(c.get("approved") or ""), str(c.get("doc_no") or "")))


def repair_grants(slot: View | None) -> list[Doc]:
    """The repair decisions of one record's ``repairs`` slot that grant it (准予修复), earliest approval
    first (:func:`repair_decisions`). A decision sent again corrected to a refusal grants nothing; a
    separate decision refusing another application leaves an earlier grant standing (a slot's own
    winner is its newest decision, whatever it says). Which of them applies, the first that the
    record's rules accept, is the rules' to say (domain/facts.py)."""
    return [c for c in repair_decisions(slot) if c.get("granted")]


def _slot_digest(content: Doc) -> str:
    """What an evicted slot version is remembered by (:data:`EVICTED_KEPT`)."""
    return hex16(orjson.dumps(content, option=orjson.OPT_SORT_KEYS))[:16]


def _evict(evicted: list[Any], digests: list[str]) -> list[Any]:
    """The evicted versions remembered, with ``digests`` added (the oldest forgotten past
    :data:`EVICTED_KEPT`)."""
    out = evicted + [d for d in digests if d not in evicted]
    return out[-EVICTED_KEPT:]


def _slot_rank(version: list[Any]) -> tuple[Any, ...]:
    """A slot version's rank: its rank, its earliest sighting, then its content, so that two contents
    seen at the same origin (a topic recreated: its offsets start again) and stamp rank the same way
    in every arrival order."""
    return version[3], version_key(version[1], version[2]), repr(sorted(version[0].items()))


def _sighted(slot: Doc | None, origin: str, content: Doc) -> bool:
    """Whether ``content`` was folded into ``slot`` from ``origin`` already: a redelivery. An origin
    names one message only within one incarnation of its topic: deleted and created again (or moved
    to another cluster), a topic's offsets start again at 0, so the same origin may bring another
    content, which is folded as any new one."""
    return slot is not None and origin in (slot.get("seen") or ()) and _holds(slot, content)


def _holds(slot: Doc | None, content: Doc) -> bool:
    """Whether ``slot`` keeps ``content`` among its versions."""
    return slot is not None and any(v[0] == content for v in slot.get("versions") or ())


# ------------------------------------------------------------------------------------ records


def move_mark(via: str | None, digest: str) -> str:
    """How a subject's ``moves`` names one version of a record: its content hash's first 16
    characters (:func:`move_digest`), and for a linked copy on a legal representative's file, the
    organisation before it."""
    return f"{via}|{digest[:16]}" if via else digest[:16]


def move_digest(record: Doc, digest: str) -> str:
    """What a version is named by in ``moves``: its content hash ``digest``; a court's deletion by
    what it says of its listing (``_deletion_digest``), which its copy linked onto a legal
    representative's file says too (``deletion_records``)."""
    return _deletion_digest(_deletion_of(record)) if record.get("kind") == "court_deletion" else digest


def attach_generation(state: View, digest: str) -> int:
    """The move generation at which the version ``digest`` is held here (0: never moved)."""
    held = (state.get("moves") or {}).get(digest[:16])
    return int(held[0]) if held and held[1] else 0


def apply_record(state: SubjectState | None, event: RecordEvent | LinkedEvent, *, via: str | None = None,
                 record: Doc | None = None) -> tuple[SubjectState, str]:
    """Fold one record event (:func:`_apply_record`), gated by the moves of records attached through
    a legacy number (存量代码转换): a copy addressed to this subject before the version moved away
    (its ``attach_gen`` at or below the move's) is ``moved-away`` and changes nothing; a copy
    addressed at a later move is held here from that generation on, so that a late notice of an
    earlier move (:func:`apply_detached`) does not take it away. Which subject ends holding a
    version is the one the index's last move gave it to, whatever order the notices arrive in."""
    if state is None:
        state = new_state(event.subject, event.id_kind)
    gen = event.attach_gen
    moves = state.get("moves")
    if not gen and not moves:
        return _apply_record(state, event, via=via, record=record)
    mark = move_mark(via, move_digest(record if record is not None else event.record, event.hash))
    held = moves.get(mark) if moves else None
    if held is not None and not held[1] and held[0] >= gen:
        return state, "moved-away"
    if not gen or held is not None and held[0] >= gen:
        return _apply_record(state, event, via=via, record=record)
    new, outcome = _apply_record(state, event, via=via, record=record)
    if new is state:
        new = _copy(state)
    new["moves"] = {**(moves or {}), mark: [gen, 1]}
    return new, ("duplicate" if outcome == "redelivered" else outcome)


def detached_key(state: View, event: DetachedEvent) -> str:
    """The key the version a ``detached`` event names is kept under in ``state``."""
    record = event.record if event.via is None else dict(event.record, revoked=event.record.get("revoked", False))
    return record_key_of(state.get("units"), record, event.via)


def apply_detached(state: SubjectState | None, event: DetachedEvent) -> tuple[SubjectState, str]:
    """A version of a record attached through a legacy number leaves this subject (domain/events.py
    ``DetachedEvent``): it is taken out of the record's versions as if it had never come (the record
    gone with it when it was its only version; a court deletion kept beside it stays), and what it
    said of the subject's identity with it. Noted in ``moves`` at its generation, whether held here
    or not yet (the copy addressed here may still be on its way: it is then ``moved-away``); a notice
    of an earlier move than one noted already is a re-delivery. Outcomes: detached, detach-noted,
    redelivered."""
    if state is None:
        state = new_state(event.subject, event.id_kind)
    if event.whole:
        return _unlinked(state, event)
    mark = move_mark(event.via, move_digest(event.record, event.hash))
    moves = state.get("moves") or {}
    held = moves.get(mark)
    if held is not None and held[0] >= event.gen:
        return state, "redelivered"
    out = _copy(state)
    out["moves"] = {**moves, mark: [event.gen, 0]}
    key = detached_key(state, event)
    entry: RecordEntry | None = state["records"].get(key)
    kept: RecordEntry | None
    if entry is None:
        return out, "detach-noted"
    if event.record.get("kind") == "court_deletion":
        kept = _without_deletion(entry, _deletion_of(event.record))
        if kept is entry:
            return out, "detach-noted"
    elif event.hash not in (entry.get("versions") or {}):
        return out, "detach-noted"
    else:
        kept = _without_version(entry, event.hash, linked=event.via is not None)
    if event.via is not None and kept is not None and not kept.get("versions"):
        # a court's deletion is linked onto a person's file only with its listing: without it, the
        # copy of the deletion goes too (as in an order where the listing never came by the number)
        kept = None
    working = editable(state["records"])
    if kept is None:
        working.pop(key, None)
    else:
        working[key] = kept
    out["records"] = finished(working)
    subject = out["id"]
    _fold_identity(out, key, _record_identity(entry, key, subject),
                   _record_identity(kept, key, subject) if kept is not None else None)
    out["version"] = (out.get("version") or 0) + 1
    return out, "detached"


def _unlinked(state: SubjectState, event: DetachedEvent) -> tuple[SubjectState, str]:
    """Every copy of a record linked from ``event.via`` leaves a legal representative's file (the
    organisation no longer links it to this person); the moves noted stay as they are."""
    key = detached_key(state, event)
    entry = state["records"].get(key)
    if entry is None:
        return state, "redelivered"
    out = _copy(state)
    working = editable(state["records"])
    working.pop(key, None)
    out["records"] = finished(working)
    _fold_identity(out, key, _record_identity(entry, key, out["id"]), None)
    out["version"] = (out.get("version") or 0) + 1
    return out, "detached"


def _without_deletion(entry: RecordEntry, deletion: Doc) -> RecordEntry | None:
    """``entry`` without the version ``deletion`` of its court deletion (``entry`` itself when it has
    none such); None when nothing is left of it."""
    slot = entry.get("deletion")
    versions = [v for v in (slot or {}).get("versions") or () if v[0] != deletion]
    if slot is None or len(versions) == len(slot.get("versions") or ()):
        return entry
    out: Doc = dict(entry)
    _forget_sightings(out, _deletion_digest(deletion))
    if versions:
        versions.sort(key=_slot_rank)
        kept_slot = dict(versions[-1][0], versions=versions)
        if slot.get("evicted"):
            kept_slot["evicted"] = slot["evicted"]
        out["deletion"] = kept_slot
    else:
        out.pop("deletion", None)
        if out.get("content") is None and not out.get("versions"):
            return None
    _sightings_of(out)
    out["status"] = status_of(out)
    return cast(RecordEntry, out)


def _forget_sightings(entry: Doc, digest: str) -> None:
    """In ``entry`` (a working copy), forget the re-sends of the version ``digest`` (``resent``) and
    the origins seen: a copy of a version kept, sent again from one of the moved version's origins,
    must fold as new where it is not one already (they are a re-delivery check only)."""
    entry.pop("seen", None)
    resent = entry.get("resent")
    if resent and digest in resent:
        rest = {h: t for h, t in resent.items() if h != digest}
        if rest:
            entry["resent"] = rest
        else:
            entry.pop("resent", None)


def _sightings_of(entry: Doc) -> None:
    """Set ``entry``'s (a working copy) first and latest sightings from the versions it keeps, its
    deletion's and their re-sends' (a version taken out: as if it had never come)."""
    versions = [v[0] for v in (entry.get("versions") or {}).values()]
    firsts = versions + [v[1] for v in (entry.get("deletion") or {}).get("versions") or ()]
    if firsts:
        entry["first_ms"] = min(firsts)
        if versions and entry.get("kind") == "linked":
            entry["updated_ms"] = max(versions)  # (a legal representative's copy: as apply_linked stamps it)
        else:
            entry["updated_ms"] = max(firsts + list((entry.get("resent") or {}).values()))


def _without_version(entry: RecordEntry, digest: str, *, linked: bool) -> RecordEntry | None:
    """``entry`` without its version ``digest``: the newest of the others wins (``_fold_version``'s
    order); None when it was the only one and no court deletion is kept beside it."""
    versions = {h: v for h, v in (entry.get("versions") or {}).items() if h != digest}
    others = {h: c for h, c in (entry.get("others") or {}).items() if h != digest}
    out: Doc = dict(entry)
    _forget_sightings(out, digest)
    if not versions:
        if not entry.get("deletion"):
            return None
        # a court's deletion kept alone, as it is before its listing comes (``_fold_deletion``)
        alone: Doc = {k: out[k] for k in ("deletion", "resent") if k in out}
        alone.update(kind="linked" if linked else "court_listing", doc_no=entry.get("doc_no"),
                     source_unit=entry.get("source_unit"), source_unit_code=entry.get("source_unit_code"),
                     decision_date=None, severity=None, domain=None, content=None, hash=None, versions={},
                     others={}, version=0)
        _sightings_of(alone)
        alone["status"] = status_of(alone)
        return cast(RecordEntry, alone)
    out["version"] = max(1, (entry.get("version") or 1) - 1)
    out["versions"] = versions
    _sightings_of(out)
    if entry.get("hash") == digest or entry.get("hash") not in versions:
        winner = max(versions, key=lambda h: (version_key(*versions[h]), h))
        content = others.pop(winner)
        out.update(_summary(content, linked), content=content, hash=winner)
    out["versions"], out["others"] = versions, others
    out["status"] = status_of(out)
    return cast(RecordEntry, out)


def _apply_record(state: SubjectState, event: RecordEvent | LinkedEvent, *, via: str | None = None,
                  record: Doc | None = None) -> tuple[SubjectState, str]:
    """Fold one record event; returns the new state and the outcome. The state passed in is not
    modified. Outcomes: new, correction, revocation, deletion, registration, duplicate, stale,
    redelivered. ``via``: the record is an organisation's, linked onto this person's file (an entry
    of kind ``linked`` whose content is the organisation's record: what its winning version names
    of the person is his, ``_identity_of``). The identity follows the record's winning version
    (``_fold_identity``), a duplicate's or a stale version's too: an earlier sighting of the winning
    content moves its key."""
    record = record if record is not None else event.record
    if record.get("kind") == "registration":
        return apply_registration(state, record, event.event_ms, event.origin)
    code = record.get("source_unit_code")
    if code:
        units = state.get("units")
        name = record.get("source_unit")
        if via is not None and isinstance(name, str):
            name = scoped_name(linked_scope(via), name)
        known = units.get(name) if units and isinstance(name, str) else None
        if known is None or code not in known:
            pair = unit_pair(name, code)
            if pair is not None:
                state = learn_unit(state, pair)
    key = record_key_of(state.get("units"), record, via)
    current = state["records"].get(key)
    origin = event.origin
    if current is not None and origin in (current.get("seen") or ()) and (
            _holds(current.get("deletion"), _deletion_of(record)) if record.get("kind") == "court_deletion"
            else event.hash in (current.get("versions") or {})):
        return state, "redelivered"  # (the same origin with another content: a topic recreated, _sighted)
    if record.get("kind") == "court_deletion":
        entry, outcome = _fold_deletion(current, record, event, linked=via is not None)
    else:
        entry, outcome = _fold_version(current, record, event, linked=via is not None)
    if via is not None and outcome not in ("duplicate", "stale"):
        entry["via"] = via
    out = _copy(state)
    out["records"] = with_entry(state["records"], key, entry)
    out["updated_ms"] = max(out.get("updated_ms") or 0, event.event_ms)
    subject = out["id"]
    _fold_identity(out, key, _record_identity(current, key, subject), _record_identity(entry, key, subject))
    if outcome in ("duplicate", "stale"):
        return out, outcome
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
        _resent(entry, digest, max(ms, known[0]) if ms != known[0] else 0)
        if new_key < version_key(*known):
            # an earlier sighting of the same content: its copy is kept (a re-send's event_id differs),
            # so that what the state shows of it is the same in every arrival order
            versions[digest] = [ms, origin]
            if digest == current.get("hash"):
                entry["content"] = record
            elif digest in others:
                others[digest] = record
        else:
            entry["versions"] = versions
            return cast(RecordEntry, entry), "duplicate"
    else:
        evicted = list(current.get("evicted") or ())
        if evicted and digest[:16] in evicted:
            return cast(RecordEntry, entry), "stale"  # evicted: first seen before every version kept
        if len(versions) >= VERSIONS_KEPT and new_key < min(version_key(*v) for v in versions.values()):
            # older than every version kept: it cannot win (remembered, so that a later copy of it
            # is not taken for a new version)
            entry["evicted"] = _evict(evicted, [digest[:16]])
            return cast(RecordEntry, entry), "stale"
        versions[digest] = [ms, origin]
        others[digest] = record
    # (ties: two contents at one origin and stamp, a topic recreated: the content hash decides)
    winner = max(versions, key=lambda h: (version_key(*versions[h]), h))
    while len(versions) > VERSIONS_KEPT:
        oldest = min(versions, key=lambda h: (version_key(*versions[h]), h))
        versions.pop(oldest)
        others.pop(oldest, None)
        if oldest in (entry.get("resent") or {}):
            entry["resent"] = {d: t for d, t in entry["resent"].items() if d != oldest}
        entry["evicted"] = _evict(list(entry.get("evicted") or ()), [oldest[:16]])
    entry["versions"] = versions
    entry["version"] = (current.get("version") or 0) + (0 if known is not None else 1)
    if winner == current.get("hash"):
        entry["others"] = others
        return cast(RecordEntry, entry), "stale" if known is None else "duplicate"
    current_hash, current_content = current.get("hash"), entry.get("content")
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
    deletion = _deletion_of(record)
    entry: RecordEntry = dict(current) if current is not None else {  # type: ignore[assignment]
        "kind": "linked" if linked else "court_listing", "doc_no": record.get("doc_no"),
        "source_unit": record.get("source_unit"),
        "source_unit_code": record.get("source_unit_code"), "decision_date": None, "severity": None,
        "domain": record.get("domain"), "content": None, "hash": None, "versions": {}, "others": {},
        "version": 0, "first_ms": event.event_ms, "updated_ms": event.event_ms}
    if entry.get("content") is None and not entry.get("source_unit_code") and record.get("source_unit_code"):
        entry["source_unit_code"] = record["source_unit_code"]  # (a deletion naming the court by its code, too)
    entry["seen"] = _seen((current or {}).get("seen"), event.origin)
    entry["first_ms"] = min(entry.get("first_ms") or event.event_ms, event.event_ms)
    entry["updated_ms"] = max(entry.get("updated_ms") or 0, event.event_ms)
    kept = ((current or {}).get("deletion") or {}).get("versions") or ()
    known = next((v[1] for v in kept if v[0] == deletion), None)
    if known is not None and known != event.event_ms:
        _resent(cast(Doc, entry), _deletion_digest(deletion), max(known, event.event_ms))
    slot, outcome = merge_version((current or {}).get("deletion"), deletion, event.event_ms, event.origin)
    slot.pop("seen", None)
    entry["deletion"] = slot
    entry["status"] = status_of(entry)
    return entry, "deletion" if outcome == "applied" else outcome


def _resent(entry: Doc, digest: str, ms: int) -> None:
    """Note in ``entry`` (a working copy) that the version ``digest`` was seen at ``ms`` after its first
    sighting (``resent``; nothing when ``ms`` is 0)."""
    resent = entry.get("resent") or {}
    if ms and resent.get(digest, 0) < ms:
        entry["resent"] = {**resent, digest: ms}


def _deletion_digest(deletion: Doc) -> str:
    """What ``resent`` names a version of a court listing's deletion slot by."""
    return "d:" + _slot_digest(deletion)


def _deletion_of(record: Doc) -> Doc:
    """What a court deletion record says of its listing (a version of the listing's deletion slot);
    ``named`` when it named the court by its name only (it follows the name: :func:`_rekeyed`);
    ``by_number`` when it named the organisation by a legacy number only (:func:`_by_legacy_number`)."""
    fields = record.get("fields") or {}
    out = {"reason": fields.get("deletion_reason"), "date": record.get("decision_date"), "doc_no": record.get("doc_no")}
    if not record.get("source_unit_code"):
        out["named"] = True
    if _by_legacy_number(record):
        out["by_number"] = True
    return out


def _by_legacy_number(record: Doc) -> bool:
    """Whether a court deletion named its organisation by a legacy number only (no USCC, no ID
    number: attached through the registry index, domain/attach.py): such a copy follows its number
    to another organisation (存量代码转换), and is kept apart from the same deletion sent with the USCC,
    which stays (an audit: both folded as one version, the one moving away took the other with it and
    the listing came back). A copy linked onto a legal representative's file says so in its fields
    (:func:`deletion_records`)."""
    if (record.get("fields") or {}).get("attached_by_number"):
        return True
    ids = record.get("ids")
    return ids is not None and not ids.get("uscc") and not ids.get("resident_id")


def deletion_records(entry: RecordEntry, key: str | None = None) -> list[tuple[int, str, Doc]]:
    """A court listing's deletions as (stamp, origin, court deletion record), one per version its
    deletion slot keeps (``_fold_deletion`` folds such a record into that slot): what a listing
    linked onto a legal representative's file carries with it (domain/engine.py ``_links``). A
    deletion that named the court by its name only names it so again; one that gave a code gave the
    code of the entry's key (``key``; a coded deletion is kept under its own code)."""
    listing = entry.get("content") or entry  # (a deletion known before its listing: the entry names it)
    named = _key_name(key)
    code = named[1] if named is not None and named[1] != listing.get("source_unit") \
        else listing.get("source_unit_code")
    return [(ms, origin, {"kind": "court_deletion", "source_unit": listing.get("source_unit"),
                          "source_unit_code": None if deletion.get("named") else code,
                          "doc_no": listing.get("doc_no"),
                          "decision_date": deletion.get("date"), "fields": _deletion_fields(deletion)})
            for deletion, ms, origin, _rank in (entry.get("deletion") or {}).get("versions") or ()]


def _deletion_fields(deletion: Doc) -> Doc:
    """The fields of a court deletion as a listing sends it on (:func:`deletion_records`)."""
    if deletion.get("by_number"):
        return {"deletion_reason": deletion.get("reason"), "attached_by_number": True}
    return {"deletion_reason": deletion.get("reason")}


def deletion_record_of(entry: RecordEntry, key: str, record: Doc) -> Doc | None:
    """The court deletion ``record`` as the listing's ``entry`` (kept under ``key``) sends it to the
    legal representatives (:func:`deletion_records`); None if the entry keeps no such deletion."""
    gone = _deletion_of(record)
    for _ms, _origin, sent in deletion_records(entry, key):
        if _deletion_of(sent) == gone:
            return sent
    return None


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
    state = with_current_identity(state)  # (what no record explains is kept before the records move)
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
    if earlier:
        derive_identity(out)  # the identity's sources keyed as the records are now
    return out


def apply_linked(state: SubjectState | None, event: LinkedEvent) -> tuple[SubjectState, str]:
    """A severe record of an organisation, linked onto its legal representative's personal record:
    an entry of kind ``linked`` whose content is the organisation's record, ``via`` the organisation;
    the person's names and identifiers are not touched by the organisation's. Its versions fold as
    any record's: the newest by the department's time wins, each with its own content."""
    org = event.record
    content = dict(org, revoked=org.get("revoked", False))
    if event.units:
        state = learn_linked_units(state if state is not None else new_state(event.subject, event.id_kind), event.via,
                                   event.units)
    new, outcome = apply_record(state, event, via=event.via, record=content)
    key = linked_key(decision_key(content), event.via)
    entry = new["records"].get(key)
    if new is not state and entry is not None and (entry.get("content") or {}).get("kind") == "linked":
        # a version kept by an earlier layout, which stored the person's summary, not the organisation's
        # record: the record it stands for is not kept; this event's is the nearest there is
        was = entry
        new["records"] = with_entry(new["records"], key, cast(RecordEntry, {**entry, "content": content}))
        entry = new["records"].get(key)
        _fold_identity(new, key, _record_identity(was, key, new["id"]), _record_identity(entry, key, new["id"]))
    if new is not state and entry is not None and entry.get("versions"):
        # the person is sent the organisation's versions at their first sightings, and a sighting that
        # turned out not to be the first only in some orders: its latest stamp is that of the versions
        # it keeps, the same in every order (the organisation's re-sends are not linked)
        # (nor a re-send's sighting: ``resent``)
        latest = max(v[0] for v in entry["versions"].values())
        if entry.get("updated_ms") != latest or "resent" in entry:
            new["records"] = with_entry(new["records"], key, cast(RecordEntry, {
                **{k: v for k, v in entry.items() if k != "resent"}, "updated_ms": latest}))
    return new, outcome


def apply_registration(state: SubjectState, record: Doc, event_ms: int, origin: str) -> tuple[SubjectState, str]:
    """A registration teaches names and identifiers only, at its ``identity_key`` (its registration
    date, then its earliest sighting: kept per content in ``registered``, so that a re-send is a
    duplicate whatever order the copies arrive in); a redelivered one (same origin, same content) or one that
    teaches nothing new changes nothing."""
    seen = state.get("registrations_seen") or []
    digest = content_hash(record)
    if origin in seen and digest in (cast(Doc, state).get("registered") or {}):
        return state, "redelivered"  # (the same origin with another content: a topic recreated, _sighted)
    updated = _copy(state)
    updated["registrations_seen"] = _seen(seen, origin)
    source = f"registration|{digest[:16]}"
    ident = {k: record[k] for k in _IDENTITY_KEYS if record.get(k)}
    at = identity_key(record.get("decision_date"), event_ms, origin, source)
    registered: dict[str, list[Any]] = dict(cast(Doc, state).get("registered") or {})
    was = registered.get(digest)
    if was is None or at < was[0]:
        registered[digest] = [at, ident]
        cast(Doc, updated)["registered"] = _bounded(registered)
        old = (list(was[0]), ident) if was is not None else None
        _fold_identity(updated, source, old, (at, ident) if digest in updated["registered"] else None)
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


IDENTITY_FORM: Final = 3
"""The form of ``identity_at`` (its ``"v"``). 3: every name, identifier and the category is kept with
the version key of its source, ``[date, ms, origin, source]`` (:func:`identity_key`; 2: the same with
the origin as it came, which ranked offset 9 after offset 10; the keys of ``registered`` are made sortable
when such a file's identity is derived again), and the
identity is a function of the in-force record versions and the registrations (:func:`derive_identity`).
A file kept in an earlier form (no ``"v"``: keys ``[date, ms, origin]`` of whichever copy was
merged, or no keys at all) has its identity derived again when it is next folded
(:func:`with_current_identity`). The form is the identity's own: the lists' derivation
(domain/facts.py ``BASIS_VERSION``) does not depend on it, so a change of it derives nothing else."""
REGISTRATIONS_KEPT: Final = 16
_NEVER: Final[list[Any]] = ["", 0, "", ""]  # older than any key
_IDENTITY_KEYS: Final = ("subject_name", "subject_category", "ids", "id_flags")
_LEGACY: Final = "legacy:"


def identity_key(date: str | None, ms: int, origin: str, source: str) -> list[Any]:
    """The version key a record version or a registration says the subject's identity with:
    ``[date, ms, origin, source]``. ``date``: the decision's own date (a registration's registration
    date; without one, the China date of ``ms``); ``ms, origin``: the EARLIEST sighting of that
    content (a record's ``versions[hash]``; a registration's, kept in ``registered``), so neither a
    re-send nor which copy arrived first moves it; ``source``: the record key (``registration|`` and
    the content hash for a registration; empty for what a file of an earlier form held that nothing
    kept explains), the final tie-break, and what tells :func:`_fold_identity` that a superseded
    version was the source of a part of the identity. Keys compare as lists: the origin is kept sortable
    (:func:`sortable_origin`) so that offset 10 ranks after offset 9."""
    return [date or date_of_ms(ms), ms, sortable_origin(origin), source]


def _identity_of(entry: View, content: Doc, subject: str) -> Doc:
    """What one version of a record says of the subject's identity: the record's name, category,
    identifiers and flags; for an organisation's record linked onto its legal representative's
    file (kind ``linked``), only the person's name, as that version names him (its ``legal_rep``)."""
    if entry.get("kind") == "linked":
        rep = content.get("legal_rep") or {}
        return {"subject_name": rep.get("name")} if rep.get("name") and rep.get("id_no") == subject else {}
    return content


def _record_identity(entry: View | None, key: str, subject: str) -> tuple[list[Any], Doc] | None:
    """What a record contributes to the identity: its winning version's (``_identity_of``) with
    that version's key (``identity_key``); None when it has none in force (no record known, or a
    revocation wins: a revoked decision says nothing of the subject any more)."""
    if entry is None:
        return None
    content = entry.get("content")
    if content is None or content.get("revoked"):
        return None
    seen = (entry.get("versions") or {}).get(entry.get("hash") or "")
    ms, origin = (int(seen[0]), str(seen[1])) if seen else (int(entry.get("first_ms") or 0), "")
    return identity_key(content.get("decision_date"), ms, origin, key), _identity_of(entry, content, subject)


def _sets_of(ident: Doc | None) -> tuple[set[str], set[str]]:
    """The flags and the other numbers (``ids.other``) ``ident`` says: the parts kept as sets."""
    if not ident:
        return set(), set()
    return set(ident.get("id_flags") or ()), set((ident.get("ids") or {}).get("other") or ())


def _sources(state: SubjectState) -> set[str]:
    """The sources (``identity_key``'s last part) of the kept names, identifiers and category."""
    known: Doc = state.get("identity_at") or {}
    keys = list((known.get("names") or {}).values()) + list((known.get("ids") or {}).values())
    if known.get("category"):
        keys.append(known["category"])
    return {str(k[3]) for k in keys if len(k) > 3}


def _current_form(state: SubjectState) -> bool:
    return (state.get("identity_at") or {}).get("v") == IDENTITY_FORM


def _fold_identity(state: SubjectState, source: str, old: tuple[list[Any], Doc] | None,
                   new: tuple[list[Any], Doc] | None) -> None:
    """A record's (or a registration's) contribution moved from ``old`` to ``new`` (``state`` is a
    ``_copy``, changed in place). The common case, a contribution that supersedes none that
    anything kept came from, is merged as it is (:func:`_merge_identity`: the cost of one record);
    the identity is derived again from every record (:func:`derive_identity`) only when the
    superseded or revoked contribution was the source of a kept name, identifier or the category,
    or said a flag or other number the new one does not (a set does not know its sources), or the
    file is of an earlier form."""
    if old is not None and old[0] == (new[0] if new is not None else None):
        return
    if not _current_form(state):
        derive_identity(state)
        return
    if old is not None:
        old_flags, old_others = _sets_of(old[1])
        new_flags, new_others = _sets_of(new[1] if new is not None else None)
        if source in _sources(state) or old_flags - new_flags or old_others - new_others:
            derive_identity(state)
            return
    if new is not None:
        _merge_identity(state, new[1], new[0])


def derive_identity(state: SubjectState) -> None:
    """The subject's identity from its inputs (``state``, a ``_copy``, changed in place): every
    record contributes its winning version if it is in force (:func:`_record_identity`), every
    registration its content (``registered``); each at its ``identity_key``. The same as folding
    them one by one (:func:`_merge_identity`) in any order: each name is kept with the newest key
    that names it, the names oldest first (the last: the name now, on the public pages and the credit
    report), at most ``NAMES_KEPT``; each identifier kind and the category are the newest's; flags
    and other numbers are the union. A superseded or revoked version says nothing, not even a
    former name: the department withdrew it (RULES.md 2, 3a). A file of an earlier form keeps, as
    ``registered`` (older than any record when it kept no key), what its identity held that no
    version of a record it keeps says: what registrations taught it then."""
    subject = state["id"]
    registered: dict[str, list[Any]] = dict(cast(Doc, state).get("registered") or {})
    if not _current_form(state):
        # form 2 kept the origins of its registrations' keys as they came: sortable now, as identity_key
        # makes them; its identity is all in its records and registrations (an earlier form's is not)
        registered = {digest: [[*at[:2], sortable_origin(at[2]), *at[3:]] if len(at) > 2 else at, ident]
                      for digest, (at, ident) in registered.items()}
        if (state.get("identity_at") or {}).get("v") != 2:
            registered.update(_legacy_identity(state))
        registered = _bounded(registered)
        if registered:
            cast(Doc, state)["registered"] = registered
    parts = [(at, ident) for at, ident in registered.values()]
    for key, entry in (state.get("records") or {}).items():
        part = _record_identity(entry, key, subject)
        if part is not None:
            parts.append(part)
    named: dict[str, list[Any]] = {}
    ids: Doc = {}
    ids_at: dict[str, list[Any]] = {}
    others: set[str] = set()
    flags: set[str] = set()
    category: str | None = None
    category_at: list[Any] | None = None
    for at, ident in parts:
        name = ident.get("subject_name")
        if name and (name not in named or named[name] < at):
            named[name] = at
        for kind, value in (ident.get("ids") or {}).items():
            if kind == "other":
                others.update(value)
            elif value and (kind not in ids_at or ids_at[kind] < at):
                ids[kind], ids_at[kind] = value, at
        if ident.get("subject_category") and (category_at is None or category_at < at):
            category, category_at = ident["subject_category"], at
        flags.update(ident.get("id_flags") or ())
    if others:
        ids["other"] = sorted(others)
    names = sorted(named, key=lambda n: (named[n], n))[-NAMES_KEPT:]
    state["names"] = names
    state["ids"] = dict(sorted(ids.items()))
    state["category"] = category
    state["flags"] = sorted(flags)
    known: Doc = {"v": IDENTITY_FORM, "names": {n: named[n] for n in names}}
    if ids_at:
        known["ids"] = ids_at
    if category_at is not None:
        known["category"] = category_at
    state["identity_at"] = known


def _bounded(registered: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """At most ``REGISTRATIONS_KEPT`` registrations, the newest by their keys."""
    if len(registered) <= REGISTRATIONS_KEPT:
        return registered
    kept = sorted(registered, key=lambda d: registered[d][0])[-REGISTRATIONS_KEPT:]
    return {d: registered[d] for d in sorted(kept)}


def _legacy_identity(state: SubjectState) -> dict[str, list[Any]]:
    """What the identity of a file of an earlier form holds that no version of a record it keeps
    says (``registered`` entries ``[key, part]``, keyed ``legacy:...``): the registrations of that
    time, which were not kept. Each keeps the key the file kept for it (its ``[date, ms, origin]``;
    none: older than any record, in the order the file kept them); a name, identifier or category a
    kept version says is derived again from the records instead, so that a superseded version's is
    no longer current."""
    subject = state["id"]
    said_names: set[str] = set()
    said_ids: set[tuple[str, str]] = set()
    said_categories: set[str] = set()
    said_flags: set[str] = set()
    for entry in (state.get("records") or {}).values():
        contents = list((entry.get("others") or {}).values())
        if entry.get("content") is not None:
            contents.append(cast(Doc, entry["content"]))
        for content in contents:
            ident = _identity_of(entry, content, subject)
            if ident.get("subject_name"):
                said_names.add(str(ident["subject_name"]))
            for kind, value in (ident.get("ids") or {}).items():
                for v in (value if kind == "other" else [value]):
                    said_ids.add((kind, str(v)))
            if ident.get("subject_category"):
                said_categories.add(str(ident["subject_category"]))
            said_flags.update(ident.get("id_flags") or ())
    known: Doc = state.get("identity_at") or {}

    def key_of(at: list[Any] | None, n: int) -> list[Any]:
        return [*at[:3], ""] if at else ["", n, "", ""]

    out: dict[str, list[Any]] = {}
    for n, name in enumerate(state.get("names") or ()):
        if name not in said_names:
            out[f"{_LEGACY}name:{name}"] = [key_of((known.get("names") or {}).get(name), n), {"subject_name": name}]
    for kind, value in (state.get("ids") or {}).items():
        if kind == "other":
            rest = sorted(v for v in value if ("other", str(v)) not in said_ids)
            if rest:
                out[f"{_LEGACY}other"] = [list(_NEVER), {"ids": {"other": rest}}]
        elif value and (kind, str(value)) not in said_ids:
            out[f"{_LEGACY}id:{kind}"] = [key_of((known.get("ids") or {}).get(kind), 0), {"ids": {kind: value}}]
    category = state.get("category")
    if category and category not in said_categories:
        out[f"{_LEGACY}category"] = [key_of(known.get("category"), 0), {"subject_category": category}]
    flags = sorted(f for f in state.get("flags") or () if f not in said_flags)
    if flags:
        out[f"{_LEGACY}flags"] = [list(_NEVER), {"id_flags": flags}]
    return out


def with_current_identity(state: SubjectState) -> SubjectState:
    """``state`` with its identity in the current form (``IDENTITY_FORM``): a file kept in an earlier
    one has it derived again (:func:`derive_identity`); returned as it is otherwise. Not modified."""
    if _current_form(state) or not (state.get("records") or state.get("names") or state.get("ids")
                                    or state.get("category") or state.get("flags")):
        return state
    out = _copy(state)
    derive_identity(out)
    return out


def _merge_identity(state: SubjectState, ident: Doc, at: list[Any]) -> None:
    """Fold what one record version or registration says of the subject's identity (``ident``, at
    its ``identity_key`` ``at``) into ``state`` (modified in place: a ``_copy`` of a file of the
    current form). Commutative and idempotent, and equal to :func:`derive_identity` over the same
    contributions: each name keeps its newest key, the names oldest first by it (last: the name
    now); each identifier kind and the category are the newest's; flags and other numbers are a set
    (kept sorted)."""
    known: Doc = dict(state.get("identity_at") or {})
    known["v"] = IDENTITY_FORM
    name = ident.get("subject_name")
    if name:
        named: dict[str, list[Any]] = dict(known.get("names") or {})
        was = named.get(name)
        if was is None or was < at:
            named[name] = at
        names = state["names"]
        if not (names and names[-1] == name):
            # (the current name named again: it stays the newest, its key only grows)
            names = sorted(set(names) | {name}, key=lambda n: (named.get(n) or _NEVER, n))
            state["names"] = names[-NAMES_KEPT:]
        known["names"] = {n: named[n] for n in state["names"] if n in named}
    ids = state["ids"]
    ids_at: dict[str, list[Any]] = dict(known.get("ids") or {})
    changed = False
    for kind, value in (ident.get("ids") or {}).items():
        if kind == "other":
            others = ids.get("other") or []
            if any(v not in others for v in value):
                ids["other"] = sorted(set(others) | set(value))
                changed = True
        elif value:
            was = ids_at.get(kind)
            if was is None or was < at:
                if ids.get(kind) != value:
                    ids[kind] = value
                    changed = True
                ids_at[kind] = at
    if ids_at:
        known["ids"] = ids_at
    if changed:
        state["ids"] = dict(sorted(ids.items()))  # the same document in any order
    if ident.get("subject_category"):
        was = known.get("category")
        if was is None or was < at:
            state["category"] = ident["subject_category"]
            known["category"] = at
    flags = ident.get("id_flags") or ()
    if flags and any(f not in state["flags"] for f in flags):
        state["flags"] = sorted(set(state["flags"]) | set(flags))
    state["identity_at"] = known


def active_records(state: SubjectState) -> list[RecordEntry]:
    return [r for r in state["records"].values() if r.get("status") == "active"]


# ------------------------------------------------------------------------------------ deciding units


def unit_pair(name: Any, code: Any) -> tuple[str, str] | None:
    """A deciding unit's (name, code), when an input gives both (already normalised). A name with
    ``|`` in it (a full-width ｜ is normalised to it) is never learned: it would not be told apart
    from the key's other parts (``kind|unit|doc``), so such a unit is named as it comes."""
    if isinstance(name, str) and name and isinstance(code, str) and code and name != code \
            and "|" not in name.rpartition(LINKED_SCOPE_END)[2]:
        return name, code
    return None


LINKED_SCOPE_END: Final = "\x1f"
"""What ends the scope in the name of a unit as a legal representative's file learns it from one
organisation's linked records (:func:`scoped_name`)."""


def linked_scope(via: str) -> str:
    """The scope of the units of organisation ``via``'s records linked onto a person's file: the head of
    their keys (``linked:<org>``)."""
    return f"{LINKED_KEY}{via}"


def scoped_name(scope: str, name: str) -> str:
    """A unit name as a file keeps it in ``units``: on a legal representative's file, the units of one
    organisation's linked records are that organisation's (``scope``: :func:`linked_scope`), learned
    from what it sends (its records' versions, and the pairs its links carry), so that the person's
    file keys them as the organisation does, whatever another organisation taught it of the same name."""
    return f"{scope}{LINKED_SCOPE_END}{name}" if scope else name


def _table_name(head: str, unit: str) -> str:
    """The name ``units`` keeps the unit of a key with this head under (:func:`scoped_name`)."""
    return scoped_name(head, unit) if head.startswith(LINKED_KEY) else unit


def _scope_and_name(name: str) -> tuple[str, str]:
    scope, sep, bare = name.rpartition(LINKED_SCOPE_END)
    return (scope, bare) if sep else ("", name)


def office_unit_pair(record: Doc | None) -> tuple[str, str] | None:
    """The (name, code) of the unit whose decision an objection or a repair names, when it gives both
    (``target_source_unit``, ``target_source_unit_uscc``)."""
    fields = (record or {}).get("fields") or {}
    return unit_pair(fields.get("target_source_unit"), fields.get("target_source_unit_uscc"))


def _learn_office_units(state: SubjectState, event: ObjectionEvent | RepairEvent) -> SubjectState:
    """``state`` knowing the units an objection or a repair names: its target's (name, code), and, linked
    from an organisation, the pairs that organisation knows of the unit it aims at."""
    head = event.record_key.partition("|")[0]
    scope = head if head.startswith(LINKED_KEY) else ""
    pairs = [office_unit_pair(event.record), *(unit_pair(scoped_name(scope, n), c) for n, c in event.units or ())]
    for pair in pairs:
        if pair is not None:
            state = learn_unit(state, pair)
    return state


def learn_linked_units(state: SubjectState, via: str, pairs: list[tuple[str, str]] | None) -> SubjectState:
    """``state`` (a legal representative's file) knowing the pairs organisation ``via`` sent with a
    linked record, scoped to it (:func:`scoped_name`)."""
    for name, code in pairs or ():
        pair = unit_pair(scoped_name(linked_scope(via), name), code)
        if pair is not None:
            state = learn_unit(state, pair)
    return state


def unit_names(units: Mapping[str, list[str]] | None, key: str) -> list[tuple[str, str]]:
    """The (name, code) pairs ``units`` holds of the unit of the record key ``key``, when it names the
    unit by a code one of its names stands for: what a legal representative's file needs to know to
    key that record's linked copy as the organisation keys it."""
    named = _key_name(key)
    if not units or named is None:
        return []
    return [(name, named[1]) for name, codes in sorted(units.items()) if codes[0] == named[1]]


def record_key_of(units: Mapping[str, list[str]] | None, record: Doc, via: str | None = None) -> str:
    """The key a subject's state keeps ``record`` under (``linked_key`` of it, ``via`` an organisation):
    its ``decision_key``, resolved (:func:`resolve_key`) when it names its unit by the name only."""
    key = decision_key(record) if via is None else linked_key(decision_key(record), via)
    return resolve_key(units, key) if units and not record.get("source_unit_code") else key


def resolve_key(units: Mapping[str, list[str]] | None, key: str) -> str:
    """The key a record named by ``key`` is kept under: a decision named by its unit's name only
    (``kind|name|doc``) is kept under the unit's code when an input of this subject gave that name
    with a code (``units``; with several codes, the least: :func:`learn_unit`), so that a revocation,
    a correction, an objection or a repair that names the unit only by its name, or only by its code,
    reaches the decision sent the other way (RULES.md 2: a decision is its source unit + document
    number + subject)."""
    if not units:
        return key
    parts = key.split("|", 2)
    if len(parts) != 3:
        return key
    codes = units.get(_table_name(parts[0], parts[1]))
    return f"{parts[0]}|{codes[0]}|{parts[2]}" if codes else key


def _key_name(key: Any) -> tuple[str, str] | None:
    """A record key's (scope, unit): the scope is its head on a legal representative's file
    (``linked:<org>``), else empty."""
    if not isinstance(key, str):
        return None
    parts = key.split("|", 2)
    if len(parts) != 3:
        return None
    return (parts[0] if parts[0].startswith(LINKED_KEY) else "", parts[1])


def learn_unit(state: SubjectState, pair: tuple[str, str]) -> SubjectState:
    """``state`` knowing that the unit named ``pair[0]`` has the code ``pair[1]`` (``units``). When
    that moves the code the name stands for, the decisions kept under the name (or, for a name two
    codes were given with, the name's versions kept under the other code) are folded again under
    the key :func:`resolve_key` gives now, with the objections and repairs that aim at them: the
    same state as if the name's code had been known from the start, in every arrival order. The state
    passed in is not modified."""
    name, code = pair
    units = state.get("units") or {}
    known = units.get(name)
    # an organisation's unit on a legal representative's file: the code its name stands for, the least
    # the organisation's links and linked versions gave (those it gave before that are history, and
    # which of them came depends on the arrival order: a file kept them all in one order, one in another)
    linked = LINKED_SCOPE_END in name
    if known is not None and (code in known or linked and code > known[0]):
        return state
    out: SubjectState = dict(state)  # type: ignore[assignment]
    if known is None:  # (the names kept in order, so that the stored form is the same in every order)
        codes = [code]
        out["units"] = {name: codes} if not units else dict(sorted([*units.items(), (name, codes)]))
    else:
        codes = [code] if linked else sorted([*known, code])
        out["units"] = {**units, name: codes}
    old = known[0] if known else None
    if codes[0] == old or old is None and not _keeps_under(state, name):
        return out
    return _rekeyed(_copy(out), name, old)


def _keeps_under(state: SubjectState, name: str) -> bool:
    """Whether a record, an objection or a repair of ``state`` is kept under the unit name ``name``
    (as ``units`` keeps it: :func:`scoped_name`)."""
    scope, bare = _scope_and_name(name)
    needle = f"|{bare}|"  # (a quick look first: most inputs name no unit kept by its name)
    wanted = (scope, bare)
    if any(needle in key and _key_name(key) == wanted for key in state.get("records") or ()):
        return True
    if any(needle in key and _key_name(key) == wanted for key in cast(Doc, state).get("repairs") or ()):
        return True
    return any(needle in aim and _key_name(aim) == wanted
               for slot in (cast(Doc, state).get("objections") or {}).values() for aim in objection_targets(slot))


def _rekeyed(state: SubjectState, name: str, old: str | None) -> SubjectState:
    """``state`` (its ``units`` just learned a code for ``name``) with what was kept under ``name``,
    or under ``old`` (the code ``name`` stood for before) by ``name`` only, folded again where it
    belongs now (:func:`learn_unit`)."""
    records = state.get("records") or {}
    scope, bare = _scope_and_name(name)
    keys = []
    for key in records:
        named = _key_name(key)
        if named is None or named[0] != scope:
            continue
        if named[1] == bare or named[1] == old and _names_by_name(cast(Doc, records[key]), bare):
            keys.append(key)
    out = _refold(state, keys) if keys else state
    units = out.get("units")
    objections = cast(Doc, out).get("objections") or {}
    aimed = {oid for oid, slot in objections.items()
             if any(_key_unit_is(k, name) for k in _office_aims(slot, "objections", oid))}
    if aimed:
        if out is state:
            out = _copy(state)
        cast(Doc, out)["objections"] = {oid: _aimed(slot, units) if oid in aimed else slot
                                        for oid, slot in objections.items()}
    repairs = cast(Doc, out).get("repairs") or {}
    moved = sorted(k for k, slot in repairs.items() if any(_key_unit_is(a, name)
                                                          for a in _office_aims(slot, "repairs", k)))
    if moved:
        if out is state:
            out = _copy(state)
        slots = {k: v for k, v in repairs.items() if k not in moved}
        for key in moved:  # (each version where the key it named goes now)
            for content, ms, origin, rank in repairs[key].get("versions") or ():
                aim, content = _named_aim(content, content.get("named") or key, units)
                slots[aim], _ = merge_version(slots.get(aim), content, ms, origin, rank)
        cast(Doc, out)["repairs"] = slots
    return out


def _names_by_name(entry: Doc, bare: str) -> bool:
    """Whether a version of the record ``entry`` (a court listing's deletion included) named its unit by
    the name ``bare`` only."""
    if any(c.get("source_unit") == bare and not c.get("source_unit_code") for c in entry_contents(entry).values()):
        return True
    deletions = (entry.get("deletion") or {}).get("versions") or ()
    if not deletions or (entry.get("content") or entry).get("source_unit") != bare:
        return False
    # (a deletion folded before deletions said how they named the court: named by the name when
    # nothing of the entry gave its code)
    return any(d[0].get("named") for d in deletions) \
        or entry.get("content") is None and not entry.get("source_unit_code")


def unit_moved_keys(before: SubjectState, after: SubjectState) -> set[str]:
    """The record keys an input's learning of a unit's code (:func:`learn_unit`) moved or changed the
    facts of: the keys, before and after, of a unit whose name now stands for another code (and of
    those codes) whose entry, or an objection or repair aimed at which, the input changed."""
    old_units, new_units = before.get("units"), after.get("units")
    if old_units is new_units or not (before.get("records") or cast(Doc, before).get("objections")
                                      or cast(Doc, before).get("repairs")):
        return set()  # (a subject's first input: what it holds is the input's own)
    old_units, new_units = old_units or {}, new_units or {}
    names = {n for n, codes in new_units.items() if not old_units.get(n) or old_units[n][0] != codes[0]}
    if not names or all(n not in old_units and not _keeps_under(before, n) for n in names):
        return set()  # (a name's first code: nothing was kept under the name)
    involved: set[tuple[str, str]] = set()
    for n in names:
        scope, bare = _scope_and_name(n)
        involved |= {(scope, bare), (scope, new_units[n][0])}
        if old_units.get(n):
            involved.add((scope, old_units[n][0]))
    out: set[str] = set()
    old_records, new_records = before.get("records") or {}, after.get("records") or {}
    for records in (old_records, new_records):
        for key in records:
            if old_records.get(key) is not new_records.get(key) and _key_name(key) in involved:
                out.add(key)
    for part in ("objections", "repairs"):  # what aims at a record moved with it, or was aimed anew
        old_slots, new_slots = cast(Doc, before).get(part) or {}, cast(Doc, after).get(part) or {}
        for slots in (old_slots, new_slots):
            for key, slot in slots.items():
                if old_slots.get(key) is not new_slots.get(key):
                    for aim in (objection_targets(slot) if part == "objections" else (key,)):
                        if _key_name(aim) in involved:
                            out.add(aim)
    return out


def objection_targets(objection: Doc | None) -> set[str]:
    """Every record key any version of an objection named (a re-resolution may name another)."""
    if not objection:
        return set()
    return {objection["record_key"], *(v[0].get("record_key") for v in objection.get("versions") or ())} - {None}


def _key_unit_is(key: Any, name: str) -> bool:
    return _key_name(key) == _scope_and_name(name)


def _named_aim(content: Doc, named: str, units: Mapping[str, list[str]] | None) -> tuple[str, Doc]:
    """The record key an objection's or a repair's version that named ``named`` aims at as ``units``
    resolve it now (:func:`resolve_key`), and the version's content saying so: when it named the unit
    by its name only, that key is kept (``named``), so that it follows the name when the name stands for
    another code later (a second, lesser code given with it: :func:`learn_unit`); a record named by its
    code stays with that code."""
    aim = resolve_key(units, named)
    if aim != named:
        return aim, content if content.get("named") == named else dict(content, named=named)
    return aim, {k: v for k, v in content.items() if k != "named"} if "named" in content else content


def _aimed_content(content: Doc, units: Mapping[str, list[str]] | None) -> Doc:
    """An objection's content aimed at the record it names now (:func:`_named_aim`)."""
    aim, out = _named_aim(content, content.get("named") or content["record_key"], units)
    return out if out["record_key"] == aim else dict(out, record_key=aim)


def _office_aims(slot: Doc, part: str, key: str) -> set[str]:
    """The record keys an objection's or a repair's versions aim at or named (``named``)."""
    aims = objection_targets(slot) if part == "objections" else {key}
    return aims | {v[0]["named"] for v in slot.get("versions") or () if v[0].get("named")} \
        | ({slot["named"]} if slot.get("named") else set())


def _aimed(slot: Doc, units: Mapping[str, list[str]] | None) -> Doc:
    """An objection's slot with the record every version names resolved (:func:`_aimed_content`), its
    versions folded again (two that named the record two ways are one now, at its earliest sighting)."""
    out: Doc | None = None
    for content, ms, origin, rank in slot.get("versions") or ():
        out, _ = merge_version(out, _aimed_content(content, units), ms, origin, rank)
    if out is None:
        return _aimed_content(slot, units)
    out["seen"] = slot.get("seen") or out.get("seen")
    if slot.get("evicted"):
        out["evicted"] = slot["evicted"]
    return out


def entry_contents(entry: Doc) -> dict[str, Doc]:
    """Every version a record entry keeps: content hash -> content (none for a court deletion known
    before its listing)."""
    contents: dict[str, Doc] = dict(entry.get("others") or {})
    if entry.get("hash") and entry.get("content") is not None:
        contents[str(entry["hash"])] = cast(Doc, entry["content"])
    return contents


def _refold(state: SubjectState, keys: list[str]) -> SubjectState:
    """``state`` with the record entries ``keys`` folded again, version by version (a court
    listing's deletions with it), each under the key it has now: the fold does not depend on the
    order, so this is the state those versions would have made folded that way from the start. The
    versions an entry evicted stay known as evicted where its versions went."""
    records = state.get("records") or {}
    working = editable(records)
    for key in keys:
        working.pop(key, None)
    out = _copy(state)
    out["records"] = finished(working)
    sid, id_kind = state["id"], state.get("id_kind") or "uscc"
    sightings: list[tuple[int, str, str, Doc, str | None]] = []
    versions_of: dict[str, list[tuple[str, Doc, str | None]]] = {}  # old key -> (its name for resent, record, via)
    for key in keys:
        entry = cast(Doc, records[key])
        via = entry.get("via") if key.startswith(LINKED_KEY) else None
        contents = entry_contents(entry)
        versions_of[key] = []
        for digest, (ms, origin) in (entry.get("versions") or {}).items():
            if digest in contents:
                sightings.append((ms, origin, digest, contents[digest], via))
                versions_of[key].append((digest, contents[digest], via))
        deletions = ((entry.get("deletion") or {}).get("versions") or ())
        for (ms, origin, record), version in zip(deletion_records(cast(RecordEntry, entry), key), deletions):
            sightings.append((ms, origin, content_hash(record), record, via))
            versions_of[key].append((_deletion_digest(version[0]), record, via))
    for ms, origin, digest, record, via in sorted(sightings, key=lambda s: (s[0], sortable_origin(s[1]), s[2])):
        if via:
            out, _ = apply_linked(out, LinkedEvent(origin=origin, subject=sid, event_ms=ms, record=record, hash=digest,
                                                   via=via, id_kind=id_kind))
        else:
            out, _ = apply_record(out, RecordEvent(origin=origin, subject=sid, event_ms=ms, record=record, hash=digest,
                                                   id_kind=id_kind))
    # what the versions do not tell: the origins seen (a re-send's, so that its redelivery is one),
    # the latest sighting (a re-send's) and the versions evicted, kept where the entry went
    units = out.get("units")
    for key in sorted(keys):
        was = cast(Doc, records[key])
        went = {name: record_key_of(units, record, via) for name, record, via in versions_of[key]}
        targets = sorted(set(went.values())) or [resolve_key(units, key)]
        for target in targets:  # (split by a second code: which version an origin brought is not kept)
            kept = out["records"].get(target)
            if kept is None:
                continue
            moved: Doc = dict(kept)
            for origin in was.get("seen") or ():
                moved["seen"] = _seen(moved.get("seen"), origin)
            if len(targets) == 1:  # the whole entry moved: its latest sighting with it
                moved["updated_ms"] = max(moved.get("updated_ms") or 0, was.get("updated_ms") or 0)
            if was.get("evicted"):
                moved["evicted"] = _evict(list(moved.get("evicted") or ()), list(was["evicted"]))
            for digest, ms in (was.get("resent") or {}).items():  # each re-send's sighting where its version went
                if went.get(digest, target) == target:
                    _resent(moved, digest, ms)
                    moved["updated_ms"] = max(moved.get("updated_ms") or 0, ms)
            out["records"] = with_entry(out["records"], target, cast(RecordEntry, moved))
    derive_identity(out)
    return out


def with_learned_units(state: SubjectState) -> SubjectState:
    """A file kept before its deciding units were learned (``units``; domain/facts.py ``BASIS_VERSION``
    9): every (name, code) its records' versions give learned, and what was kept under a name whose
    code is known folded again under the code (:func:`learn_unit`); and (``BASIS_VERSION`` 10) a legal
    representative's file keeps, for an organisation's unit name, only the code it stands for, as
    :func:`learn_unit` keeps it now (it kept the others it had been sent, which depended on the arrival
    order). Returned as it is when that changes nothing."""
    units = state.get("units")
    if units and any(len(codes) > 1 and LINKED_SCOPE_END in name for name, codes in units.items()):
        state = dict(state)  # type: ignore[assignment]
        state["units"] = {name: codes[:1] if LINKED_SCOPE_END in name else codes for name, codes in units.items()}
    first: dict[tuple[str, str], tuple[Any, ...]] = {}  # each pair at its earliest sighting
    for key, entry in (state.get("records") or {}).items():
        contents = entry_contents(cast(Doc, entry))
        head = key.partition("|")[0]
        scope = head if head.startswith(LINKED_KEY) else ""
        for digest, (ms, origin) in (entry.get("versions") or {}).items():
            content = contents.get(digest)
            unit = content.get("source_unit") if content else None
            pair = unit_pair(scoped_name(scope, unit) if isinstance(unit, str) else None,
                             content.get("source_unit_code")) if content else None
            if pair is not None:
                at = version_key(ms, origin)
                if pair not in first or at < first[pair]:
                    first[pair] = at
    # learned in the order they were first seen, as they were folded (a name given with two codes
    # keeps what named it before the second as it would have been kept: docs/events.md, Identity)
    for pair in sorted(first, key=lambda p: (first[p], p)):
        state = learn_unit(state, pair)
    return state


# ------------------------------------------------------------------------------------ objections


def _fold_slot(state: SubjectState, part: str, key: str, content: Doc, event: ObjectionEvent | RepairEvent,
               rank: int = 0) -> tuple[SubjectState, Doc | None, str]:
    """Fold one versioned credit-office fact into ``state[part][key]`` (merge_version); the state
    counts as changed only when the winner changed."""
    slots: dict[str, Doc] = cast(Doc, state).get(part) or {}
    current = slots.get(key)
    if _sighted(current, event.origin, content):
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
    state = _learn_office_units(state, event)
    content = _aimed_content(content, state.get("units"))
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
    """Fold a credit-repair decision (信用修复): per record key, every decision's versions are kept
    (the slot's winner is the newest by the office's time; :func:`repair_grants` gives the decisions
    that grant the repair, each as its own newest version says). Whether one applies (the record
    known and in force, the approval on or after the earliest repair date) is the rules' to decide,
    on the approval date, so a repair sent before its penalty applies once the penalty arrives.
    Outcomes: repair, repair-refused (the decision itself refuses), correction, duplicate, stale,
    redelivered."""
    if state is None:
        state = new_state(event.subject, event.id_kind)
    state = _learn_office_units(state, event)
    aim, content = _named_aim({"approved": event.decision_date, "granted": bool(event.approved),
                               "doc_no": event.doc_no}, event.record_key, state.get("units"))
    current = (state.get("repairs") or {}).get(aim)
    out, slot, outcome = _fold_slot(state, "repairs", aim, content, event)
    if slot is None:
        return out, outcome
    if outcome != "applied":
        if repair_grants(slot) == repair_grants(current):
            return out, outcome
        # a decision that does not win the slot changed what grants the repair (a grant that arrives
        # after a later decision refusing another application): the rules derive it again
        out["updated_ms"] = max(out.get("updated_ms") or 0, event.event_ms)
        out["version"] = (out.get("version") or 0) + 1
    if not content["granted"]:
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
    entry = {"feedback_id": event.feedback_id, "unit": event.unit, "measure": event.measure,
             "measure_date": event.measure_date, "seen": [event.origin]}
    same = next((e for e in entries if {k: v for k, v in e.items() if k != "seen"}
                 == {k: v for k, v in entry.items() if k != "seen"}), None)
    if same is not None and event.origin in same.get("seen", ()):
        return state, "redelivered"  # (the same origin with another content: a topic recreated, _sighted)
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
