"""The benchmark (``make bench``, ``python -m bench.bench --size N``): the full pipeline and its
baselines, measured in one run on the embedded stack of this machine.

Measured:
* pipeline events/s, median of ``--runs`` runs: ``creditstream worker`` (one process: ingest,
  registry, subject and timer agents) over ``--size`` pre-produced events (mixed kinds, 5%
  duplicates, 2% corrections, 1% malformed, ``--subjects`` subjects, a few legacy-coded), from its
  first event handled to the last one accounted for (applied, parked or dead-lettered);
* the same with two worker processes, as many runs, the median run reported (``two_workers_*``);
* baselines in the same run: a plain Faust agent forwarding each message, and a raw aiokafka
  consume -> send_batch loop (the ceiling of this broker); medians of ``--runs`` runs;
* in rounds: each round times a pipeline run, the replay of its log, the baselines and two workers
  in turn, and the ratios are also given within each round (``*_by_round``): the machine's speed
  drifts between rounds, less within one;
* end-to-end latency (p50, p99) from produce to the list change on the list-change topic at an
  offered load of ``--rate`` events/s;
* replay rebuild rate (``creditstream replay`` over the subject-event log of each pipeline run, as an
  operator runs it: one process per CPU, at most one per partition; ``replay_jobs`` says how many),
  the median of the rounds;
* worker start-up time to the first event, restart time after kill -9 (to the next event
  handled), peak RSS (VmHWM) of a worker;
* Redis memory per subject: the growth of Redis's ``used_memory`` over pipeline run 1 divided by
  the subjects it stored;
* a hot subject: 5,000 inputs to one subject (decisions, corrections, re-sends) through the rules
  core in this process, with the state serialised after each input: the mean cost of the first and
  the last 500 (bench/core.py). Timed first, before the broker and Redis start;
* the worker's own work in this process over the same inputs, stage by stage, without Kafka, Redis
  or the event loop (bench/core.py ``core_stages``): the floor under the worker's CPU per event.

Before each measured run, Tansu is started again, empty, and Redis's append-only file is compacted
(``redis_compacted``), so that no run pays for the runs before it; each run reports the AOF
rewrites its own writes caused, and the broker's and Redis's CPU over its timed part (``*_busy``,
a share of one core: they share the machine's cores with the workers). Progress is read from
Redis counters and one consumer per topic (``TopicEnd``), cheaply, so that the measuring takes
little of the machine it measures.

``--scale 10000,100000,1000000``: only the pipeline, one run per subject count (2 events per
subject, generated and produced in chunks): events/s, us per event, peak RSS and Redis bytes per
subject at each scale.

``--ceiling``: the pipeline beside itself with its domain work replaced by stand-ins
(bench/ceiling.py), in rounds with the Faust forward: the real pipeline; the subject stage stood in
for (the rules step, and so a small state to load and store); all of the domain stood in for
(validation too). What the plumbing alone allows, and what each part of the domain costs as the
worker pays for it.

Prints a table, then one line of JSON (the last line).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.inputs import generate, generator
from creditstream.settings import Settings
from ops.processes import cpu_seconds

RUN_DIR = Path(".run/bench")
CHINA = dt.timezone(dt.timedelta(hours=8))


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------- set-up
def settings_for(info, tag: str, **kw) -> Settings:
    return Settings(broker_url=info.broker_url, broker_kind=info.broker_kind, redis_url=info.redis_url,
                    pseudonym_key=info.pseudonym_key,
                    topic_prefix=f"{tag}.", namespace=tag, consumer_group=f"bench-{tag}", session_timeout_ms=2000,
                    run_dir=str(RUN_DIR / tag), **kw)


def env_for(s: Settings, **extra) -> dict:
    env = dict(os.environ)
    for name in ("broker_url", "broker_kind", "redis_url", "pseudonym_key", "topic_prefix", "namespace",
                 "consumer_group", "session_timeout_ms", "run_dir", "max_batch", "partitions"):
        env[f"CREDITSTREAM_{name.upper()}"] = str(getattr(s, name))
    env["CREDITSTREAM_LOG_FORMAT"] = "json"
    # BENCH_WORKER_LOG_LEVEL=DEBUG: the workers log every batch (size, process / produce ms, oldest input's age)
    # (INFO: the workers' start and stop only; the last line says what each held, worker_held)
    env["CREDITSTREAM_LOG_LEVEL"] = os.environ.get("BENCH_WORKER_LOG_LEVEL", "INFO")
    env.update(extra)
    return env


def worker_held(tag: str) -> dict[str, int]:
    """What the workers of run ``tag`` held in memory when they stopped, summed over them: entries by
    holder (creditstream/holdings.py, from each worker's "pipeline stopped" log line)."""
    out: dict[str, int] = {}
    for path in sorted((RUN_DIR / tag).glob("worker*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if '"pipeline stopped"' not in line:
                continue
            try:
                held = json.loads(line[line.index("{"):]).get("held") or {}
            except ValueError:
                continue
            for name, n in held.items():
                out[name] = out.get(name, 0) + int(n)
    return out


def worker_command(stand_in: str | None = None) -> list[str]:
    """The worker's arguments to this Python: ``creditstream worker``, or with ``stand_in`` its domain
    work stood in for (bench/ceiling.py)."""
    return ["-m", "bench.ceiling", stand_in, "worker"] if stand_in else ["-m", "creditstream.cli", "worker"]


def spawn(args: list[str], env: dict, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as fh:
        return subprocess.Popen([sys.executable, *args], env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def peak_rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


async def produce(s: Settings, events: list[tuple[str, bytes]], *, raw_topic: str | None = None) -> None:
    """Send every event to its department topic (or all to ``raw_topic``), as fast as the broker takes."""
    from streams import kafka
    from streams.topics import Topics

    t = Topics(s)
    await kafka.ensure_topics(s)
    if raw_topic:
        await kafka.ensure_topics(s, [raw_topic])
    producer = kafka.producer(s, linger_ms=20)
    await producer.start()
    try:
        futures = []
        for kind, value in events:
            futures.append(await producer.send(raw_topic or t.for_kind(kind), value))
            if len(futures) >= 20000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def produce_generated(s: Settings, size: int, subjects: int, chunk: int = 50_000) -> None:
    """Like :func:`produce` over :func:`generate`'s events, generated chunk by chunk (a million-subject
    run does not hold its events in memory)."""
    events = generator(subjects)
    done = 0
    while done < size:
        n = min(chunk, size - done)
        await produce(s, [next(events) for _ in range(n)])
        done += n
        if size > chunk:
            log(f"  produced {done:,} of {size:,}")


async def redis_used_memory(s: Settings) -> int:
    from creditstream.connections import redis_client

    r = redis_client(s)
    try:
        return int((await r.info("memory"))["used_memory"])
    finally:
        await r.aclose()


async def stored_subjects(s: Settings) -> int:
    from creditstream.connections import redis_client
    from sinks.keys import resolve_keys

    r = redis_client(s)
    try:
        return int(await r.scard((await resolve_keys(r, s.namespace)).subjects))
    finally:
        await r.aclose()


class TopicEnd:
    """The number of records in one topic (the sum of its partitions' log ends), followed by one
    consumer kept for the whole run: it fetches a KiB per partition at most and waits up to
    ``wait_ms`` (the resolution of the count: a raw forward moves 100,000 messages in about a second),
    and each fetch response brings the partitions' high watermarks (right on both brokers; Tansu's
    ListOffsets is not: docs/broker.md 3). Polled every 50 ms, a new client per call (connect,
    metadata, offsets) took 5-7% of a core from the machine the workers and the baselines share,
    and as many connections a second from the broker."""

    def __init__(self, s: Settings, topic: str, wait_ms: int = 50):
        self.s = s
        self.topic = topic
        self.wait_ms = wait_ms
        self._consumer = None
        self._tps: list = []

    async def __call__(self) -> int:
        from aiokafka import TopicPartition

        from streams import kafka

        if self._consumer is None:
            c = kafka.consumer(self.s, group_id=None, fetch_max_wait_ms=self.wait_ms, fetch_min_bytes=1 << 20,
                               max_partition_fetch_bytes=1024)
            await c.start()
            await c._client._wait_on_metadata(self.topic)  # noqa: SLF001 - metadata of an unsubscribed topic
            tps = [TopicPartition(self.topic, p) for p in sorted(c.partitions_for_topic(self.topic) or ())]
            if not tps:  # not created yet: again at the next call
                await kafka.stop_consumer(c)
                return 0
            c.assign(tps)
            for tp in tps:
                await c.seek_to_beginning(tp)
            self._consumer, self._tps = c, tps
        await self._consumer.getmany(timeout_ms=0)  # what was fetched, dropped: the next fetch goes out
        return sum(self._consumer.highwater(tp) or 0 for tp in self._tps)

    async def close(self) -> None:
        from streams import kafka

        if self._consumer is not None:
            await kafka.stop_consumer(self._consumer)
            self._consumer = None


class Progress:
    """Department inputs accounted for (applied, parked, dead-lettered), read cheaply: the
    subject agent's input counter, the parked count and the dead letters (:class:`TopicEnd`)."""

    def __init__(self, s: Settings):
        from creditstream.connections import redis_client
        from sinks.keys import Keys
        from streams.topics import Topics

        self.s = s
        self.redis = redis_client(s)
        self.keys = Keys(s.namespace)
        self.dead_letters = TopicEnd(s, Topics(s).dead_letters)

    async def __call__(self) -> int:
        from sinks.registry_index import RegistryIndex

        inputs = int(await self.redis.hget(self.keys.stats, "inputs") or 0)
        parked = await RegistryIndex(self.redis, self.keys).parked_inputs()
        return inputs + parked + await self.dead_letters()

    async def close(self) -> None:
        await self.dead_letters.close()
        await self.redis.aclose()


async def wait_until(check, target: int, timeout: float, proc_list=(), on_first=None) -> tuple[float, float, int]:
    """Poll ``check()`` until it reaches ``target``: (time of the first progress, time done, count
    at the first progress). ``on_first()`` is called when the first progress is seen."""
    t_first = None
    first_count = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = await check()
        now = time.monotonic()
        if n > 0 and t_first is None:
            t_first, first_count = now, n
            if on_first is not None:
                on_first()
        if n >= target:
            return t_first or now, now, first_count
        for p in proc_list:
            if p.poll() is not None:
                raise RuntimeError(f"process {p.args} exited with {p.returncode}")
        # polled every 50 ms: at 0.25 s a run of a few seconds was timed to +-5% (runs repeated
        # the same figure); the check is one Redis read or one offsets request
        await asyncio.sleep(0.05)
    raise TimeoutError(f"only {n} of {target} after {timeout:.0f}s")


# --------------------------------------------------------------------------------------------- runs
async def pipeline_run(info, tag: str, events, *, workers: int = 1, kill_at: float | None = None,
                       generated: tuple[int, int] | None = None, stand_in: str | None = None) -> dict:
    """``events``, or ``generated=(size, subjects)`` produced chunk by chunk. ``stand_in``: the
    workers' domain work replaced (bench/ceiling.py: ``subject`` or ``domain``)."""
    worker = worker_command(stand_in)
    s = settings_for(info, tag)
    if generated is not None:
        await produce_generated(s, *generated)
        events = range(generated[0])  # only its length is used below
    else:
        await produce(s, events)
    progress = Progress(s)
    used_before = await redis_used_memory(s)
    forks_before = await redis_forks(s)
    t_spawn = time.monotonic()
    procs = [spawn(worker, env_for(s), RUN_DIR / tag / f"worker{i}.log") for i in range(workers)]
    out: dict = {}
    try:
        n = len(events)
        if kill_at is not None:
            # kill -9 mid-stream, restart, and time until the new process handles an event again:
            # a fresh event is sent at the restart, so there is always something left to handle
            t_first, _, _ = await wait_until(progress, int(n * kill_at), 600, procs)
            out["startup_s"] = t_first - t_spawn
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            before = await progress()
            t_restart = time.monotonic()
            procs[0] = spawn(worker, env_for(s), RUN_DIR / tag / "worker0.log")
            await produce(s, events[:1])
            t_next, _, _ = await wait_until(lambda: _above(progress, before), 1, 120, procs)
            out["restart_after_kill_s"] = t_next - t_restart
            await wait_until(progress, n + 1, 900, procs)
            return out
        # the workers' own CPU time over the timed part: their cost per event apart from waiting
        # on the broker and Redis (a wall-clock rate alone does not tell them apart)
        cpu_at_first: list[float | None] = []
        # and the broker's and Redis's, which share the machine's two cores with the workers
        # (a JVM compiling its hot paths, an AOF rewrite): "busy" as a share of one core
        servers = {"broker": info.broker_pid, "redis": info.redis_pid}
        servers_at_first: dict[str, float | None] = {}

        def at_first() -> None:
            cpu_at_first.extend(cpu_seconds(p.pid) for p in procs)
            servers_at_first.update({k: cpu_seconds(pid) if pid else None for k, pid in servers.items()})

        t_first, t_done, first = await wait_until(progress, n, max(900, n / 200), procs, on_first=at_first)
        cpu_at_done = [cpu_seconds(p.pid) for p in procs]
        for k, pid in servers.items():
            a, b = servers_at_first.get(k), (cpu_seconds(pid) if pid else None)
            out[f"{k}_busy"] = None if a is None or b is None else (b - a) / max(t_done - t_first, 1e-9)
        out["startup_s"] = t_first - t_spawn
        out["events_per_s"] = (n - first) / max(t_done - t_first, 1e-9)
        out["seconds"] = t_done - t_first
        if cpu_at_first and None not in cpu_at_first and None not in cpu_at_done:
            used = sum(b - a for a, b in zip(cpu_at_first, cpu_at_done))  # type: ignore[operator]
            out["worker_cpu_us_per_event"] = used / max(n - first, 1) * 1e6
            out["worker_busy"] = used / max(t_done - t_first, 1e-9) / len(procs)
        out["peak_rss_mib"] = max(peak_rss_mib(p.pid) for p in procs)
        out["subjects_stored"] = await stored_subjects(s)
        out["redis_bytes_per_subject"] = (await redis_used_memory(s) - used_before) / max(out["subjects_stored"], 1)
        # the AOF rewrites Redis ran during this run (its own writes made them due: the earlier
        # phases' were done before it started, redis_compacted)
        out["redis_rewrites"] = await redis_forks(s) - forks_before
        out["settings"] = s
        return out
    finally:
        for p in procs:
            stop(p)
        await progress.close()


async def profile_run(info, tag: str, events, stand_in: str | None = None) -> dict:
    """One pipeline run with py-spy sampling the worker from its first event to its last
    (``stand_in``: its domain work stood in for, bench/ceiling.py)."""
    from bench.profile import summarize

    s = settings_for(info, tag)
    await produce(s, events)
    progress = Progress(s)
    worker = worker_command(stand_in)
    proc = spawn(worker, env_for(s), RUN_DIR / tag / "worker0.log")
    raw = RUN_DIR / tag / "py-spy.txt"
    spy = None
    try:
        await wait_until(progress, 1, 120, [proc])
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(proc.pid),
                                "--rate", "200", "--format", "raw", "--output", str(raw), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_first, t_done, first = await wait_until(progress, len(events), 900, [proc])
        spy.send_signal(signal.SIGINT)
        spy.wait(60)
        return {"events_per_s": (len(events) - first) / max(t_done - t_first, 1e-9),
                "profile": summarize(raw.read_text()) if raw.exists() else None, "profile_file": str(raw)}
    finally:
        if spy is not None and spy.poll() is None:
            spy.kill()
        stop(proc)
        await progress.close()


async def _above(progress, before: int) -> int:
    return 1 if await progress() > before else 0


async def baseline_run(info, tag: str, which: str, events) -> float:
    s = settings_for(info, tag)
    source, target = f"{tag}.bench-source", f"{tag}.bench-target"
    await produce(s, events, raw_topic=source)
    from streams import kafka

    await kafka.ensure_topics(s, [target])
    proc = spawn(["-m", "bench.baselines", which], env_for(s, BENCH_SOURCE=source, BENCH_TARGET=target),
                 RUN_DIR / tag / f"{which}.log")
    forwarded = TopicEnd(s, target, wait_ms=10)
    try:
        t_first, t_done, first = await wait_until(forwarded, len(events), 900, [proc])
        return (len(events) - first) / max(t_done - t_first, 1e-9)
    finally:
        stop(proc)
        await forwarded.close()


async def latency_run(info, tag: str, rate: int, seconds: float, subjects: int, warmup_s: float = 3.0,
                      workers: int = 1) -> dict:
    """Offer ``rate`` events/s for ``warmup_s`` + ``seconds``; latency = list change received - input
    event time, of the inputs sent after the warm-up. ``workers`` worker processes share the
    partitions (the busy share reported is their mean, each of one core)."""
    from creditstream.connections import make_codec
    from streams import kafka
    from streams.samples import SCHEMA_OF_KIND
    from streams.synthetic import EventGenerator
    from streams.topics import Topics

    s = settings_for(info, tag)
    t = Topics(s)
    await kafka.ensure_topics(s)
    procs = [spawn(worker_command(), env_for(s),
                   RUN_DIR / tag / ("worker.log" if workers == 1 else f"worker{i}.log")) for i in range(workers)]
    codec = make_codec(s)
    await codec.ensure_writer(SCHEMA_OF_KIND["penalty"])  # a remote registry: sample_severe encodes in the loop
    # severe penalties in blacklisted domains: most inputs cause a list change we can time
    gen = EventGenerator(7, subjects=subjects, duplicate_rate=0, correction_rate=0, malformed_rate=0,
                         start=dt.date.today() - dt.timedelta(days=30))
    producer = kafka.producer(s, linger_ms=1)
    await producer.start()
    latencies: list[float] = []
    samples: list[tuple[int, float]] = []
    t_begin_ms = int(time.time() * 1000)
    worker_busy: float | None = None
    try:
        # warm-up: the worker is up and has joined its groups
        progress = Progress(s)
        warm = sample_severe(gen, codec)
        await (await producer.send(t.penalty, warm))
        await wait_until(progress, 1, 120, procs)
        # then the offered rate for ``warmup_s`` before anything is timed: the figure is the steady
        # state's (the first seconds of a cold worker are startup_s / restart_after_kill_s)
        warm_n = int(rate * warmup_s)
        n = int(rate * seconds) + warm_n
        # the inputs are made before the clock starts: made in the loop, their Avro encoding took
        # CPU from the worker and the broker on this 2-core machine (the measuring process at 42% of
        # a core, with a busy-polling consumer)
        inputs = [sample_severe(gen, codec) for _ in range(n)]
        t0 = time.monotonic()
        t_begin_ms = int(time.time() * 1000 + warmup_s * 1000)
        consumer_task = asyncio.create_task(collect_changes(s, t.list_changes, t_begin_ms, latencies, samples))
        busy_from: tuple[float, list[float | None]] | None = None
        for i in range(n):
            if i == warm_n:  # the timed part starts: the workers' CPU time from here
                busy_from = (time.monotonic(), [cpu_seconds(p.pid) for p in procs])
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await producer.send(t.penalty, inputs[i], timestamp_ms=int(time.time() * 1000))
        await producer.flush()
        await wait_until(progress, n + 1, 120, procs)
        # how busy the workers were while timed (each a share of one core): near 1, inputs queue
        # behind each other and the latency is the machine's speed, not the pipeline's waits
        used = [cpu_seconds(p.pid) for p in procs]
        if busy_from is not None and None not in busy_from[1] and None not in used:
            spent = sum(u - b for u, b in zip(used, busy_from[1]))  # type: ignore[operator]
            worker_busy = round(spent / workers / (time.monotonic() - busy_from[0]), 3)
        await asyncio.sleep(1.0)
        consumer_task.cancel()
        await progress.close()
    finally:
        await producer.stop()
        for proc in procs:
            stop(proc)
    windows = latency_windows(samples, t_begin_ms)
    latencies.sort()
    if not latencies:
        return {"latency_p50_ms": None, "latency_p99_ms": None, "latency_samples": 0, "latency_windows": [],
                "latency_worker_busy": worker_busy}
    return {"latency_p50_ms": latencies[len(latencies) // 2],
            "latency_p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "latency_samples": len(latencies), "latency_windows": windows, "latency_worker_busy": worker_busy}


def latency_windows(samples: list[tuple[int, float]], start_ms: int, window_s: float = 2.0) -> list[dict]:
    """p50 / p99 of the samples (input sent at, latency) per ``window_s`` of sending time: whether
    the latency is steady through the run or climbs (docs/broker.md 10), and where its tail falls."""
    by: dict[int, list[float]] = {}
    for sent_ms, latency in samples:
        by.setdefault(int(max(0, sent_ms - start_ms) // (window_s * 1000)), []).append(latency)
    out = []
    for k, values in sorted(by.items()):
        values.sort()
        out.append({"from_s": k * window_s, "samples": len(values), "p50_ms": round(values[len(values) // 2], 1),
                    "p99_ms": round(values[min(len(values) - 1, int(len(values) * 0.99))], 1)})
    return out


def sample_severe(gen, codec) -> bytes:
    from streams.samples import SCHEMA_OF_KIND

    kind, rec = gen.fresh()
    while kind != "penalty":
        kind, rec = gen.fresh()
    rec = dict(rec, severity="严重", domain="environment", decision_date=dt.datetime.now(CHINA).date())
    return codec.encode(SCHEMA_OF_KIND["penalty"], rec)


async def collect_changes(s: Settings, topic: str, since_ms: int, out: list[float],
                          samples: list[tuple[int, float]] | None = None) -> None:
    """Latencies (ms) of the list changes of inputs sent from ``since_ms`` on into ``out``, and
    (sent at, latency) pairs into ``samples``."""
    from aiokafka import TopicPartition

    from streams import kafka

    # the measuring consumer itself: on Tansu a short fetch wait, so that it adds as little as it can
    # (a fetch there answers only after up to its maximum wait: docs/performance.md); Apache Kafka
    # answers a fetch as soon as ``fetch_min_bytes`` are there, so with 1 byte a long wait adds
    # nothing and spares the CPU that polling every 5 ms took from the worker. Not the workers'
    # 16 KiB (Settings.fetch_min on Apache Kafka): until the fifteenth session this consumer took it
    # too, and every sample carried its wait for 16 KiB of list changes (~40 ms of them at 1,000
    # inputs/s), the run's p99 with it
    c = kafka.consumer(s, group_id=None, fetch_max_wait_ms=5 if s.is_tansu else 200, fetch_min_bytes=1)
    await c.start()
    try:
        await c._client._wait_on_metadata(topic)  # noqa: SLF001 - metadata of an unsubscribed topic
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or [])]
        c.assign(tps)
        for tp in tps:
            await c.seek_to_beginning(tp)
        while True:
            batches = await c.getmany(timeout_ms=200)  # returns as soon as records are in
            now = time.time() * 1000
            for records in batches.values():
                for r in records:
                    if r.timestamp >= since_ms:  # the list change carries its input's event time
                        out.append(now - r.timestamp)
                        if samples is not None:
                            samples.append((r.timestamp, now - r.timestamp))
    finally:
        await kafka.stop_consumer(c)


async def replay_rate(s: Settings) -> tuple[float, int]:
    """``creditstream replay``'s rate over the log, as an operator runs it (one process per CPU,
    at most one per partition), and the processes it used."""
    from ops.replay import replay

    result = await replay(s, progress=False)
    return result.rate, result.jobs


# --------------------------------------------------------------------------------------------- main
async def main(args) -> dict:
    from ops.kafka_cluster import KafkaCluster
    from ops.stack import Stack

    hot: dict = {}
    if args.hot and not (args.scale or args.latency_only or args.profile or args.checks_only or args.ceiling):
        from bench.core import hot_subject

        # in process, before the stack starts: a broker or Redis busy in the background (an AOF
        # rewrite after a run) took CPU from it when it ran last (first / last 187 / 326 us against
        # 143 / 187 us alone)
        log(f"hot subject: {args.hot} inputs to one subject (rules core + state encode, in process)")
        hot = hot_subject(args.hot)
    stack = Stack(RUN_DIR / "stack")
    stack.down()
    # every run measures in namespaces of its own: what earlier runs left in Redis (a million-subject
    # run leaves gigabytes) would only be loaded at start and rewritten by Redis during this one
    shutil.rmtree(stack.redis_dir, ignore_errors=True)
    # and Apache Kafka's log dirs: every run's topics stayed there (3,217 partitions, 2.9 GB after a
    # few sessions of runs), a broker that starts by recovering them all and then serves more
    # partitions than any run uses; the cluster is formatted again (a few seconds)
    shutil.rmtree(KafkaCluster(stack.run_dir).base, ignore_errors=True)
    info = stack.up(broker=args.broker)
    stamp = int(time.time())
    import domain
    from creditstream.settings import load as load_settings

    # the workers import the same rules core as this process: compiled when make install built it;
    # the workers, the API and both baselines run on the event loop the same setting names
    results: dict = {"rules_core": "compiled" if domain.COMPILED else "python",
                     "event_loop": load_settings().event_loop,
                     "broker": args.broker, "broker_description": stack.broker_description(),
                     "subjects": args.subjects}
    log(f"broker: {results['broker_description']}; rules core: {results['rules_core']}; "
        f"event loop: {results['event_loop']}")

    async def fresh(info):
        """Before each measured run: Tansu started again, empty, as it slows down as it holds more
        (measured: two workers at 1.12x of one when timed after 900,000 messages of earlier runs,
        1.70-1.74x on a broker holding only pipeline runs), so a run timed late, the baselines and
        the two-worker run included, measured the broker's age. Apache Kafka is not restarted; the
        topics of the runs done are deleted instead (all but run 1's, which the check API's run
        reads): measured on it, two workers at 1.24x and 1.34x of one when timed after the
        earlier runs' ~40 topics, 1.65-1.79x on a broker holding one run's. And Redis's
        append-only file compacted (``redis_compacted``), on either broker."""
        if args.broker == "tansu":
            info = stack.restart_broker()
        else:
            await drop_topics_of_runs_done(info, f"b{stamp}", keep=f"b{stamp}p0.")
        await redis_compacted(settings_for(info, "bench"))
        return info

    results["fresh_broker_per_run"] = args.broker == "tansu"
    results["redis_compacted_per_run"] = True
    try:
        if args.scale:
            results["scale"] = await scale_runs(info, stamp, [int(v) for v in args.scale.split(",")], fresh,
                                                stand_in=args.stand_in)
            return results
        if args.latency_only:
            log(f"latency at {args.rate} events/s for {args.latency_seconds}s")
            results.update(offered_rate=args.rate, latency_workers=args.latency_workers,
                           **await latency_run(info, f"b{stamp}l", args.rate, args.latency_seconds, args.subjects,
                                               workers=args.latency_workers))
            return results
        log(f"generating {args.size} events over {args.subjects} subjects"
            + (f", {args.hot_share:.0%} of the new decisions about one subject" if args.hot_share else ""))
        events = generate(args.size, args.subjects, hot_share=args.hot_share)
        results["hot_share"] = args.hot_share
        if not args.checks_only:
            from bench.core import core_stages

            # the floor under the worker's CPU per event: its own work on the same inputs, in this
            # process, without Kafka, Redis or the event loop (the broker and Redis are up and idle)
            log("the worker's stages in process (rules core and codecs, no Kafka, no Redis)")
            results.update(core_stages(events))
            log(f"  {results['core_us_per_event']:,.1f} us per input: "
                + ", ".join(f"{k} {v:,.1f}" for k, v in results["core_stage_us"].items()))
        if args.profile:
            log("pipeline run with py-spy on the worker")
            r = await profile_run(info, f"b{stamp}s", events, stand_in=args.stand_in)
            results.update(size=args.size, subjects=args.subjects, profiled_events_per_s=r["events_per_s"],
                           profile=r["profile"], profile_file=r["profile_file"])
            return results
        if args.ceiling:
            results.update(size=args.size, **await ceiling_runs(info, stamp, events, args.runs, fresh))
            return results
        if args.checks_only:
            log("one pipeline run to build the state the check API reads")
            r = await pipeline_run(info, f"b{stamp}c", events)
            results.update(size=args.size, **await checks_part(r["settings"], args))
            return results
        pipeline, rss, startup, cpu, rewrites, broker_busy, redis_busy = [], [], [], [], [], [], []
        worker_busy: list[float | None] = []
        faust, raw, twos, replays = [], [], [], []
        first_settings = None
        # In rounds: each round times one pipeline run, the replay of its log, the baselines and two
        # workers, one after the other, and the ratios are taken within a round as well as between
        # the medians. Timed in blocks (every pipeline run, then every baseline, then every two-worker
        # run), a ratio set runs up to ten minutes apart against each other, and this machine's speed
        # drifts by a third within minutes (docs/performance.md).
        for i in range(args.runs):
            log(f"round {i + 1}/{args.runs}: pipeline run")
            info = await fresh(info)
            r = await pipeline_run(info, f"b{stamp}p{i}", events)
            pipeline.append(r["events_per_s"])
            rss.append(r["peak_rss_mib"])
            startup.append(r["startup_s"])
            if r.get("worker_cpu_us_per_event") is not None:
                cpu.append(r["worker_cpu_us_per_event"])
            rewrites.append(r.get("redis_rewrites"))
            broker_busy.append(r.get("broker_busy"))
            redis_busy.append(r.get("redis_busy"))
            worker_busy.append(r.get("worker_busy"))
            if first_settings is None:
                first_settings = r["settings"]
                results.update(redis_bytes_per_subject=r["redis_bytes_per_subject"],
                               subjects_stored=r["subjects_stored"])
            log(f"  {r['events_per_s']:,.0f} events/s, start-up {r['startup_s']:.2f}s, "
                f"peak RSS {r['peak_rss_mib']:.0f} MiB, Redis AOF rewrites during it: {r.get('redis_rewrites')}")
            # on the broker that holds this run's log (the next round starts a fresh one)
            log(f"round {i + 1}/{args.runs}: replay of that run's subject-event log")
            await redis_compacted(r["settings"])
            rate, results["replay_jobs"] = await replay_rate(r["settings"])
            replays.append(rate)
            log(f"  {rate:,.0f} events/s ({rate / pipeline[-1]:.2f}x the pipeline run)")
            log(f"round {i + 1}/{args.runs}: baselines")
            info = await fresh(info)
            faust.append(await baseline_run(info, f"b{stamp}f{i}", "faust-forward", events))
            info = await fresh(info)
            raw.append(await baseline_run(info, f"b{stamp}r{i}", "raw-forward", events))
            log(f"  faust forward {faust[-1]:,.0f}/s, raw forward {raw[-1]:,.0f}/s "
                f"(the pipeline run {pipeline[-1] / faust[-1]:.2f}x the Faust forward)")
            # two workers, as often as one (a single two-worker run measured 1.24x one worker on Apache
            # Kafka where two others of the same session measured 1.79x and 1.65x): the median run
            log(f"round {i + 1}/{args.runs}: two workers")
            info = await fresh(info)
            twos.append(await pipeline_run(info, f"b{stamp}w2{'' if i == 0 else f'r{i}'}", events, workers=2))
            log(f"  {twos[-1]['events_per_s']:,.0f} events/s ({twos[-1]['events_per_s'] / pipeline[-1]:.2f}x the "
                f"pipeline run), each worker busy {busy(twos[-1].get('worker_busy'))}")
        two = median_run(twos)
        log("kill -9 and restart")
        info = await fresh(info)
        killed = await pipeline_run(info, f"b{stamp}k", events[: max(2000, len(events) // 4)], kill_at=0.3)
        log(f"latency at {args.rate} events/s for {args.latency_seconds}s")
        info = await fresh(info)
        lat = await latency_run(info, f"b{stamp}l", args.rate, args.latency_seconds, args.subjects)
        # run 1's state in Redis, read through the check API (its audit records go to this broker)
        results.update(await checks_part(first_settings.replace(broker_url=info.broker_url), args))
        results.update(hot)
        results.update({
            "size": args.size,
            "runs": args.runs,
            "pipeline_events_per_s": statistics.median(pipeline),
            "pipeline_runs_events_per_s": pipeline,
            "faust_forward_events_per_s": statistics.median(faust),
            "raw_forward_events_per_s": statistics.median(raw),
            "ratio_vs_faust_forward": statistics.median(pipeline) / statistics.median(faust),
            "ratio_vs_raw_forward": statistics.median(pipeline) / statistics.median(raw),
            "ratio_vs_faust_forward_by_round": [p / f for p, f in zip(pipeline, faust)],
            "replay_events_per_s": statistics.median(replays),
            "replay_runs_events_per_s": replays,
            "replay_ratio_by_round": [rp / p for rp, p in zip(replays, pipeline)],
            "latency_p50_ms": lat["latency_p50_ms"],
            "latency_p99_ms": lat["latency_p99_ms"],
            "latency_samples": lat["latency_samples"],
            "latency_windows": lat["latency_windows"],
            "latency_worker_busy": lat["latency_worker_busy"],
            "offered_rate": args.rate,
            "startup_s": statistics.median(startup),
            "restart_after_kill_s": killed["restart_after_kill_s"],
            "peak_rss_mib": max(rss),
            "two_workers_events_per_s": two["events_per_s"],
            "two_workers_runs_events_per_s": [r["events_per_s"] for r in twos],
            "two_workers_ratio": two["events_per_s"] / statistics.median(pipeline),
            "two_workers_ratio_by_round": [w["events_per_s"] / p for w, p in zip(twos, pipeline)],
            "pipeline_worker_cpu_us_per_event": statistics.median(cpu) if cpu else None,
            "two_workers_busy": two.get("worker_busy"),
            "pipeline_broker_busy": median_of(broker_busy),
            "pipeline_redis_busy": median_of(redis_busy),
            "two_workers_broker_busy": two.get("broker_busy"),
            "two_workers_redis_busy": two.get("redis_busy"),
            "pipeline_worker_busy": median_of(worker_busy),
            "cpus": os.cpu_count(),
            "two_workers_ceiling": two_workers_ceiling(os.cpu_count(), median_of(worker_busy),
                                                      median_of(broker_busy), median_of(redis_busy)),
            "pipeline_redis_rewrites": rewrites,
            "two_workers_redis_rewrites": two.get("redis_rewrites"),
        })
    finally:
        stack.down()
    return results


def topics_of_runs_done(names, prefix: str, keep: str) -> list[str]:
    """The topics of this benchmark's runs (``<prefix><run letter>...``) but those named ``keep...``."""
    return sorted(t for t in names if t.startswith(prefix) and t[len(prefix):len(prefix) + 1].isalpha()
                  and not t.startswith(keep))


async def drop_topics_of_runs_done(info, prefix: str, keep: str) -> list[str]:
    """Delete the topics named ``prefix``... but not ``keep``... (Apache Kafka, between runs)."""
    from streams.kafka import admin

    client = admin(settings_for(info, "bench"))
    await client.start()
    try:
        names = topics_of_runs_done(await client.list_topics(), prefix, keep)
        if names:
            await client.delete_topics(names)
        return names
    finally:
        await client.close()


def two_workers_ceiling(cpus: int | None, worker: float | None, broker: float | None,
                        redis: float | None) -> float | None:
    """The most two workers can reach against one on this machine, from the one-worker runs: one
    worker keeps ``worker`` of a core busy and the broker and Redis ``broker`` and ``redis`` more
    (shares of one core), so two need twice that; with fewer cores than that, the machine is the
    bound: ``cpus / (worker + broker + redis)``, at most 2. None when a share was not measured."""
    if not cpus or worker is None or broker is None or redis is None or worker + broker + redis <= 0:
        return None
    return min(2.0, cpus / (worker + broker + redis))


def median_run(runs: list[dict]) -> dict:
    """The run of the median rate (the upper middle of an even number): its figures (busy shares,
    rewrites) stay those of one run, measured together."""
    return sorted(runs, key=lambda r: r["events_per_s"])[len(runs) // 2]


def median_of(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


async def redis_forks(s: Settings) -> int:
    """Redis's forks so far (``total_forks``): its AOF rewrites, as the stack saves no snapshots."""
    from creditstream.connections import redis_client

    redis = redis_client(s)
    try:
        return int((await redis.info("stats")).get("total_forks") or 0)
    finally:
        await redis.aclose()


async def redis_compacted(s: Settings, timeout_s: float = 300.0) -> float:
    """Rewrite Redis's append-only file now and wait until Redis is quiet (no rewrite or snapshot
    running or scheduled); returns the seconds waited. Called before each measured part.

    Every phase writes to the same Redis, and its append-only file grows with each: the rewrite the
    earlier phases made due (a forked child writing hundreds of MB, on one of the two cores, and the
    copy-on-write it costs Redis) fell into whichever run came next. Measured on Apache Kafka: a
    rewrite 11 s into the two-worker run took both workers from 0.8 to 0.47 of a core for its 3 s,
    and the run measured 1.42x and 1.46x one worker; with the file compacted first, 1.63x and 1.68x.
    A rewrite that a run's own writes make due still falls into it, as it would in production
    (``redis_rewrites`` in the run's figures counts them)."""
    from creditstream.connections import redis_client

    redis = redis_client(s)
    t0 = time.monotonic()
    try:
        info = await redis.info("persistence")
        if info.get("aof_enabled") and not info.get("aof_rewrite_in_progress") \
                and not info.get("aof_rewrite_scheduled"):
            await redis.bgrewriteaof()
        while time.monotonic() - t0 < timeout_s:
            info = await redis.info("persistence")
            if not (info.get("aof_rewrite_in_progress") or info.get("aof_rewrite_scheduled")
                    or info.get("rdb_bgsave_in_progress")):
                break
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()
    return time.monotonic() - t0


async def checks_part(s: Settings, args) -> dict:
    """The check API (bench/checks.py) on the state of a pipeline run: ``check_p50_ms``, ``check_p99_ms``."""
    from bench.checks import check_run

    waited = await redis_compacted(s)
    log(f"check API: {args.check_rate} checks/s for {args.check_seconds:g}s (open loop; Redis compacted "
        f"first, {waited:.1f} s)")
    r = await check_run(s, env_for(s), RUN_DIR / s.namespace / "api.log", rate=args.check_rate,
                        seconds=args.check_seconds)
    log(f"  p50 {r['check_p50_ms']} ms, p99 {r['check_p99_ms']} ms, {r['check_errors']} errors, "
        f"{r['check_audit_recorded']} audit records ({r['check_audit_dropped']} dropped)")
    return r


def busy(share: float | None) -> str:
    """A process's share of one core, as a percentage."""
    return "n/a" if share is None else f"{share:.0%}"


def render_checks(r: dict) -> str:
    def f(v):
        return "n/a" if v is None else f"{v:,.2f}"

    return "\n".join([
        f"creditstream benchmark, check API ({r['broker']}): GET /check, {r['check_offered_rate']}/s offered, "
        f"open loop, on {r['size']:,} events' state",
        f"  p50 {f(r['check_p50_ms'])} ms   p99 {f(r['check_p99_ms'])} ms (goal < 5 ms)   "
        f"max {f(r['check_max_ms'])} ms",
        f"  {r['check_samples']:,} answers, {r['check_errors']} errors, achieved {f(r['check_achieved_rate'])}/s, "
        f"API process CPU {f(r.get('check_api_cpu_ms'))} ms per answer"])


async def _as_is(info):
    return info


async def scale_runs(info, stamp: int, scales: list[int], fresh=_as_is, stand_in: str | None = None) -> list[dict]:
    """One pipeline run per subject count (2 events per subject): is the cost per event flat?
    ``fresh(info)`` (awaited): the broker to run on (Tansu started again, empty; Redis compacted).
    ``stand_in``: the worker's domain work stood in for (bench/ceiling.py): which part grows."""
    out = []
    for subjects in scales:
        size = 2 * subjects
        log(f"scale: {subjects:,} subjects, {size:,} events" + (f", {stand_in} stood in for" if stand_in else ""))
        info = await fresh(info)
        tag = f"b{stamp}x{subjects}{stand_in or ''}"
        r = await pipeline_run(info, tag, None, generated=(size, subjects), stand_in=stand_in)
        row = {"subjects": subjects, "events": size, "stand_in": stand_in, "events_per_s": r["events_per_s"],
               "us_per_event": 1e6 / r["events_per_s"], "peak_rss_mib": r["peak_rss_mib"],
               "worker_cpu_us_per_event": r.get("worker_cpu_us_per_event"), "worker_busy": r.get("worker_busy"),
               "subjects_stored": r["subjects_stored"], "redis_bytes_per_subject": r["redis_bytes_per_subject"],
               "redis_rewrites": r.get("redis_rewrites"), "broker_busy": r.get("broker_busy"),
               "redis_busy": r.get("redis_busy"), "worker_held": worker_held(tag)}
        log(f"  {row['events_per_s']:,.0f} ev/s ({row['us_per_event']:.0f} us/event; worker CPU "
            f"{row['worker_cpu_us_per_event'] or 0:.0f} us/event, busy {row['worker_busy'] or 0:.0%}), peak RSS "
            f"{row['peak_rss_mib']:.0f} MiB, Redis {row['redis_bytes_per_subject']:,.0f} B/subject; broker / Redis "
            f"busy {busy(row['broker_busy'])} / {busy(row['redis_busy'])}, AOF rewrites {row['redis_rewrites']}")
        largest = sorted(row["worker_held"].items(), key=lambda kv: -kv[1])[:6]
        log("  held when it stopped (entries): " + (", ".join(f"{k} {n:,}" for k, n in largest) or "not logged"))
        out.append(row)
    return out


CEILING_RUNS = (("pipeline", None), ("subject stood in for", "subject"), ("domain stood in for", "domain"))


async def ceiling_runs(info, stamp: int, events, runs: int, fresh=_as_is) -> dict:
    """``runs`` rounds of: the pipeline, the pipeline with stand-ins (bench/ceiling.py) at each
    level, the Faust forward; one worker each, on a fresh broker each. Medians, and each run's
    ratio to the Faust forward of its round."""
    by: dict[str, list[dict]] = {name: [] for name, _ in CEILING_RUNS}
    faust: list[float] = []
    for i in range(runs):
        for name, stand_in in CEILING_RUNS:
            log(f"round {i + 1}/{runs}: {name}")
            info = await fresh(info)
            r = await pipeline_run(info, f"b{stamp}c{stand_in or 'p'}{i}", events, stand_in=stand_in)
            by[name].append(r)
            log(f"  {r['events_per_s']:,.0f} events/s, worker CPU {r.get('worker_cpu_us_per_event') or 0:,.1f} us "
                f"per event")
        info = await fresh(info)
        faust.append(await baseline_run(info, f"b{stamp}f{i}", "faust-forward", events))
        log(f"  faust forward {faust[-1]:,.0f}/s")
    out = []
    for name, stand_in in CEILING_RUNS:
        rs = by[name]
        cpu = [r["worker_cpu_us_per_event"] for r in rs if r.get("worker_cpu_us_per_event") is not None]
        rate = statistics.median(r["events_per_s"] for r in rs)
        out.append({"run": name, "stand_in": stand_in, "events_per_s": rate,
                    "runs_events_per_s": [r["events_per_s"] for r in rs],
                    "worker_cpu_us_per_event": statistics.median(cpu) if cpu else None,
                    "ratio_vs_faust_forward": rate / statistics.median(faust),
                    "ratio_vs_faust_forward_by_round": [r["events_per_s"] / f for r, f in zip(rs, faust)]})
    return {"runs": runs, "faust_forward_events_per_s": statistics.median(faust),
            "faust_forward_runs_events_per_s": faust, "ceiling": out}


def render_ceiling(r: dict) -> str:
    lines = [f"creditstream benchmark, ceiling ({r['broker']}): {r['size']:,} events, {r['runs']} round(s), "
             f"1 worker; the Faust forward {r['faust_forward_events_per_s']:,.0f}/s",
             f"  {'run':<22} {'events/s':>10} {'x Faust forward':>16} {'by round':>22} {'worker CPU us/event':>20}"]
    for x in r["ceiling"]:
        rounds = " / ".join(f"{v:.2f}" for v in x["ratio_vs_faust_forward_by_round"])
        lines.append(f"  {x['run']:<22} {x['events_per_s']:>10,.0f} {x['ratio_vs_faust_forward']:>16.2f} "
                     f"{rounds:>22} {x.get('worker_cpu_us_per_event') or 0:>20,.1f}")
    cpu = {x["stand_in"]: x.get("worker_cpu_us_per_event") for x in r["ceiling"]}
    if None not in cpu.values():
        lines.append(f"  worker CPU per event: the plumbing (Avro decoding included) {cpu['domain']:,.0f} us, "
                     f"ingest's domain work {cpu['subject'] - cpu['domain']:,.0f} us, "
                     f"the subject stage's {cpu[None] - cpu['subject']:,.0f} us")
    return "\n".join(lines)


def render_scale(r: dict) -> str:
    stood = {x.get("stand_in") for x in r["scale"]} - {None}
    lines = [f"creditstream benchmark, scale ({r['broker']}): pipeline only, 1 worker, 2 events per subject"
             + "".join(f"; {s} stood in for (bench/ceiling.py)" for s in stood),
             f"  {'subjects':>10} {'events/s':>10} {'us/event':>9} {'worker CPU us/event':>20} {'busy':>5} "
             f"{'peak RSS MiB':>13} {'Redis B/subject':>16} {'broker / Redis busy':>20} {'AOF rewrites':>13}"]
    lines += [f"  {x['subjects']:>10,} {x['events_per_s']:>10,.0f} {x['us_per_event']:>9,.0f} "
              f"{x.get('worker_cpu_us_per_event') or 0:>20,.0f} {x.get('worker_busy') or 0:>5.0%} "
              f"{x['peak_rss_mib']:>13,.0f} {x['redis_bytes_per_subject']:>16,.0f} "
              f"{busy(x.get('broker_busy')) + ' / ' + busy(x.get('redis_busy')):>20} {x.get('redis_rewrites', '?'):>13}"
              for x in r["scale"]]
    return "\n".join(lines)


def _by_round(r: dict, key: str, note: str) -> list[tuple[str, str, str]]:
    """A ratio taken within each round (runs timed minutes apart, not a block of runs apart), as a row
    of the table when there was more than one round."""
    values = r.get(key) or ()
    return [("  by round", ", ".join(f"{v:.2f}x" for v in values), note)] if len(values) > 1 else []


def render(r: dict) -> str:
    def f(v, unit=""):
        return "n/a" if v is None else (f"{v:,.0f}{unit}" if abs(v) >= 100 else f"{v:,.2f}{unit}")

    rows = [
        ("full pipeline, 1 worker (median)", f(r["pipeline_events_per_s"], " ev/s"),
         f"{r['hot_share']:.0%} of new decisions about one subject" if r.get("hot_share") else ""),
        ("  runs", ", ".join(f(v) for v in r["pipeline_runs_events_per_s"]), ""),
        ("  worker CPU per event (median)", f(r.get("pipeline_worker_cpu_us_per_event"), " us"),
         "its own CPU time, not waits"),
        ("  of it, the same work in process", f(r.get("core_us_per_event"), " us"),
         "rules core and codecs, no Kafka / Redis (bench/core.py)"),
        ("plain Faust forward (median)", f(r["faust_forward_events_per_s"], " ev/s"), "baseline"),
        ("raw aiokafka forward (median)", f(r["raw_forward_events_per_s"], " ev/s"), "ceiling"),
        ("pipeline / Faust forward", f(r["ratio_vs_faust_forward"], "x"), "goal >= 2x (product goal 4x)"),
        *_by_round(r, "ratio_vs_faust_forward_by_round", "each round's runs"),
        ("pipeline / raw forward", f(r["ratio_vs_raw_forward"], "x"), ""),
        (f"latency p50 at {r['offered_rate']}/s", f(r["latency_p50_ms"], " ms"), ""),
        (f"latency p99 at {r['offered_rate']}/s", f(r["latency_p99_ms"], " ms"), "goal < 100 ms"),
        ("worker busy during the latency run", busy(r.get("latency_worker_busy")), "share of one core"),
        (f"replay rebuild ({r.get('replay_jobs', 1)} process{'es' if r.get('replay_jobs', 1) > 1 else ''})",
         f(r["replay_events_per_s"], " ev/s") + f"  ({r['replay_events_per_s'] / r['pipeline_events_per_s']:.2f}x)",
         "goal >= 3x the pipeline"),
        *([("  replay runs", ", ".join(f(v) for v in r["replay_runs_events_per_s"]), "")]
          if len(r.get("replay_runs_events_per_s") or ()) > 1 else []),
        *_by_round(r, "replay_ratio_by_round", "its run's log, x that run"),
        ("start-up to first event", f(r["startup_s"], " s"), "goal < 8 s"),
        ("restart after kill -9", f(r["restart_after_kill_s"], " s"), "goal < 15 s"),
        ("peak RSS of a worker", f(r["peak_rss_mib"], " MiB"), ""),
        ("two workers", f(r["two_workers_events_per_s"], " ev/s") + f"  ({r['two_workers_ratio']:.2f}x)",
         "goal >= 1.8x (the median run)"),
        *([("  two-worker runs", ", ".join(f(v) for v in r["two_workers_runs_events_per_s"]), "")]
          if r.get("two_workers_runs_events_per_s") else []),
        *_by_round(r, "two_workers_ratio_by_round", "x the same round's one-worker run"),
        ("  each worker busy", busy(r.get("two_workers_busy")),
         f"share of one core; {r['cpus']} cores in all" if r.get("cpus") else "share of one core"),
        *([("  this machine's ceiling", f"{r['two_workers_ceiling']:.2f}x",
            "cores / (one worker + broker + Redis busy, 1 worker)")] if r.get("two_workers_ceiling") else []),
        ("broker / Redis busy, 1 worker",
         f"{busy(r.get('pipeline_broker_busy'))} / {busy(r.get('pipeline_redis_busy'))}",
         "share of one core, during the pipeline runs"),
        ("broker / Redis busy, 2 workers",
         f"{busy(r.get('two_workers_broker_busy'))} / {busy(r.get('two_workers_redis_busy'))}", ""),
        ("Redis memory per subject", f(r.get("redis_bytes_per_subject"), " B"), f"{r['subjects']:,} subjects"),
        (f"check API p50 / p99 at {r.get('check_offered_rate')}/s",
         f"{f(r.get('check_p50_ms'))} / {f(r.get('check_p99_ms'))} ms", "goal p99 < 5 ms"),
        ("  the API process's CPU per answer", f(r.get("check_api_cpu_ms"), " ms"), ""),
        ("hot subject, first / last 500 of 5,000",
         f"{f(r.get('hot_subject_us_per_event_first'))} / {f(r.get('hot_subject_us_per_event_last'))} us", "core"),
        ("  per 1,000 inputs", " / ".join(f(v) for v in r.get("hot_subject_us_per_event_by_thousand") or ()) + " us",
         "the first carries the small state's whole writes"),
        ("  stored head every 1,000 inputs", " / ".join(f(v) for v in r.get("hot_subject_head_bytes_by_thousand") or ())
         + " B", "the subject key's value, compact"),
    ]
    width = max(len(a) for a, _, _ in rows)
    lines = [f"creditstream benchmark: {r['size']:,} events, {r['runs']} run(s), {r['broker']}, "
             f"rules core {r.get('rules_core', '?')}, this machine"]
    lines += [f"  {a:<{width}}  {b:>24}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def cli() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=200_000, help="events per run (default 200000)")
    p.add_argument("--broker", choices=["tansu", "kafka"], default="tansu",
                   help="the embedded broker to measure on: tansu (default) or kafka (Apache Kafka)")
    p.add_argument("--subjects", type=int, default=100_000, help="distinct subjects (default 100000)")
    p.add_argument("--runs", type=int, default=3, help="runs per measurement, medians reported (default 3)")
    p.add_argument("--rate", type=int, default=1000, help="offered load for the latency run (default 1000/s)")
    p.add_argument("--latency-seconds", type=float, default=20.0, help="length of the latency run (default 20)")
    p.add_argument("--latency-workers", type=int, default=1, metavar="N",
                   help="worker processes in the latency run (default 1; make bench-latency WORKERS=2)")
    p.add_argument("--hot", type=int, default=5000,
                   help="inputs to one hot subject, timed through the rules core (default 5000; 0: skip)")
    p.add_argument("--hot-share", type=float, default=0.0,
                   help="share of the new decisions about one subject in the pipeline runs' events (e.g. 0.05: "
                        "a subject that grows to thousands of records in the stream itself; default 0)")
    p.add_argument("--scale", metavar="SUBJECTS,...",
                   help="only the pipeline, one run per subject count (e.g. 10000,100000,1000000; 2 events per "
                        "subject): per-event cost, peak RSS and Redis bytes per subject as subjects grow")
    p.add_argument("--profile", action="store_true",
                   help="one pipeline run with py-spy sampling the worker: where its time goes, by area")
    p.add_argument("--check-rate", type=int, default=500, help="offered GET /check load (default 500/s)")
    p.add_argument("--check-seconds", type=float, default=10.0, help="length of the check run (default 10)")
    p.add_argument("--ceiling", action="store_true",
                   help="the pipeline beside itself with its domain work stood in for (bench/ceiling.py), in rounds "
                        "with the Faust forward: what the plumbing alone allows")
    p.add_argument("--stand-in", choices=["subject", "domain"],
                   help="with --profile or --scale: the worker's domain work stood in for (bench/ceiling.py), "
                        "to profile or scale the rest")
    p.add_argument("--checks-only", action="store_true",
                   help="only the check API: one pipeline run builds the state, then GET /check at --check-rate")
    p.add_argument("--latency-only", action="store_true",
                   help="only the latency run: --rate events/s for --latency-seconds, p50/p99 input to list change")
    args = p.parse_args()
    if args.latency_workers < 1:
        p.error("--latency-workers: at least 1")
    results = asyncio.run(main(args))
    if args.profile:
        from bench.profile import render as render_profile

        log(f"{results['profiled_events_per_s']:,.0f} events/s under the profiler")
        print(render_profile(results["profile"]) if results["profile"] else "no profile (py-spy failed?)")
        print(json.dumps(results, sort_keys=True, default=str))
        return
    if args.ceiling:
        print(render_ceiling(results))
        print(json.dumps(results, sort_keys=True, default=str))
        return
    if args.scale:
        print(render_scale(results))
        print(json.dumps(results, sort_keys=True, default=str))
        return
    if args.latency_only:
        log(f"latency p50 {results['latency_p50_ms']:.0f} ms, p99 {results['latency_p99_ms']:.0f} ms "
            f"({results['latency_samples']:,} list changes); worker busy {busy(results['latency_worker_busy'])}")
        for w in results.get("latency_windows") or ():
            log(f"  from {w['from_s']:4.0f}s: p50 {w['p50_ms']:6.1f} ms, p99 {w['p99_ms']:6.1f} ms "
                f"({w['samples']:,})")
        print(json.dumps(results, sort_keys=True, default=str))
        return
    if args.checks_only:
        print(render_checks(results))
        print(json.dumps(results, sort_keys=True, default=str))
        return
    print(render(results))
    print(json.dumps({k: v for k, v in results.items()}, sort_keys=True, default=str))


if __name__ == "__main__":
    cli()
