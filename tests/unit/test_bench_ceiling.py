"""bench/ceiling.py: the stand-ins ``make bench-ceiling`` runs a worker with, in place of the domain
work, so that the benchmark measures what the plumbing alone allows."""

from __future__ import annotations

import pytest

import agents.ingest
import agents.subject
from bench import ceiling
from bench.inputs import generate
from creditstream.connections import make_codec
from creditstream.settings import Settings
from domain import events
from domain.attach import Attached, plan
from domain.engine import report_counts, step
from domain.validate import normalise_event


@pytest.fixture
def restored():
    """The agents' module names as they were, whatever the test installed."""
    saved = agents.subject.step, agents.ingest.normalise_event
    yield
    agents.subject.step, agents.ingest.normalise_event = saved


def test_the_stand_in_record_attaches_every_benchmark_input_to_the_subject_its_body_names():
    codec = make_codec(Settings())
    attached = 0
    for _kind, raw in generate(300, 100, seed=7):
        try:
            name, body = codec.decode(raw)
        except Exception:  # noqa: BLE001 - the benchmark's malformed inputs: dead letters in the worker too
            continue
        target = plan(ceiling.stand_in_record(name, body, event_time_ms=0))
        assert isinstance(target, Attached)
        real = normalise_event(name, body, event_time_ms=0)
        ids = real.get("ids") if isinstance(real, dict) else None
        if ids and ids.get("uscc"):  # the same subject as the real validation names, where it names a USCC
            assert target.subject_id == ids["uscc"]
        attached += 1
    assert attached > 290


def test_the_stand_in_step_counts_a_subjects_inputs_as_new_department_inputs():
    event = events.of_record("91410800M00008J03K", "uscc", "bench/0/1", {"kind": "penalty"}, 1_700_000_000_000)
    first = ceiling.stand_in_step(None, event)
    second = ceiling.stand_in_step(first.state, event)
    assert (first.state["n"], second.state["n"]) == (1, 2)
    assert second.state["id"] == "91410800M00008J03K"
    assert (second.outcome, second.changes, second.links, second.touched) == ("new", [], [], frozenset())
    # the benchmark's progress counter moves as for the real rules
    assert report_counts(event, second)["inputs"] == 1


def test_install_replaces_the_agents_calls_into_the_rules_core_and_nothing_else(restored):
    import domain.engine
    import domain.validate

    ceiling.install("subject")
    assert agents.subject.step is ceiling.stand_in_step
    assert agents.ingest.normalise_event is normalise_event  # the ingest agent's own
    ceiling.install("domain")
    assert agents.ingest.normalise_event is ceiling.stand_in_record
    # the rules core itself is untouched: other users of it in this process are not affected
    assert domain.engine.step is step and domain.validate.normalise_event is normalise_event


def test_an_unknown_level_is_refused(restored, capsys):
    with pytest.raises(ValueError, match="one of subject, domain"):
        ceiling.install("everything")
    assert ceiling.main([]) == 2
    assert ceiling.main(["nothing", "worker"]) == 2
    assert "usage: python -m bench.ceiling" in capsys.readouterr().err


def test_every_department_input_makes_a_plain_record_event_under_the_stand_in():
    # an objection, a repair or a feedback made with its kind would need its own fields (objection_id,
    # target_key, change_id): the ingest agent would dead-letter it as a processing error
    from domain.kinds import INGEST_SCHEMAS
    from streams.samples import sample_event

    for schema in sorted(INGEST_SCHEMAS):
        record = ceiling.stand_in_record(schema, sample_event(schema), event_time_ms=0)
        target = plan(record)
        event = events.of_record(target.subject_id, target.id_kind, "bench/0/1", record, 0)
        assert isinstance(event, events.RecordEvent), schema
        assert event.record["schema"] == schema
