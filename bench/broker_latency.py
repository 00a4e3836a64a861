"""The broker alone: produce-to-consume latency of one topic as it grows (``make bench-broker``).

One producer sends ``--rate`` messages a second (600 bytes, keyed, stamped with the sending time)
to a new topic of the embedded stack's broker, for ``--seconds``; one consumer (assigned, 5 ms
fetch wait, as the benchmark's own measuring consumer) reads them. Prints the p50 / p99 of
(received - stamped) per window of ``--window`` seconds, then one line of JSON.

Why it exists: the pipeline's latency on Tansu grew through every latency run (p50 ~45 ms in the
first second, ~130 ms after 20 s, with the worker's own batch times flat). This isolates the
broker: Tansu's in-memory storage answers later the longer the topic is (docs/broker.md, 10);
Apache Kafka's does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time


async def measure(broker: str, rate: int, seconds: float, window: float) -> dict:
    from bench.bench import RUN_DIR, collect_changes, latency_windows
    from creditstream.settings import Settings
    from ops.stack import Stack
    from streams import kafka

    stack = Stack(RUN_DIR / "broker-stack")
    stack.down()
    info = stack.up(broker=broker)
    topic = f"latency-{int(time.time())}"
    s = Settings(broker_url=info.broker_url, broker_kind=info.broker_kind, redis_url=info.redis_url)
    latencies: list[float] = []
    samples: list[tuple[int, float]] = []
    t_begin_ms = int(time.time() * 1000)
    try:
        await kafka.ensure_topics(s, [topic])
        producer = kafka.producer(s, linger_ms=1)
        await producer.start()
        # the benchmark's own measuring consumer (bench/bench.py), on this one topic
        reader = asyncio.create_task(collect_changes(s, topic, t_begin_ms, latencies, samples))
        try:
            t0, n = time.monotonic(), int(rate * seconds)
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                await producer.send(topic, b"x" * 600, key=str(i % 997).encode(), timestamp_ms=int(time.time() * 1000))
            await producer.flush()
            await asyncio.sleep(1.0)
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            await producer.stop()
    finally:
        stack.down()
    return {"broker": broker, "rate": rate, "seconds": seconds, "received": len(samples),
            "windows": latency_windows(samples, t_begin_ms, window)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.broker_latency", description=__doc__.split("\n\n")[0])
    p.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    p.add_argument("--rate", type=int, default=1000, help="messages per second (default 1000)")
    p.add_argument("--seconds", type=float, default=24.0, help="how long to send (default 24)")
    p.add_argument("--window", type=float, default=2.0, help="seconds per reported window (default 2)")
    args = p.parse_args(argv)
    result = asyncio.run(measure(args.broker, args.rate, args.seconds, args.window))
    print(f"{'from':>6} {'samples':>9} {'p50 ms':>8} {'p99 ms':>8}", file=sys.stderr)
    for w in result["windows"]:
        print(f"{w['from_s']:5.0f}s {w['samples']:9d} {w['p50_ms']:8.1f} {w['p99_ms']:8.1f}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
