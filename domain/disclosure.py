"""Public disclosure (信用信息公示): what the public pages show of one subject at an instant.

Three views, each a pure function of a subject's state (the HTTP edge reads the states, pages through
them and renders: creditstream/disclosure.py):

* :func:`list_member`: a blacklist member (严重失信主体名单, court debtors): who, on which list, since
  when, until when (expected), suspended by an objection or not, and the decisions it rests on;
* :func:`disclosed_records`: an organisation's penalties and licences under publicity at the
  instant (domain/report.py ``publicity``) that still are today: a record whose publicity has ended
  (终止公示: expiry, credit repair, revocation) is not published at any instant, nor a list stay that
  has ended. RULES.md 3: publication ends at the period's maximum by itself, and an approved credit
  repair ends publication and stops sharing; 5: information found wrong is corrected or revoked,
  with what was derived from it. Showing it at an earlier instant would publish it again. The
  credit report, which needs a token, keeps it (withdrawn, with the date and the reason);
* :func:`query_of` / :func:`name_matches`: a search is by code (a USCC, an organisation code, a
  legacy registration number: normalised as the readers do) or by name (a substring of any name
  the subject was known by, compared after :func:`domain.normalise.normalise_name`, case-folded).

Natural persons appear only as list members, and only as the public role's redaction leaves them
(domain/privacy.py, applied by the edge to everything it serves): the penalties and licences pages
are about organisations (a natural person's record is personal information, RULES.md 7).
Pure: no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, NamedTuple

import msgspec

from domain.identifiers import IdKind, classify, normalise_code
from domain.memberships import day_of, memberships_at
from domain.normalise import normalise_name
from domain.report import PUBLIC_KINDS, PublicRecord, publicity
from domain.rulebook import Rulebook
from domain.state import SubjectState
from domain.types import Doc, View

__all__ = ["MAX_QUERY_CHARS", "Query", "query_of", "name_matches", "is_organisation", "list_member",
           "disclosed_records", "subject_name"]

MAX_QUERY_CHARS: Final = 64
_CODE_KINDS: Final = frozenset((IdKind.USCC, IdKind.ORG_CODE, IdKind.REG_NO, IdKind.RESIDENT_ID))


class Query(NamedTuple):
    """A search: ``code`` (normalised) when the text is shaped like an identifier, else ``name``
    (normalised, case-folded); both None for an empty search."""

    code: str | None
    name: str | None


def query_of(text: str | None) -> Query:
    """What a search box's text asks for. Raises ValueError for a text over MAX_QUERY_CHARS."""
    text = (text or "").strip()
    if not text:
        return Query(None, None)
    if len(text) > MAX_QUERY_CHARS:
        raise ValueError(f"a search is at most {MAX_QUERY_CHARS} characters")
    code = normalise_code(text)
    if code and code.isascii() and classify(code)[0] in _CODE_KINDS:
        return Query(code, None)
    name = normalise_name(text).casefold()
    return Query(None, name or None)


def subject_name(state: View) -> str | None:
    names = state.get("names") or []
    return str(names[-1]) if names else None


def name_matches(state: View, name: str) -> bool:
    """True if ``name`` (from :func:`query_of`) is part of any name the subject was known by."""
    return any(name in normalise_name(str(n)).casefold() for n in state.get("names") or ())


def is_organisation(state: View) -> bool:
    """An organisation (keyed by its USCC), not a natural person."""
    return state.get("id_kind") == "uscc"


def list_member(state: SubjectState | Doc, list_name: str, at: dt.date | dt.datetime | str,
                rules: Rulebook | None = None, *, now: str | None = None) -> Doc | None:
    """A member of ``list_name`` at ``at`` as the disclosure shows it, or None if the subject is not
    on that list then (the list sets hold the members at the subject's clock). ``rules``: its
    ``until`` at a past instant as known then (domain/memberships.py ``memberships_at``). ``now``:
    today; a stay that has ended by today (expiry, repair, removal, deletion) is not published any
    more, whatever the instant asked (the module docstring)."""
    standing = memberships_at(state, at, rules).get(list_name)
    if standing is None:
        return None
    if now is not None and day_of(at) < now:
        current = memberships_at(state, now).get(list_name)
        if current is None or current.since != standing.since:
            return None
    records = (state.get("records") or {})
    basis = []
    for key in standing.causes:
        entry: Any = records.get(key) or {}
        # ``via``: an organisation's record on its legal representative's file (the representative
        # is on the list by the organisation's decision, not as a debtor or listed subject of their own)
        basis.append({"record_key": key, "kind": entry.get("kind"), "doc_no": entry.get("doc_no"),
                      "source_unit": entry.get("source_unit"), "decision_date": entry.get("decision_date"),
                      "via": entry.get("via")})
    return {"subject": state.get("id"), "id_kind": state.get("id_kind"), "category": state.get("category"),
            "name": subject_name(state), "list": list_name, "kind": standing.kind, "domain": standing.domain,
            "since": standing.since, "until": standing.until, "until_projected": standing.until_projected,
            "suspended": standing.suspended, "records": basis}


def disclosed_records(state: SubjectState | View, at: dt.date | dt.datetime | str,
                      kinds: tuple[str, ...] = PUBLIC_KINDS, *, rules: Rulebook, now: str | None = None) -> list[Doc]:
    """An organisation's records of ``kinds`` under publicity at ``at``, each with the subject's id and
    name; [] for a natural person. ``rules``: the rule set in force (domain/report.py ``publicity``).
    ``now``: today; a record whose publicity has ended by today is not published any more, whatever
    the instant asked (the module docstring)."""
    if not is_organisation(state):
        return []
    pub = publicity(state, day_of(at), rules)
    chosen: list[PublicRecord] = [r for r in pub.published if r.kind in kinds]
    if now is not None and chosen and day_of(at) < now:
        current = {r.record_key for r in publicity(state, now, rules).published}
        chosen = [r for r in chosen if r.record_key in current]
    head = {"subject": state.get("id"), "name": subject_name(state)}
    return [head | msgspec.to_builtins(r) for r in chosen]

