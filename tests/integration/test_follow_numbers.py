"""`creditstream follow-numbers` (ops/follow_numbers.py): decisions attached through a legacy number by a
version that did not remember them (before 2026-12-07) follow their number once the command has run.

The embedded pipeline, as stock producers send (unkeyed, stamped at sending). "Attached by an earlier
version" is made by deleting what the index remembers (``{ns}:attached*``): the index as that version
left it. Seen in an upgrade audit: the earlier holder kept the decision when the number moved, and a
revocation by the number after the move reached the new holder only (the earlier one stayed listed)."""

from __future__ import annotations

import datetime as dt

import pytest

from sinks.keys import Keys
from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.integration.test_number_moves import NEW_HOLDER, NUMBER, OLD_HOLDER, _by_number

pytestmark = pytest.mark.integration
d = dt.date.fromisoformat


async def _forget_attached(redis, settings) -> int:
    """The index as a version before 2026-12-07 left it: nothing remembered of what it attached."""
    keys = Keys(settings.namespace)
    gone = [k async for k in redis.scan_iter(match=f"{settings.namespace}:attached*")]
    if gone:
        await redis.delete(*gone)
    return len([k for k in gone if k.decode() == keys.attached])


async def _penalties(settings, sid):
    from ops.inspect import subject_state

    state = await subject_state(settings, sid)
    return sorted(e["doc_no"] for e in (state or {}).get("records", {}).values() if e["kind"] == "penalty"), \
        sorted((state or {}).get("evaluation", {}).get("lists") or ())


async def _registered(department, redis, settings, uscc, date):
    """The number registered to ``uscc``, and the index says so (a record sent next is attached at
    once, not parked and released: a release's batch may run again, remembering it again)."""
    await department.send(schema_of("registration"), sample_event("registration", uscc=uscc, reg_no=NUMBER,
                                                                  registered_at=d(date)))

    async def mapped():
        return await redis.hget(Keys(settings.namespace).id_index, f"reg_no:{NUMBER}") == uscc.encode() or None

    await eventually(mapped, timeout=60)


async def test_a_decision_attached_before_the_upgrade_follows_its_number_after_the_command(pipeline, settings,
                                                                                          department, redis):
    from ops.follow_numbers import follow_numbers

    await _registered(department, redis, settings, OLD_HOLDER, "2007-05-09")
    await department.send(schema_of("penalty"), _by_number("郑环罚〔2026〕21号", d("2026-02-02")))
    await eventually(lambda: _listed(settings, OLD_HOLDER), timeout=60)
    assert await _forget_attached(redis, settings) == 1

    dry = await follow_numbers(settings, dry_run=True, progress=False)
    assert (dry.decisions, dry.remembered, dry.known, dry.numbers_to_move) == (1, 1, 0, 0)  # 1 to remember
    # the command as an operator runs it
    import json
    import sys

    from tests.workers import run_to_end, worker_env

    code, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "follow-numbers", "--dry-run",
                                       "--json"], env=worker_env(settings))
    assert code == 0, err
    assert json.loads(out)["decisions"] == 1 and json.loads(out)["dry_run"] is True
    assert not await redis.exists(Keys(settings.namespace).attached)  # a dry run writes nothing
    done = await follow_numbers(settings, progress=False)
    assert (done.decisions, done.remembered, done.numbers_to_move, done.moved) == (1, 1, 0, 0)
    assert (await follow_numbers(settings, progress=False)).known == 1  # again: nothing more

    await _registered(department, redis, settings, NEW_HOLDER, "2020-03-02")
    assert await eventually(lambda: _listed(settings, NEW_HOLDER), timeout=60)
    await eventually(lambda: _cleared(settings, OLD_HOLDER), timeout=30)


async def test_a_decision_left_behind_by_the_earlier_version_moves_when_the_command_runs(pipeline, settings,
                                                                                        department, redis):
    """The number moved while the decision was not remembered: it stayed with the earlier holder, and
    a re-send by the number went to the new one. The command takes it from the earlier holder."""
    from ops.follow_numbers import follow_numbers

    await _registered(department, redis, settings, OLD_HOLDER, "2007-05-09")
    await department.send(schema_of("penalty"), _by_number("郑环罚〔2026〕22号", d("2026-02-02")))
    await eventually(lambda: _listed(settings, OLD_HOLDER), timeout=60)
    await _forget_attached(redis, settings)
    await _registered(department, redis, settings, NEW_HOLDER, "2020-03-02")
    await department.send(schema_of("penalty"), _by_number("郑环罚〔2026〕22号", d("2026-02-02")))  # a re-send
    await eventually(lambda: _listed(settings, NEW_HOLDER), timeout=60)
    assert await _penalties(settings, OLD_HOLDER) == (["郑环罚〔2026〕22号"], ["blacklist:environment"])  # left behind

    dry = await follow_numbers(settings, dry_run=True, progress=False)
    assert (dry.decisions, dry.numbers_to_move, dry.to_move) == (2, 1, 1)  # A's copy, where the index says B
    done = await follow_numbers(settings, progress=False)
    assert (done.decisions, done.numbers_to_move, done.moved) == (2, 1, 1)
    await eventually(lambda: _cleared(settings, OLD_HOLDER), timeout=30)
    assert await _penalties(settings, NEW_HOLDER) == (["郑环罚〔2026〕22号"], ["blacklist:environment"])


async def _listed(settings, sid):
    docs, lists = await _penalties(settings, sid)
    return docs if docs and "blacklist:environment" in lists else None


async def _cleared(settings, sid):
    docs, lists = await _penalties(settings, sid)
    return True if not docs and not lists else None


async def test_after_redis_lost_the_indexs_last_writes_the_command_puts_the_decision_where_its_number_names(
        pipeline, settings, department, redis):
    """Redis lost the index's last writes while the subject-event log kept what they sent (an older
    snapshot, a replica promoted: an audit). The decision had moved A -> B (generation 1); read again
    after the loss it was attached to B afresh, as the index then remembers it (B, generation 0). The
    number's newer registration to A then moves it at generation 1 again, which both files have seen:
    B keeps it, A turns the copy away. `follow-numbers` finds it on B while the index says A, and
    moves it there at a generation above both."""
    from ops.follow_numbers import follow_numbers

    keys = Keys(settings.namespace)
    await _registered(department, redis, settings, OLD_HOLDER, "2007-05-09")
    await department.send(schema_of("penalty"), _by_number("郑环罚〔2026〕23号", d("2026-02-02")))
    await eventually(lambda: _listed(settings, OLD_HOLDER), timeout=60)
    await _registered(department, redis, settings, NEW_HOLDER, "2020-03-02")
    await eventually(lambda: _listed(settings, NEW_HOLDER), timeout=60)
    await eventually(lambda: _cleared(settings, OLD_HOLDER), timeout=30)
    # the index as the loss leaves it: the decision attached to B afresh, its move forgotten
    [field] = [f for f in await redis.hkeys(keys.attached) if b"|" not in f]
    await redis.hset(keys.attached, mapping={field: f"{NEW_HOLDER}\t0\t0", field + b"|h": NEW_HOLDER})
    await _registered(department, redis, settings, OLD_HOLDER, "2023-01-01")  # moves it at generation 1 again

    async def moved_back():  # the move's copy turned away by A, its notice taken as a re-delivery by B
        entry = await redis.hget(keys.attached, field)
        return entry if entry and entry.startswith(OLD_HOLDER.encode()) and entry.endswith(b"\t0") else None

    await eventually(moved_back, timeout=30)
    await eventually(lambda: _listed(settings, NEW_HOLDER), timeout=10)
    assert await _penalties(settings, OLD_HOLDER) == ([], [])  # where the number's newest registration is
    done = await follow_numbers(settings, progress=False)
    assert (done.numbers_to_move, done.moved) == (1, 1)
    await eventually(lambda: _cleared(settings, NEW_HOLDER), timeout=30)
    assert await eventually(lambda: _listed(settings, OLD_HOLDER), timeout=30) == ["郑环罚〔2026〕23号"]
