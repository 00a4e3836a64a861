"""A Kafka that requires SASL_SSL, and settings that do not fit it: a wrong password, a SASL mechanism
it does not offer, a CA that did not sign its certificate. The broker answers each time; what it
(or the TLS check) refuses does not heal by waiting. So a command exits 2 at once (bad settings, as
for Redis or the schema registry refusing the credentials) with one line that says what was refused
and which settings to check, never the password.

Before, each was reported as an outage ("cannot reach the Kafka broker", exit 3), and `creditstream
worker` / `api` retried it for their whole ``--wait`` (30 s by default) before giving up."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sasl_kafka import PASSWORD
from tests.workers import worker_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
WRONG = "not-the-Pa55word"


def run(settings, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "creditstream.cli", *args], cwd=ROOT, env=worker_env(settings),
                          capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - t0


@pytest.mark.parametrize(("change", "said"), [
    ({"sasl_password": WRONG}, ["refused the credentials", "SaslAuthenticationFailed", "sasl_password"]),
    ({"sasl_mechanism": "SCRAM-SHA-256"}, ["does not offer the SASL mechanism SCRAM-SHA-256", "sasl_mechanism"]),
    ("other_ca", ["TLS certificate is not trusted", "ssl_cafile"]),
], ids=["wrong-password", "wrong-mechanism", "untrusted-certificate"])
@pytest.mark.parametrize("command", [("worker", "--wait", "30"), ("topics",)], ids=["worker", "topics"])
def test_a_refused_connection_is_bad_settings_said_at_once(sasl_settings, sasl_kafka, change, said, command):
    if change == "other_ca":
        change = {"ssl_cafile": str(sasl_kafka["certs"].other_ca)}
    done, took = run(sasl_settings.replace(**change), *command)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert took < 20, (took, done.stderr[-2000:])  # not the worker's 30 s --wait
    assert len(lines) == 1 and lines[0].startswith("creditstream: cannot connect to the Kafka broker at "), lines
    for words in said:
        assert words in lines[0]
    assert PASSWORD not in done.stderr + done.stdout and WRONG not in done.stderr + done.stdout


@pytest.mark.parametrize(("change", "hint"), [
    ({"security_protocol": "PLAINTEXT", "sasl_mechanism": ""}, "check security_protocol, now PLAINTEXT"),
    ({"security_protocol": "SSL", "sasl_mechanism": ""}, "check security_protocol, now SSL, and ssl_certfile"),
    ("plaintext_port", "no answer within 3 s (a listener without TLS never answers a TLS handshake: "
                       "check security_protocol, now SASL_SSL)"),
], ids=["plaintext-to-sasl-ssl", "ssl-to-sasl-ssl", "sasl-ssl-to-plaintext"])
def test_a_protocol_the_listener_does_not_speak_is_named(sasl_settings, sasl_kafka, change, hint):
    """A security_protocol the listener does not use: the broker closes the connection (or, for a TLS
    client on a listener without TLS, never answers), saying nothing more, so the client cannot be
    sure it is not an outage (exit 3), but its one line says which setting to check. Before, it said
    "Connection ... closed", "Unable to bootstrap from [...]" (the reason lost: logged at WARNING,
    kept from ERROR only) or 'Unable connect to "127.0.0.1:PORT":' with nothing after."""
    if change == "plaintext_port":
        change = {"broker_url": sasl_kafka["info"]["bootstrap"]}
    done, took = run(sasl_settings.replace(**change), "topics")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("creditstream: cannot reach the Kafka broker at "), lines
    assert hint in lines[0]
    assert PASSWORD not in done.stderr + done.stdout
