"""creditstream.cli: the one handler that turns exceptions into exit codes and one line on stderr."""

from __future__ import annotations

import pytest
import redis.exceptions as rexc
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from creditstream import cli
from creditstream.settings import Settings
from streams.codec import RegistryError
from streams.kafka import ReadIncomplete

SETTINGS = Settings(broker_url="kafka-1:9092,kafka-2:9092",
                    redis_url="rediss://app:pw-123@redis.internal:6380/0",
                    schema_registry="https://reg:pw-456@registry.internal:8081")


@pytest.fixture(autouse=True)
def settings(monkeypatch):
    monkeypatch.setattr(cli, "_current_settings", SETTINGS)


def failure(exc: BaseException):
    try:  # with a traceback, as the handler sees it
        raise exc
    except BaseException as raised:  # noqa: BLE001
        return cli._failure(raised)


REDIS_SHOWN = "rediss://app:***@redis.internal:6380/0"


@pytest.mark.parametrize("exc, service, address", [
    (rexc.ConnectionError("Error 111 connecting"), "Redis", REDIS_SHOWN),
    (rexc.TimeoutError("Timeout reading"), "Redis", REDIS_SHOWN),
    (rexc.BusyLoadingError("Redis is loading the dataset in memory"), "Redis", REDIS_SHOWN),
    (rexc.ReadOnlyError("You can't write against a read only replica."), "Redis", REDIS_SHOWN),
    (KafkaConnectionError("Unable to bootstrap"), "the Kafka broker", "kafka-1:9092,kafka-2:9092"),
    (KafkaTimeoutError(), "the Kafka broker", "kafka-1:9092,kafka-2:9092"),
    (TimeoutError("Kafka broker at kafka-1:9092 did not answer within 30s: x"), "the Kafka broker",
     "kafka-1:9092,kafka-2:9092"),
    (RegistryError("schema registry https://reg:pw-456@registry.internal:8081 unreachable: timed out"),
     "the schema registry", "https://reg:***@registry.internal:8081"),
    (RegistryError("schema registry POST /subjects/x/versions: HTTP 503 (error_code None): down", status=503),
     "the schema registry", "https://reg:***@registry.internal:8081"),
    (cli.ServiceUnreachable([("Redis", "redis://x", "refused")]), "Redis", "redis://x"),
    # a topic not read to its end (a replay, a re-drive): the broker stopped answering
    (ReadIncomplete("cs.subject-events", {1: (120, 400), 3: (0, None)}, 120.0), "the Kafka broker",
     "kafka-1:9092,kafka-2:9092"),
])
def test_outages_exit_3_naming_service_and_address(exc, service, address):
    code, line = failure(exc)
    assert code == cli.EXIT_UNREACHABLE
    assert line.startswith(f"creditstream: cannot reach {service} at {address} (")
    assert "\n" not in line and "pw-123" not in line and "pw-456" not in line


def test_an_outage_wrapped_in_another_exception_is_still_one():
    try:
        try:
            raise rexc.ConnectionError("Connection refused")
        except rexc.ConnectionError as inner:
            raise RuntimeError("batch failed") from inner
    except RuntimeError as exc:
        code, line = cli._failure(exc)
    assert code == 3 and "cannot reach Redis" in line


def test_not_outages():
    assert failure(RegistryError("schema registry: HTTP 409: incompatible", status=409))[0] == cli.EXIT_NOT_FOUND
    code, line = failure(rexc.AuthenticationError("invalid username-password pair"))
    assert code == cli.EXIT_USAGE and "refused the credentials" in line and "pw-123" not in line
    code, line = failure(FileNotFoundError(2, "No such file or directory", "in.jsonl"))
    assert (code, line) == (cli.EXIT_USAGE, "creditstream: cannot read in.jsonl: No such file or directory")
    assert failure(ValueError("a bug")) is None  # the traceback is the useful output then
    assert failure(KeyError("a bug")) is None


def test_mask_url():
    assert cli.mask_url("redis://u:p@h:1/0 and http://:tok@r/x and http://h/") == \
        "redis://u:***@h:1/0 and http://***@r/x and http://h/"


def test_a_registry_outage_while_producing_is_an_outage_not_refused_lines(monkeypatch, capsys, tmp_path):
    """The registry answered the probe, then went away: produce registers the file's schemas before
    it encodes a line, so the outage is one line and exit 3, and no line is called bad data."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    events = tmp_path / "x.jsonl"
    events.write_text('{"kind": "penalty", "fields": {"subject_name": "x"}}\n{"kind": "nonsense"}\n')
    monkeypatch.setattr(cli, "probe_services", lambda settings, needs: None)  # it answered the probe
    monkeypatch.setenv("CREDITSTREAM_SCHEMA_REGISTRY", f"http://svc:pw-9@127.0.0.1:{port}")
    monkeypatch.setenv("CREDITSTREAM_SCHEMA_REGISTRY_RETRIES", "0")
    assert cli.main(["produce", "--dry-run", str(events)]) == cli.EXIT_UNREACHABLE
    out, err = capsys.readouterr()
    assert "refused" not in out
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"creditstream: cannot reach the schema registry at "
                                                   f"http://svc:***@127.0.0.1:{port} (")
    assert "pw-9" not in err


def test_bad_data_is_still_refused_lines(monkeypatch, capsys):
    import ops.produce

    async def produce_file(settings, path, dry_run=False, report=None):
        report = report or ops.produce.ProduceReport(source=path)
        report.refused.append((1, "penalty: cannot encode: field amount: not a decimal"))
        return report

    monkeypatch.setattr(ops.produce, "produce_file", produce_file)
    monkeypatch.setattr(cli, "probe_services", lambda settings, needs: None)
    assert cli.main(["produce", "x.jsonl"]) == cli.EXIT_NOT_FOUND
    assert "refused line 1" in capsys.readouterr().out


def test_needs():
    parser = cli.build_parser()
    assert cli._needs(parser.parse_args(["subject", "X"])) == {cli.REDIS}
    assert cli._needs(parser.parse_args(["produce", "--dry-run", "f"])) == {cli.REGISTRY}
    assert cli._needs(parser.parse_args(["produce", "f"])) == {cli.KAFKA, cli.REGISTRY}
    assert cli._needs(parser.parse_args(["dlq", "list"])) == {cli.REDIS, cli.KAFKA}
    assert cli._needs(parser.parse_args(["config", "check"])) == set()
    assert cli._needs(parser.parse_args(["api"])) == set()


def test_a_read_cut_short_survives_the_trip_from_a_replay_job_process():
    import pickle

    err = ReadIncomplete("cs.subject-events", {1: (120, 400)}, 121.0)
    back = pickle.loads(pickle.dumps(err))
    assert (type(back), back.topic, back.short, back.waited_s, str(back)) == (
        ReadIncomplete, err.topic, err.short, err.waited_s, str(err))
