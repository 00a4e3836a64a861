"""What `replay --verify` compares of a subject's state (ops/replay.py ``comparable``): seen after an
upgrade that merged two records, a correct state was reported as different from its rebuild by its
revision counter and the order of its origins alone."""

from ops.replay import comparable
from tests.builders import record, record_event
from tests.unit.list_inputs import run


def test_arrival_bookkeeping_is_not_a_difference_but_content_is():
    a = record_event(record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment"), "2025-03-05",
                     at="t/0/1")
    b = record_event(record("penalty", "罚1", "2025-03-04", severity="severe", domain="environment"), "2025-03-06",
                     at="t/0/2")  # a re-send: the same decision seen at another origin
    one = run([a, b])
    assert all(len(v["seen"]) == 2 for v in one["records"].values())
    live = dict(one, version=7, sequence=123)
    rebuilt = dict(one, version=2,
                   records={k: dict(v, seen=list(reversed(v["seen"]))) for k, v in one["records"].items()})
    assert live != rebuilt and comparable(live) == comparable(rebuilt)
    changed = dict(one, records={k: dict(v, status="revoked") for k, v in one["records"].items()})
    assert comparable(changed) != comparable(live)
    assert comparable(None) is None
