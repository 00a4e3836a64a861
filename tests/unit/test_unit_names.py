"""A decision's unit named by its code in one input and by its name only in another (RULES.md 2: a
decision is its source unit + document number + subject): the department's revocation, a
correction, the credit office's objection and repair reach the decision whichever way each names
the unit, in every arrival order (domain/state.py ``resolve_key``)."""

from __future__ import annotations

import itertools
import json

from domain.validate import decision_key
from tests.builders import UNIT, objection, record, record_event, repair
from tests.unit.list_inputs import run

NAME = "某单位"  # the builders' unit


def _by_name(rec):
    return dict(rec, source_unit_code=None)


def _listed(state):
    return sorted((state.get("evaluation") or {}).get("lists") or {})


def test_a_revocation_naming_the_unit_by_name_revokes_the_decision_sent_with_its_code_in_every_order():
    penalty = record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment")
    revocation = _by_name(dict(penalty, revoked=True))
    events = [record_event(penalty, "2025-03-05"), record_event(revocation, "2025-04-01")]
    for order in itertools.permutations(events):
        state = run(list(order))
        assert list(state["records"]) == [decision_key(penalty)], state["records"].keys()
        entry = state["records"][decision_key(penalty)]
        assert entry["status"] == "revoked" and entry["version"] == 2
        assert _listed(state) == []


def test_the_code_given_later_moves_a_decision_kept_under_the_name():
    # sent by name only, then corrected by the same unit with its code: one decision, the correction's
    by_name = _by_name(record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment"))
    corrected = dict(record("penalty", "罚1", "2025-03-04", severity="general", domain="environment"))
    states = [run([record_event(a, d1), record_event(b, d2)])
              for (a, d1), (b, d2) in itertools.permutations([(by_name, "2025-03-05"), (corrected, "2025-04-01")])]
    for state in states:
        assert list(state["records"]) == [decision_key(corrected)]
        assert state["records"][decision_key(corrected)]["content"]["severity"] == "general"
        assert state["units"] == {NAME: [UNIT]}
    assert states[0]["evaluation"] == states[1]["evaluation"]


def test_an_objection_naming_the_unit_by_name_suspends_the_listing_of_the_decision_sent_with_its_code():
    penalty = record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment")
    aim_by_name = decision_key(_by_name(penalty))
    assert aim_by_name != decision_key(penalty)
    filed = objection("OB1", aim_by_name, "filed", "2025-03-10", arrived="2025-03-10")
    outcomes = set()
    for order in itertools.permutations([record_event(penalty, "2025-03-05"), filed]):
        state = run(list(order))
        assert state["objections"]["OB1"]["record_key"] == decision_key(penalty)
        lists = state["evaluation"]["lists"]
        assert lists and all(m["suspended"] for m in lists.values()), lists
        outcomes.add(repr(state["evaluation"]))
    assert len(outcomes) == 1


def test_an_objection_giving_the_code_reaches_a_decision_sent_by_name_only():
    # the office gives the unit's name and code; the department sent its decision by name only
    penalty = _by_name(record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment"))
    aim = decision_key(dict(penalty, source_unit_code=UNIT))
    upheld = objection("OB1", aim, "upheld", "2025-03-10", "2025-03-20", arrived="2025-03-20", outcome="revoked",
                       target_unit=(NAME, UNIT))
    for order in itertools.permutations([record_event(penalty, "2025-03-05"), upheld]):
        state = run(list(order))
        assert list(state["records"]) == [aim]
        assert state["evaluation"]["lists"] == {}


def test_a_repair_naming_the_unit_by_name_ends_the_publicity_of_the_decision_sent_with_its_code():
    penalty = record("penalty", "罚1", "2024-03-04", severity="general", domain="market")
    fixed = repair(decision_key(_by_name(penalty)), "2024-07-01", arrived="2024-07-01", doc_no="修1")
    views = set()
    for order in itertools.permutations([record_event(penalty, "2024-03-05"), fixed]):
        state = run(list(order))
        assert list(state["repairs"]) == [decision_key(penalty)]
        assert state["evaluation"]["repairs"][decision_key(penalty)]["applied"] is True
        views.add(repr(state["evaluation"]))
    assert len(views) == 1


def test_a_state_kept_before_learns_its_units_on_its_next_input():
    # a file derived before the units were learned (BASIS_VERSION 8) with the decision under its code
    # and its revocation under the name: its next input (a tick) folds them together
    from tests.builders import tick

    penalty = record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment")
    revocation = _by_name(dict(penalty, revoked=True))
    state = run([record_event(penalty, "2025-03-05")])
    state = dict(state, records={**state["records"]})
    other = run([record_event(revocation, "2025-04-01")])  # (a state of its own: the entry under the name)
    (key,) = other["records"]
    state["records"][key] = other["records"][key]
    state.pop("units")
    state["basis"] = dict(state["basis"], v=8)
    assert len(state["records"]) == 2
    later = run([tick("2025-05-01")], state=state)
    assert list(later["records"]) == [decision_key(penalty)]
    assert later["records"][decision_key(penalty)]["status"] == "revoked"
    assert later["evaluation"]["lists"] == {}


def test_an_upgrade_that_merges_two_records_takes_one_back_from_the_reports_counts():
    # the file of the test above, derived by derivation 8, counted each record in the report (a record
    # per domain, a record per unit); the tick `creditstream rederive` writes (dated at the file's own
    # clock) merges them, and says so: outcome rederived, one record taken back from each count
    from domain.engine import report_counts, step
    from tests.builders import tick
    from tests.unit.list_inputs import CAL, RULES

    penalty = record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment")
    revocation = _by_name(dict(penalty, revoked=True))
    counts: dict[str, int] = {}
    states = []
    for event in (record_event(penalty, "2025-03-05"), record_event(revocation, "2025-04-01")):
        result = step(None, event, RULES, CAL)
        states.append(result.state)
        for field, n in report_counts(event, result).items():
            counts[field] = counts.get(field, 0) + n
    state = dict(states[0], records={**states[0]["records"], **states[1]["records"]})
    state.pop("units")
    state["basis"] = dict(state["basis"], v=8)
    assert counts["domain:environment:records"] == 2 and counts[f"unit:{NAME}:records"] == 2
    rederive = tick(state["as_of"])
    result = step(state, rederive, RULES, CAL)
    assert result.outcome == "rederived"
    for field, n in report_counts(rederive, result).items():
        counts[field] = counts.get(field, 0) + n
    assert counts["domain:environment:records"] == 1 and counts[f"unit:{NAME}:records"] == 1, counts
    assert step(result.state, rederive, RULES, CAL).outcome == "stale-tick"  # current now


def test_a_legal_representatives_file_keys_a_linked_record_as_its_organisation_does():
    # the organisation's severe penalty names the unit by name only; another (general) record of the
    # same unit, not linked, gave its code; the credit office's upheld objection names the penalty by
    # the code: the organisation's penalty is revoked, and so is its copy on the person's file
    from tests.builders import ORG, PERSON, tick

    rep = {"name": "张三", "id_no": PERSON}
    severe = dict(_by_name(record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment")),
                  legal_rep=rep)
    general = record("penalty", "罚2", "2025-03-06", severity="general", domain="market")
    upheld = objection("OB1", decision_key(dict(severe, source_unit_code=UNIT)), "upheld", "2025-03-10", "2025-03-20",
                       arrived="2025-03-20", outcome="revoked")
    inputs = [record_event(severe, "2025-03-05"), record_event(general, "2025-03-07"), upheld]
    answers = set()
    for order in itertools.permutations(inputs):
        orgs, links = _org_steps(list(order))
        org = orgs[ORG]
        person = run([*links, tick("2025-06-02", subject=PERSON)])
        assert org["evaluation"]["lists"] == {}, order
        assert person["evaluation"]["lists"] == {}, [type(e).__name__ for e in order]
        assert list(person["records"]) == [f"linked:{ORG}|{UNIT}|罚1"]
        answers.add(repr(person["evaluation"]))
    assert len(answers) == 1


def test_the_report_counts_a_decision_named_both_ways_once_in_every_order():
    # a decision sent by name only, then its correction with the unit's code (another domain): counted
    # once, under the winning version's unit, date and domain, whichever arrives first
    from tests.unit.test_report_counts import counts_in_every_order

    orig = _by_name(record("penalty", "税罚〔2025〕3号", "2025-09-01", severity="general", domain="taxation"))
    moved = dict(orig, source_unit_code=UNIT, domain="market", fields={"fine_amount": "2.000000"})
    inputs = [record_event(orig, "2025-09-02", at="t/0/1"), record_event(moved, "2025-10-20", at="t/1/1")]
    assert counts_in_every_order(inputs, "domain:") == {(("domain:market:records", 1),)}
    timeliness = counts_in_every_order(inputs, "unit:")
    assert timeliness == {((f"unit:{NAME}:late_workdays_total", 1), (f"unit:{NAME}:on_time", 1),
                           (f"unit:{NAME}:records", 1))}, timeliness


def test_a_name_given_with_two_codes_keeps_a_decision_named_by_it_under_the_least_in_every_order():
    # two units of one name (say two counties' bureaus typed without the county) decided about one
    # subject; a decision naming the unit by that name only goes to the least code, whatever came first
    other = "11410100005200010A"
    assert other < UNIT
    first = record("penalty", "罚1", "2025-03-04", severity="general", domain="market")
    second = dict(record("penalty", "罚2", "2025-03-05", severity="general", domain="market"), source_unit_code=other)
    by_name = _by_name(record("penalty", "罚1", "2025-03-06", severity="severe", domain="environment"))
    events = [record_event(first, "2025-03-05"), record_event(second, "2025-03-06"), record_event(by_name, "2025-03-07")]
    keys = {tuple(sorted(run(list(order))["records"])) for order in itertools.permutations(events)}
    assert keys == {(f"penalty|{other}|罚1", f"penalty|{other}|罚2", f"penalty|{UNIT}|罚1")}, keys


def _org_steps(inputs, at="2025-06-02"):
    """Every organisation's file after ``inputs`` (and a tick), and the links they sent, in the order sent."""
    from domain.engine import step
    from tests.builders import tick
    from tests.unit.list_inputs import CAL, RULES

    orgs, links = {}, []
    for event in [*inputs, *(tick(at, subject=s) for s in sorted({e.subject for e in inputs}))]:
        result = step(orgs.get(event.subject), event, RULES, CAL)
        orgs[event.subject] = result.state
        links += result.links
    return orgs, links


def _org_and_person_files(inputs, at="2025-06-02"):
    """Every organisation's file after ``inputs`` (and a tick), and its legal representative's after
    every link they sent, in the order sent."""
    from tests.builders import PERSON, tick

    orgs, links = _org_steps(inputs, at)
    return orgs, run([*links, tick(at, subject=PERSON)])


ORG2 = "91410105000010460L"


def _mirrors(orgs, person):
    """The person's linked records are keyed as their organisations key them, and suspended as they are."""
    from domain.state import linked_key

    expected = {linked_key(key, sid) for sid, org in orgs.items() for key in org["records"]
                if any((c.get("legal_rep") or {}).get("id_no") for c in [org["records"][key].get("content") or {}])}
    assert set(person["records"]) == expected, (sorted(person["records"]), sorted(expected))
    # what the credit office decided reaches the person's copy of the record it reaches on the organisation's
    aimed = {linked_key(o["record_key"], sid) for sid, org in orgs.items() for o in (org.get("objections") or {}).values()
             if o["record_key"] in org["records"]}
    assert aimed == {o["record_key"] for o in (person.get("objections") or {}).values()} & set(person["records"])


def test_a_legal_representative_of_two_organisations_keys_each_ones_records_as_it_does():
    # one unit name; the first company's decision gives its code, the second company's names it by the
    # name only and so does its objection: the second company is suspended, and so is its record on the
    # person's file, which learned the code from the first company's record (seen: not suspended there)
    from tests.builders import PERSON

    rep = {"name": "李建国", "id_no": PERSON}
    first = dict(record("penalty", "新环罚〔2025〕46号", "2025-01-02", severity="severe", domain="environment"),
                 legal_rep=rep)
    second = dict(_by_name(record("penalty", "新环罚〔2025〕56号", "2025-01-06", severity="severe",
                                  domain="environment")), legal_rep=rep)
    filed = objection("OB56", decision_key(second), "filed", "2025-03-03", arrived="2025-03-03", subject=ORG2)
    inputs = [record_event(first, "2025-01-03"), record_event(second, "2025-01-07", subject=ORG2), filed]
    for order in itertools.permutations(inputs):
        orgs, person = _org_and_person_files(list(order))
        assert orgs[ORG2]["evaluation"]["lists"]["blacklist:environment"]["suspended"]
        _mirrors(orgs, person)


def test_a_legal_representatives_file_follows_a_code_its_organisation_learns_late_in_every_order():
    # a name-only severe decision and a name-only objection; then another decision of the unit gives its
    # code (the organisation moves both under it and sends its links again); then the objection is
    # rejected: the person's file moves with it, and ends as the organisation's in every order
    from tests.builders import PERSON

    rep = {"name": "张三", "id_no": PERSON}
    severe = dict(_by_name(record("penalty", "罚1", "2025-03-01", severity="severe", domain="environment")),
                  legal_rep=rep)
    coded = record("penalty", "罚2", "2025-03-20", severity="general", domain="market")
    filed = objection("OB1", decision_key(severe), "filed", "2025-03-03", arrived="2025-03-03")
    rejected = objection("OB1", decision_key(severe), "rejected", "2025-03-03", "2025-03-25", arrived="2025-03-25")
    inputs = [record_event(severe, "2025-03-02"), filed, record_event(coded, "2025-03-21"), rejected]
    persons = set()
    for order in itertools.permutations(inputs):
        orgs, person = _org_and_person_files(list(order))
        _mirrors(orgs, person)
        persons.add(repr((sorted(person["records"]), person["evaluation"], person["timeline"])))
    assert len(persons) == 1


def test_a_legal_representative_is_told_every_change_when_his_organisation_learns_a_code():
    # seen: a name-only severe decision, then its correction with the unit's code; the organisation sent
    # its versions again with the code's pair; the person's file took the first as a redelivery that
    # moved his record (and derived it), which the subject agent drops: the next input withdrew a change
    # never announced, and a subscriber folding the topic kept the person listed. A step that changes
    # anything is no redelivery; folding what the person's steps announce gives his history
    from domain.engine import fold_changes, step
    from domain.history import history_of
    from tests.builders import PERSON, tick
    from tests.unit.list_inputs import CAL, RULES

    rep = {"name": "王五", "id_no": PERSON}
    severe = dict(_by_name(record("penalty", "罚1", "2025-03-01", severity="severe", domain="environment")),
                  legal_rep=rep)
    corrected = dict(severe, source_unit_code=UNIT, severity="general")
    events = [record_event(severe, "2025-03-02"), record_event(corrected, "2025-03-20")]
    for order in itertools.permutations(events):
        _, links = _org_steps(list(order))
        person, announced = None, []
        for event in [*links, tick("2025-06-02", subject=PERSON)]:
            result = step(person, event, RULES, CAL)
            if result.outcome == "redelivered":  # as agents/subject.py: nothing stored, nothing announced
                assert not result.changes and (person is None or result.state == person), event
                continue
            person, announced = result.state, announced + result.changes
        folded = {cid: (c["list"], c["transition"], c["effective_date"]) for cid, c in fold_changes(announced).items()}
        history = {cid: (c["list"], c["transition"], c["effective_date"]) for cid, c in history_of(person).items()}
        assert folded == history, order


def test_an_upgrade_that_merges_a_persons_linked_copies_leaves_the_units_counts_alone():
    # the report's timeliness counts a department's own records, never their copies on a legal
    # representative's file; seen: an upgrade merging a person's two linked copies took one record (and
    # one late one) off the unit's counts, which then read below what a fresh run gives
    from domain import events as ev
    from domain.engine import report_counts, step
    from tests.builders import PERSON, arrival, tick
    from tests.unit.list_inputs import CAL, RULES

    rep = {"name": "张三", "id_no": PERSON}
    penalty = dict(record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment"), legal_rep=rep)
    revocation = _by_name(dict(penalty, revoked=True))
    from tests.builders import ORG

    states = [step(None, ev.linked(PERSON, "张三", ORG, f"t/0/{i}", rec, arrival(day)), RULES, CAL).state
              for i, (rec, day) in enumerate([(penalty, "2025-03-05"), (revocation, "2025-04-01")])]
    state = dict(states[0], records={**states[0]["records"], **states[1]["records"]})
    state.pop("units", None)
    state["basis"] = dict(state["basis"], v=8)
    assert len(state["records"]) == 2
    rederive = tick(state["as_of"], subject=PERSON)
    result = step(state, rederive, RULES, CAL)
    assert len(result.state["records"]) == 1
    counts = report_counts(rederive, result)
    assert not [k for k in counts if k.startswith("unit:")], counts
    assert counts.get("domain:environment:records") == -1, counts


def test_a_unit_name_with_a_bar_is_kept_apart_from_the_unit_it_begins_with():
    # seen: 「郑州市生态环境局｜二七分局」 (the full-width bar normalised to |) was read as the unit
    # 郑州市生态环境局, and its decision keyed under that unit's code; it is a name of its own, never
    # joined to a code (docs/events.md, Identity)
    parent = record("penalty", "罚1", "2025-03-04", severity="general", domain="market")
    branch = dict(_by_name(record("penalty", "罚2", "2025-03-05", severity="general", domain="market")),
                  source_unit=f"{NAME}|二七分局")
    revocation = dict(branch, revoked=True, decision_date="2025-03-05")
    for order in itertools.permutations([record_event(parent, "2025-03-05"), record_event(branch, "2025-03-06"),
                                         record_event(revocation, "2025-03-09")]):
        state = run(list(order))
        assert sorted(state["records"]) == [decision_key(parent), f"penalty|{NAME}¦二七分局|罚2"]
        assert state["records"][f"penalty|{NAME}¦二七分局|罚2"]["status"] == "revoked"


def _two_codes_inputs(office):
    """A name given with two codes (``OTHER`` < the builders' ``UNIT``) by two decisions, a third
    decision sent by the name only, and ``office``'s input naming that decision by the name only."""
    first = record("penalty", "罚2", "2025-03-04", severity="general", domain="market")
    second = dict(record("penalty", "罚3", "2025-03-05", severity="general", domain="market"), source_unit_code=OTHER)
    by_name = _by_name(record("penalty", "罚1", "2025-03-06", severity="severe", domain="environment"))
    return [record_event(first, "2025-03-05"), record_event(second, "2025-03-06"), record_event(by_name, "2025-03-07"),
            office(decision_key(by_name))]


OTHER = "11410100005200010A"


def test_an_objection_by_a_name_given_with_two_codes_reaches_the_decision_by_that_name_in_every_order():
    # the objection named the unit by its name while only one of its codes was known: when the lesser
    # code comes, the decision by that name moves to it, and the objection follows (it named the name)
    assert OTHER < UNIT
    aim = f"penalty|{OTHER}|罚1"
    views = set()
    for order in itertools.permutations(_two_codes_inputs(
            lambda key: objection("OB1", key, "filed", "2025-03-10", arrived="2025-03-10"))):
        state = run([*order])
        assert state["objections"]["OB1"]["record_key"] == aim, [e.__class__.__name__ for e in order]
        lists = state["evaluation"]["lists"]
        assert lists and all(m["suspended"] for m in lists.values()), lists
        views.add(json.dumps(state["evaluation"], sort_keys=True))
    assert len(views) == 1


def test_a_repair_by_a_name_given_with_two_codes_reaches_the_decision_by_that_name_in_every_order():
    aim = f"penalty|{OTHER}|罚1"
    views = set()
    for order in itertools.permutations(_two_codes_inputs(
            lambda key: repair(key, "2025-09-01", arrived="2025-09-01", doc_no="修1"))):
        state = run([*order])
        assert list(state["repairs"]) == [aim], [e.__class__.__name__ for e in order]
        views.add(json.dumps(state["evaluation"], sort_keys=True))
    assert len(views) == 1


def test_an_objection_by_code_stays_with_that_code_when_the_name_is_given_a_lesser_one():
    # named by the code the office gave: the decision of that code, whatever the name stands for later
    first = record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment")
    second = dict(record("penalty", "罚3", "2025-03-05", severity="general", domain="market"), source_unit_code=OTHER)
    filed = objection("OB1", decision_key(first), "filed", "2025-03-10", arrived="2025-03-10")
    for order in itertools.permutations([record_event(first, "2025-03-05"), record_event(second, "2025-03-06"), filed]):
        state = run([*order])
        assert state["objections"]["OB1"]["record_key"] == decision_key(first)


def test_a_legal_representatives_file_follows_an_objection_and_a_repair_by_a_name_given_with_two_codes():
    # the organisation's objection and repair name its severe decision's unit by the name, which two
    # decisions gave with two codes: the person's copies aim where the organisation's do, suspended
    # as it is, in every order, and what his steps announce folds to his history
    from domain.engine import fold_changes, step
    from domain.history import history_of
    from domain.state import linked_key
    from tests.builders import ORG, PERSON, tick
    from tests.unit.list_inputs import CAL, RULES

    rep = {"name": "赵六", "id_no": PERSON}
    severe = dict(_by_name(record("penalty", "罚1", "2025-03-06", severity="severe", domain="environment")),
                  legal_rep=rep)
    first = record("penalty", "罚2", "2025-03-04", severity="general", domain="market")
    second = dict(record("penalty", "罚3", "2025-03-05", severity="general", domain="market"), source_unit_code=OTHER)
    filed = objection("OB1", decision_key(severe), "filed", "2025-03-10", arrived="2025-03-10")
    fixed = repair(decision_key(severe), "2026-09-01", arrived="2026-09-01", doc_no="修1")
    inputs = [record_event(first, "2025-03-05"), record_event(second, "2025-03-06"), record_event(severe, "2025-03-07"),
              filed, fixed]
    aim = f"penalty|{OTHER}|罚1"
    persons = set()
    for order in itertools.permutations(inputs):
        orgs, links = _org_steps(list(order))
        org = orgs[ORG]
        assert org["objections"]["OB1"]["record_key"] == aim and list(org["repairs"]) == [aim]
        person, announced = None, []
        for event in [*links, tick("2025-06-02", subject=PERSON)]:
            result = step(person, event, RULES, CAL)
            if result.outcome == "redelivered":  # as agents/subject.py: nothing stored, nothing announced
                continue
            person, announced = result.state, announced + result.changes
        _mirrors({ORG: org}, person)
        assert set(person["repairs"]) == {linked_key(aim, ORG)}, (order, person["repairs"])
        assert all(m["suspended"] for m in person["evaluation"]["lists"].values()), person["evaluation"]["lists"]
        folded = {cid: (c["list"], c["transition"], c["effective_date"]) for cid, c in fold_changes(announced).items()}
        assert folded == {cid: (c["list"], c["transition"], c["effective_date"])
                          for cid, c in history_of(person).items()}, order
        # the units too (an audit: the person's file kept the greater code in some orders, not in others)
        persons.add(json.dumps([sorted(person["records"]), person["evaluation"], person["timeline"], person["units"]],
                               sort_keys=True))
    assert len(persons) == 1, len(persons)


def test_a_repair_by_name_sent_again_after_the_lesser_code_came_is_a_duplicate():
    # seen (an audit, Redis restored to an earlier write, the inputs re-read): the repair named the unit
    # by its name while only the greater code was known; the lesser came; the repair sent again went to
    # the lesser's decision and ended its listing, where the first copy had stayed with the greater
    from domain.engine import step
    from tests.unit.list_inputs import CAL, RULES

    by_name = _by_name(record("penalty", "罚1", "2024-06-03", severity="severe", domain="environment"))
    greater = record("penalty", "罚2", "2024-06-10", severity="general", domain="market")
    lesser = dict(record("penalty", "罚3", "2024-06-12", severity="general", domain="market"), source_unit_code=OTHER)
    fixed = repair(decision_key(by_name), "2025-01-06", arrived="2025-01-06", doc_no="修1", at="office/0/1")
    again = repair(decision_key(by_name), "2025-01-06", arrived="2025-01-06", doc_no="修1", at="office/0/2")
    state = None
    for event in (record_event(by_name, "2024-06-05"), record_event(greater, "2024-06-11"), fixed,
                  record_event(lesser, "2024-06-13")):
        state = step(state, event, RULES, CAL).state
    assert list(state["repairs"]) == [f"penalty|{OTHER}|罚1"] == [k for k in state["records"] if k.endswith("罚1")]
    result = step(state, again, RULES, CAL)
    assert result.outcome == "duplicate" and result.changes == []
    assert result.state["evaluation"] == state["evaluation"]


def test_a_legal_representatives_file_kept_before_keeps_the_code_a_name_stands_for_after_its_next_input():
    # an upgrade (an audit): a file derived by derivation 9 kept every code its organisation had sent for
    # a unit name ([Ca, Cb] in some arrival orders, [Ca] in others); derived again, it keeps [Ca], as a
    # file built by this version does, and `replay --verify` no longer reports "differs in units"
    from domain.state import LINKED_SCOPE_END
    from tests.builders import PERSON, tick

    rep = {"name": "赵六", "id_no": PERSON}
    severe = dict(_by_name(record("penalty", "罚1", "2025-03-06", severity="severe", domain="environment")),
                  legal_rep=rep)
    greater = dict(record("penalty", "罚2", "2025-03-04", severity="general", domain="market"))
    lesser = dict(record("penalty", "罚3", "2025-03-05", severity="general", domain="market"), source_unit_code=OTHER)
    _, person = _org_and_person_files([record_event(severe, "2025-03-07"), record_event(greater, "2025-03-08"),
                                       record_event(lesser, "2025-03-09")])
    (name,) = [n for n in person["units"] if LINKED_SCOPE_END in n]
    assert person["units"][name] == [OTHER]
    kept = dict(person, units={**person["units"], name: [OTHER, UNIT]}, basis=dict(person["basis"], v=9))
    later = run([tick("2025-06-03", subject=PERSON)], state=kept)
    assert later["units"] == person["units"]
    assert later["records"].keys() == person["records"].keys()
    assert later["evaluation"]["lists"] == person["evaluation"]["lists"]
