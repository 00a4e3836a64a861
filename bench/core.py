"""The rules core alone, per input, as a subject's history grows (``make bench-core``).

One subject is grown to each size with penalties over many decision dates (2% severe, so it is on
a blacklist too), then the cost of one more input is timed: the median of ``--repeat`` inputs, in
ms, and the subject's state size as JSON. The core re-derives only the records an input touches,
so the cost should stay nearly flat as the subject grows (issue: time and order, 7).

Then the hot subject (:func:`hot_subject`), and the worker's stages in process over the benchmark's
own inputs (:func:`core_stages`): what the worker's own work costs without Kafka, Redis or the event
loop, the floor under its CPU per event (``make bench`` reports both, from the same inputs).

Prints a table, then one line of JSON (the last line).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import time

import orjson

from domain import events
from domain.calendar import WorkingCalendar
from domain.clock import due_ms
from domain.engine import step
from domain.record_maps import json_default, persistent
from domain.rulebook import load_rulebook
from sinks.state_codec import SPLIT_RECORDS, encode_state, encode_stored

SUBJECT = "91310110666007217T"


def penalty(i: int, decided: dt.date) -> dict:
    return {"kind": "penalty", "action_kind": "penalty", "source_unit": "某单位",
            "source_unit_code": "11410100005200036R",
            "doc_no": f"罚〔{decided.year}〕{i}号", "subject_name": "某公司", "subject_category": "legal_entity",
            "ids": {"uscc": SUBJECT}, "id_flags": [], "decision_date": decided.isoformat(),
            "severity": "severe" if i % 50 == 0 else "general", "domain": "environment" if i % 50 == 0 else "market",
            "revoked": False, "legal_rep": None, "simplified_procedure": False, "fields": {}, "event_id": None}


def hot_subject_inputs(inputs: int, seed: int = 5) -> list:
    """The hot subject's inputs (:func:`hot_subject`): 85% new decisions, 10% corrections of an
    earlier decision, 5% re-sends of an earlier input. The first n are the same whatever ``inputs``."""
    import random

    rng = random.Random(seed)
    arrival = due_ms("2026-11-30") + 36_000_000
    start = dt.date(2021, 1, 4)
    sent: list = []
    made = []
    for n in range(inputs):
        r = rng.random()
        if sent and r < 0.05:
            ev = rng.choice(sent)  # a re-send: the same input again
        elif sent and r < 0.15:
            i = int(rng.choice(sent).origin.rsplit("/", 1)[1])  # a newer version of decision i
            rec = dict(penalty(i, start + dt.timedelta(days=i % 2000)), fields={"remarks": f"更正{n}"})
            ev = events.of_record(SUBJECT, "uscc", f"creditstream.penalty/2/{i}-{n}", rec, arrival)
        else:
            ev = events.of_record(SUBJECT, "uscc", f"creditstream.penalty/0/{n}",
                                  penalty(n, start + dt.timedelta(days=n % 2000)), arrival)
            sent.append(ev)
        made.append(ev)
    return made


def hot_subject(inputs: int = 5000, window: int = 500, seed: int = 5, round_every: int = 100, *,
                made: list | None = None, summary: bool = True) -> dict:
    """One subject fed ``inputs`` inputs (85% new decisions, 10% corrections of an earlier decision,
    5% re-sends of an earlier input), through the rules core with the state encoded after each
    input as the pipeline stores it (sinks/state_codec.py ``encode_stored``: compact, or JSON with
    ``CREDITSTREAM_STATE_FORMAT=json``; past ``SPLIT_RECORDS`` records, the head and the parts of
    the records the input touched), what the pipeline writes for a subject touched by a batch.

    The cyclic collector runs as in a worker (creditstream/heap.py): CPython's own collections off,
    a round every ``round_every`` inputs, timed with the input that ran it. Under CPython's own
    collections a full collection walks the whole hot state, which a worker's rounds never do
    (they walk only what was made since the last one): timed that way, the figure carried a cost
    that grew with the state and that no worker pays (docs/performance.md, ninth session).

    Returns the mean cost per input of the first and the last ``window`` inputs (us), the mean of
    every 1,000 inputs (``hot_subject_us_per_event_by_thousand``: the first window carries the
    small state's whole writes and cold caches, so read the growth from the second on), the
    stored head's size every 1,000 inputs (``hot_subject_head_bytes_by_thousand``: the subject key's
    value, which every write of the subject encodes again and every read decodes first), and the
    state size at the end."""
    from creditstream.heap import collect_and_freeze, worker_rounds

    rules, cal = load_rulebook(), WorkingCalendar()
    state, times = None, []
    stored_split, written = False, 0
    heads: list[int] = []  # the stored head's size (the subject key's value) every 1,000 inputs
    state_format = os.environ.get("CREDITSTREAM_STATE_FORMAT", "compact")
    if made is None:
        made = hot_subject_inputs(inputs, seed)
    inputs = len(made)
    with worker_rounds():
        for n, ev in enumerate(made, 1):
            t0 = time.perf_counter()
            base = state
            result = step(state, ev, rules, cal)
            state = persistent(result.state)  # as the worker holds a large state (sinks/redis_state.py)
            stored = encode_stored(state, base, base_split=stored_split, changed=result.touched,
                                   state_format=state_format)
            del base, result
            if n % round_every == 0:
                collect_and_freeze()
            times.append((time.perf_counter() - t0) * 1e6)
            stored_split = stored.split
            written = len(stored.head) + sum(len(p) for p in stored.parts.values())
            if n % 1000 == 0 or n == len(made):
                heads.append(len(stored.head))
    if not summary:  # only the inputs' work (bench/instructions.py counts it): no summary of the state
        return {"hot_subject_inputs": inputs}
    return {"hot_subject_inputs": inputs,
            "hot_subject_us_per_event_first": round(statistics.fmean(times[:window]), 1),
            "hot_subject_us_per_event_last": round(statistics.fmean(times[-window:]), 1),
            "hot_subject_us_per_event_by_thousand": [round(statistics.fmean(times[i:i + 1000]), 1)
                                                     for i in range(0, len(times), 1000)],
            "hot_subject_state_kib": len(orjson.dumps(state, default=json_default)) // 1024,
            "hot_subject_stored_kib": len(encode_state(state, state_format)) // 1024,
            "hot_subject_written_bytes_last": written,
            "hot_subject_head_bytes_by_thousand": heads,
            "hot_subject_measured": f"rules core + state encode ({state_format}, split past {SPLIT_RECORDS} records: "
                                    f"head and touched parts) per input, in process"}


BATCH = 500  # inputs per batch in ``core_stages``: the worker's batches are 500-2,000 under load (max_batch)
STAGES = ("avro_decode", "validate_normalise", "attach", "subject_event_encode", "subject_event_decode",
          "state_load", "step", "state_store", "batch_end", "gc_rounds")


def core_stages(inputs: list[tuple[str, bytes]], round_every: int = 1000, batch: int = BATCH) -> dict:
    """What the worker's own work costs without Kafka, Redis or the event loop: each of the
    benchmark's inputs (``(kind, Avro bytes)``, bench/inputs.py ``generate``) through the stages a
    worker runs, in one process, timed stage by stage (us per input that reached the rules step):
    Avro decode, validation and normalisation, attachment to a subject, the subject event's encode
    and decode (the internal log's hop), the subject's stored state decoded (every subject known
    before is read from its stored bytes, as the worker reads it from Redis or its cache), the rules
    step, the new state encoded as the worker stores it (a subject stored split, past ``SPLIT_RECORDS``
    records, is held as objects between its inputs, as a worker's cache holds it) and both its
    states let go (counted with the store), the batch's objects freed when it ends (its inputs and
    events: in the worker this shows as the agent's ``process`` returning), and a collector round every
    ``round_every`` inputs (creditstream/heap.py). The worker's CPU per event minus this
    is its plumbing: fetch, produce, the Redis transaction, batching, metrics.

    As the agents do, the stages up to the subject event's decode each run over a whole batch of
    ``batch`` inputs before the next stage (agents/ingest.py): a stage's code stays in the CPU's
    caches. ``batch=1`` runs every input through all the stages before the next input (the ingest
    agent's shape before the eighteenth session; docs/performance.md). Then, as the subject agent
    does, subject by subject: its state loaded, its inputs of the batch stepped in order, the new
    state stored and let go before the next subject (its objects used and freed while they are in
    the CPU's caches; the thirty-eighth session)."""
    from creditstream.connections import make_codec
    from creditstream.heap import collect_and_freeze, worker_rounds
    from creditstream.settings import Settings
    from domain import clock
    from domain.attach import Attached, plan
    from domain.validate import Rejection, normalise_event
    from sinks.state_codec import decode_state

    codec = make_codec(Settings())
    rules, cal = load_rulebook(), WorkingCalendar()
    now = clock.now_ms()
    stored: dict[str, bytes] = {}
    held: dict[str, dict] = {}  # a subject stored split: its state as objects, as a worker's cache holds it
    spent = dict.fromkeys(STAGES, 0.0)
    clock_ = time.perf_counter
    n = 0
    loads = 0  # states loaded (a subject seen in an earlier batch)
    with worker_rounds():
        for first in range(0, len(inputs), batch):
            t0 = clock_()
            decoded = []
            for i, (_kind, raw) in enumerate(inputs[first:first + batch], first):
                try:
                    decoded.append((i, *codec.decode(raw)))
                except Exception:  # noqa: BLE001 - the malformed inputs: dead letters in the worker
                    continue
            t1 = clock_()
            spent["avro_decode"] += t1 - t0
            valid = [(i, rec) for i, name, raw in decoded
                     if not isinstance(rec := normalise_event(name, raw, event_time_ms=now), Rejection)]
            t2 = clock_()
            spent["validate_normalise"] += t2 - t1
            made = [events.of_record(target.subject_id, target.id_kind, f"bench/0/{i}", rec, now)
                    for i, rec in valid if isinstance(target := plan(rec), Attached)]
            t3 = clock_()
            spent["attach"] += t3 - t2
            logged = [events.encode(event) for event in made]
            t4 = clock_()
            spent["subject_event_encode"] += t4 - t3
            read = [events.decode(data) for data in logged]
            t5 = clock_()
            spent["subject_event_decode"] += t5 - t4
            # subject by subject, as the subject agent does (agents/subject.py): its state decoded, its
            # inputs stepped in order, the new state stored and let go before the next subject
            by_subject: dict[str, list] = {}
            for event in read:
                by_subject.setdefault(event.subject, []).append(event)
            t6 = t5
            for sid, subject_events in by_subject.items():
                state = held.get(sid)
                if state is None:
                    raw_state = stored.get(sid)
                    state = decode_state(raw_state) if raw_state is not None else None
                loads += state is not None
                loaded = state
                t6b = clock_()
                spent["state_load"] += t6b - t6
                touched: frozenset[str] | None = frozenset()
                for event in subject_events:
                    result = step(state, event, rules, cal)
                    state = result.state
                    touched = None if touched is None or result.touched is None else touched | result.touched
                t7 = clock_()
                spent["step"] += t7 - t6b
                written = encode_stored(state, loaded, base_split=sid in held, changed=touched)
                stored[sid] = written.head
                if written.split:  # its head alone is not the state: held as objects (its parts are written)
                    held[sid] = persistent(state)
                del state, loaded, result
                t6 = clock_()
                spent["state_store"] += t6 - t7
            before, n = n, n + len(read)
            t8 = clock_()
            del decoded, valid, made, logged, read, by_subject  # as a batch ends in the worker
            spent["batch_end"] += clock_() - t8
            if n // round_every > before // round_every:
                spent["gc_rounds"] += collect_and_freeze()[1]
    per = {k: round(v / max(n, 1) * 1e6, 1) for k, v in spent.items()}
    return {"core_us_per_event": round(sum(spent.values()) / max(n, 1) * 1e6, 1), "core_stage_us": per,
            "core_inputs": n, "core_states_loaded": loads, "core_subjects_split": len(held), "core_batch": batch,
            "core_peak_rss_kib": peak_rss_kib(), "core_memo": memo_caches()}


def peak_rss_kib() -> int | None:
    """This process's peak resident set (VmHWM, KiB; Linux), every stored state's bytes included."""
    try:
        with open("/proc/self/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
    except OSError:
        return None


def memo_caches() -> dict[str, dict[str, int]]:
    """Hits, misses and size of the rules core's memo caches (creditstream/holdings.py), by name."""
    from creditstream.holdings import memo_caches as caches

    out = {}
    for name, cache in caches().items():
        info = cache.cache_info()
        out[name] = {"hits": info.hits, "misses": info.misses, "size": info.currsize, "max": info.maxsize}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100,1000,5000", help="subject sizes (records), comma separated")
    parser.add_argument("--repeat", type=int, default=50, help="inputs timed at each size (median reported)")
    parser.add_argument("--hot", type=int, default=5000,
                        help="inputs to one hot subject (decisions, corrections, re-sends; 0: skip)")
    parser.add_argument("--stages", type=int, default=20000, metavar="N",
                        help="the worker's stages in process over N of the benchmark's inputs, N/2 subjects "
                             "(us per input, stage by stage; default 20000; 0: skip)")
    parser.add_argument("--stage-batch", type=int, default=BATCH, metavar="B",
                        help=f"inputs per batch of --stages, each stage over a whole batch as the agents run "
                             f"them (default {BATCH}; 1: every input through all the stages before the next)")
    args = parser.parse_args(argv)
    rules, cal = load_rulebook(), WorkingCalendar()
    arrival = due_ms("2026-11-30") + 36_000_000
    start = dt.date(2021, 1, 4)
    state, n, out = None, 0, {}
    print(f"{'records':>8} {'ms/input (median)':>18} {'state KiB':>10}")
    for size in (int(s) for s in args.sizes.split(",")):
        while n < size:
            decided = start + dt.timedelta(days=n % 2000)
            ev = events.of_record(SUBJECT, "uscc", f"creditstream.penalty/0/{n}", penalty(n, decided), arrival)
            state = step(state, ev, rules, cal).state
            n += 1
        times = []
        for j in range(args.repeat):
            ev = events.of_record(SUBJECT, "uscc", f"creditstream.penalty/1/{size}-{j}",
                                  penalty(10**6 + j, dt.date(2026, 11, 2)), arrival)
            t0 = time.perf_counter()
            step(state, ev, rules, cal)
            times.append((time.perf_counter() - t0) * 1000)
        ms = statistics.median(times)
        kib = len(orjson.dumps(state)) // 1024
        out[str(size)] = {"ms_per_input": round(ms, 3), "state_kib": kib}
        print(f"{size:>8} {ms:>18.3f} {kib:>10}")
    hot = hot_subject(args.hot) if args.hot else {}
    if hot:
        print(f"hot subject, {args.hot} inputs: {hot['hot_subject_us_per_event_first']:,.0f} us/input (first 500), "
              f"{hot['hot_subject_us_per_event_last']:,.0f} us/input (last 500), "
              f"state {hot['hot_subject_state_kib']} KiB; per 1,000 inputs: "
              + " / ".join(f"{v:,.0f}" for v in hot["hot_subject_us_per_event_by_thousand"]) + " us; stored head: "
              + " / ".join(f"{v:,}" for v in hot["hot_subject_head_bytes_by_thousand"]) + " B")
    staged: dict = {}
    if args.stages:
        from bench.inputs import generate

        staged = core_stages(generate(args.stages, args.stages // 2), batch=args.stage_batch)
        print(f"the worker's stages in process, {args.stages:,} inputs over {args.stages // 2:,} subjects "
              f"in batches of {args.stage_batch} (us per input):")
        for stage, us in staged["core_stage_us"].items():
            print(f"  {stage:<22} {us:>7.1f}")
        print(f"  {'total':<22} {staged['core_us_per_event']:>7.1f}")
        print(f"peak RSS {staged['core_peak_rss_kib'] or 0:,} KiB; memo caches (hits / misses): "
              + ", ".join(f"{k} {v['hits']:,} / {v['misses']:,}" for k, v in staged["core_memo"].items()))
    print(json.dumps({"core_per_input": out, **hot, **staged}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
