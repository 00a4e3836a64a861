"""``creditstream topics`` on a real broker: an existing topic without creditstream's configuration
(created by hand, or auto-created by the broker on a first request) is reported, and ``--apply``
sets it where the broker can (Apache Kafka's AlterConfigs) and says in one line where it cannot
(Tansu), never with a traceback."""

from __future__ import annotations

import sys

import pytest

from streams import kafka
from tests.conftest import create_topic_with_broker_defaults
from tests.workers import run_to_end, worker_env

pytestmark = pytest.mark.integration


async def cli(settings, *args: str) -> tuple[int, str, str]:
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "topics", *args],
                                    env=worker_env(settings, CREDITSTREAM_PARTITIONS=settings.partitions,
                                                   CREDITSTREAM_REPLICATION_FACTOR=settings.replication_factor))
    return rc, out.decode(), err.decode()


async def test_apply_sets_the_configuration_or_says_the_broker_cannot(settings):
    """Seen on the embedded stack (Tansu): `topics` warned of a topic without retention.ms and said
    "run `creditstream topics --apply`", which then ended in a traceback (IncompatibleBrokerVersion:
    Tansu has no AlterConfigs)."""
    topic = f"{settings.topic_prefix}penalty"
    await create_topic_with_broker_defaults(settings, topic)

    rc, out, err = await cli(settings)
    assert rc == 0, (out, err)
    assert f"{topic} has retention.ms=" in err and "the settings want -1" in err, err  # None, or Kafka's 7 days

    rc, out, err = await cli(settings, "--apply")
    assert "Traceback" not in err, err
    if settings.is_tansu:
        assert "run `creditstream topics --apply`" not in err, err
        assert rc == 1, (out, err)
        [line] = [x for x in err.splitlines() if x.startswith("creditstream:")]
        assert "does not change a topic's configuration" in line, err
        return
    assert rc == 0, (out, err)
    assert f"changed {topic} retention.ms: " in out and " -> -1" in out, out
    rc, out, err = await cli(settings)
    assert rc == 0 and f"{topic} has" not in err, (out, err)


async def test_reading_commands_never_create_the_topics_they_read(settings):
    """Seen: `dlq list`, `report` and `replay --verify` run before `creditstream topics` created the
    dead-letter, list-change and subject-event topics (asking for a topic's metadata by name lets
    the broker auto-create it: Tansu always, Apache Kafka by default), with the broker's defaults:
    on Apache Kafka a 7-day retention, and a dead-letter topic without its 64 KiB of headroom. A
    topic that is not there is read as empty and left for `creditstream topics` to create."""
    for argv in (["dlq", "list"], ["report"], ["replay", "--verify", "--jobs", "1"],
                 ["dlq", "show", "0:0"], ["dlq", "redrive", "0:0", "--dry-run"]):
        rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", *argv], env=worker_env(settings))
        assert b"Traceback" not in err, (argv, err.decode()[-2000:])
        assert rc in (0, 1), (argv, rc, out.decode()[-1000:], err.decode()[-1000:])
    client = kafka.admin(settings)
    await client.start()
    try:
        assert [t for t in await client.list_topics() if t.startswith(settings.topic_prefix)] == []
    finally:
        await client.close()
