"""Issue 3's scenario end to end on the embedded stack: a severe environment penalty puts a company
on the environment blacklist; an objection suspends the measures, its rejection resumes them; a
court listing adds a second domain (escalation); an approved credit repair ends the blacklist
(de-escalation); the court listing expires by the timer; the legal representative's personal record
follows the severe record. Asserts the list-change topic and Redis."""

from __future__ import annotations

import datetime as dt

import pytest

from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = pytest.mark.integration

CST = dt.timezone(dt.timedelta(hours=8))


def ts(day: str) -> int:
    d = dt.date.fromisoformat(day)
    return int(dt.datetime(d.year, d.month, d.day, 10, tzinfo=CST).timestamp() * 1000)


async def read_changes(settings):
    from creditstream.connections import make_codec
    from streams import kafka
    from streams.topics import Topics

    codec = make_codec(settings)
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).list_changes):
        for msg in batch:
            _, rec = codec.decode(msg.value)
            out.append(rec)
    return out


async def test_listing_objection_reinstatement_repair_and_expiry(settings, department, redis):
    from creditstream.app import Pipeline
    from streams import kafka

    company = samples.COMPANY_USCC
    penalty = sample_event("penalty", severity="严重", domain="environment", source_unit=samples.ECO_ZZ,
                           source_unit_uscc=samples.ECO_ZZ_USCC, decision_doc_no="郑环罚〔2020〕009号",
                           decision_date=dt.date(2020, 1, 10), valid_until=None, publicity_end_date=None)
    target = dict(target_source_unit=samples.ECO_ZZ, target_source_unit_uscc=samples.ECO_ZZ_USCC,
                  target_doc_no="郑环罚〔2020〕009号", target_kind="penalty")
    inputs = [
        ("penalty", penalty, "2020-01-15"),
        ("objection", sample_event("objection", **target, objection_id="YY-1", status="filed",
                                   filed_date=dt.date(2020, 2, 3), provider_verification=False), "2020-02-03"),
        ("objection", sample_event("objection", **target, objection_id="YY-1", status="rejected",
                                   filed_date=dt.date(2020, 2, 3), resolved_date=dt.date(2020, 2, 6),
                                   provider_verification=False), "2020-02-06"),
        ("court_listing", sample_event("court_listing", listing_reason="obstruct", case_no="(2020)豫01执77号",
                                       listing_date=dt.date(2020, 3, 1), publish_date=dt.date(2020, 3, 2)),
         "2020-03-02"),
        ("repair", sample_event("repair", **target, repair_id="郑信修〔2020〕031号", approved=True,
                                decision_date=dt.date(2020, 9, 1)), "2020-09-01"),
    ]
    # every input is on its topic before the worker starts, so ticks come after them in the log;
    # the topics are created first, as `creditstream topics` does before departments produce: a
    # topic the broker auto-creates on the first send keeps Apache Kafka's default retention (7 days),
    # and its retention check (every 10 s here) would delete these 2020-stamped inputs before the
    # worker reads them
    await kafka.ensure_topics(settings)
    for kind, record, day in inputs:
        await department.send(schema_of(kind), record, timestamp_ms=ts(day))
    pipeline = Pipeline(settings.replace(timer_interval_s=0.2))
    await pipeline.start()
    try:
        async def court_listing_expired():
            changes = await read_changes(settings)
            # the company's own exit (its legal representative's may come first: CI saw that read)
            done = any(c["list"] == "court_debtor" and c["transition"] == "exited" and c["subject_id"] == company
                       for c in changes)
            return changes if done else None

        changes = await eventually(court_listing_expired, timeout=60)
    finally:
        await pipeline.stop()

    mine = [(c["list"], c["transition"], c["effective_date"].isoformat()) for c in changes
            if c["subject_id"] == company and c["list_kind"] in ("blacklist", "court_debtor", "escalated")]
    assert mine == [
        ("blacklist:environment", "entered", "2020-01-10"),
        ("blacklist:environment", "suspended", "2020-02-03"),
        ("blacklist:environment", "resumed", "2020-02-06"),
        ("court_debtor", "entered", "2020-03-01"),
        ("escalated", "escalated", "2020-03-01"),
        ("blacklist:environment", "exited", "2020-09-01"),
        ("escalated", "de-escalated", "2020-09-01"),
        ("court_debtor", "exited", "2022-03-01"),
    ], mine
    assert len({c["change_id"] for c in changes}) == len(changes), "change ids are unique"
    publicity = [c["transition"] for c in changes if c["subject_id"] == company and c["list_kind"] == "publicity"]
    # repair eligible after the 6-month minimum (2020-07-10), publication ended by the repair (2020-09-01)
    assert publicity == ["repair_eligible", "publicity_expired"], publicity

    # the legal representative's personal record follows the severe record
    person = [c for c in changes if c["subject_id"] == samples.LEGAL_REP_ID]
    assert ("blacklist:environment", "entered") in {(c["list"], c["transition"]) for c in person}

    from sinks.keys import resolve_keys

    keys = await resolve_keys(redis, settings.namespace)
    assert not await redis.sismember(keys.list_members("blacklist:environment"), company)
    assert not await redis.sismember(keys.list_members("court_debtor"), company)
    assert not await redis.sismember(keys.list_members("escalated"), company)
    from ops.inspect import subject_lists

    lists = await subject_lists(settings, company)
    assert "court_debtor" not in lists["lists"] and "blacklist:environment" not in lists["lists"]


async def test_joint_punishment_feedback_is_recorded_and_overdue_changes_reported(pipeline, settings, department,
                                                                                 redis):
    """Trigger - push - feedback: a blacklist entry awaits the implementing units' feedback; a feedback
    naming the change id records the measure; the court listing's entry, without feedback, is
    reported overdue."""
    from ops.inspect import subject_state
    from ops.report import operator_report

    company = samples.COMPANY_USCC
    await department.send(schema_of("penalty"), sample_event(
        "penalty", severity="严重", domain="environment", decision_doc_no="郑环罚〔2024〕009号",
        decision_date=dt.date(2024, 3, 1), valid_until=None, publicity_end_date=None), timestamp_ms=ts("2024-03-04"))
    await department.send(schema_of("court_listing"), sample_event("court_listing", listing_reason="obstruct"),
                          timestamp_ms=ts("2024-03-05"))

    async def entered():
        changes = await read_changes(settings)
        found = [c for c in changes if c["subject_id"] == company and c["transition"] == "entered"]
        return found if len(found) == 2 else None

    blacklist, court = sorted(await eventually(entered), key=lambda c: c["list"])
    await department.send(schema_of("feedback"), sample_event(
        "feedback", change_id=blacklist["change_id"], subject_id=company, measure_date=dt.date(2024, 3, 8)),
        timestamp_ms=ts("2024-03-08"))

    async def recorded():
        state = await subject_state(settings, company)
        return state if blacklist["change_id"] in (state.get("feedback") or {}) else None

    state = await eventually(recorded)
    assert state["feedback"][blacklist["change_id"]][0]["measure"] == "限制参与政府采购活动"
    awaiting = state["awaiting_feedback"]
    assert blacklist["change_id"] not in awaiting and court["change_id"] in awaiting
    # (the escalation and, as the timer moves the subject's clock, later entries await feedback too)
    report = await operator_report(settings)
    overdue = {i["change_id"] for i in report["feedback_overdue"]["sample"]}
    assert court["change_id"] in overdue and blacklist["change_id"] not in overdue
    assert report["feedback_overdue"]["count"] == len(overdue)
