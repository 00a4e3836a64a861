"""Attaching a record to its subject (主体关联), converting legacy identifiers (存量代码转换).

Pure: decides what the record's subject is, or which identifier-index entries would tell; the
agent does the look-ups in one batch and parks what cannot be attached yet.

Rules (RULES.md section 1):
* a natural person (自然人) is keyed by the resident ID number;
* a USCC attaches directly, including a well-shaped code that fails its check character (real
  early-pilot codes do): such a record carries the flag ``uscc-check-failed`` and is routed on;
* a 9-character organisation code is matched to a known USCC through the code embedded in it
  (USCC characters 9-17);
* a registration number, tax number or other legacy number needs the subject registry.
"""

from __future__ import annotations

from typing import Final, NamedTuple

from domain.identifiers import IdKind, classify, is_valid_uscc, looks_like_legacy_id, org_code_of_uscc, uscc_shape_ok
from domain.state import sortable_origin
from domain.types import Doc

# The order in which legacy identifiers are tried; also the lookup-key kinds of the index.
LOOKUP_KINDS: Final = ("org", "reg_no", "tax_no", "other")


class Attached(NamedTuple):
    subject_id: str
    id_kind: str  # "uscc" or "resident_id"


class NeedsLookup(NamedTuple):
    lookup_keys: tuple[str, ...]  # e.g. ("org:D2143569X", "reg_no:310230001716146")


def lookup_key(kind: str, number: str) -> str:
    return f"{kind}:{number}"


def plan(record: Doc) -> Attached | NeedsLookup:
    """Attach directly when the record names its subject; otherwise say what to look up."""
    ids = record.get("ids") or {}
    resident_id = ids.get("resident_id")
    if record.get("subject_category") == "natural_person" and resident_id:
        return Attached(resident_id, "resident_id")
    uscc = ids.get("uscc")
    if uscc:
        return Attached(uscc, "uscc")
    if resident_id:
        return Attached(resident_id, "resident_id")
    if record.get("subject_category") == "natural_person":
        # a person is named by the resident ID number alone: the registry maps legacy numbers to
        # organisations' USCCs, so a person's other number (a passport, a foreigner's card) would
        # wait for ever, or attach the person's record to an organisation (no lookup: a dead letter)
        return NeedsLookup(())
    return NeedsLookup(legacy_lookup_keys(ids))


def legacy_lookup_keys(ids: Doc) -> tuple[str, ...]:
    """The index keys an organisation's legacy numbers are looked up by, in :data:`LOOKUP_KINDS`
    order. Not an 18-character resident ID number given as a tax or other number (an individual
    business's owner's, say): the index never learns one (personal data: :func:`learned_pairs`), so
    a record parked on it waited for ever, its key naming the number in clear (seen)."""
    keys = []
    if ids.get("org_code"):
        keys.append(lookup_key("org", ids["org_code"]))
    for kind in ("reg_no", "tax_no"):
        if ids.get(kind):
            keys.append(lookup_key(kind, ids[kind]))
    for other in ids.get("other") or ():
        keys.append(lookup_key("other", other))
    return tuple(key for key in keys if key.startswith(("org:", "reg_no:")) or not _resident_id(key))


def learned_pairs(ids: Doc, *, registration: bool = False) -> list[tuple[str, str]]:
    """Index entries (lookup key, USCC) that a set of identifiers teaches.

    Only a USCC that passes its check teaches anything: the organisation code embedded in it, and
    the legacy numbers given beside it (not a differing organisation code, not a number that may be
    a person's ID number). A registration (subject_registration, ``registration=True``) teaches the
    same way, and also for a USCC of the right shape that fails its check: the registration
    authority's own record of an early-pilot code (RULES.md 1: real data holds such codes; "a failed
    check is flagged and routed"), without which the records that carry only its legacy numbers
    would stay parked for ever. A department's record with such a code teaches nothing (it may be a
    typing error)."""
    uscc = ids.get("uscc")
    if not uscc or not (is_valid_uscc(uscc) or registration and uscc_shape_ok(uscc)):
        return []
    embedded = org_code_of_uscc(uscc)
    pairs = [(lookup_key("org", embedded), uscc)]
    # not an organisation code other than the one embedded in the USCC (the record says
    # ``org-code-mismatch``: one of the two is wrong, and the index must not learn which from it),
    # nor a number that may be a person's ID number (personal data, never a key; not the subject's),
    # unless the registration authority names it the organisation's tax number: a 15-digit tax
    # number (division + organisation code) can read as a first-generation ID number, and the records
    # parked on it would otherwise wait for ever. Not an 18-character resident ID number given as a
    # tax number (seen: the index learned one; an organisation's 18-character tax number is its USCC)
    pairs += [(key, uscc) for key in legacy_lookup_keys({**ids, "org_code": None})
              if not _personal(key) or registration and key.startswith("tax_no:") and not _resident_id(key)]
    # Keep the first occurrence of each key, in order.
    seen: set[str] = set()
    out = []
    for key, value in pairs:
        if key not in seen:
            seen.add(key)
            out.append((key, value))
    return out


def _resident_id(key: str) -> bool:
    """A lookup key whose number is an 18-character resident ID number that passes its check."""
    return classify(key.partition(":")[2])[0] is IdKind.RESIDENT_ID


def _personal(key: str) -> bool:
    """A lookup key whose number is a resident ID number (an 18-character one that passes its check,
    or a first-generation 15-digit one), other than a registration number (checked as one)."""
    kind, _, number = key.partition(":")
    if kind == "reg_no":
        return False
    return classify(number)[0] is IdKind.RESIDENT_ID or looks_like_legacy_id(number)


def mapping_version(*, registration: bool, dated: str | None, stamp_ms: int, origin: str) -> str:
    """The version of a (legacy number -> USCC) mapping, compared as a string: a registration (the
    registration authority's own record, 存量代码转换) outranks what a department's record teaches
    beside a valid USCC; then the newer by the record's own date (a registration's date; a
    decision's date), then by its stamp, then its origin. So the mapping a number ends with is the
    same whatever order the registrations and records arrive in (RULES.md 3a); several
    registrations naming one number sit on several partitions (keyed by their USCCs). The origin is
    made sortable (domain/state.py ``sortable_origin``): as it came, offset 9 outranked offset 10."""
    return f"{2 if registration else 1}|{dated or '0000-00-00'}|{max(stamp_ms, 0):015d}|{sortable_origin(origin)}"


def taught_version(key: str, uscc: str, *, dated: str | None, stamp_ms: int, origin: str) -> str:
    """The version of the mapping ``key -> uscc`` a department's record naming ``uscc`` teaches
    (``mapping_version``, ranked below any registration). A legacy number given beside the USCC is
    ranked by the record's own date (a number a department names with another organisation later
    is the later one's); the organisation code embedded in the USCC by the USCC alone
    (``1|embedded|<USCC>``): the same on every record naming that USCC, so that a worker need not
    teach it again with every newer record (agents/ingest.py), and two USCCs that embed one code
    (one of them mistyped) are ranked the same way in any order. Ranked above what earlier versions
    taught it with (a dated form)."""
    if key.startswith("org:"):
        return f"1|embedded|{uscc}"
    return mapping_version(registration=False, dated=dated, stamp_ms=stamp_ms, origin=origin)

