"""Time and order on the embedded stack, as stock producers publish: no message timestamps (the
producer stamps the time of sending) and no keys (a subject's inputs land on several partitions).
The list history announced must still be dated by the decisions and be the same whatever arrived
first (RULES.md 3a)."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from domain.engine import fold_changes
from streams import samples
from streams.samples import sample_event, schema_of
from streams.synthetic import uscc
from tests.conftest import eventually
from tests.integration.test_rules_scenario import read_changes

pytestmark = pytest.mark.integration


def folded(changes, subject):
    mine = [dict(c, effective_date=c["effective_date"].isoformat()) for c in changes if c["subject_id"] == subject]
    return sorted((c["list"], c["transition"], c["effective_date"], c["cause_kind"]) for c in fold_changes(mine).values())


async def test_late_and_unordered_inputs_get_their_decisions_dates(pipeline, settings, department):
    company = samples.COMPANY_USCC
    case = dict(case_no="(2026)豫01执9号")
    # a deletion sent before its listing, both today, unkeyed
    await department.send(schema_of("court_deletion"), sample_event(
        "court_deletion", **case, deletion_reason="performed", deletion_date=dt.date(2026, 3, 20)))
    await department.send(schema_of("court_listing"), sample_event(
        "court_listing", **case, listing_reason="obstruct", listing_date=dt.date(2026, 3, 2),
        publish_date=dt.date(2026, 3, 3)))
    # a two-year listing of 2024, sent today
    await department.send(schema_of("court_listing"), sample_event(
        "court_listing", case_no="(2024)豫01执1号", listing_reason="obstruct", listing_date=dt.date(2024, 3, 1),
        publish_date=dt.date(2024, 3, 2)))
    # a repair sent before its penalty; an objection filed and resolved long ago, sent today
    doc = "郑环罚〔2025〕101号"
    target = dict(target_source_unit=samples.ECO_ZZ, target_source_unit_uscc=samples.ECO_ZZ_USCC,
                  target_doc_no=doc, target_kind="penalty")
    await department.send(schema_of("repair"), sample_event("repair", **target, repair_id="郑信修〔2025〕9号",
                                                            approved=True, decision_date=dt.date(2026, 2, 2)))
    await department.send(schema_of("objection"), sample_event(
        "objection", **target, objection_id="YY-9", status="rejected", filed_date=dt.date(2025, 9, 1),
        resolved_date=dt.date(2025, 9, 3), provider_verification=False))
    await department.send(schema_of("penalty"), sample_event(
        "penalty", severity="严重", domain="environment", source_unit=samples.ECO_ZZ,
        source_unit_uscc=samples.ECO_ZZ_USCC, decision_doc_no=doc, decision_date=dt.date(2025, 6, 2),
        valid_until=None, publicity_end_date=None))

    async def settled():
        changes = await read_changes(settings)
        got = folded(changes, company)
        return got if ("court_debtor", "exited", "2026-03-20", "deletion") in got and any(
            c[0].startswith("publicity:") and c[1] == "publicity_expired" for c in got) else None

    got = await eventually(settled, timeout=40)
    assert ("court_debtor", "entered", "2024-03-01", "listing") in got
    assert ("court_debtor", "exited", "2026-03-01", "expiry") in got
    assert ("court_debtor", "entered", "2026-03-02", "listing") in got
    assert ("blacklist:environment", "suspended", "2025-09-01", "objection_filed") in got
    assert ("blacklist:environment", "resumed", "2025-09-03", "objection_resolved") in got
    assert not [c for c in got if c[1] == "objection_overdue"]
    expired = [c for c in got if c[0].startswith("publicity:") and c[1] == "publicity_expired"]
    assert expired and expired[0][2:] == ("2026-02-02", "repair"), expired
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    assert all(c[2] <= today for c in got)


async def test_originals_after_their_corrections_change_nothing(pipeline, settings, department, redis):
    from ops.inspect import subject_state

    subjects = [uscc(7000 + i) for i in range(300)]
    lines = []
    for sid in subjects:
        base = dict(uscc=sid, decision_doc_no=f"郑市监罚〔2026〕{sid[-6:]}号", decision_date=dt.date(2026, 5, 6),
                    severity="一般", domain="market", fine_amount=None)
        lines.append(sample_event("penalty", **base, penalty_content="原决定"))
        lines.append(sample_event("penalty", **base, penalty_content="更正后"))
    # one file, sent in order with `creditstream produce` keying (by subject): original then correction
    for rec in lines:
        await department.send(schema_of("penalty"), rec, key=rec["uscc"].encode())

    # every input applied, the last ones included (a sample of every 30th subject corrected said
    # nothing of the others: their partitions' batches may come later, and a subject read before its
    # correction holds the original)
    from ops.report import progress

    async def all_applied():
        return await progress(settings) >= len(lines)

    await eventually(all_applied, timeout=60)
    wrong = []
    for sid in subjects:
        state = await subject_state(settings, sid)
        [entry] = state["records"].values()
        if (entry["content"].get("fields") or {}).get("penalty_content") != "更正后":
            wrong.append(sid)
    assert wrong == []


async def test_a_message_stamped_in_2099_is_dead_lettered(pipeline, settings, department):
    from ops.dlq import list_dead_letters

    stamp = int(dt.datetime(2099, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    if settings.broker_kind == "kafka":
        # Apache Kafka 4 refuses it itself (message.timestamp.after.max.ms, 1 hour by default)
        from aiokafka.errors import InvalidTimestampError

        with pytest.raises(InvalidTimestampError):
            await department.send(schema_of("penalty"), sample_event("penalty", decision_doc_no="郑罚〔2099〕1号"),
                                  timestamp_ms=stamp)
        # a stamp within the broker's hour but past our tolerance still reaches ingest
        stamp = int(time.time() * 1000) + 30 * 60 * 1000
    await department.send(schema_of("penalty"), sample_event("penalty", decision_doc_no="郑罚〔2099〕1号"),
                          timestamp_ms=stamp)

    async def dead():
        found = [d for d in await list_dead_letters(settings) if d["reason"] == "future-timestamp"]
        return found or None

    [letter] = await eventually(dead, timeout=30)
    assert "after the wall clock" in letter["detail"]


async def test_a_unit_named_by_its_name_or_its_code_is_one_decision_through_the_pipeline(pipeline, settings,
                                                                                            department):
    """A department that sends its decision with the unit's USCC and the revocation by the unit's name
    only; a credit office that names the unit by its name (or gives the code for a decision sent by
    name): one decision each time (docs/events.md, Identity), unkeyed and stamped at sending as stock
    producers send, on whichever broker the stack runs."""
    from ops.inspect import subject_state

    revoked_company, disputed_company = uscc(7600), uscc(7601)
    doc_a, doc_b = "郑环罚〔2025〕761号", "郑环罚〔2025〕762号"
    penalty = dict(severity="严重", domain="environment", source_unit=samples.ECO_ZZ, decision_date=dt.date(2025, 6, 2),
                   valid_until=None, publicity_end_date=None)
    rejected = dict(status="rejected", filed_date=dt.date(2025, 9, 1), resolved_date=dt.date(2025, 9, 3),
                    provider_verification=False, target_kind="penalty", target_source_unit=samples.ECO_ZZ)
    # the first company: its penalty with the code; the office's objection and the department's
    # revocation name the unit by its name only
    await department.send(schema_of("penalty"), sample_event(
        "penalty", **penalty, uscc=revoked_company, source_unit_uscc=samples.ECO_ZZ_USCC, decision_doc_no=doc_a))
    await department.send(schema_of("objection"), sample_event(
        "objection", **rejected, uscc=revoked_company, objection_id="YY-761", target_doc_no=doc_a,
        target_source_unit_uscc=None))
    # the second company: the office's objection (with the unit's code) before the penalty sent by name only
    await department.send(schema_of("objection"), sample_event(
        "objection", **rejected, uscc=disputed_company, objection_id="YY-762", target_doc_no=doc_b,
        target_source_unit_uscc=samples.ECO_ZZ_USCC))
    await department.send(schema_of("penalty"), sample_event(
        "penalty", **penalty, uscc=disputed_company, source_unit_uscc=None, decision_doc_no=doc_b))
    coded = f"penalty|{samples.ECO_ZZ_USCC}|"

    async def disputed():
        got = [folded(await read_changes(settings), s) for s in (revoked_company, disputed_company)]
        return got if all(("blacklist:environment", "resumed", "2025-09-03", "objection_resolved") in g
                          for g in got) else None

    for got in await eventually(disputed, timeout=40):
        assert ("blacklist:environment", "entered", "2025-06-02", "record") in got, got
        assert ("blacklist:environment", "suspended", "2025-09-01", "objection_filed") in got, got
        assert not [c for c in got if c[1] == "objection_overdue"], got
    for sid, doc in ((revoked_company, doc_a), (disputed_company, doc_b)):
        state = await subject_state(settings, sid)
        assert list(state["records"]) == [coded + doc], state["records"].keys()
        assert [o["record_key"] for o in state["objections"].values()] == [coded + doc]

    # the revocation, by the unit's name only (sent after the original, so stamped after it)
    await department.send(schema_of("penalty"), sample_event(
        "penalty", **penalty, uscc=revoked_company, source_unit_uscc=None, decision_doc_no=doc_a,
        record_status="revoked"))

    async def revoked():
        state = await subject_state(settings, revoked_company)
        entry = state["records"].get(coded + doc_a)
        return state if entry and entry["status"] == "revoked" else None

    state = await eventually(revoked, timeout=40)
    assert list(state["records"]) == [coded + doc_a]
    assert not state["evaluation"]["lists"]

    async def withdrawn():  # a revoked decision's list changes are withdrawn: the fold holds none of them
        got = folded(await read_changes(settings), revoked_company)
        return "withdrawn" if not [c for c in got if c[0] == "blacklist:environment"] else None

    await eventually(withdrawn, timeout=40)


async def test_a_refusal_of_another_repair_application_leaves_the_earlier_grant_through_the_pipeline(
        pipeline, settings, department):
    """Two repair decisions on one penalty, unkeyed and stamped at sending: the grant, then a decision
    refusing another application. The refusal, stamped later, withdrew the grant back to its date (an
    audit, on a real stack); each is a decision of its own (docs/events.md, Repair decisions)."""
    from ops.inspect import subject_state

    company = uscc(7610)
    doc = "郑环罚〔2024〕771号"
    await department.send(schema_of("penalty"), sample_event(
        "penalty", severity="严重", domain="environment", source_unit=samples.ECO_ZZ,
        source_unit_uscc=samples.ECO_ZZ_USCC, uscc=company, decision_doc_no=doc, decision_date=dt.date(2024, 1, 10),
        valid_until=None, publicity_end_date=None))
    aimed = dict(uscc=company, target_source_unit=samples.ECO_ZZ, target_source_unit_uscc=samples.ECO_ZZ_USCC,
                 target_doc_no=doc, target_kind="penalty")
    await department.send(schema_of("repair"), sample_event(
        "repair", **aimed, repair_id="郑信修〔2024〕771号", approved=True, decision_date=dt.date(2024, 6, 10)))
    await department.send(schema_of("repair"), sample_event(
        "repair", **aimed, repair_id="郑信修〔2024〕772号", approved=False, decision_date=dt.date(2024, 7, 10)))

    # all three applied: both repair decisions and the penalty (unkeyed, it may come after them: the
    # two repair versions alone were awaited, and the verdict read before the penalty was there)
    async def all_folded():
        state = await subject_state(settings, company)
        slot = next(iter((state or {}).get("repairs", {}).values()), None)
        penalty_there = any(r.get("content") for r in ((state or {}).get("records") or {}).values())
        return state if slot and len(slot["versions"]) == 2 and penalty_there else None

    state = await eventually(all_folded, timeout=40)
    (verdict,) = state["evaluation"]["repairs"].values()
    assert (verdict["approved"], verdict["doc_no"], verdict["applied"]) == ("2024-06-10", "郑信修〔2024〕771号", True)
    assert not state["evaluation"]["lists"]

    # the exit on the topic (produced after the batch's state write, not with it)
    async def exited():
        got = folded(await read_changes(settings), company)
        return got if ("blacklist:environment", "exited", "2024-06-10", "repair") in got else None

    got = await eventually(exited, timeout=40)
    assert not [c for c in got if c[0] == "blacklist:environment" and c[1] == "exited" and c[2] != "2024-06-10"], got
