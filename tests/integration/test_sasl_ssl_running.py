"""A running process whose Kafka security settings stop fitting the broker: a password rotated on the
broker and not yet here, a certificate renewed by another CA. Seen against an Apache Kafka requiring
SASL_SSL (a worker running when its SCRAM password was changed and the broker restarted):

* /health answered ``"kafka": "down: KafkaConnectionError: Unable to bootstrap from [('127.0.0.1',
  PORT, <AddressFamily.AF_INET: 2>)]"``: the broker was up, and nothing said it refused the
  credentials. It now names the refusal and the settings to check (the answer stays 503, "down: ...").
* the clients' "Unable connect to ...: SaslAuthenticationFailed" lines, logged by aiokafka at ERROR,
  were lowered to WARNING with the self-healing connect errors (creditstream/logs.py): a worker's
  log showed no ERROR of its own for a refusal no retry heals. They now stay at ERROR."""

from __future__ import annotations

import io
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.sasl_kafka import PASSWORD

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

WRONG = "rotated-elsewhere"


async def health(settings) -> tuple[int, dict]:
    from creditstream.api import create_api

    async with TestClient(TestServer(create_api(settings))) as client:
        resp = await client.get("/health")
        return resp.status, await resp.json()


async def test_health_says_the_broker_refused_the_credentials(sasl_settings):
    status, body = await health(sasl_settings)
    assert (status, body["kafka"]) == (200, "ok")
    status, body = await health(sasl_settings.replace(sasl_password=WRONG))
    assert status == 503 and body["redis"] == "ok"
    assert body["kafka"].startswith("down: cannot connect to the Kafka broker at "), body
    assert "refused the credentials" in body["kafka"] and "sasl_password" in body["kafka"], body
    assert body["message"] == ("the Kafka broker refuses this process's settings (credentials or TLS): fix them, "
                               "waiting will not help"), body  # not "down; try again later"
    assert WRONG not in json.dumps(body) and PASSWORD not in json.dumps(body)


async def test_health_says_the_certificate_is_not_trusted(sasl_settings, sasl_kafka):
    status, body = await health(sasl_settings.replace(ssl_cafile=str(sasl_kafka["certs"].other_ca)))
    assert status == 503
    assert "TLS certificate is not trusted" in body["kafka"] and "ssl_cafile" in body["kafka"], body


async def test_a_refused_connect_is_logged_as_an_error(sasl_settings):
    from aiokafka.errors import KafkaConnectionError

    from creditstream import logs
    from streams import kafka

    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    try:
        with pytest.raises(KafkaConnectionError):
            await kafka.existing_topics(sasl_settings.replace(sasl_password=WRONG))
    finally:
        logs.configure()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    refused = [line for line in lines if "SaslAuthenticationFailed" in line["event"]]
    assert refused and {line["level"] for line in refused} == {"error"}, lines
    assert WRONG not in out.getvalue()
