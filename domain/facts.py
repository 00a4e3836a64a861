"""What one record means for a subject's lists and publicity, independent of its other records
(RULES.md 3-5): its candidate memberships, its publicity period, whether it is adverse; the dates a
penalty may be repaired; the objections that suspend or void it; and its share of the compact
aggregate (the "basis") the lists are assembled from. Kept per record in the state, so an input
re-derives only the records it touches (domain/history.py assembles the lists). Pure."""

from __future__ import annotations

import bisect
import datetime as dt
from functools import lru_cache
from typing import Any, Final, NamedTuple, cast

from domain.calendar import add_months, add_years, iso
from domain.clock import date_of_ms
from domain.digest import hex16
from domain.identifiers import is_valid_resident_id
from domain.record_maps import DatedPairs
from domain.rulebook import Rulebook
from domain.state import SubjectState, repair_grants, status_of
from domain.types import Doc, View

_ONE_DAY: Final = dt.timedelta(days=1)


FAR: Final = dt.date(9999, 12, 31)


@lru_cache(maxsize=65536)
def _d(value: str) -> dt.date:
    return dt.date.fromisoformat(value)


@lru_cache(maxsize=65536)
def _plus_years(value: str, years: int) -> dt.date:
    return add_years(_d(value), years)


def change_id(subject_id: str, list_name: str, transition: str, effective_date: str, causes: list[str]) -> str:
    blob = "|".join((subject_id, list_name, transition, effective_date, ",".join(causes)))
    return hex16(blob.encode("utf-8"))


class Cand(NamedTuple):
    list: str          # blacklist / court_debtor
    domain: str
    since: dt.date
    until: dt.date | None
    key: str           # the record it rests on
    enter: tuple[Any, ...]       # (cause kind, cause decision)
    leave: tuple[Any, ...]


def _change(sid: str, name: str, kind: str, domain: str | None, transition: str, when: dt.date,
            causes: list[str], cause: tuple[Any, ...]) -> Doc:
    eff = iso(when)
    return {"change_id": change_id(sid, name, transition, eff, causes), "list": name, "kind": kind,
            "domain": domain, "transition": transition, "effective_date": eff, "causes": causes,
            "cause_kind": cause[0], "cause_decision": cause[1]}


def repair_decision(repair: View | None, key: str) -> str:
    """The decision a credit repair's changes name (``cause_decision``): the repair decision's own
    document number, else (a repair sent without one) the repaired record's key."""
    doc_no = (repair or {}).get("doc_no")
    return str(doc_no) if doc_no else key


def _attr(entry: View, name: str) -> Any:
    value = entry.get(name)
    if value is None:
        value = (entry.get("content") or {}).get(name)
    return value


def penalty_dates(entry: View, rules: Rulebook) -> tuple[dt.date, dt.date] | None:
    """(repair_from, natural publicity end) of a penalty-like record (RULES.md 3)."""
    decided = _attr(entry, "decision_date")
    if not decided:
        return None
    d = _d(decided)
    domain = _attr(entry, "domain")
    low, high = rules.publicity_months(d, _attr(entry, "severity"), domain)
    end = min(add_months(d, high), add_years(d, rules.henan_max_disclosure_years))
    start = min(add_months(d, low), end)
    if rules.is_non_repairable(domain, _attr(entry, "severity"), (entry.get("content") or {}).get("fields")):
        start = end
    return start, end


def penalty_publicity(entry: View, repair: View | None, rules: Rulebook,
                      gap: tuple[dt.date, dt.date | None, str] | None = None,
                      ) -> tuple[dt.date, dt.date, str, View | None] | None:
    """(repair_from, end, leave kind, the repair decision) of a penalty's publicity (RULES.md 3): it
    ends at the maximum of its tier (``expiry``, no decision), or earlier on the approval date of the
    first granted credit repair that can end it (``repair``: :func:`repair_applied`)."""
    dates = penalty_dates(entry, rules)
    if dates is None:
        return None
    start, end = dates
    # a repair approved while the record is out of force after an upheld objection (before its
    # correction) has nothing to end; any other applies
    grant = repair_applied(repair, start, end, gap) if repair is not None else None
    if grant is not None:
        return start, _d(grant["approved"]), "repair", grant
    return start, end, "expiry", None


def repair_applied(repair: View | None, since: dt.date, until: dt.date | None,
                   gap: tuple[dt.date, dt.date | None, str] | None) -> View | None:
    """The first of a record's granted repair decisions (domain/state.py :func:`repair_grants`, earliest
    approval first) approved on or after ``since``, before ``until`` (when given) and not while an
    upheld objection had the record out of force (``gap``): the repair that ends the record's
    publicity or membership. A later decision refusing another application does not undo it."""
    for grant in repair_grants(repair):
        day = _d(grant["approved"])
        if since <= day and (until is None or day < until) and not _in_gap(day, gap):
            return grant
    return None


def earliest_repair(entry: View | None, rules: Rulebook) -> tuple[dt.date | None, str | None]:
    """The earliest date a repair of this record can be approved, or (None, reason): penalty /
    adverse action: the publicity minimum; listing decision: listing date + the domain's
    early-removal months; court listing: never (courts delete listings)."""
    if entry is None or entry.get("content") is None:
        return None, "unknown-record"
    if status_of(entry) != "active":
        return None, "record-not-active"
    kind = entry.get("kind")
    content = entry.get("content") or {}
    if kind == "linked":
        kind = content.get("kind")
    fields = content.get("fields") or {}
    if kind == "penalty" or (kind == "action" and fields.get("adverse")):
        dates = penalty_dates(entry, rules)
        return (dates[0], None) if dates else (None, "no-decision-date")
    if kind == "listing_decision":
        if fields.get("action") != "list":
            return None, "not-adverse"
        decided = _attr(entry, "decision_date")
        early = rules.listing_period(fields.get("list_domain"))[1]
        if not decided or early is None:
            return None, "no-early-removal"
        return add_months(_d(decided), early), None
    if kind == "court_listing":
        return None, "court-listing"
    return None, "not-adverse"


def _gap(entry: View, objection: Doc | None) -> tuple[dt.date, dt.date | None, str] | None:
    """An upheld objection found the record wrong: out of force from the resolution until the
    provider's correction, or for good. The correction is the first version of the record the
    department sent after the objection was filed (RULES.md 5: the provider answers while the
    objection is verified, so its correction may come before the resolution: then the record is
    back in force at the resolution itself). A correction names no date of its own (its decision
    date is the original's), so it is dated by the department's own stamp, the time that also
    decides which version is the newest (RULES.md 3a)."""
    if objection is None:
        return None
    resolved = _d(objection["resolved"])
    filed = _d(objection["filed"]) if objection.get("filed") else resolved
    versions = sorted((v[0], v[1]) for v in (entry.get("versions") or {}).values())
    corrected = [_d(date_of_ms(ms)) for ms, _ in versions[1:] if _d(date_of_ms(ms)) >= filed]
    return resolved, (max(resolved, min(corrected)) if corrected else None), objection["_id"]


def repair_out_of_force(entry: View | None, objection: Doc | None, approved: str) -> bool:
    """A repair approved while an upheld objection had the record out of force (before its
    correction): it ends nothing (publicity nor lists)."""
    return entry is not None and _in_gap(_d(approved), _gap(entry, objection))


def _in_gap(day: dt.date, gap: tuple[dt.date, dt.date | None, str] | None) -> bool:
    """Whether ``day`` falls where an upheld objection put the record out of force."""
    return gap is not None and gap[0] <= day and (gap[1] is None or day < gap[1])


def _split(c: Cand, gap: tuple[dt.date, dt.date | None, str] | None) -> list[Cand]:
    if gap is None:
        return [c]
    start, end, oid = gap
    if c.until is not None and c.until <= start or end is not None and end <= c.since:
        return [c]
    out = []
    if c.since < start:
        out.append(c._replace(until=start, leave=("objection_upheld", oid)))
    if end is not None and (c.until is None or end < c.until):
        out.append(c._replace(since=max(end, c.since), enter=("correction", c.key)))
    return out


def objection_index(state: SubjectState) -> Doc:
    """Per record key: its disputes (filed, resolved, objection id), whether an upheld objection
    revoked it, the latest upheld objection that found it wrong (to be corrected)."""
    disputes: dict[str, list[Any]] = {}
    revoked_by: set[str] = set()
    corrected_by: dict[str, Doc] = {}
    for oid, o in sorted((state.get("objections") or {}).items()):
        key = o["record_key"]
        disputes.setdefault(key, []).append((_d(o["filed"]), _d(o["resolved"]) if o.get("resolved") else None, oid))
        if o["status"] == "upheld":
            if o.get("outcome") == "revoked":
                revoked_by.add(key)
            else:
                prev = corrected_by.get(key)
                if prev is None or o["resolved"] > prev["resolved"]:
                    corrected_by[key] = dict(o, _id=oid)
    return {"disputes": disputes, "revoked_by": revoked_by, "corrected_by": corrected_by}


def record_facts(key: str, state: SubjectState, index: Doc, rules: Rulebook) -> Doc | None:
    """What one record means for the lists, independent of the other records (JSON-able, kept in
    the state so that an input re-derives only the records it touches):

    ``{"d": decision date, "adverse": bool, "cands": [[list, domain, since, until, enter kind,
    enter decision, leave kind, leave decision], ...], "pub": [start, end, leave kind(, a repair's decision)] | None,
    "removal": domain | None}``; None: the record does not count (unknown, revoked, undated)."""
    entry = (state.get("records") or {}).get(key)
    if entry is None:
        return None
    content = entry.get("content")
    if content is None or content.get("revoked") or key in index["revoked_by"]:
        return None
    kind = entry.get("kind")
    if kind == "linked" and _names_another_representative(content, state["id"]):
        return None  # not this person's: the newest version names another legal representative
    decided = _attr(entry, "decision_date")
    if not decided:
        return None
    d = _d(decided)
    fields = content.get("fields") or {}
    repairs = state.get("repairs") or {}
    gap = _gap(entry, index["corrected_by"].get(key))
    facts = {"d": decided, "adverse": False, "cands": [], "pub": None, "removal": None}
    found: list[Cand] = []
    court_rule = rules.court_debtor
    base = content.get("kind") if kind == "linked" else kind
    if base == "court_listing":
        # an organisation's listing on its legal representative's file puts them on the list too:
        # the court debtors' measures reach the legal representative (RULES.md 4; 法释〔2015〕17号 第三条)
        deletion = entry.get("deletion")
        if deletion is not None and deletion.get("reason") in court_rule.wrongful_deletion_reasons:
            return facts  # listed wrongly: void, with everything derived from it
        facts["adverse"] = True
        years = rules.court_period_years(fields)
        until = add_years(d, years) if years is not None else None
        leave = ("expiry", key)
        if deletion is not None and deletion.get("date"):
            deleted = _d(deletion["date"])
            if until is None or deleted < until:
                until, leave = max(deleted, d), ("deletion", f"court_deletion|{deletion.get('doc_no') or ''}")
        found.append(Cand("court_debtor", court_rule.domain, d, until, key, ("listing", key), leave))
    else:
        facts["adverse"] = kind == "linked"
        if base == "listing_decision":
            list_domain, action = fields.get("list_domain"), fields.get("action")
            if list_domain and action == "list":
                facts["adverse"] = True
                years = fields.get("period_years")
                if not isinstance(years, int) or isinstance(years, bool) or years <= 0:
                    years = rules.listing_period(list_domain)[0]
                found.append(Cand("blacklist", list_domain, d, add_years(d, years), key, ("listing", key),
                                  ("expiry", key)))
            elif list_domain and action == "remove":
                facts["removal"] = list_domain
                facts["adverse"] = False  # (an organisation's removal, linked: not adverse for the person)
        else:
            if base == "penalty":
                facts["adverse"] = facts["adverse"] or _attr(entry, "severity") != "minor" \
                    or rules.regime_for(d).minor_is_adverse
                if kind == "penalty":
                    pub = penalty_publicity(entry, repairs.get(key), rules, gap)
                    if pub is not None:
                        facts["pub"] = [iso(pub[0]), iso(pub[1]), pub[2]]
                        if pub[2] == "repair" and (decision := repair_decision(pub[3], key)) != key:
                            facts["pub"].append(decision)  # (only then: the stored state stays as small)
            elif base == "action" and fields.get("adverse"):
                facts["adverse"] = True
            rule = rules.blacklist_rule_for(entry if kind != "linked" else dict(entry, kind=content.get("kind")))
            if rule is not None:
                found.append(Cand("blacklist", rule.list_domain, d, add_years(d, rules.rule_period_years(rule)),
                                  key, ("record", key), ("expiry", key)))
    for c in found:
        # an approved repair of the basis ends a blacklist membership (early removal where the
        # domain has it), on the approval date
        repair = repairs.get(key)
        if c.list == "blacklist" and repair is not None:
            earliest, _ = earliest_repair(entry, rules)
            # (not while an upheld objection has the record out of force: the repair has nothing to
            # end, as for its publicity above; RULES.md 3: a repair ends both, or neither)
            grant = repair_applied(repair, earliest, None, gap) if earliest is not None else None
            if grant is not None:
                approved = _d(grant["approved"])
                early = rules.listing_period(c.domain)[1]
                leave_at = max(approved, add_months(c.since, early)) if early is not None else approved
                if c.until is None or leave_at < c.until:
                    c = c._replace(until=leave_at, leave=("repair", repair_decision(grant, key)))
        for part in _split(c, gap):
            facts["cands"].append([part.list, part.domain, iso(part.since),
                                   iso(part.until) if part.until else None, *part.enter, *part.leave])
    return facts


def _names_another_representative(content: Doc, person: str) -> bool:
    """Whether an organisation's record linked onto ``person``'s file names, in the version that
    wins, another legal representative (a valid ID number not the person's). Every version goes to
    every legal representative any version names (domain/engine.py ``_links``), so that each file
    holds the same winner in any order; a person only a superseded version named is not the one
    the record is recorded on (RULES.md 3a, 4). A removal decision reaches the legal
    representatives of the records it ends, whoever it names."""
    fields = content.get("fields") or {}
    if content.get("kind") == "listing_decision" and fields.get("action") == "remove":
        return False
    rep_id = (content.get("legal_rep") or {}).get("id_no")
    return bool(rep_id) and rep_id != person and is_valid_resident_id(str(rep_id))


def publicity_track(sid: str, key: str, facts: Doc | None) -> list[Doc]:
    """The publicity changes of one penalty (公示): repair eligible after the minimum, expired at
    the maximum or at an approved repair."""
    if not facts or not facts.get("pub"):
        return []
    start, end, leave_kind = facts["pub"][:3]
    leave_decision = facts["pub"][3] if len(facts["pub"]) > 3 else key  # the repair's, else the record's
    name = f"publicity:{key}"
    out = []
    if start < end:
        out.append(_change(sid, name, "publicity", None, "repair_eligible", _d(start), [key], ("expiry", key)))
    out.append(_change(sid, name, "publicity", None, "publicity_expired", _d(end), [key],
                       (leave_kind, leave_decision)))
    return out


BASIS_VERSION: Final = 10
"""The form of the basis and of what is derived with it. 2: the basis's dates kept as sorted
``[date, value]`` pairs (version 1, with no ``"v"``, kept them as dicts, which the lists scanned
whole on every input: ``min`` of the dates, the dates after the clock, the adverse dates sorted;
~0.3 ms per input at 4,000 records, issue 13). 3: a membership's list changes name only the records
that decide them (its entry the records it begins with, its exit those it ends with), not every
record it rests on (domain/history.py ``list_tracks``), so their ids changed for a membership of
several records. 4: an organisation's court listing linked onto a legal representative's file puts
them on the court debtors' list (it was an adverse record there only), a linked listing decision on
the domain's blacklist, and a removal decision ends only the memberships of its own side of the
file: the subject's own, or those linked from the organisation that decided it (domain/engine.py
``_links``). 5: a linked record's key names its organisation (domain/state.py ``linked_key``); a
file kept before is re-keyed (``with_current_linked_keys``) and an organisation's sends its links
again (domain/engine.py ``relinks``). 6: the red list's clean years count from the end of a stay on a
list (domain/history.py ``_red_list``), and a repair approved while an upheld objection has its record
out of force ends no list membership (as it ends no publicity). 7: an organisation's record linked onto
a person whose newest version names another legal representative is not that person's (``record_facts``).
8: a change a credit repair causes (a membership's exit, the end of a penalty's publicity) names the
repair decision (its document number, :func:`repair_decision`) as its ``cause_decision``, not the
repaired record (which its ``causes`` name). 9: a decision named by its unit's name only is kept under
the unit's code once an input of the subject gave that name with the code (domain/state.py
``resolve_key``): a file kept before learns its units from its records (``with_learned_units``).
A state derived with another version is derived again from its records once, on its next input or
tick (domain/history.py ``advance``): what that changes in its announced history is announced as
usual, withdrawals first."""


def new_basis() -> Doc:
    """What the lists are assembled from, kept compact in the state (``state["basis"]``): decision
    dates of the records that count (with counts), adverse records by date, the records with list
    candidates or removals, and the dates publicity changes fall on. Every dated part is a list of
    ``[date, value]`` pairs sorted by date, so that the first date, the next date after the clock
    and a range of dates are found by bisection, not by scanning a subject's whole history."""
    return {"v": BASIS_VERSION, "dates": [], "adverse": [], "listed": [], "pub_dates": []}


def copy_basis(basis: Doc) -> Doc:
    """A basis to move records in and out of, leaving ``basis`` as it was (its pairs are shared,
    never changed in place: a move replaces a pair). A large state's dated parts are
    ``DatedPairs`` (domain/record_maps.py), whose copies share their chunks; they stay in that form."""
    return {"v": BASIS_VERSION, "dates": _copy_dated(basis["dates"]), "adverse": _copy_dated(basis["adverse"]),
            "listed": list(basis["listed"]), "pub_dates": _copy_dated(basis["pub_dates"])}


def _copy_dated(pairs: Any) -> Any:
    return pairs.copy() if isinstance(pairs, DatedPairs) else list(pairs)


def first_date(pairs: Any) -> str | None:
    """The earliest date of a basis part."""
    if isinstance(pairs, DatedPairs):
        return pairs.first()
    return pairs[0][0] if pairs else None


def next_date(pairs: Any, after: str) -> str | None:
    """The earliest date of a basis part later than ``after``."""
    if isinstance(pairs, DatedPairs):
        return pairs.next_after(after)
    i = bisect.bisect_right(pairs, after, key=_date_of)
    return pairs[i][0] if i < len(pairs) else None


def last_date_upto(pairs: Any, until: str) -> str | None:
    """The latest date of a basis part on or before ``until``."""
    if isinstance(pairs, DatedPairs):
        return pairs.last_upto(until)
    i = bisect.bisect_right(pairs, until, key=_date_of)
    return pairs[i - 1][0] if i else None


def _locate(pairs: list[list[Any]], d: str) -> tuple[int, bool]:
    """Where date ``d`` is or would go in a plain basis part, and whether it is there."""
    i = bisect.bisect_left(pairs, d, key=_date_of)
    return i, i < len(pairs) and pairs[i][0] == d


def value_on(pairs: Any, d: str) -> Any:
    """The value of date ``d`` in a basis part (None if it has no pair)."""
    if isinstance(pairs, DatedPairs):
        return pairs.get(d)
    i, found = _locate(pairs, d)
    return pairs[i][1] if found else None


def _put(pairs: Any, d: str, value: Any) -> None:
    """Set the value of date ``d`` in a basis part; None removes its pair (a pair is replaced,
    never changed in place)."""
    if isinstance(pairs, DatedPairs):
        pairs.put(d, value)
        return
    i, found = _locate(pairs, d)
    if value is not None and found:
        pairs[i] = [d, value]
    elif value is not None:
        pairs.insert(i, [d, value])
    elif found:
        del pairs[i]


def _date_of(pair: list[Any]) -> str:
    return pair[0]  # type: ignore[no-any-return]


def basis_of(facts: dict[str, Doc], tracks: dict[str, list[Doc]]) -> Doc:
    """The basis of a subject's per-record facts and publicity tracks, built afresh: what the
    incremental moves of ``advance`` keep (its parts are sorted, so the order of ``facts`` does not
    matter). A state stored split keeps no basis; it is rebuilt with this when read."""
    basis = new_basis()
    for key, f in facts.items():
        _basis_move(basis, key, f, tracks.get(key) or [], 1)
    return basis


def _basis_move(basis: Doc, key: str, facts: Doc | None, pub: list[Doc], sign: int) -> None:
    """Add (sign 1) or take out (sign -1) one record's contribution to the basis (its pairs are
    replaced, never changed: see ``copy_basis``)."""
    if facts is not None:
        _count(basis["dates"], facts["d"], sign)
        if facts["adverse"]:
            d = facts["d"]
            found = value_on(basis["adverse"], d)
            keys = list(found) if found is not None else []  # a copy: the old state's stays as it was
            if sign > 0:
                bisect.insort(keys, key)
            else:
                keys.remove(key)
            _put(basis["adverse"], d, keys or None)
        if facts["cands"] or facts["removal"]:
            if sign > 0:
                bisect.insort(basis["listed"], key)
            else:
                basis["listed"].remove(key)
    for c in pub:
        _count(basis["pub_dates"], c["effective_date"], sign)


def _count(pairs: Any, d: str, sign: int) -> None:
    """Add ``sign`` to the count of date ``d`` in a basis part; a count that falls to 0 is removed."""
    if isinstance(pairs, DatedPairs):
        pairs.count(d, sign)
        return
    i, found = _locate(pairs, d)
    if found:
        n = pairs[i][1] + sign
        if n:
            pairs[i] = [d, n]
        else:
            del pairs[i]
    elif sign:
        pairs.insert(i, [d, sign])


# ------------------------------------------------------------------------------------ as known at an instant


def _state_then(state: SubjectState, day: str) -> SubjectState:
    """What ``record_facts`` reads of the subject, as the decisions dated on or before ``day`` left it:
    the repair decisions approved by then, the objections as they stood then (one that found a record
    wrong after it, to be corrected, still pending). A revocation (a record found wrong) is not undone:
    what it withdrew is withdrawn from the past too (RULES.md 5), as in the history. (A court's
    deletion after ``day``: :func:`list_ends_at` leaves it out of the one record it derives again.)"""
    repairs: Doc = {}
    for key, slot in (state.get("repairs") or {}).items():
        versions = slot.get("versions")
        if versions is None:
            if str(slot.get("approved") or "") <= day:
                repairs[key] = slot
            continue
        kept = [v for v in versions if str(v[0].get("approved") or "") <= day]
        if kept:
            repairs[key] = dict(slot, versions=kept)
    objections = {oid: dict(o, status="filed", resolved=None, outcome=None)
                  if o.get("status") == "upheld" and o.get("outcome") != "revoked"
                  and str(o.get("resolved") or "") > day else o
                  for oid, o in (state.get("objections") or {}).items()}
    return cast(SubjectState, {"id": state["id"], "records": state.get("records") or {}, "repairs": repairs,
                               "objections": objections})


def list_ends_at(state: SubjectState, day: str, rules: Rulebook) -> dict[str, str | None]:
    """The end each blacklist and court-debtor stay that covers ``day`` had as the decisions dated on
    or before ``day`` gave it (list name -> date, None: no fixed end): a repair, a court deletion, a
    removal or an objection's resolution dated after it was not known then, nor a record decided
    after it that extends the stay (RULES.md 3a). The state's facts give every record's listings with
    what is known now; a listing ended after ``day`` by a decision of a later date is derived again
    from the state as it stood then (:func:`_state_then`)."""
    facts = state.get("facts") or {}
    then: SubjectState | None = None
    index: Doc = {}
    records = state.get("records") or {}
    parts: dict[tuple[str, str], list[list[Any]]] = {}
    removals: list[tuple[str, str, str]] = []
    for key, f in facts.items():
        if not f:
            continue
        if f.get("removal") and f["d"] <= day:
            removals.append((f["removal"], f["d"], key))
        cands = f.get("cands") or ()
        if any(c[2] <= day and c[3] is not None and c[3] > day and c[6] != "expiry" for c in cands):
            if then is None:
                then = _state_then(state, day)
                index = objection_index(then)
            entry: Any = records.get(key)
            deletion = (entry or {}).get("deletion")
            if entry is not None and deletion is not None and str(deletion.get("date") or "") > day:
                entry = {k: v for k, v in entry.items() if k != "deletion"}  # a court's deletion after it
            again = record_facts(key, cast(SubjectState, dict(then, records={key: entry})), index, rules)
            cands = (again or {}).get("cands") or ()
        for c in cands:
            if c[2] <= day and (c[3] is None or c[3] > c[2]):
                parts.setdefault((c[0], c[1]), []).append([c[2], c[3], key])
    ends: dict[str, str | None] = {}
    for (kind, domain), group in parts.items():
        if kind == "blacklist":
            for part in group:  # a removal decision of the domain by then ends the listings it falls in
                for removed, rkey in sorted((d, k) for dom, d, k in removals if dom == domain):
                    if linked_from(records, rkey) == linked_from(records, part[2]) and part[0] <= removed \
                            and (part[1] is None or removed < part[1]):
                        part[1] = removed
                        break
        group.sort(key=lambda p: p[0])
        spans: list[list[Any]] = []  # the union of the listings: [since, until]
        for start, end, _ in group:
            if end is not None and end <= start:
                continue  # removed before it began
            if spans and (spans[-1][1] is None or start <= spans[-1][1]):
                if spans[-1][1] is not None and (end is None or end > spans[-1][1]):
                    spans[-1][1] = end
                continue
            spans.append([start, end])
        for since, until in spans:
            if since <= day and (until is None or day < until):
                ends["court_debtor" if kind == "court_debtor" else f"blacklist:{domain}"] = until
    return ends


def linked_from(records: View, key: str) -> str | None:
    """The organisation a record on this file was linked from (its ``via``); None: the subject's own."""
    entry = records.get(key)
    return entry.get("via") if entry is not None and entry.get("kind") == "linked" else None
