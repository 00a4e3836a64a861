"""Decisions attached through a legacy number follow the number (存量代码转换, RULES.md 1, 3a), against
a real redis-server: the ingest and registry agents run their batches (the broker left out: a
checkpoint without a producer collects what a batch would produce), and what they produce for the
subject-event log is applied by the rules core, subject by subject. Whatever order the registrations
and the departments' records arrive in, each organisation ends with the same records and lists."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest
from aiokafka import ConsumerRecord

from agents.ingest import IngestAgent
from agents.registry import RegistryAgent
from domain import events
from domain.calendar import WorkingCalendar
from domain.engine import report_counts, step
from domain.rulebook import load_rulebook
from sinks.keys import Keys
from sinks.registry_index import RegistryIndex
from streams import samples
from streams.codec import AvroCodec
from streams.samples import sample_event, schema_of
from streams.topics import Topics

pytestmark = pytest.mark.integration

OLD_HOLDER = "91310110666007217T"
NEW_HOLDER = "91310115591693856A"
NUMBER = samples.COMPANY_REG_NO
RULES, CAL = load_rulebook(), WorkingCalendar()
TODAY = "2026-11-30"


def _message(codec, topics, kind, partition, offset, record, ts):
    value = codec.encode(schema_of(kind), record)
    return ConsumerRecord(topic=topics.for_kind(kind), partition=partition, offset=offset, timestamp=ts,
                          timestamp_type=0, key=None, value=value, checksum=None, serialized_key_size=0,
                          serialized_value_size=len(value), headers=())


def _by_number(doc, date, **fields):
    return sample_event("penalty", uscc=None, org_code=None, reg_no=NUMBER, decision_doc_no=doc, severity="严重",
                        domain="environment", decision_date=date, **fields)


def _inputs(case):
    """name -> (agent kind, kind, partition, record, stamp): the case's inputs."""
    import datetime as dt

    d = dt.date.fromisoformat
    both = {
        "penalty": ("ingest", "penalty", 0, _by_number("郑环罚〔2026〕7号", d("2026-02-02")), 1770000000000),
        "resent": ("ingest", "penalty", 1, _by_number("郑环罚〔2026〕7号", d("2026-02-02")), 1770500000000),
        "corrected": ("ingest", "penalty", 2, _by_number("郑环罚〔2026〕7号", d("2026-02-02"), fine_amount=Decimal("300")),
                      1771000000000),
    }
    if case == "moved":  # the number registered to one organisation, then (later dated) to another
        return {**both,
                "old": ("registry", "registration", 0, sample_event(
                    "registration", uscc=OLD_HOLDER, reg_no=NUMBER, registered_at=d("2007-05-09")), 1769000000000),
                "new": ("registry", "registration", 1, sample_event(
                    "registration", uscc=NEW_HOLDER, reg_no=NUMBER, registered_at=d("2020-03-02")), 1769100000000)}
    # a department's typing error: its record names OLD_HOLDER beside NEW_HOLDER's number; the
    # registration authority's registration of NEW_HOLDER outranks what it taught
    return {**both,
            "typo": ("ingest", "penalty", 3, sample_event(
                "penalty", uscc=OLD_HOLDER, reg_no=NUMBER, decision_doc_no="郑市监罚〔2026〕1号",
                severity="一般", domain="taxation", decision_date=d("2026-01-05")), 1769500000000),
            "new": ("registry", "registration", 1, sample_event(
                "registration", uscc=NEW_HOLDER, reg_no=NUMBER, registered_at=d("2020-03-02")), 1771500000000)}


async def _run(redis, settings, case, order, tag):
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    keys = Keys(f"{settings.namespace}-{tag}")
    index = RegistryIndex(redis, keys)
    agents = {"ingest": IngestAgent(topics=topics, codec=codec, index=index, producer=None),
              "registry": RegistryAgent(topics=topics, codec=codec, index=index, producer=None)}
    inputs = _inputs(case)
    produced = []
    for offset, name in enumerate(order):
        agent_name, kind, partition, record, ts = inputs[name]
        agent = agents[agent_name]
        checkpoint = agent.checkpoint()
        await agent.process([_message(codec, topics, kind, partition, offset, record, ts)], checkpoint)
        await checkpoint.complete()
        assert not [m for m in checkpoint.collected if m.topic == topics.dead_letters], name
        produced += [events.decode(m.value) for m in checkpoint.collected if m.topic == topics.subject_events]
    return produced, index


def _files(produced, shuffle_seed=None):
    """Every subject's file from the subject events, in the order produced (or shuffled: the log's
    partitions and two workers interleave them otherwise), links routed as the worker routes them."""
    queue = list(produced)
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(queue)
    files: dict = {}
    inputs = 0  # as creditstream report counts the department inputs applied
    while queue:
        event = queue.pop(0)
        result = step(files.get(event.subject), event, RULES, CAL)
        if result.outcome != "redelivered":
            inputs += report_counts(event, result).get("inputs", 0)
        files[event.subject] = result.state
        queue += result.links
    files = {sid: step(state, events.tick(sid, TODAY), RULES, CAL).state for sid, state in files.items()}
    files["inputs"] = inputs
    return files


def _held(files, sid):
    state = files.get(sid) or {}
    records = {k: e["content"]["fields"].get("fine_amount") for k, e in (state.get("records") or {}).items()
               if e.get("content") is not None}
    return tuple(sorted(records.items())), tuple(sorted((state.get("evaluation") or {}).get("lists") or {}))


@pytest.mark.parametrize("case", ["moved", "typo"])
async def test_decisions_by_a_number_end_with_the_organisation_it_names_in_any_arrival_order(redis, settings, case):
    names = list(_inputs(case))
    results = set()
    for n, order in enumerate(itertools.permutations(names)):
        if n % 3 and len(names) > 4:  # (120 orders: every third, and all of the first names' places)
            continue
        produced, _ = await _run(redis, settings, case, order, f"{case}{n}")
        for seed in (None, n):
            files = _files(produced, seed)
            # every message counted once (creditstream report's inputs applied), whatever moved
            assert files.pop("inputs") == len(order)
            got = (_held(files, OLD_HOLDER), _held(files, NEW_HOLDER))
            results.add(got)
            if len(results) > 1:
                pytest.fail(f"order {order} (shuffle {seed}) gives {got}; another gave {results - {got}}")
    (old, new), = results
    assert new[1] == ("blacklist:environment",) and [fine for _key, fine in new[0]] == ["300.000000"], new
    assert "blacklist:environment" not in old[1]
    if case == "typo":  # its own record stays
        assert len(old[0]) == 1


async def test_a_move_whose_produce_failed_is_sent_again_until_it_is_through(redis, settings):
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    index = RegistryIndex(redis, Keys(settings.namespace))
    ingest = IngestAgent(topics=topics, codec=codec, index=index, producer=None)
    registry = RegistryAgent(topics=topics, codec=codec, index=index, producer=None)
    inputs = _inputs("moved")
    for name, offset in (("old", 0), ("penalty", 1)):
        agent = registry if name == "old" else ingest
        _, kind, partition, record, ts = inputs[name]
        checkpoint = agent.checkpoint()
        await agent.process([_message(codec, topics, kind, partition, offset, record, ts)], checkpoint)
        await checkpoint.complete()
    _, kind, partition, record, ts = inputs["new"]
    new = _message(codec, topics, kind, partition, 0, record, ts)
    from creditstream import metrics

    moved_before = metrics.MOVED._value.get()
    for _ in range(3):  # the worker retries a batch while the broker refuses it (seen lost after two)
        failed = registry.checkpoint()
        await registry.process([new], failed)  # its complete() never runs: the broker refused
    retried = registry.checkpoint()
    await registry.process([new], retried)
    await retried.complete()
    produced = [events.decode(m.value) for m in retried.collected if m.topic == topics.subject_events]
    notices = [e for e in produced if isinstance(e, events.DetachedEvent)]
    assert [(e.subject, e.to, e.gen) for e in notices] == [(OLD_HOLDER, NEW_HOLDER, 1)]
    assert [(e.subject, e.attach_gen) for e in produced if isinstance(e, events.RecordEvent)
            and e.record["kind"] == "penalty"] == [(NEW_HOLDER, 1)]
    assert metrics.MOVED._value.get() - moved_before == 1  # one move, counted once (it counted each attempt)
    again = registry.checkpoint()
    await registry.process([new], again)
    await again.complete()
    assert not [m for m in again.collected if m.topic == topics.subject_events
                and isinstance(events.decode(m.value), events.DetachedEvent)]


def _batch_of(codec, topics, agent, complete=True):
    """Runs one message through ``agent`` as a batch; returns the subject events it produced (none
    reach the log unless ``complete``: the broker refused the batch)."""
    async def run(kind, partition, offset, record, ts):
        checkpoint = agent.checkpoint()
        await agent.process([_message(codec, topics, kind, partition, offset, record, ts)], checkpoint)
        if not complete:
            return []
        await checkpoint.complete()
        return [events.decode(m.value) for m in checkpoint.collected if m.topic == topics.subject_events]
    return run


def _copies_at(produced, subject, origin):
    return [e for e in produced if isinstance(e, events.RecordEvent) and e.subject == subject and e.origin == origin]


def _counted_in_both_orders(first, second):
    """The department inputs counted (creditstream report) and what each organisation holds, when the
    subject events of ``first`` reach the log before those of ``second``, and after them (two workers)."""
    out = set()
    for order in (first + second, second + first):
        files = _files(order)
        out.add((files.pop("inputs"), _held(files, OLD_HOLDER), _held(files, NEW_HOLDER)))
    return out


async def test_a_resend_between_a_moves_script_and_its_read_reaches_the_new_holder_once(redis, settings):
    """Two workers: the registry's batch moves the number's decision; before it reads the decision's
    sightings, the other worker's ingest batch attaches a re-send of it straight to the new holder.
    The move sends no copy of that re-send, so the input is counted once in every order the two
    workers' subject events reach the log (a copy of the move's arriving first made the ingest's a
    re-delivery, not counted: progress one short for ever)."""
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    index = RegistryIndex(redis, Keys(settings.namespace))
    ingest = _batch_of(codec, topics, IngestAgent(topics=topics, codec=codec, index=index, producer=None))
    registry = _batch_of(codec, topics, RegistryAgent(topics=topics, codec=codec, index=index, producer=None))
    inputs = _inputs("moved")
    before = await registry(*_at(inputs, "old", 0)) + await ingest(*_at(inputs, "penalty", 0))
    during: list = []
    read_moves = index._moved

    async def read_after_the_other_workers_batch(flat):
        if flat and not during:
            during.extend(await ingest(*_at(inputs, "resent", 0)))
        return await read_moves(flat)

    index._moved = read_after_the_other_workers_batch
    moves = await registry(*_at(inputs, "new", 0))
    assert during, "the ingest batch ran between the move's script and its read"
    resend = during[0].origin
    assert [e.subject for e in _copies_at(during + moves, NEW_HOLDER, resend)] == [NEW_HOLDER]
    (counted, old, new), = _counted_in_both_orders(before + during, moves)  # (one result in both orders)
    assert counted == 4 and new[1] == ("blacklist:environment",) and "blacklist:environment" not in old[1]


async def test_a_resend_while_a_move_waits_to_be_sent_again_reaches_the_new_holder_once(redis, settings):
    """The move's produce failed (the broker refused the registry's batch); a re-send arrives and is
    attached straight to the new holder at the move's generation; the retried batch sends the move
    again without a copy of that re-send: counted once in either order."""
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    index = RegistryIndex(redis, Keys(settings.namespace))
    ingest = _batch_of(codec, topics, IngestAgent(topics=topics, codec=codec, index=index, producer=None))
    registry_agent = RegistryAgent(topics=topics, codec=codec, index=index, producer=None)
    registry = _batch_of(codec, topics, registry_agent)
    inputs = _inputs("moved")
    before = await registry(*_at(inputs, "old", 0)) + await ingest(*_at(inputs, "penalty", 0))
    await _batch_of(codec, topics, registry_agent, complete=False)(*_at(inputs, "new", 0))
    during = await ingest(*_at(inputs, "resent", 0))
    assert [e.attach_gen for e in during if isinstance(e, events.RecordEvent)] == [1]
    retried = await registry(*_at(inputs, "new", 0))
    [first] = [e for e in before if isinstance(e, events.RecordEvent) and e.record["kind"] == "penalty"]
    assert len(_copies_at(retried, NEW_HOLDER, first.origin)) == 1  # the first sighting's copy is sent
    assert _copies_at(retried, NEW_HOLDER, during[0].origin) == []
    (counted, old, new), = _counted_in_both_orders(before + during, retried)
    assert counted == 4 and new[1] == ("blacklist:environment",) and "blacklist:environment" not in old[1]
    # acknowledged: what the move left out is forgotten (a later move sends every sighting again)
    assert await redis.hget(Keys(settings.namespace).attached, f"#{first.hash[:16]}|d") is None


async def test_a_message_read_again_while_a_move_waits_keeps_its_copy_with_the_move(redis, settings):
    """The ingest batch that sent the penalty to the old holder is read again (its commit never landed)
    while the number's move waits to be sent again: its first reading went to the old holder and was
    counted there, so it is not one the move may leave out (review: the move sent no copy of it, and
    the new holder counted it a second time in every order)."""
    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    index = RegistryIndex(redis, Keys(settings.namespace))
    ingest = _batch_of(codec, topics, IngestAgent(topics=topics, codec=codec, index=index, producer=None))
    registry_agent = RegistryAgent(topics=topics, codec=codec, index=index, producer=None)
    inputs = _inputs("moved")
    before = await _batch_of(codec, topics, registry_agent)(*_at(inputs, "old", 0)) \
        + await ingest(*_at(inputs, "penalty", 0))
    await _batch_of(codec, topics, registry_agent, complete=False)(*_at(inputs, "new", 0))
    again = await _batch_of(codec, topics, IngestAgent(topics=topics, codec=codec, index=index, producer=None))(
        *_at(inputs, "penalty", 0))
    retried = await _batch_of(codec, topics, registry_agent)(*_at(inputs, "new", 0))
    [read_again] = [e for e in again if isinstance(e, events.RecordEvent)]
    assert (read_again.subject, read_again.attach_gen) == (NEW_HOLDER, 1)
    assert len(_copies_at(retried, NEW_HOLDER, read_again.origin)) == 1
    # three department messages: counted so where the move's copy comes first (the read-again copy
    # first, the new holder counts it a second time: a re-delivery across a move, as before)
    assert 3 in {counted for counted, _old, _new in _counted_in_both_orders(before + again, retried)}


def _at(inputs, name, offset):
    _, kind, partition, record, ts = inputs[name]
    return kind, partition, offset, record, ts


async def test_a_decision_follows_its_number_through_the_pipeline(pipeline, settings, department):
    """The embedded stack, as stock producers send (unkeyed decisions, stamped at sending): a severe
    penalty by a registration number lists the organisation the number is registered to; the
    number's newer registration to another organisation moves it there, and the first one's entry
    is withdrawn downstream."""
    import datetime as dt

    from domain.engine import fold_changes
    from ops.inspect import subject_state
    from tests.conftest import eventually
    from tests.integration.test_rules_scenario import read_changes

    d = dt.date.fromisoformat
    await department.send(schema_of("registration"), sample_event(
        "registration", uscc=OLD_HOLDER, reg_no=NUMBER, registered_at=d("2007-05-09")))
    await department.send(schema_of("penalty"), _by_number("郑环罚〔2026〕8号", d("2026-02-02")))

    async def listed(sid):
        state = await subject_state(settings, sid)
        return state if state and "blacklist:environment" in state["evaluation"]["lists"] else None

    await eventually(lambda: listed(OLD_HOLDER), timeout=60)
    await department.send(schema_of("registration"), sample_event(
        "registration", uscc=NEW_HOLDER, reg_no=NUMBER, registered_at=d("2020-03-02")))
    moved = await eventually(lambda: listed(NEW_HOLDER), timeout=60)
    assert [e["doc_no"] for e in moved["records"].values() if e["kind"] == "penalty"] == ["郑环罚〔2026〕8号"]

    async def left():
        state = await subject_state(settings, OLD_HOLDER)
        return state if not state["evaluation"]["lists"] and not [
            e for e in state["records"].values() if e["kind"] == "penalty"] else None

    await eventually(left, timeout=30)

    async def told():
        changes = [dict(c, effective_date=c["effective_date"].isoformat()) for c in await read_changes(settings)]
        folded = {sid: sorted((c["list"], c["transition"], c["effective_date"])
                              for c in fold_changes([c for c in changes if c["subject_id"] == sid]).values())
                  for sid in (OLD_HOLDER, NEW_HOLDER)}
        return folded if not [c for c in folded[OLD_HOLDER] if c[0] == "blacklist:environment"] \
            and folded[NEW_HOLDER] else None

    folded = await eventually(told, timeout=30)
    assert ("blacklist:environment", "entered", "2026-02-02") in folded[NEW_HOLDER]

    # the report counts each message once (two registrations, the penalty), and a replay of the
    # subject-event log, notices and copies included, rebuilds the same state and list changes
    from ops.replay import live_changes, per_subject, replay
    from ops.report import progress

    assert await eventually(lambda: _at_least(progress(settings), 3), timeout=30) == 3
    await pipeline.stop()
    rebuilt = await replay(settings, verify=True, progress=False, jobs=1)
    assert rebuilt.differences == []
    assert per_subject(rebuilt.changes) == per_subject(await live_changes(settings))


async def _at_least(count, n):
    got = await count
    return got if got >= n else None


async def test_a_number_departments_name_beside_two_codes_ends_with_the_newest_in_any_order(redis, settings):
    # the ingest agent remembered what it had offered the index, not what the index kept: a newer
    # record naming the first organisation again was not taught, and the number (and the decisions
    # sent by it) stayed with whichever organisation came second
    import datetime as dt

    codec, topics = AvroCodec(), Topics(settings.topic_prefix)
    third = "91350100M000100Y43"
    teaching = {
        "p1": (OLD_HOLDER, "2026-01-05"), "p2": (third, "2026-03-05"), "p3": (OLD_HOLDER, "2026-05-05")}
    held = set()
    for n, order in enumerate(itertools.permutations(teaching)):
        index = RegistryIndex(redis, Keys(f"{settings.namespace}-t{n}"))
        ingest = IngestAgent(topics=topics, codec=codec, index=index, producer=None)  # one worker's cache
        for offset, name in enumerate(order):
            uscc, date = teaching[name]
            record = sample_event("penalty", uscc=uscc, reg_no=NUMBER, decision_doc_no=f"罚{name}",
                                  decision_date=dt.date.fromisoformat(date))
            checkpoint = ingest.checkpoint()
            await ingest.process([_message(codec, topics, "penalty", 0, offset, record, 1778000000000)], checkpoint)
            await checkpoint.complete()
        held.add((await redis.hget(index.keys.id_index, f"reg_no:{NUMBER}")).decode())
    assert held == {OLD_HOLDER}


async def test_two_worker_processes_move_every_decision_sent_by_the_number(settings, department, tmp_path):
    """Two real worker processes, decisions unkeyed and stamped at sending: fifty decisions by one
    registration number, forty before the number's newer registration and ten after it, all end with
    the organisation the newer registration names, and the first one holds none and is on no list."""
    import datetime as dt

    from ops.inspect import subject_state
    from tests.conftest import eventually
    from tests.workers import WorkerProcess

    d = dt.date.fromisoformat
    workers = [WorkerProcess(settings, tmp_path / f"w{i}.log").start() for i in range(2)]
    try:
        await department.send(schema_of("registration"), sample_event(
            "registration", uscc=OLD_HOLDER, reg_no=NUMBER, registered_at=d("2007-05-09")))
        for i in range(40):
            await department.send(schema_of("penalty"), sample_event(
                "penalty", uscc=None, org_code=None, reg_no=NUMBER, decision_doc_no=f"郑环罚〔2026〕{i}号",
                severity="严重", domain="environment", decision_date=d("2026-02-02")))

        async def count(sid, n):
            st = await subject_state(settings, sid)
            got = len([e for e in (st or {}).get("records", {}).values() if e["kind"] == "penalty"])
            return (got,) if got == n else None

        await eventually(lambda: count(OLD_HOLDER, 40), timeout=120)
        await department.send(schema_of("registration"), sample_event(
            "registration", uscc=NEW_HOLDER, reg_no=NUMBER, registered_at=d("2020-03-02")))
        for i in range(40, 50):  # sent after the move
            await department.send(schema_of("penalty"), sample_event(
                "penalty", uscc=None, org_code=None, reg_no=NUMBER, decision_doc_no=f"郑环罚〔2026〕{i}号",
                severity="严重", domain="environment", decision_date=d("2026-02-02")))
        await eventually(lambda: count(NEW_HOLDER, 50), timeout=120)
        await eventually(lambda: count(OLD_HOLDER, 0), timeout=60)
        old = await subject_state(settings, OLD_HOLDER)
        assert old["evaluation"]["lists"] == {}
        assert all(w.alive() for w in workers), [w.log_tail() for w in workers]
    finally:
        for w in workers:
            w.stop()
