"""domain/report.py and domain/disclosure.py (issue 15, 4-5): what is under publicity at an instant,
the credit report's content and its content hash, and the disclosure's views. Subject states are
built by folding inputs with the real rules core."""

from __future__ import annotations

import hashlib
import json

import pytest

from domain.disclosure import Query, disclosed_records, list_member, name_matches, query_of
from domain.report import BadReport, canonical_json, content_hash, credit_report, publicity, seal, verify
from domain.validate import decision_key
from tests.builders import PERSON, objection, record, record_event, repair
from tests.unit.list_inputs import RULES, run

PEN = record("penalty", "环罚〔2024〕1号", "2024-02-05", severity="severe", domain="environment",
             violation_type="超标排放", penalty_content="罚款10万元")
LIC = record("license", "许〔2023〕7号", "2023-08-01", certificate_name="排污许可证", valid_to="2025-07-31")
KEY, LIC_KEY = decision_key(PEN), decision_key(LIC)


def keys(records):
    return [r.record_key for r in records]


def test_a_penalty_is_published_from_its_decision_to_the_end_of_its_period():
    state = run([record_event(PEN, "2024-02-06"), record_event(LIC, "2024-02-06")])
    assert publicity(state, "2024-02-04", RULES).published == tuple(p for p in publicity(state, "2024-02-04", RULES).published
                                                              if p.record_key == LIC_KEY)
    during = publicity(state, "2024-03-01", RULES)
    assert keys(during.published) == [LIC_KEY, KEY] and during.withdrawn == ()
    (pen,) = [r for r in during.published if r.record_key == KEY]
    assert (pen.kind, pen.published_from, pen.state, pen.withdrawn_on) == ("penalty", "2024-02-05", "published", None)
    assert pen.published_until == state["facts"][KEY]["pub"][1] and pen.repair_from == state["facts"][KEY]["pub"][0]
    assert pen.details == {"violation_type": "超标排放", "penalty_content": "罚款10万元"}
    assert publicity(state, pen.repair_from, RULES).published[-1].state == "repair_eligible"
    # the licence: published to its valid_to (its last valid day, included), withdrawn by expiry the day after
    assert LIC_KEY in keys(publicity(state, "2025-07-31", RULES).published)
    later = publicity(state, "2025-08-01", RULES)
    (lic,) = later.withdrawn
    assert (lic.record_key, lic.withdrawn_on, lic.withdrawn_by, lic.state) == (LIC_KEY, "2025-08-01", "expiry",
                                                                                "withdrawn")
    # the penalty's own end: withdrawn by expiry on its last day
    end = pen.published_until
    assert KEY in keys(publicity(state, end, RULES).withdrawn) and KEY not in keys(publicity(state, end, RULES).published)


def test_an_approved_repair_withdraws_the_penalty_on_its_approval_date():
    state = run([record_event(PEN, "2024-02-06")])
    earliest = state["facts"][KEY]["pub"][0]
    repaired = run([repair(KEY, "2025-03-03", arrived="2025-03-04")], state)
    assert earliest <= "2025-03-03"
    assert keys(publicity(repaired, "2025-03-02", RULES).published) == [KEY]
    after = publicity(repaired, "2025-03-03", RULES)
    assert after.published == ()
    (w,) = after.withdrawn
    assert (w.withdrawn_on, w.withdrawn_by) == ("2025-03-03", "repair")
    # the report at both instants: listed, then withdrawn and off the blacklist
    before = credit_report(repaired, "2025-03-02", rules_version=RULES.version, generated_at="2025-03-04T10:00:00+08:00", rules=RULES)
    assert [s["list"] for s in before["lists"]] == ["blacklist:environment"]
    report = credit_report(repaired, "2025-03-03", rules_version=RULES.version, generated_at="2025-03-04T10:00:00+08:00", rules=RULES)
    assert report["lists"] == [] and report["publicity"]["withdrawn"][0]["withdrawn_by"] == "repair"
    assert report["repairs"] == [{"record_key": KEY, "approved": "2025-03-03", "granted": True, "doc_no": None,
                                  "applied": True, "reason": None}]
    (h,) = report["list_history"]
    assert (h["list"], h["entered"], h["exited"], h["exited_by"]["kind"]) == (
        "blacklist:environment", "2024-02-05", "2025-03-03", "repair")
    assert report["rules_version"] == RULES.version and report["subject"]["id"] == state["id"]


def test_a_revocation_and_an_upheld_objection_withdraw_the_record():
    revoked = dict(PEN, revoked=True)
    state = run([record_event(PEN, "2024-02-06"), record_event(revoked, "2024-04-01")])
    (w,) = publicity(state, "2024-04-02", RULES).withdrawn
    assert (w.withdrawn_by, w.withdrawn_on) == ("revoked", "2024-04-01")
    assert keys(publicity(state, "2024-03-01", RULES).published) == [KEY]  # before the revocation: it was published
    disputed = run([record_event(PEN, "2024-02-06"),
                    objection("O1", KEY, "filed", "2024-03-01", arrived="2024-03-01")])
    (p,) = publicity(disputed, "2024-03-02", RULES).published
    assert p.disputed_by == "O1"
    upheld = run([objection("O1", KEY, "upheld", "2024-03-01", "2024-03-10", outcome="revoked",
                            arrived="2024-03-10")], disputed)
    (w,) = publicity(upheld, "2024-03-10", RULES).withdrawn
    assert (w.withdrawn_by, w.withdrawn_on) == ("objection", "2024-03-10")
    report = credit_report(upheld, "2024-03-10", rules_version="v", generated_at="t", rules=RULES)
    assert report["objections"][0]["status"] == "upheld"
    assert credit_report(upheld, "2024-03-05", rules_version="v", generated_at="t", rules=RULES)["objections"][0]["status"] == "filed"


def test_the_content_hash_is_sha256_of_the_canonical_json():
    content = {"b": [1, "二"], "a": {"z": None, "y": True}, "format": "creditstream.credit-report/1"}
    assert canonical_json(content) == '{"a":{"y":true,"z":null},"b":[1,"二"],"format":"creditstream.credit-report/1"}'.encode()
    assert content_hash(content) == "sha256:" + hashlib.sha256(canonical_json(content)).hexdigest()
    sealed = seal(content)
    # the JSON form served survives a round trip through any JSON writer: the hash still verifies
    assert verify(json.loads(json.dumps(sealed, indent=2, ensure_ascii=True))) == (True, sealed["content_hash"])
    tampered = json.loads(json.dumps(sealed))
    tampered["content"]["b"][0] = 2
    ok, why = verify(tampered)
    assert not ok and "claims" in why
    for bad in ({}, {"content": {}, "content_hash": "sha256:00"}, [], {"content": content, "content_hash": "md5:1"}):
        with pytest.raises(BadReport):
            verify(bad)


def test_a_report_seals_and_verifies():
    state = run([record_event(PEN, "2024-02-06")])
    sealed = seal(credit_report(state, "2024-03-01", rules_version=RULES.version, generated_at="2024-03-01T00:00:00", rules=RULES))
    assert verify(sealed)[0]
    assert sealed["content"]["publicity"]["published"][0]["record_key"] == KEY


# ------------------------------------------------------------------------------------ disclosure


def test_queries_are_codes_or_names():
    assert query_of(" 91310110-666007217t ") == Query("91310110666007217T", None)
    assert query_of("666007217") == Query("666007217", None)
    assert query_of(PERSON) == Query(PERSON, None)  # the edge refuses it before any look-up
    assert query_of("  恒达 商贸（集团）") == Query(None, "恒达商贸(集团)")
    assert query_of("") == Query(None, None)
    with pytest.raises(ValueError):
        query_of("x" * 65)
    state = {"names": ["郑州市恒达商贸(集团)有限公司", "Old Name Co"]}
    assert name_matches(state, query_of("恒达商贸（集团）").name)
    assert name_matches(state, query_of("old name").name)
    assert not name_matches(state, query_of("恒信").name)


def test_disclosure_views():
    state = run([record_event(PEN, "2024-02-06"), record_event(LIC, "2024-02-06")])
    member = list_member(state, "blacklist:environment", "2024-03-01")
    assert member["since"] == "2024-02-05" and member["records"][0]["record_key"] == KEY
    assert list_member(state, "blacklist:environment", "2024-02-01") is None
    pens = disclosed_records(state, "2024-03-01", ("penalty",), rules=RULES)
    assert [r["record_key"] for r in pens] == [KEY] and pens[0]["name"] == "某公司"
    assert [r["record_key"] for r in disclosed_records(state, "2025-08-01", ("license",), rules=RULES)] == []
    assert keys(publicity(state, "2025-08-01", RULES).withdrawn) == [LIC_KEY]  # the report's, not the open pages
    person = run([record_event(record("penalty", "罚1", "2024-02-05", category="natural_person"), "2024-02-06",
                               subject=PERSON)])
    assert disclosed_records(person, "2024-03-01", rules=RULES) == []


def test_a_resent_revocation_keeps_the_date_the_record_left_publicity():
    """A revocation re-sent months later (a department's re-export) is a duplicate (RULES.md 2): the
    record left publicity on the revoking version's own stamp, not on the latest copy's (it moved to
    the re-send's date, and the record showed as published again in between)."""
    pen = record("penalty", "环罚〔2024〕1号", "2024-02-05", severity="severe", domain="environment")
    revoked = dict(pen, revoked=True)
    once = run([record_event(pen, "2024-02-06"), record_event(revoked, "2024-04-01")])
    twice = run([record_event(pen, "2024-02-06"), record_event(revoked, "2024-04-01"),
                 record_event(revoked, "2024-09-02")])
    for state in (once, twice):
        answer = publicity(state, "2024-06-03", RULES)
        (w,) = answer.withdrawn
        assert (w.withdrawn_by, w.withdrawn_on) == ("revoked", "2024-04-01")
        assert answer.published == ()


def test_a_penalty_corrected_after_an_upheld_objection_is_still_withdrawn_by_a_later_repair():
    """An upheld objection that corrected the penalty put it out of force until the correction; a
    repair approved a year later ends its publication (RULES.md 3) as for any other record (it was
    ignored for good once any correcting objection had been upheld)."""
    pen = record("penalty", "环罚〔2024〕1号", "2024-02-05", severity="severe", domain="environment",
                 penalty_content="罚款10万元")
    key = decision_key(pen)
    state = run([record_event(pen, "2024-02-06"),
                 objection("OB-1", key, "filed", "2024-03-04", arrived="2024-03-04"),
                 record_event(dict(pen, fields={"penalty_content": "罚款8万元"}), "2024-03-05"),
                 objection("OB-1", key, "upheld", "2024-03-04", "2024-03-06", outcome="corrected",
                           arrived="2024-03-06"),
                 repair(key, "2025-03-03", arrived="2025-03-04")])
    (r,) = publicity(state, "2025-06-02", RULES).withdrawn
    assert (r.state, r.withdrawn_on, r.withdrawn_by) == ("withdrawn", "2025-03-03", "repair")
    assert state["facts"][key]["pub"][1:3] == ["2025-03-03", "repair"]


def test_a_record_revoked_after_its_publicity_ended_is_not_published_again_before_the_revocation():
    """A record whose publicity had ended (its maximum period ran out, its licence expired) left
    publicity then; a revocation years later does not make it published between the two dates (the
    revocation's date was taken as the end whatever came first), whether the department revokes it
    or an upheld objection does."""
    pen = record("penalty", "罚〔2019〕5号", "2019-03-04", severity="general", domain="market")  # 2019: max 1 year
    key = decision_key(pen)
    revoked = run([record_event(pen, "2019-03-05"), record_event(dict(pen, revoked=True), "2024-05-06")])
    by_objection = run([record_event(pen, "2019-03-05"),
                        objection("O1", key, "filed", "2021-05-06", arrived="2021-05-06"),
                        objection("O1", key, "upheld", "2021-05-06", "2021-06-01", outcome="revoked",
                                  arrived="2021-06-01")])
    for state in (revoked, by_objection):
        assert "pub" not in (state["facts"].get(key) or {})  # a revoked record keeps no facts
        answer = publicity(state, "2021-01-04", RULES)
        (w,) = answer.withdrawn
        assert answer.published == ()
        assert (w.withdrawn_on, w.withdrawn_by, w.state) == ("2020-03-04", "expiry", "withdrawn")
        assert keys(publicity(state, "2019-06-03", RULES).published) == [key]  # under publicity before its end
        assert [(r.state, r.withdrawn_on) for r in publicity(state, "2024-06-03", RULES).withdrawn] \
            == [("withdrawn", "2020-03-04")]
        report = credit_report(state, "2021-01-04", rules_version="v", generated_at="t", rules=RULES)
        assert report["publicity"]["published"] == [] and report["publicity"]["withdrawn"][0]["withdrawn_on"] == "2020-03-04"
    lic = record("license", "许〔2019〕7号", "2019-08-01", certificate_name="排污许可证", valid_to="2021-07-31")
    state = run([record_event(lic, "2019-08-02"), record_event(dict(lic, revoked=True), "2023-03-01")])
    (w,) = publicity(state, "2022-01-04", RULES).withdrawn
    assert (w.withdrawn_on, w.withdrawn_by) == ("2021-08-01", "expiry")  # the day after its valid_to
    # revoked while still under publicity: withdrawn on the revocation's date, as before
    pen2 = record("penalty", "罚〔2024〕2号", "2024-02-05", severity="general", domain="market")
    state = run([record_event(pen2, "2024-02-06"), record_event(dict(pen2, revoked=True), "2024-04-01")])
    (w,) = publicity(state, "2024-04-02", RULES).withdrawn
    assert (w.withdrawn_on, w.withdrawn_by) == ("2024-04-01", "revoked")


def test_a_licence_is_published_on_its_last_valid_day_and_withdrawn_the_day_after():
    # valid_to (有效期至) is the last day the licence is valid, included (docs/disclosure.md: published
    # "to its valid_to"): on that day it is still under publicity; withdrawn by expiry the next day
    lic = record("license", "许可〔2024〕7号", "2024-07-01", valid_from="2024-07-01", valid_to="2026-12-04")
    key = decision_key(lic)
    state = run([record_event(lic, "2024-07-02")])
    for at in ("2026-12-03", "2026-12-04"):
        view = publicity(state, at, RULES)
        assert [(r.record_key, r.state, r.published_until) for r in view.published] == [
            (key, "published", "2026-12-05")], at
        assert view.withdrawn == (), at
    view = publicity(state, "2026-12-05", RULES)
    assert view.published == ()
    assert [(r.withdrawn_on, r.withdrawn_by, r.published_until) for r in view.withdrawn] == [
        ("2026-12-05", "expiry", "2026-12-05")]
    # the same in the report and the disclosure's views, which read publicity()
    report = credit_report(state, "2026-12-04", rules_version="v", generated_at="t", rules=RULES)
    assert [r["record_key"] for r in report["publicity"]["published"]] == [key] and report["publicity"]["withdrawn"] == []
    assert [r["state"] for r in disclosed_records(state, "2026-12-04", rules=RULES)] == ["published"]
    assert disclosed_records(state, "2026-12-05", rules=RULES) == []
    assert [(r.state, r.withdrawn_on) for r in publicity(state, "2026-12-05", RULES).withdrawn] \
        == [("withdrawn", "2026-12-05")]
    # a licence revoked after it expired left publicity the day after its valid_to, by expiry
    state = run([record_event(lic, "2024-07-02"), record_event(dict(lic, revoked=True), "2026-12-05")])
    (w,) = publicity(state, "2027-01-04", RULES).withdrawn
    assert (w.withdrawn_on, w.withdrawn_by) == ("2026-12-05", "revoked")
    state = run([record_event(lic, "2024-07-02"), record_event(dict(lic, revoked=True), "2026-12-07")])
    (w,) = publicity(state, "2027-01-04", RULES).withdrawn
    assert (w.withdrawn_on, w.withdrawn_by) == ("2026-12-05", "expiry")


def test_a_licence_valid_to_2099_12_31_is_valid_indefinitely():
    # RULES.md 2: "valid to (2099-12-31 means indefinite)": no end of publicity, never withdrawn by expiry
    lic = record("license", "许〔2023〕9号", "2023-08-01", certificate_name="排污许可证", valid_to="2099-12-31")
    state = run([record_event(lic, "2023-08-02")])
    for at in ("2024-01-01", "2099-12-31", "2100-01-01"):
        view = publicity(state, at, RULES)
        assert [(r.published_until, r.withdrawn_by) for r in view.published] == [(None, None)], at
        assert not view.withdrawn, at


def test_a_report_for_a_past_instant_shows_nothing_that_happened_after_it():
    # docs/disclosure.md: "the lists held then and the list history up to then": an objection
    # filed, a court deletion dated, a suspension ended or a record listed after the instant is
    # not in a report for that instant; and what lies ahead of it is projected in the lists held
    # then and in the list history alike
    pen = record("penalty", "环罚〔2026〕8号", "2026-03-02", severity="severe", domain="environment")
    later = record("penalty", "环罚〔2026〕9号", "2026-05-04", severity="severe", domain="environment")
    listing = record("court_listing", "(2026)豫01执8号", "2026-03-02")
    deletion = record("court_deletion", "(2026)豫01执8号", "2026-05-01", deletion_reason="performed")
    key = decision_key(pen)
    state = run([record_event(pen, "2026-03-03"), record_event(listing, "2026-03-03"),
                 objection("O1", key, "filed", "2026-03-20", arrived="2026-03-20"),
                 objection("O1", key, "rejected", "2026-03-20", "2026-04-10", arrived="2026-04-10"),
                 record_event(later, "2026-05-05"),
                 objection("O2", key, "filed", "2026-06-01", arrived="2026-06-01"),
                 objection("O2", key, "rejected", "2026-06-01", "2026-06-10", arrived="2026-06-10"),
                 record_event(deletion, "2026-06-10")])
    # the reviewer's case, one objection filed after the instant: its suspension was shown
    alone = run([record_event(pen, "2026-03-03"), objection("O3", key, "filed", "2026-06-01", arrived="2026-06-01"),
                 objection("O3", key, "rejected", "2026-06-01", "2026-06-10", arrived="2026-06-10")])
    report = credit_report(alone, "2026-04-01", rules_version="v", generated_at="t", rules=RULES)
    assert [(h["list"], h["suspensions"]) for h in report["list_history"]] == [("blacklist:environment", [])]

    report = credit_report(state, "2026-04-01", rules_version="v", generated_at="t", rules=RULES)
    assert state["as_of"] > "2026-04-01" and report["objections"] == [
        {"objection_id": "O1", "record_key": key, "filed": "2026-03-20", "status": "filed", "resolved": None,
         "outcome": None, "provider_verification": False}]
    history = {h["list"]: h for h in report["list_history"]}
    assert sorted(history) == ["blacklist:environment", "court_debtor", "escalated"]
    for h in history.values():
        # still on every list then: no exit, nor what caused it (the deletion of 2026-05-01)
        assert (h["exited"], h["exited_by"], h["exit_projected"], h["entry_projected"]) == (None, None, True, False)
    # suspended by O1 then, its end not known yet; O2 (filed after the instant) not there
    assert history["blacklist:environment"]["suspensions"] == [
        {"since": "2026-03-20", "until": None, "objection": "O1", "ended_by": None}]
    # it rested on the penalty listed by then, not on the one decided after the instant
    assert history["blacklist:environment"]["causes"] == [key]
    # the lists held then: every end lies ahead of the instant, projected, as in the history
    assert [(s["list"], s["until_projected"], s["suspended"]) for s in report["lists"]] == [
        ("blacklist:environment", True, True), ("court_debtor", True, False), ("escalated", True, True)]

    # after the deletion: the exit and its cause show, and they have happened
    report = credit_report(state, "2026-06-15", rules_version="v", generated_at="t", rules=RULES)
    history = {h["list"]: h for h in report["list_history"]}
    assert (history["court_debtor"]["exited"], history["court_debtor"]["exited_by"]["kind"],
            history["court_debtor"]["exit_projected"]) == ("2026-05-01", "deletion", False)
    assert history["blacklist:environment"]["suspensions"][0]["until"] == "2026-04-10"
    assert history["blacklist:environment"]["causes"] == sorted([key, decision_key(later)])
    # past the subject's clock: an exit between the clock and the instant is shown, projected, and
    # the lists held then measure their ends from the same point
    report = credit_report(state, "2030-01-01", rules_version="v", generated_at="t", rules=RULES)
    (black,) = [h for h in report["list_history"] if h["list"] == "blacklist:environment"]
    assert (black["exited"], black["exit_projected"]) == ("2029-05-04", True) and report["lists"] == []
    report = credit_report(state, "2027-01-04", rules_version="v", generated_at="t", rules=RULES)
    (black,) = [h for h in report["list_history"] if h["list"] == "blacklist:environment"]
    assert [(s["list"], s["until"], s["until_projected"]) for s in report["lists"]] == [
        ("blacklist:environment", "2029-05-04", True)] and black["exit_projected"]


def test_a_record_shows_the_end_its_own_period_gave_before_a_later_repair_or_revocation():
    """At an instant before a repair, a revocation or an upheld objection, the record's publicity ends
    where its own period ends (RULES.md 3a: a decision takes effect on its date): not on the later
    decision's date, and not without an end (an audit saw `published_until` 2025-01-10, the date of a
    repair decided nine months after the instant, and null for a record revoked later)."""
    natural = run([record_event(PEN, "2024-02-06")])["facts"][KEY]["pub"][:2]  # [repair_from, the maximum]
    repaired = run([record_event(PEN, "2024-02-06"), repair(KEY, "2025-03-03", arrived="2025-03-04")])
    revoked = run([record_event(PEN, "2024-02-06"), record_event(dict(PEN, revoked=True), "2025-03-03")])
    upheld = run([record_event(PEN, "2024-02-06"),
                  objection("OB1", KEY, "upheld", "2025-02-20", "2025-03-03", arrived="2025-03-03", outcome="revoked")])
    for state in (repaired, revoked, upheld):
        for at in ("2024-04-02", "2025-03-02"):
            (pen,) = publicity(state, at, RULES).published
            assert [pen.repair_from, pen.published_until] == natural, (at, state["records"][KEY].get("status"))
            report = credit_report(state, at, rules_version="v", generated_at="t", rules=RULES)
            assert report["publicity"]["published"][0]["published_until"] == natural[1]
        (w,) = publicity(state, "2025-03-03", RULES).withdrawn
        assert (w.withdrawn_on, w.published_until) == ("2025-03-03", "2025-03-03")
    assert publicity(repaired, "2025-03-02", RULES).published[0].state == "repair_eligible"


def test_the_open_pages_do_not_publish_again_what_has_left_publicity():
    """RULES.md 3: an approved repair ends publication, and so does the period's maximum; 5: a record
    found wrong is revoked. The open pages show, at any instant, only what is still published today:
    an audit saw a repaired penalty's full content on the open page (withdrawn), and as published at
    any earlier instant. The credit report keeps it."""
    state = run([record_event(PEN, "2024-02-06"), repair(KEY, "2025-03-03", arrived="2025-03-04")])
    for now in ("2025-03-03", "2026-12-07"):
        for at in ("2024-03-01", "2025-03-02", now):
            assert disclosed_records(state, at, ("penalty",), rules=RULES, now=now) == [], (at, now)
            assert list_member(state, "blacklist:environment", at, RULES, now=now) is None, (at, now)
    # before the repair, today: published, and at an earlier instant too
    assert keys_of(disclosed_records(state, "2024-03-01", ("penalty",), rules=RULES, now="2025-03-02")) == [KEY]
    assert list_member(state, "blacklist:environment", "2024-03-01", RULES, now="2025-03-02")["since"] == "2024-02-05"
    # the report, for those who hold a token, keeps it
    report = credit_report(state, "2024-03-01", rules_version="v", generated_at="t", rules=RULES)
    assert [r["record_key"] for r in report["publicity"]["published"]] == [KEY]


def keys_of(records):
    return [r["record_key"] for r in records]


def test_the_other_eight_kinds_of_action_are_published():
    """RULES.md 2: "The Henan rules extend publicity to ten kinds of action (许可, 处罚, 强制, 确认, 征收,
    给付, 裁决, 补偿, 奖励, 检查)". An audit saw an enforcement measure and a reward in the state and on no
    page. An action with an adverse finding is negative information: published at most the Henan cap
    (``henan_max_disclosure_years``) from its decision date; any other for as long as it stands."""
    enforcement = record("action", "郑环强〔2024〕3006号", "2024-02-01", action_kind="enforcement",
                         content="查封扣押排污设备", result="已执行", adverse=True, deciding_authority="郑州市生态环境局")
    reward = record("action", "郑环奖〔2025〕3006号", "2025-01-10", action_kind="reward", content="环保先进单位",
                    adverse=False)
    ek, rk = decision_key(enforcement), decision_key(reward)
    state = run([record_event(enforcement, "2024-02-02"), record_event(reward, "2025-01-11")])
    assert RULES.henan_max_disclosure_years == 5
    view = publicity(state, "2025-06-01", RULES)
    assert [(r.record_key, r.kind, r.published_from, r.published_until, r.repair_from, r.state) for r in view.published] \
        == [(ek, "action", "2024-02-01", "2029-02-01", None, "published"),
            (rk, "action", "2025-01-10", None, None, "published")]
    (enf,) = [r for r in view.published if r.record_key == ek]
    assert enf.details == {"action_kind": "enforcement", "action_content": "查封扣押排污设备", "result": "已执行",
                           "adverse": "true", "deciding_authority": "郑州市生态环境局"}
    assert publicity(state, "2024-01-31", RULES).published == ()  # before its decision: not yet
    # the adverse one leaves publicity by expiry at the cap; the reward stays
    later = publicity(state, "2029-02-01", RULES)
    assert keys(later.published) == [rk]
    assert [(r.record_key, r.withdrawn_on, r.withdrawn_by) for r in later.withdrawn] == [(ek, "2029-02-01", "expiry")]
    # the open pages and the report show them as they do penalties and licences
    assert keys_of(disclosed_records(state, "2025-06-01", ("action",), rules=RULES, now="2025-06-01")) == [ek, rk]
    assert keys_of(disclosed_records(state, "2025-06-01", ("action",), rules=RULES, now="2029-02-01")) == [rk]
    report = credit_report(state, "2025-06-01", rules_version="v", generated_at="t", rules=RULES)
    assert [r["record_key"] for r in report["publicity"]["published"]] == [ek, rk]
    # a revoked action is withdrawn on the date of its revoking version
    revoked = run([record_event(enforcement, "2024-02-02"), record_event(dict(enforcement, revoked=True), "2024-05-06")])
    (w,) = publicity(revoked, "2025-01-01", RULES).withdrawn
    assert (w.record_key, w.withdrawn_on, w.withdrawn_by) == (ek, "2024-05-06", "revoked")
    assert keys(publicity(revoked, "2024-05-05", RULES).published) == [ek]
