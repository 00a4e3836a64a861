"""The two baselines the pipeline is measured against, in the same run, on the same broker.

* ``faust-forward``: a plain Faust agent that forwards each message to another topic
  (``async for value in stream: await out.send(value=value)``), the shape of PERF.md's baseline.
* ``raw-forward``: a raw aiokafka consume -> send_batch loop with manual commit: the ceiling on
  this broker.

Run as ``python -m bench.baselines faust-forward|raw-forward`` with CREDITSTREAM_* settings and
BENCH_SOURCE / BENCH_TARGET topic names in the environment. Both run on the event loop the worker
runs on (the setting ``event_loop``: uvloop by default).
"""

from __future__ import annotations

import asyncio
import os
import sys

from creditstream.settings import load

# the plain Faust forward as PERF.md tuned it: Faust sends message by message, so a 5 ms linger
# batches its sends (4.5k -> 6.3k msg/s there); the pipeline's own default (0) would slow it
FAUST_FORWARD_LINGER_MS = 5


def faust_forward() -> None:
    import faust

    s = load()
    app = faust.App(f"{s.consumer_group}-faust-forward", broker=[f"kafka://{b}" for b in s.bootstrap_servers],
                    web_enabled=False, broker_session_timeout=max(2, s.session_timeout_ms // 1000),
                    topic_partitions=s.partitions, store="memory://", datadir=f"{s.run_dir}/faust-forward",
                    producer_linger_ms=FAUST_FORWARD_LINGER_MS)
    source = app.topic(os.environ["BENCH_SOURCE"], value_serializer="raw", key_serializer="raw")
    target = app.topic(os.environ["BENCH_TARGET"], value_serializer="raw", key_serializer="raw")

    @app.agent(source)
    async def forward(stream):
        async for value in stream:
            await target.send(value=value)

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger, level) -> None:  # no spinner (PERF.md fix 1)
            pass

    Worker(app, loglevel="warn", quiet=True, redirect_stdouts=False).execute_from_commandline()


async def raw_forward() -> None:
    from streams import kafka

    s = load()
    source, target = os.environ["BENCH_SOURCE"], os.environ["BENCH_TARGET"]
    consumer = kafka.consumer(s, source, group_id=f"{s.consumer_group}-raw-forward", max_poll_records=5000)
    producer = kafka.producer(s)
    await consumer.start()
    await producer.start()
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=5000)
            futures = []
            for tp, records in batches.items():
                batch = producer.create_batch()
                for r in records:
                    if batch.append(key=r.key, value=r.value, timestamp=None) is None:
                        futures.append(await producer.send_batch(batch, target, partition=tp.partition))
                        batch = producer.create_batch()
                        batch.append(key=r.key, value=r.value, timestamp=None)
                futures.append(await producer.send_batch(batch, target, partition=tp.partition))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


if __name__ == "__main__":
    from creditstream import eventloop

    # the loop the pipeline's worker runs on (the setting event_loop, uvloop by default), so that the
    # ratios compare the work, not two event loops
    eventloop.install(load().event_loop)
    which = sys.argv[1] if len(sys.argv) > 1 else ""
    if which == "faust-forward":
        faust_forward()
    elif which == "raw-forward":
        asyncio.run(raw_forward())
    else:
        sys.exit("usage: python -m bench.baselines faust-forward|raw-forward")
