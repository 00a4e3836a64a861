"""creditstream against an Apache Kafka that requires SASL_SSL of its clients (SCRAM-SHA-512, the
broker's certificate signed by a test CA): the settings ``security_protocol``, ``sasl_*`` and
``ssl_cafile`` reach every Kafka client, in the pipeline, the worker process and the operator
commands. The cluster is started by the session fixture ``sasl_kafka`` (tests/sasl_kafka.py), beside
the session's stack, whose Redis the tests use; marked ``kafka`` as the tests that start their own
cluster are (Java 17+ and the embedded Kafka's jars)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import Department, eventually
from tests.sasl_kafka import PASSWORD
from tests.workers import demo_through_a_worker, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
PENALTY = schema_of("penalty")
SEVERE = {"severity": "严重", "domain": "environment", "source_unit": samples.ECO_ZZ,
          "source_unit_uscc": samples.ECO_ZZ_USCC, "valid_until": None, "publicity_end_date": None}


@pytest.fixture
async def sasl_department(sasl_settings):
    from streams import kafka

    producer = kafka.producer(sasl_settings)
    await producer.start()
    yield Department(sasl_settings, producer)
    await producer.stop()


def cli(settings, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "creditstream.cli", *args], cwd=ROOT, env=worker_env(settings),
                          capture_output=True, text=True, timeout=timeout)


async def test_the_pipeline_runs_end_to_end_over_sasl_ssl(sasl_settings, sasl_department):
    """A severe penalty in, over SASL_SSL: the subject's state in Redis, the list change on the
    list-change topic (read over SASL_SSL too)."""
    from creditstream.app import Pipeline
    from creditstream.connections import redis_client
    from sinks.keys import resolve_keys
    from sinks.state_codec import decode_state
    from tests.integration.test_rules_scenario import read_changes

    pipeline = Pipeline(sasl_settings)
    await pipeline.start()
    redis = redis_client(sasl_settings)
    try:
        await sasl_department.send(PENALTY, sample_event("penalty", **SEVERE))

        async def changes():
            return [c for c in await read_changes(sasl_settings)
                    if c["subject_id"] == samples.COMPANY_USCC and c["list"] == "blacklist:environment"] or None

        [change] = await eventually(changes, timeout=60)
        assert change["transition"] == "entered"
        keys = await resolve_keys(redis, sasl_settings.namespace)
        state = decode_state(await redis.get(keys.subject(samples.COMPANY_USCC)))
        [record] = state["records"].values()
        assert record["kind"] == "penalty" and record["status"] == "active"
    finally:
        await pipeline.stop()
        await redis.aclose()


def test_the_worker_and_the_operator_commands_over_sasl_ssl(sasl_settings, tmp_path):
    """`creditstream topics`, `produce`, a `worker --web` process and its /health, `positions`,
    `report`, `dlq list` / `redrive` and `replay --verify`, each a process with the SASL_SSL settings
    in its environment; the SASL password is in none of their output."""
    s = sasl_settings
    outputs = []

    def ok(*args: str) -> str:
        done = cli(s, *args)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
        return done.stdout

    assert "created" in ok("topics")
    outputs.append(demo_through_a_worker(s, ok, tmp_path))
    verified = ok("replay", "--verify", "--jobs", "1")
    assert "verify: 0 differences with the live state" in verified
    assert not [o for o in outputs if PASSWORD in o]


def test_mutual_tls_with_an_encrypted_client_key(sasl_settings, sasl_kafka, tmp_path):
    """A listener that also requires a client certificate (SASL_SSL with ``ssl.client.auth=required``):
    ``ssl_certfile``, ``ssl_keyfile`` and ``ssl_password`` (the key encrypted) reach the clients of
    `creditstream topics` and `produce`; without them the broker does not take the client."""
    from ops.kafka_cluster import KafkaCluster, SaslSsl
    from tests.sasl_kafka import CLIENT_KEY_PASSWORD, USER

    certs = sasl_kafka["certs"]
    cluster = KafkaCluster(tmp_path / "mtls")
    info = cluster.up(1, timeout=180, sasl_ssl=SaslSsl(certs.keystore, {USER: PASSWORD}, client_ca=certs.ca))
    try:
        without = sasl_settings.replace(broker_url=info["sasl_bootstrap"])
        refused = cli(without, "topics", timeout=60)
        assert refused.returncode == 3 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "check security_protocol, now SASL_SSL, and ssl_certfile, not set" in refused.stderr
        s = without.replace(ssl_certfile=str(certs.client_cert), ssl_keyfile=str(certs.client_key),
                            ssl_password=CLIENT_KEY_PASSWORD)
        done = cli(s, "topics")
        assert done.returncode == 0 and "created" in done.stdout, done.stderr[-2000:]
        events = tmp_path / "one.jsonl"
        events.write_text((ROOT / "data" / "demo" / "events.jsonl").read_text(encoding="utf-8").splitlines()[0] + "\n",
                          encoding="utf-8")
        done = cli(s, "produce", str(events))
        assert done.returncode == 0 and "sent      1" in done.stdout, (done.stdout, done.stderr[-2000:])
        assert CLIENT_KEY_PASSWORD not in done.stdout + done.stderr + refused.stderr
    finally:
        cluster.down()
