"""The SASL password never reaches a log line, also with the Kafka client's own DEBUG lines on
(``libraries_log_level = DEBUG``, the README's way to see the clients).

Seen against an Apache Kafka requiring SASL_SSL with ``sasl_mechanism = PLAIN``: aiokafka logs every
request at DEBUG, the SaslAuthenticate request among them, whose ``sasl_auth_bytes`` are
``user NUL user NUL password``; a worker's log held the password in the clear 17 times in its first
12 seconds (once per connection). creditstream/logs.py now withholds the payload."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.sasl_kafka import PASSWORD
from tests.workers import stop_process, worker_env

pytestmark = [pytest.mark.integration, pytest.mark.kafka]

ROOT = Path(__file__).resolve().parents[2]
DEBUG = {"CREDITSTREAM_LOG_LEVEL": "DEBUG", "CREDITSTREAM_LIBRARIES_LOG_LEVEL": "DEBUG",
         "CREDITSTREAM_LOG_FORMAT": "json"}


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_no_sasl_password_in_a_debug_log(sasl_settings, tmp_path, mechanism):
    s = sasl_settings.replace(sasl_mechanism=mechanism)
    env = worker_env(s, **DEBUG)
    topics = subprocess.run([sys.executable, "-m", "creditstream.cli", "topics"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert topics.returncode == 0, topics.stderr[-2000:]
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "creditstream.cli", "worker"], cwd=ROOT, env=env,
                                  stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "pipeline started" not in log_path.read_text(errors="replace"):
            assert worker.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
    finally:
        stop_process(worker)
    worker_log = log_path.read_text(errors="replace")
    for output in (topics.stderr, worker_log):
        assert "SaslAuthenticateRequest" in output  # the client's DEBUG lines are there
        assert PASSWORD not in output
        assert "sasl_auth_bytes=<withheld>" in output  # with SCRAM too: its proofs
