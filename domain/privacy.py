"""Personal information in JSON documents (RULES.md section 7): what a reader without the right to it sees.

:func:`redact_personal` takes any JSON document (a subject's state, a list view, a page of list
members, a list change, a decoded department message, an error answer) and returns a copy in
which natural persons' ID numbers and names are masked. It knows the shapes creditstream writes
(domain/state.py, domain/validate.py, schemas/*.avsc, ops/inspect.py ``lists_view``) and falls back
to patterns for the rest:

* **ID numbers, anywhere.** Every string (values and object keys) is searched for resident ID
  numbers: 18-character ones (:func:`domain.identifiers.mask_ids_in_text`) and first-generation
  15-digit ones (a run of exactly 15 digits starting with a province code and a plausible
  YYMMDD birth date; :func:`mask_legacy_ids_in_text`), and both written in groups with spaces or
  dashes (``410700 19710813 2424``, ``410700-19710813-2424``, ``110105 491231 002``:
  :func:`domain.identifiers.mask_grouped_ids_in_text`, separators kept). The 15-digit searches skip
  the fields that hold an organisation's registration number (``reg_no``), which share that shape,
  where the number passes the registration number's check.
* **Identifier fields, whatever their shape.** ``person_id_no``, ``legal_rep_id_no``,
  ``resident_id`` and a legal representative's ``id_no`` always; for a natural person also
  ``id`` / ``subject`` / ``subject_id`` and ``ids.other``.
* **Names.** A legal representative is always a natural person: ``legal_rep_name`` and
  ``legal_rep.name`` are masked whoever the subject is. Where the subject is a natural person,
  ``subject_name``, ``names``, ``person_name`` and the ``name`` of an object that names the person
  (``lists_view``) are masked too.
* **Names given with ID numbers in free text.** A name right before a bracket giving an ID number
  (``直接责任人员孙七(公民身份号码410…)``: :func:`names_given_with_ids`) is a natural person's, whoever
  the subject is: a decision's text names its directly responsible persons so.
* **Echoes.** Every ID number and name found in those fields is then masked wherever else it
  appears in the document (free text such as a penalty's facts, record keys, messages).

Who is a natural person is read from the document itself, object by object, and inherited by
nested objects that do not say: ``id_kind`` / ``subject_kind`` ``resident_id``, ``category`` /
``subject_category`` ``natural_person`` (or 自然人), ``ids`` holding a resident ID and no
organisation code, or an ``id`` / ``subject`` / ``subject_id`` that is a valid resident ID. A
category that is not one of the vocabulary's (an input dead-lettered for it: a name may stand there)
makes the object a natural person's unless its ``uscc`` is a valid one. An
organisation's record kept on a person's file (a linked record) says it is an organisation, so
its own name stays. Individual businesses (个体工商户) are businesses: their names stay.

Masks: an ID number keeps its first 3 and last characters (:func:`domain.identifiers.mask_id`);
a name keeps its first character (the surname, as public notices print ``张**``): :func:`mask_name`.
It errs on the side of masking: a 15-digit number in free text that looks like a first-generation
ID number is masked even when it is something else.

Pure: no I/O; the input is not modified.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Final, TypeVar, cast

from domain.identifiers import (
    IdKind,
    classify,
    is_valid_reg_no,
    looks_like_legacy_id,
    mask_id,
    mask_id_numbers_in_text,
    mask_legacy_ids_in_text,
    normalise_code,
)

__all__ = ["redact_personal", "mask_name", "names_given_with_ids", "mask_legacy_ids_in_text", "is_natural_person",
           "safe_detail", "conceal_digests"]

J = TypeVar("J")

NATURAL_PERSON_CATEGORIES: Final = frozenset({"natural_person", "自然人"})
ORGANISATION_CATEGORIES: Final = frozenset({"legal_entity", "individual_business", "个体工商户", "法人",
                                            "非法人组织", "法人及非法人组织", "法人和非法人组织", "法人、非法人组织",
                                            "法人或非法人组织"})
"""The subject categories of organisations (domain/vocabulary.py); any other is not recognised."""
PERSON_KINDS: Final = frozenset({"resident_id"})
ORGANISATION_KINDS: Final = frozenset({"uscc"})
ORGANISATION_IDS: Final = frozenset({"uscc", "org_code", "reg_no"})

ALWAYS_ID_FIELDS: Final = frozenset({"person_id_no", "legal_rep_id_no", "resident_id"})
"""Fields whose value is a natural person's identifier whoever the subject is."""
SUBJECT_ID_FIELDS: Final = ("id", "subject", "subject_id")
"""Fields naming the subject: a natural person's identifier when the object is about one."""
ALWAYS_NAME_FIELDS: Final = frozenset({"legal_rep_name"})
PERSON_NAME_FIELDS: Final = frozenset({"subject_name", "names", "person_name"})
"""Fields holding the subject's name(s): a natural person's names when the subject is one."""
LEGAL_REP: Final = "legal_rep"
"""The canonical record's legal representative ``{"name", "id_no"}`` (domain/validate.py)."""
LEGACY_ID_EXEMPT: Final = frozenset({"reg_no"})
"""Fields holding a 15-digit business registration number, not a first-generation ID number."""

_SHORTEST_ECHO: Final = 2
"""Names shorter than this are masked where they are a whole field, never inside other text."""


def mask_name(name: str) -> str:
    """A person's name with all but its first character hidden: ``张卫东`` -> ``张**``; one character: ``*``."""
    name = name.strip()
    if len(name) <= 1:
        return "*" * len(name)
    return name[0] + "*" * (len(name) - 1)


def is_natural_person(doc: Mapping[str, object]) -> bool | None:
    """Whether ``doc`` says it is about a natural person: True, False (an organisation), or None
    when it does not say (it is then about whoever its enclosing object is about)."""
    for key in ("id_kind", "subject_kind"):
        kind = doc.get(key)
        if kind in PERSON_KINDS:
            return True
        if kind in ORGANISATION_KINDS:
            return False
    unrecognised = False
    for key in ("category", "subject_category"):
        category = doc.get(key)
        if isinstance(category, str) and category:
            if category in NATURAL_PERSON_CATEGORIES:
                return True
            if category in ORGANISATION_CATEGORIES:
                return False
            unrecognised = True  # a department's input that failed its checks (a name in it, even)
    ids = doc.get("ids")
    if isinstance(ids, Mapping) and ids:
        if not ORGANISATION_IDS.isdisjoint(ids.keys()):
            return False
        if "resident_id" in ids:
            return True
    for key in SUBJECT_ID_FIELDS:
        value = doc.get(key)
        if isinstance(value, str) and classify(value)[0] is IdKind.RESIDENT_ID:
            return True
    if unrecognised:  # the input's own identifiers decide; else it errs on the side of masking
        uscc = doc.get("uscc")
        return not (isinstance(uscc, str) and classify(uscc) == (IdKind.USCC, True))
    return None


class _Secrets:
    """The names and ID numbers found in a document's personal fields, and their masks."""

    def __init__(self) -> None:
        self.masks: dict[str, str] = {}

    def add_id(self, value: object) -> None:
        if isinstance(value, str) and value.strip():
            self.masks[value] = mask_id(value)

    def add_name(self, value: object) -> None:
        if isinstance(value, str) and value.strip():
            self.masks.setdefault(value, mask_name(value))
        elif isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            for item in value:
                self.add_name(item)

    def pattern(self) -> re.Pattern[str] | None:
        echoes = sorted((s for s in self.masks if len(s) >= _SHORTEST_ECHO), key=len, reverse=True)
        return re.compile("|".join(map(re.escape, echoes))) if echoes else None


_NAME_BEFORE_ID: Final = re.compile(
    r"([\u4e00-\u9fff·]+)\s*[（(]\s*(?:(?:公民|居民)?身份(?:证)?(?:号码|号)?\s*[:：为]?\s*[0-9]{3}"
    r"|([0-9]{17}[0-9Xx]|[0-9]{15})\s*[）)])")
"""A run of Chinese characters right before a bracket that gives an ID number (``孙七(公民身份号码410…)``,
``当事人张三（身份证号：410…）``), or holds nothing but one (``蒋四(410102198506151238)``: then only if
it is a resident ID number, check character included, or a 15-digit first-generation one after a word
that introduces a person (:data:`_ROLES`); a bracket of digits may give an organisation's number, and
an organisation's 15-digit registration number can read as a first-generation ID number): it ends with
the person's name."""
_ROLES: Final = ("直接负责的主管人员", "直接责任人员", "主要负责人", "法定代表人", "实际控制人", "负责人", "责任人",
                 "当事人", "经营者", "投资人", "股东", "业主", "人员")
"""Words that introduce a person in a decision's text (the name follows them)."""


def names_given_with_ids(text: str) -> set[str]:
    """The names a free text gives with an ID number in brackets after them (RULES.md 7: a penalty's
    facts name the directly responsible persons, 直接责任人员, with their numbers; the schema has a field
    for the legal representative only). A name is what follows the last role word before the bracket
    (``对直接责任人员孙七(…)``: 孙七); without one, the last two and three characters both (a name is
    mostly two or three), so that each masks where it is echoed: erring on the side of masking."""
    names: set[str] = set()
    for m in _NAME_BEFORE_ID.finditer(text):
        bare = m.group(2)
        run = m.group(1)
        cut = max((run.rfind(role) + len(role) for role in _ROLES if role in run), default=-1)
        if bare is not None and not (classify(bare)[0] is IdKind.RESIDENT_ID
                                     or len(bare) == 15 and cut >= 0 and looks_like_legacy_id(bare)):
            continue
        if cut >= 0:
            if 2 <= len(run) - cut <= 4:
                names.add(run[cut:])
            continue
        names.update(run[-n:] for n in (2, 3) if len(run) >= n)
    return names


def _collect(node: object, person: bool, secrets: _Secrets, parent_key: str | None = None,
             hint: bool | None = None) -> None:
    if isinstance(node, str):
        if "身份" in node or "(" in node or "（" in node:  # (an ID number alone in brackets: see the regex)
            for name in names_given_with_ids(node):
                secrets.add_name(name)
        return
    if isinstance(node, Mapping):
        own = is_natural_person(node)
        if own is None:
            own = hint
        scope = person if own is None else own
        for key, value in node.items():
            if key in ALWAYS_ID_FIELDS:
                secrets.add_id(value)
            elif key in ALWAYS_NAME_FIELDS:
                secrets.add_name(value)
            elif parent_key == LEGAL_REP and key == "id_no":
                secrets.add_id(value)
            elif parent_key == LEGAL_REP and key == "name":
                secrets.add_name(value)
            elif scope and key in PERSON_NAME_FIELDS:
                secrets.add_name(value)
            elif scope and key in ("category", "subject_category") and isinstance(value, str) \
                    and value not in NATURAL_PERSON_CATEGORIES and value not in ORGANISATION_CATEGORIES:
                secrets.add_name(value)  # not a category: a name sent in its place, it may be
            elif own and key == "name":
                secrets.add_name(value)
            elif own and key in SUBJECT_ID_FIELDS:
                secrets.add_id(value)
            elif scope and key == "other" and parent_key == "ids" and isinstance(value, list):
                for item in value:
                    secrets.add_id(item)
            _collect(value, scope, secrets, key if isinstance(key, str) else None)
    elif isinstance(node, Sequence) and not isinstance(node, (str, bytes)):
        for item in node:
            _collect(item, person, secrets, parent_key)


def _rewrite(node: object, mask_text: _TextMask, key: str | None = None) -> object:
    if isinstance(node, str):
        return mask_text(node, key)
    if isinstance(node, Mapping):
        return {(mask_text(k, None) if isinstance(k, str) else k):
                _rewrite(v, mask_text, k if isinstance(k, str) else None) for k, v in node.items()}
    if isinstance(node, Sequence) and not isinstance(node, (bytes, bytearray)):
        return [_rewrite(item, mask_text, key) for item in node]
    return node


class _TextMask:
    def __init__(self, secrets: _Secrets):
        self.masks = secrets.masks
        self.echoes = secrets.pattern()

    def __call__(self, text: str, key: str | None) -> str:
        whole = self.masks.get(text)
        if whole is not None:
            return whole
        if self.echoes is not None:
            text = self.echoes.sub(lambda m: self.masks[m.group()], text)
        # a registration number's field keeps a 15-digit number that passes the registration
        # number's check; one that fails it is no registration number, and may be a person's
        # first-generation ID number (seen: `dlq show` printed one in a dead letter's reg_no)
        legacy = key not in LEGACY_ID_EXEMPT or not is_valid_reg_no(normalise_code(text))
        return mask_id_numbers_in_text(text, legacy=legacy)


def redact_personal(doc: J, *, natural_person: bool = False, sources: Sequence[object] = ()) -> J:
    """A copy of the JSON document ``doc`` with natural persons' ID numbers and names masked (the
    module docstring says which). ``natural_person``: the document is about a natural person even
    where it does not say so itself. ``sources``: the documents ``doc`` was made from (the subjects'
    states behind a disclosure page or a credit report), read only for the names and numbers they
    hold: a view that leaves out a record's legal representative still quotes their name in its free
    text, and it is masked there as an echo. Mappings come back as dicts and sequences as lists;
    numbers, booleans and None as they are."""
    secrets = _Secrets()
    _collect(doc, natural_person, secrets, hint=natural_person or None)
    for source in sources:
        _collect(source, natural_person, secrets, hint=natural_person or None)
    return cast(J, _rewrite(doc, _TextMask(secrets)))


_QUOTED: Final = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_NON_ASCII_RUN: Final = re.compile(r"[^\x00-\x7f]+")


def safe_detail(text: str) -> str:
    """A sentence about an input (a dead letter's ``dlq.detail``, a log line's reason) with nothing
    personal left in it: the input's values a validation message quotes may be a natural person's
    name or number (a name in a field that should hold a category, an ID number in a status).
    Resident ID numbers (18 characters, and first-generation 15-digit ones, also written in groups
    with spaces or dashes) are masked; a quoted value with any non-ASCII character is withheld, its
    length said; other non-ASCII text becomes ``…``. What such a value was is in the input itself
    (the dead letter's original bytes, read with the right to personal data: ``creditstream dlq
    show``)."""
    text = mask_id_numbers_in_text(text)
    if text.isascii():
        return text
    text = _QUOTED.sub(lambda m: m.group() if m.group().isascii() else f"<{len(m.group()) - 2} chars withheld>", text)
    return _NON_ASCII_RUN.sub("…", text)


DIGEST_FIELDS: Final = frozenset({"change_id", "withdraws", "hash"})
"""Fields whose value is a digest of what may be personal data: a list change's id is a digest of its
subject's clear id (domain/facts.py ``change_id``), a record's ``hash`` of its whole content, a legal
representative's name and ID number included (domain/validate.py ``content_hash``)."""
DIGEST_KEYED: Final = frozenset({"versions", "others", "awaiting_feedback", "feedback"})
"""Objects whose keys are such digests (a record's versions and their contents; list changes by id)."""
_DIGEST: Final = re.compile(r"[0-9a-f]{32}")


def conceal_digests(doc: J, key: bytes) -> J:
    """A copy of ``doc`` in which the digests of :data:`DIGEST_FIELDS` and :data:`DIGEST_KEYED` that
    are made from personal data are replaced by keyed digests of them (BLAKE2b keyed with ``key``, the
    same length): within an object about a natural person (a person's list change: its id is a digest
    of the clear ID number) and within a record that names a legal representative (its hash is a
    digest of the representative's clear name and number). Unkeyed, a reader without the personal
    role, shown the masked number beside them, confirmed a guessed number by hashing it, or found it
    by trying every birth date and sequence number of an area (seen: in 73 s of Python). Keyed, each
    stays the same from one answer to the next (a withdrawal still names the change it withdraws, a
    record's hash still tells its versions apart) and tells nothing without the key. The other
    digests (an organisation's list changes, its records without a representative) stay as they are,
    the same ids as on the list-change topic."""

    def conceal(value: object) -> object:
        if isinstance(value, str) and _DIGEST.fullmatch(value):
            return hashlib.blake2b(value.encode(), key=key, digest_size=16).hexdigest()
        return value

    def walk(node: object, personal: bool) -> object:
        if isinstance(node, Mapping):
            here = personal or is_natural_person(node) is True or _names_a_representative(node)
            out: dict[object, object] = {}
            for k, v in node.items():
                if here and k in DIGEST_FIELDS:
                    out[k] = conceal(v)
                elif here and k in DIGEST_KEYED and isinstance(v, Mapping):
                    out[k] = {conceal(dk): walk(dv, here) for dk, dv in v.items()}
                else:
                    out[k] = walk(v, here)
            return out
        if isinstance(node, (list, tuple)):
            return [walk(item, personal) for item in node]
        return node

    return cast(J, walk(doc, False))


def _names_a_representative(node: Mapping[object, object]) -> bool:
    """A record entry (or a record's content) that names a legal representative, in its winning
    version or another."""
    contents = [node, node.get("content")]
    others = node.get("others")
    if isinstance(others, Mapping):
        contents += list(others.values())
    return any(isinstance(c, Mapping) and bool(c.get("legal_rep") or c.get("legal_rep_name")) for c in contents)
