"""creditstream on an Apache Kafka that enforces ACLs, as production clusters with SASL do (KRaft's
StandardAuthorizer, ``allow.everyone.if.no.acl.found=false``; the ``acl_kafka`` fixture): the user
``creditstream`` runs everything with exactly the ACLs docs/operations.md gives (its ``kafka-acls.sh``
commands, read back from the docs: tests/kafka_acls.py), and an ACL missing is said in one line, exit
2, naming the resource and the ACL.

Before: `creditstream topics` without the Create ACL said "created" for every topic, exit 0, and
created none; a worker without an ACL crashed with a traceback, exit 1 (without the group's: "broker
not reachable, retrying", then AssertionError "Did you call `start` twice?"); the operator commands
printed tracebacks; a worker without DescribeConfigs warned that every topic's configuration differed
from creditstream's (current: null) and told to run `topics --apply`."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.kafka_acls import Acl, documented_acls, set_acls
from tests.sasl_kafka import PASSWORD, USER
from tests.workers import WorkerProcess, demo_through_a_worker, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
PRINCIPAL = f"User:{USER}"
WORKERS = "the workers, the API and the operator commands"
TOPICS = "creditstream topics (topics-init), besides"


def acls(settings, block: str) -> list[Acl]:
    """The documented ACLs of ``block`` for the test's topic prefix and consumer group."""
    return [a.renamed(settings.topic_prefix, f"{settings.consumer_group}.") for a in documented_acls(block)]


def grant(acl_kafka, rules: list[Acl]) -> None:
    set_acls(acl_kafka["info"]["sasl_bootstrap"], acl_kafka["certs"].ca, PRINCIPAL, rules)


def cli(settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "creditstream.cli", *args], cwd=ROOT, env=worker_env(settings),
                          capture_output=True, text=True, timeout=timeout)


def without(rules: list[Acl], kind: str, operation: str) -> list[Acl]:
    left = [a for a in rules if not (a.kind == kind and a.operation == operation)]
    assert len(left) == len(rules) - 1, (kind, operation, rules)
    return left


def refused_in_one_line(done: subprocess.CompletedProcess, *said: str) -> None:
    """Exit 2, the last line of standard error says what the broker refused, no traceback after it."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-3000:])
    assert lines and lines[-1].startswith("creditstream: the Kafka broker at "), lines[-5:]
    assert f"refused user '{USER}'" in lines[-1]
    for words in said:
        assert words in lines[-1], (words, lines[-1])
    assert "docs/operations.md" in lines[-1]
    assert PASSWORD not in done.stdout + done.stderr


@pytest.fixture
def topics_made(acl_settings, acl_kafka):
    """The test's topics, created with the documented ACLs of both blocks."""
    from streams import kafka

    grant(acl_kafka, acls(acl_settings, WORKERS) + acls(acl_settings, TOPICS))
    asyncio.run(kafka.ensure_topics(acl_settings))
    return acl_settings


async def _check_once(settings, tmp_path) -> list[dict]:
    """One ``GET /check`` answered by the query API (in this process), and the check-audit records then."""
    import aiohttp

    from creditstream.api import serve
    from tests.conftest import eventually
    from tests.integration.test_api import free_port, wait_http
    from tests.integration.test_check_api import Checks, audit_records, token_file

    s = settings.replace(api_tokens_file=token_file(tmp_path), check_audit_flush_ms=50)
    port = free_port()
    stop = asyncio.Event()
    server = asyncio.create_task(serve(s, "127.0.0.1", port, stop=stop))
    try:
        await wait_http(f"http://127.0.0.1:{port}/health")
        async with aiohttp.ClientSession() as session:
            answer = await Checks(session, f"http://127.0.0.1:{port}").get(subject="91310115591693856A",
                                                                          matter="bidding")
            assert answer["outcome"] == "no_record"

        async def audited():
            return await audit_records(s)

        return await eventually(audited, timeout=30)
    finally:
        stop.set()
        await server


def test_the_documented_acls_run_the_worker_the_api_and_the_operator_commands(acl_settings, acl_kafka, tmp_path):
    """`topics` (and `--apply`) with both documented blocks; then, with exactly the workers' block: a
    `worker --web` and its /health, `produce`, `positions`, `report`, `dlq list` / `redrive`,
    `positions move`, `replay --verify` and a `GET /check` with its audit record. Nothing is refused."""
    from tests.conftest import create_topic_with_broker_defaults

    s = acl_settings
    outputs: list[str] = []

    def ok(*args: str) -> str:
        done = cli(s, *args)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done.stdout

    grant(acl_kafka, acls(s, WORKERS) + acls(s, TOPICS))
    # one topic made as a department's first send makes it, with the broker's defaults: `--apply` fixes it
    asyncio.run(create_topic_with_broker_defaults(s, f"{s.topic_prefix}penalty"))
    made = ok("topics", "--apply")
    assert "created" in made and f"changed {s.topic_prefix}penalty retention.ms" in made, made

    grant(acl_kafka, acls(s, WORKERS))  # exactly the workers' ACLs from here on
    outputs.append(demo_through_a_worker(s, ok, tmp_path, serving_timeout=60))
    ok("positions", "move", "registry", "--to-end")
    assert "verify: 0 differences with the live state" in ok("replay", "--verify", "--jobs", "1")
    [(_, _, audit)] = asyncio.run(_check_once(s, tmp_path))
    assert audit["matter"] == "bidding"
    said = "\n".join(outputs)
    for refusal in ("AuthorizationFailed", "Not authorized", "could not compare", "differs from creditstream"):
        assert refusal not in said, refusal
    assert PASSWORD not in said


def test_topics_without_the_create_acl_says_so(acl_settings, acl_kafka):
    """Before: every topic "created", exit 0, and none was (aiokafka raises nothing for the errors of a
    CreateTopics answer)."""
    grant(acl_kafka, acls(acl_settings, WORKERS))
    done = cli(acl_settings, "topics", timeout=60)
    refused_in_one_line(done, f"topic {acl_settings.topic_prefix}", "TopicAuthorizationFailedError", "Create")
    assert "created" not in done.stdout


def test_topics_apply_without_the_alter_configs_acl_says_so(acl_settings, acl_kafka):
    """Before: a traceback ending in RuntimeError "altering PREFIX.penalty: error 29 Topic authorization
    failed.", exit 1."""
    from tests.conftest import create_topic_with_broker_defaults

    s = acl_settings
    grant(acl_kafka, acls(s, WORKERS) + without(acls(s, TOPICS), "topic", "AlterConfigs"))
    asyncio.run(create_topic_with_broker_defaults(s, f"{s.topic_prefix}penalty"))
    done = cli(s, "topics", "--apply", timeout=60)
    refused_in_one_line(done, f"topic {s.topic_prefix}penalty", "TopicAuthorizationFailedError", "AlterConfigs")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("kind", "operation", "said"), [
    ("topic", "Write", ["ClusterAuthorizationFailedError", "idempotent producer needs Write on a topic"]),
    ("topic", "Read", ["TopicAuthorizationFailedError", "Read to consume"]),
    ("group", "Read", ["GroupAuthorizationFailedError", "Read on the group"]),
], ids=["no-topic-write", "no-topic-read", "no-group-read"])
def test_a_worker_without_an_acl_stops_at_once_saying_which(topics_made, acl_kafka, kind, operation, said, tmp_path):
    """Before: a crash, exit 1, tracebacks; without the group's Read, "broker not reachable, retrying"
    and then AssertionError "Did you call `start` twice?"."""
    s = topics_made
    grant(acl_kafka, without(acls(s, WORKERS), kind, operation))
    t0 = time.monotonic()
    done = cli(s, "worker", "--wait", "30", timeout=60)
    assert time.monotonic() - t0 < 20, done.stderr[-2000:]
    refused_in_one_line(done, *said)
    if kind == "group":
        assert f"consumer group {s.consumer_group}." in done.stderr.splitlines()[-1]
    assert "broker not reachable" not in done.stderr and "start` twice" not in done.stderr
    [failed] = [json.loads(line[line.index("{"):]) for line in done.stderr.splitlines() if "pipeline failed" in line]
    assert failed["level"] == "error" and "exception" not in failed and said[0] in failed["reason"]


@pytest.mark.parametrize(("command", "kind", "operation", "said"), [
    (("produce", "EVENTS"), "topic", "Write", "ClusterAuthorizationFailedError"),
    (("dlq", "list"), "topic", "Read", "TopicAuthorizationFailedError"),
    (("report",), "topic", "Read", "TopicAuthorizationFailedError"),
    (("positions",), "group", "Read", "GroupAuthorizationFailedError"),
    (("positions", "move", "ingest", "--to-end"), "group", "Read", "GroupAuthorizationFailedError"),
    (("replay", "--verify", "--jobs", "1"), "topic", "Read", "TopicAuthorizationFailedError"),
], ids=["produce", "dlq-list", "report", "positions", "positions-move", "replay"])
def test_an_operator_command_without_an_acl_says_which(topics_made, acl_kafka, command, kind, operation, said,
                                                       tmp_path):
    """Before: a traceback, exit 1."""
    from streams.topics import Topics

    s = topics_made
    events = tmp_path / "events.jsonl"
    events.write_text((ROOT / "data" / "demo" / "events.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n",
                      encoding="utf-8")
    if command[0] != "produce":  # something to read (refused before it is decoded)
        asyncio.run(_send(s, Topics(s).dead_letters, b"x"))
        asyncio.run(_send(s, Topics(s).subject_events, b"x"))
    grant(acl_kafka, without(acls(s, WORKERS), kind, operation))
    done = cli(s, *[str(events) if a == "EVENTS" else a for a in command], timeout=90)
    refused_in_one_line(done, said)
    assert "Traceback" not in done.stderr


async def _send(settings, topic: str, value: bytes) -> None:
    from streams import kafka

    producer = kafka.producer(settings)
    await producer.start()
    try:
        await (await producer.send(topic, value, key=b"k"))
    finally:
        await producer.stop()


def test_a_worker_without_describe_configs_says_it_could_not_compare(topics_made, acl_kafka, tmp_path):
    """Before: one warning per topic that its configuration differs from creditstream's (current: null)
    with "run `creditstream topics --apply`", which would not have helped."""
    s = topics_made
    grant(acl_kafka, without(acls(s, WORKERS), "topic", "DescribeConfigs"))
    log = tmp_path / "worker.log"
    worker = WorkerProcess(s, log).start()
    try:
        deadline = time.monotonic() + 60
        while "pipeline started" not in worker.log_tail(100_000):
            assert worker.alive() and time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.2)
    finally:
        worker.stop()
    text = log.read_text(errors="replace")
    assert "differs from creditstream" not in text
    [warning] = [json.loads(line[line.index("{"):]) for line in text.splitlines() if "could not compare" in line]
    assert "TopicAuthorizationFailedError" in warning["error"] and "DescribeConfigs" in warning["error"]
