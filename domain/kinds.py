"""The catalogue of event kinds: every kind creditstream reads or writes, its Avro schema, the topic
it travels on and its role. The one place these facts are written; domain/validate.py,
streams/topics.py, streams/samples.py and the agents read them from here.

Topics are named by their role key (``topic``); streams/topics.py owns the actual names.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class Kind(NamedTuple):
    name: str    # the canonical record's ``kind``
    schema: str  # full Avro name (schemas/*.avsc)
    topic: str   # the topic's role key (streams/topics.py SPEC_OF_TOPIC)
    role: str    # decision | credit_office | feedback | registration | output
    doc: str


KINDS: Final[tuple[Kind, ...]] = (
    Kind("penalty", "creditstream.AdministrativePenalty", "penalty", "decision", "行政处罚 administrative penalty"),
    Kind("license", "creditstream.AdministrativeLicense", "license", "decision", "行政许可 administrative licence"),
    Kind("court_listing", "creditstream.CourtDebtorListing", "court", "decision", "失信被执行人 court listing"),
    Kind("court_deletion", "creditstream.CourtDebtorDeletion", "court", "decision", "失信被执行人删除 court deletion"),
    Kind("action", "creditstream.ActionRecord", "action", "decision", "the other publicised actions (十公示)"),
    Kind("registration", "creditstream.SubjectRegistration", "registration", "registration",
         "subject registration (存量代码转换)"),
    Kind("objection", "creditstream.Objection", "credit_office", "credit_office", "异议 objection handling"),
    Kind("repair", "creditstream.RepairDecision", "credit_office", "credit_office", "信用修复 repair decision"),
    Kind("listing_decision", "creditstream.ListingDecision", "credit_office", "credit_office",
         "列入/移出决定 listing or removal decision"),
    Kind("feedback", "creditstream.JointPunishmentFeedback", "feedback", "feedback", "联合惩戒反馈 feedback"),
    Kind("list_change", "creditstream.ListChange", "list_changes", "output", "名单变动 list change (downstream)"),
    Kind("check_audit", "creditstream.CheckAudit", "check_audit", "output",
         "信用核查记录 a credit check answered by the check API (应查必查, 奖惩到位)"),
)

BY_NAME: Final = {k.name: k for k in KINDS}
KIND_OF_SCHEMA: Final = {k.schema: k.name for k in KINDS if k.role != "output"}
SCHEMA_OF_KIND: Final = {k.name: k.schema for k in KINDS}
INPUT_KINDS: Final = tuple(k.name for k in KINDS if k.role != "output")
# what the ingest agent takes (registrations go to the registry agent)
INGEST_SCHEMAS: Final = frozenset(k.schema for k in KINDS if k.role in ("decision", "credit_office", "feedback"))
REGISTRATION_SCHEMA: Final = BY_NAME["registration"].schema
LIST_CHANGE_SCHEMA: Final = BY_NAME["list_change"].schema
CHECK_AUDIT_SCHEMA: Final = BY_NAME["check_audit"].schema
MOVES_WITH_ITS_NUMBER: Final = frozenset({"penalty", "license", "court_listing", "court_deletion", "action",
                                          "listing_decision"})
"""The decisions that follow the legacy number they were attached by when the registry index comes to
give that number to another organisation (sinks/registry_index.py, domain/state.py ``apply_detached``).
Not the credit office's objections and repair decisions, nor the implementing units' feedback, which
stay where they were attached (docs/operations.md, "Legacy numbers that move")."""

