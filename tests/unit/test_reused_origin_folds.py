"""An origin (``topic/partition/offset``) names one message only within one incarnation of its
topic. A topic deleted and created again, or moved to another cluster without its offsets, starts
again at offset 0: a department's correction then arrives at the origin of a message already
applied. It was taken for a redelivery and dropped without a trace (found with a worker and Apache
Kafka: a revocation sent after the penalty topic was recreated left the penalty active). Now an
input is a redelivery only when its origin was seen with its content; the same origin with another
content is folded as any new input, the same way in every arrival order
(tests/integration/test_reused_origins.py shows it through a worker)."""

from __future__ import annotations

import itertools

from domain import events as ev
from domain.validate import decision_key
from tests.builders import ORG, arrival, objection, record, record_event
from tests.unit.list_inputs import run
from tests.unit.test_history import essence

AT = "creditstream.penalty/1/0"  # offset 0 of partition 1, in both incarnations of the topic


def _penalty(revoked: bool = False) -> dict:
    return dict(record("penalty", "沪罚〔2024〕555号", "2024-05-20", severity="severe", domain="environment"),
                revoked=revoked)


def _essence(state: dict) -> dict:
    """What must not depend on arrival order (tests/unit/test_history.py ``essence``), and the identity."""
    return {**essence(state), "names": state["names"], "ids": state["ids"]}


def test_a_revocation_at_the_origin_of_the_penalty_it_revokes_is_applied_in_every_order():
    penalty = record_event(_penalty(), "2024-05-21", at=AT)
    revocation = record_event(_penalty(revoked=True), "2024-06-03", at=AT)  # the topic recreated meanwhile
    states = []
    for order in itertools.permutations([penalty, revocation]):
        state = run(list(order))
        [entry] = state["records"].values()
        assert entry["status"] == "revoked", order
        assert len(entry["versions"]) == 2
        states.append(_essence(state))
        # each, delivered again, is a redelivery: nothing changes
        for again in order:
            assert _essence(run([again], state)) == _essence(state)
    assert states[0] == states[1]


def test_two_contents_at_one_origin_and_stamp_rank_the_same_in_every_order():
    """A tie on stamp and origin (recreated topic, a producer stamping with the decision date): the
    content hash decides, the same way whichever arrived first."""
    stamp = arrival("2024-05-20")
    a = record_event(_penalty(), "2024-05-20", at=AT, ms=stamp)
    b = record_event(dict(_penalty(), fields={"fine_amount": "5000"}), "2024-05-20", at=AT, ms=stamp)
    winners = {run(list(order))["records"][decision_key(_penalty())]["hash"]
               for order in itertools.permutations([a, b])}
    assert len(winners) == 1


def test_an_objection_resolved_at_a_reused_origin_is_applied():
    key = decision_key(_penalty())
    filed = objection("OBJ-1", key, "filed", "2024-06-01", arrived="2024-06-01", at=AT)
    upheld = objection("OBJ-1", key, "upheld", "2024-06-01", "2024-06-10", arrived="2024-06-10", outcome="revoked",
                       at=AT)
    for order in itertools.permutations([filed, upheld]):
        state = run([record_event(_penalty(), "2024-05-21", at="creditstream.penalty/0/7"), *order])
        assert state["objections"]["OBJ-1"]["status"] == "upheld", order
        assert _essence(run([order[0]], state)) == _essence(state)  # a redelivery still changes nothing


def test_a_registration_at_a_reused_origin_teaches_its_name():
    def registration(name: str) -> dict:
        return dict(record("registration", "", "2007-09-12"), kind="registration", subject_name=name,
                    subject_category="legal_entity", ids={"uscc": ORG})

    old = ev.of_record(ORG, "uscc", "creditstream.registration/2/0", registration("郑州市旧名称商贸有限公司"),
                       arrival("2024-01-02"))
    new = ev.of_record(ORG, "uscc", "creditstream.registration/2/0", registration("郑州市新名称商贸有限公司"),
                       arrival("2024-06-02"))
    for order in itertools.permutations([old, new]):
        state = run(list(order))
        assert state["names"][-1] == "郑州市新名称商贸有限公司", order
        assert _essence(run([order[1]], state)) == _essence(state)
