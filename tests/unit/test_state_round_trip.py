"""The subject agent keeps the states of its partitions in memory (sinks/redis_state.py) and feeds
them to the rules core as the core returned them; after a restart the same states come from Redis
as JSON. The core must give the same results either way."""

from __future__ import annotations

import datetime as dt
import random

import orjson

from bench.core import SUBJECT, penalty
from domain import events
from domain.calendar import WorkingCalendar
from domain.clock import due_ms
from domain.engine import step
from domain.rulebook import load_rulebook


def inputs(n: int, seed: int = 3):
    rng = random.Random(seed)
    arrival = due_ms("2026-11-30") + 36_000_000
    start = dt.date(2023, 1, 2)
    sent = []
    for i in range(n):
        r = rng.random()
        if sent and r < 0.1:
            yield rng.choice(sent)  # a re-send
        elif sent and r < 0.25:
            j = int(rng.choice(sent).origin.rsplit("/", 1)[1])
            rec = dict(penalty(j, start + dt.timedelta(days=j * 3)), fields={"remarks": f"更正{i}"},
                       revoked=rng.random() < 0.3)
            yield events.of_record(SUBJECT, "uscc", f"c/{i}/{j}", rec, arrival + i)
        elif r < 0.3:
            yield events.tick(SUBJECT, (start + dt.timedelta(days=i * 7)).isoformat())
        else:
            ev = events.of_record(SUBJECT, "uscc", f"o/{i}", penalty(i, start + dt.timedelta(days=i * 3)), arrival + i)
            sent.append(ev)
            yield ev


def test_held_and_reloaded_states_give_the_same_results():
    rules, cal = load_rulebook(), WorkingCalendar()
    held = reloaded = None
    for ev in inputs(400):
        a = step(held, ev, rules, cal)
        b = step(reloaded, ev, rules, cal)
        assert (a.outcome, orjson.dumps(a.changes), orjson.dumps(a.links)) == \
            (b.outcome, orjson.dumps(b.changes), orjson.dumps(b.links))
        held, reloaded = a.state, orjson.loads(orjson.dumps(b.state))
        assert orjson.dumps(held) == orjson.dumps(reloaded)
