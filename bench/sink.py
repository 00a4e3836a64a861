"""The subject agent's Redis sink alone (sinks/redis_state.py), in process: the worker's CPU per
subject for each step of a batch, over the benchmark's own subject states, against the embedded
stack's redis-server:

* ``begin``: the batch's one read under WATCH (sentinel, positions, outboxes, the states not held)
  and telling which states are stored whole;
* ``take``: a state's decoding, when the agent takes it;
* ``add``: the new state's encoding (JSON, zstd);
* ``commit``: the fenced MULTI/EXEC and what the sink remembers after it;
* ``gc_rounds``: the collector's round after each batch, as the worker's heap rounds run between
  batches (creditstream/heap.py: automatic collections off, survivors frozen); with automatic
  collections on, the states this process holds were walked over and over, and ``take`` measured
  the collector.

The states are those the rules core makes of ``--inputs`` of the benchmark's inputs (bench/inputs.py,
over half as many subjects), made again from their JSON (``fresh_copies``: laid out in memory as a
state the agent has just read is, not scattered as the rules core left them over 40,000 steps; with
the scattered objects ``add`` measured 45-52 us per subject, with the copies 29-39, in the
forty-first session). They are written once, then ``--rounds`` rounds read, decode, encode and
write every one of them again, ``--batch`` subjects a batch, on one partition, as a worker that
owns it. CPU is ``time.process_time`` (this process only: not redis-server's).

``--without-decision-texts`` measures the same states with each record's canonical decision
(``content``) and its other versions' (``others``) left out: not a form the product stores, but what
the sink would pay per subject if those texts were stored apart from the state (docs/performance.md,
forty-first session).

``python -m bench.sink`` (``make bench-sink``) prints one line per round and a JSON line of the
medians. It measures the sink's own code, such as the state cache (which holds the hot subjects'
states only) and the check for split states, apart from the pipeline's noise."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time

PHASES = ("begin", "take", "add", "commit", "gc_rounds")


def subject_states(inputs: int, seed: int = 42) -> dict[str, dict]:
    """The states the rules core makes of the benchmark's first ``inputs`` inputs (over
    ``inputs // 2`` subjects), by subject id."""
    from bench.inputs import generate
    from creditstream.connections import make_codec
    from creditstream.settings import Settings
    from domain import clock, events
    from domain.attach import Attached, plan
    from domain.calendar import WorkingCalendar
    from domain.engine import step
    from domain.rulebook import load_rulebook
    from domain.validate import Rejection, normalise_event

    codec = make_codec(Settings())
    rules, cal, now = load_rulebook(), WorkingCalendar(), clock.now_ms()
    states: dict[str, dict] = {}
    for i, (_kind, raw) in enumerate(generate(inputs, max(1, inputs // 2), seed=seed)):
        try:
            name, body = codec.decode(raw)
        except Exception:  # noqa: BLE001 - the benchmark's malformed inputs: dead letters in a worker
            continue
        rec = normalise_event(name, body, event_time_ms=now)
        if isinstance(rec, Rejection) or not isinstance(target := plan(rec), Attached):
            continue
        event = events.of_record(target.subject_id, target.id_kind, f"bench/0/{i}", rec, now)
        states[event.subject] = step(states.get(event.subject), event, rules, cal).state
    return states


DECISION_TEXTS = ("content", "others")  # a record's canonical decision, and its other versions'


def cut_down(state: dict, *, timeline_too: bool = False) -> dict:
    """``state`` without its records' decision texts (and without its timeline): a measure, not a
    stored form. ``state`` itself is not changed."""
    records = {key: {k: v for k, v in entry.items() if k not in DECISION_TEXTS}
               for key, entry in state["records"].items()}
    cut = {**state, "records": records}
    if timeline_too:
        cut.pop("timeline", None)
    return cut


def without_decision_texts(states: dict[str, dict]) -> dict[str, dict]:
    """The states with no record's decision text (:func:`cut_down`)."""
    return {sid: cut_down(state) for sid, state in states.items()}


def fresh_copies(states: dict[str, dict]) -> dict[str, dict]:
    """The states made again from their JSON, the originals let go first: the objects the sink is
    given are laid out alike whichever states they are (cut down or not), not among the holes the
    rules core's objects left."""
    import gc

    import orjson

    from domain.record_maps import json_default

    texts = {sid: orjson.dumps(state, default=json_default) for sid, state in states.items()}
    states.clear()
    gc.collect()
    return {sid: orjson.loads(text) for sid, text in texts.items()}


async def measure(redis, states: dict[str, dict], *, rounds: int = 5, batch: int = 500,
                  namespace: str = "bench-sink") -> list[dict[str, float]]:
    """Write ``states`` once, then ``rounds`` rounds of every one of them through the sink; per round,
    the CPU per subject of each phase (us)."""
    from creditstream.heap import collect_and_freeze, worker_rounds
    from sinks.keys import Keys
    from sinks.redis_state import SubjectStateSink

    sink = SubjectStateSink(redis, Keys(namespace))
    sids = list(states)
    position = 0
    cpu = time.process_time

    async def one_round(first: bool) -> dict[str, float]:
        nonlocal position
        spent = dict.fromkeys(PHASES, 0.0)
        for i in range(0, len(sids), batch):
            chunk = sids[i:i + batch]
            t0 = cpu()
            loaded = await sink.begin(chunk, [0], partition_of=dict.fromkeys(chunk, 0), resumed=not first)
            t1 = cpu()
            taken = [loaded.states.take(s) for s in chunk]
            t2 = cpu()
            for s, was in zip(chunk, taken):
                sink.add(s, states[s], new=was is None)
            t3 = cpu()
            position += len(chunk)
            sink.set_position(0, position)
            await sink.commit()
            t4 = cpu()
            del taken, loaded
            collect_and_freeze()
            t5 = cpu()
            for phase, took in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                spent[phase] += took
        return {phase: round(took / len(sids) * 1e6, 2) for phase, took in spent.items()}

    with worker_rounds():
        await one_round(True)
        return [await one_round(False) for _ in range(rounds)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sink", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=40_000, help="benchmark inputs to make states of")
    parser.add_argument("--rounds", type=int, default=5, help="rounds over every state, after the first write")
    parser.add_argument("--batch", type=int, default=500, help="subjects a batch")
    parser.add_argument("--without-decision-texts", action="store_true",
                        help="the states without their records' decision texts (a measure, not a stored form)")
    args = parser.parse_args(argv)

    import redis.asyncio as aioredis

    from ops.stack import embedded_stack

    print(f"[bench-sink] the rules core's states of {args.inputs:,} benchmark inputs ...", file=sys.stderr)
    states = subject_states(args.inputs)
    if args.without_decision_texts:
        states = without_decision_texts(states)
    states = fresh_copies(states)
    print(f"[bench-sink] {len(states):,} subjects; {args.rounds} rounds of {args.batch} a batch", file=sys.stderr)

    async def run(url: str) -> list[dict[str, float]]:
        client = aioredis.Redis.from_url(url)
        try:
            return await measure(client, states, rounds=args.rounds, batch=args.batch)
        finally:
            await client.aclose()

    with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp, embedded_stack(tmp) as info:
        per_round = asyncio.run(run(info.redis_url))
    for n, row in enumerate(per_round, 1):
        print(f"round {n}: " + ", ".join(f"{p} {row[p]:.1f}" for p in PHASES) + " us CPU per subject")
    medians = {p: round(statistics.median(r[p] for r in per_round), 2) for p in PHASES}
    print(json.dumps({"sink_us_per_subject": medians, "subjects": len(states), "rounds": args.rounds,
                      "batch": args.batch, "without_decision_texts": args.without_decision_texts},
                     sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
