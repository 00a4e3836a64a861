"""creditstream.logs: JSON lines, stdlib routing, ID masking everywhere."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys

import pytest
import structlog

from creditstream import logs

ID = "11010519491231002X"  # a valid resident ID number (GB 11643 check passes)
ID_NUMERIC = "110105194912310021"


@pytest.fixture
def out():
    buf = io.StringIO()
    logs.configure("INFO", "json", stream=buf)
    yield buf
    logs.configure("INFO", "json")  # back to stderr for whatever runs next


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_ids_masked_in_event_nested_values_and_stdlib(out):
    log = logs.get_logger("creditstream.test")
    log.info(f"subject {ID} applied", subject=ID,
             nested={"people": [{"id": ID, "note": f"see {ID}"}], ID: "as key"},
             as_tuple=("x", ID), as_int=int(ID_NUMERIC))
    logging.getLogger("creditstream.stdlib").warning("stdlib says %s and %r", ID, {"id": ID})
    logging.getLogger("aiokafka.consumer").error("fetch failed for %s", ID)

    text = out.getvalue()
    assert ID not in text and ID.lower() not in text and ID_NUMERIC not in text
    assert "110**************X" in text
    first, second, third = _lines(out)
    assert first["event"] == "subject 110**************X applied"
    assert first["subject"] == "110**************X"
    assert first["nested"]["people"][0] == {"id": "110**************X", "note": "see 110**************X"}
    assert first["nested"]["110**************X"] == "as key"
    assert first["as_tuple"] == ["x", "110**************X"]
    assert first["as_int"] == "110**************1"
    assert first["level"] == "info" and first["logger"] == "creditstream.test"
    assert first["timestamp"].endswith("Z")
    assert second["event"].startswith("stdlib says 110**************X and ")
    assert second["level"] == "warning" and second["logger"] == "creditstream.stdlib"
    assert third["logger"] == "aiokafka.consumer"


def test_other_stdlib_handlers_get_masked_structlog_events(out):
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record)

    keep = Keep()
    logging.getLogger().addHandler(keep)
    try:
        logs.get_logger("creditstream.test").info("hi", subject=ID)
    finally:
        logging.getLogger().removeHandler(keep)
    assert seen and ID not in repr(seen[0].msg)


def test_ids_masked_in_exceptions(out):
    log = logs.get_logger("creditstream.test")
    try:
        raise ValueError(f"bad record {ID}")
    except ValueError:
        log.exception("failed")
        logging.getLogger("faust.agent").exception("agent crashed on %s", ID)
    lines = _lines(out)
    assert ID not in out.getvalue()
    assert "ValueError: bad record 110**************X" in lines[0]["exception"]
    assert "110**************X" in lines[1]["event"]


def test_full_width_id_masked(out):
    fw = ID.translate({ord(c): ord(c) + 0xFEE0 for c in "0123456789X"})
    logs.get_logger("t").info("x", raw=fw)
    assert fw not in out.getvalue()
    assert _lines(out)[0]["raw"].startswith("１１０*")


def test_third_party_loggers_quiet_unless_asked(out):
    logging.getLogger("aiokafka").info("chatty")
    logging.getLogger("mode.services").info("chatty")
    logs.get_logger("creditstream").info("ours")
    assert [line["event"] for line in _lines(out)] == ["ours"]
    assert logging.getLogger("faust").level == logging.WARNING

    # creditstream at DEBUG: the clients stay at WARNING (their debug lines slowed a worker by a third)
    buf = io.StringIO()
    logs.configure("DEBUG", "json", stream=buf)
    logging.getLogger("aiokafka").debug("fetch")
    logging.getLogger("aiokafka").warning("leader moved")
    logs.get_logger("creditstream").debug("batch done")
    assert [line["event"] for line in _lines(buf)] == ["leader moved", "batch done"]

    # asked for: their debug lines too, masked like ours
    buf = io.StringIO()
    logs.configure("DEBUG", "json", stream=buf, libraries="DEBUG")
    logging.getLogger("aiokafka").debug("detail %s", ID)
    assert [line["event"] for line in _lines(buf)] == ["detail 110**************X"]

    # the higher of the two levels: creditstream at ERROR keeps the clients' warnings out
    buf = io.StringIO()
    logs.configure("ERROR", "json", stream=buf, libraries="DEBUG")
    logging.getLogger("aiokafka").warning("leader moved")
    assert _lines(buf) == []


def test_configure_is_idempotent():
    buf = io.StringIO()
    before = len(logging.getLogger().handlers)
    logs.configure("INFO", "json", stream=buf)
    logs.configure("INFO", "json", stream=buf)
    logs.configure("INFO", "json", stream=buf)
    handlers = [h for h in logging.getLogger().handlers if getattr(h, logs._HANDLER_MARK, False)]
    assert len(handlers) == 1
    assert len(logging.getLogger().handlers) <= before + 1
    logs.get_logger("x").warning("once")
    logging.getLogger("y").warning("once too")
    assert len(buf.getvalue().splitlines()) == 2
    logs.configure("INFO", "json")


def test_console_format_masks_too():
    buf = io.StringIO()
    logs.configure("INFO", "console", stream=buf)
    try:
        logs.get_logger("c").info("hello", subject=ID, nested={"a": [ID]})
        logging.getLogger("faust").warning("w %s", ID)
        text = buf.getvalue()
        assert ID not in text and "110**************X" in text
        assert "\x1b[" not in text  # not a terminal: no colours
        with pytest.raises(json.JSONDecodeError):
            json.loads(text.splitlines()[0])
    finally:
        logs.configure("INFO", "json")


def test_auto_picks_json_off_a_terminal():
    buf = io.StringIO()
    logs.configure("INFO", "auto", stream=buf)
    try:
        logs.get_logger("a").info("e", n=1)
        assert json.loads(buf.getvalue())["n"] == 1
    finally:
        logs.configure("INFO", "json")


def test_mask_personal_data_processor_directly():
    ed = logs.mask_personal_data(None, "info", {"event": ID, "l": [ID, {"k": ID}], "n": 5})
    assert ed == {"event": "110**************X", "l": ["110**************X", {"k": "110**************X"}], "n": 5}
    assert structlog.is_configured()


def test_bad_format_and_level_rejected():
    with pytest.raises(ValueError):
        logs.configure("INFO", "xml")
    with pytest.raises(ValueError):
        logs.configure("LOUD", "json")


def test_aiokafkas_self_healing_errors_are_warnings_and_others_stay_errors():
    import io
    import json
    import logging

    from creditstream import logs

    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    client = logging.getLogger("aiokafka.consumer.fetcher")
    client.error("Failed fetch offsets from 0: [Error 6] NotLeaderForPartitionError: TopicPartition(topic='x')")
    logging.getLogger("aiokafka.consumer.group_coordinator").error("Heartbeat session expired - marking coordinator dead")
    client.error("Unexpected error in fetcher routine")
    logging.getLogger("creditstream.app").error("Failed fetch offsets (our own error stays an error)")
    # seen after a pause and during a broker restart (an audit on Apache Kafka): each heals itself
    coordinator = logging.getLogger("aiokafka.consumer.group_coordinator")
    coordinator.error("OffsetCommit failed for group creditstream.ingest due to group error ([Error 22] "
                      "IllegalGenerationError: creditstream.ingest), will rejoin")
    coordinator.error("Error sending HeartbeatRequest to node 0 [[Error 8] NodeNotReadyError: 0] -- marking "
                      "coordinator dead")
    client.error("Failed fetch messages from 0: [Error 8] NodeNotReadyError: 0")
    client.error("Failed fetch messages from 111: [Error 7] RequestTimedOutError")
    client.error("Failed fetch messages from 0: [Error 29] TopicAuthorizationFailedError: x")  # an ACL: stays
    levels = [json.loads(line)["level"] for line in out.getvalue().splitlines()]
    assert levels == ["warning", "warning", "error", "error", "warning", "warning", "warning", "warning", "error"]


def test_a_collected_open_kafka_connection_is_a_warning_and_other_loop_errors_stay_errors():
    """An aiokafka connection collected while open closes itself (aio-libs/aiokafka#715): the event
    loop's handler says so at ERROR, which a worker's log shows as a warning; anything else the loop
    reports stays an error."""
    import asyncio
    import io
    import json

    from creditstream import logs

    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)

    async def report():
        loop = asyncio.get_running_loop()
        loop.call_exception_handler({"message": "Unclosed AIOKafkaConnection", "conn": "<AIOKafkaConnection>"})
        loop.call_exception_handler({"message": "Task exception was never retrieved"})

    asyncio.run(report())
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["logger"], line["level"]) for line in lines] == [("asyncio", "warning"), ("asyncio", "error")]


@pytest.mark.parametrize("name", ["CREDITSTREAM_LOG_LEVEL", "CREDITSTREAM_LIBRARIES_LOG_LEVEL"])
def test_a_bad_log_level_stops_a_command_in_one_line(tmp_path, name):
    """Before: a traceback from the logging set-up, `config check` included."""
    env = {"CREDITSTREAM_RUN_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", name: "loud"}
    out = subprocess.run([sys.executable, "-m", "creditstream.cli", "subject", "91350211MA0000000X"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out
    assert out.stderr.strip() == "creditstream: bad settings: unknown log level 'loud'"
    # `config check` lists it among the problems instead
    out = subprocess.run([sys.executable, "-m", "creditstream.cli", "config", "check"], env=env,
                         capture_output=True, text=True, timeout=60)
    setting = name.removeprefix("CREDITSTREAM_").lower()
    assert f"{setting}: 'loud' is not one of DEBUG" in out.stdout + out.stderr, out
    assert "Traceback" not in out.stderr


def test_an_agent_turning_stalled_or_ok_again_is_logged_once(out):
    """creditstream/app.py ``log_health_changes``, called at every heartbeat: a change is logged, a
    state that lasts is not logged again."""
    from creditstream.app import log_health_changes

    stalled = {"state": "stalled", "reason": "12 event(s) waiting, none processed for 61 s"}
    h = log_health_changes({}, {"ingest": {"state": "ok"}, "subject": stalled})
    h = log_health_changes(h, {"ingest": {"state": "ok"}, "subject": stalled})  # still: nothing more
    h = log_health_changes(h, {"ingest": {"state": "ok"}, "subject": {"state": "ok"}})
    log_health_changes(h, {"ingest": {"state": "ok"}, "subject": {"state": "ok"}})
    lines = [(line["level"], line["event"], line.get("agent"), line.get("reason")) for line in _lines(out)]
    assert lines == [("warning", "agent stalled", "subject", stalled["reason"]),
                     ("info", "agent consuming again", "subject", None)]


def test_a_client_line_repeated_word_for_word_is_logged_once_per_window_with_a_count():
    """A worker whose credentials the broker refused wrote 3,500 lines in 20 s, the same few again
    and again; now the first of each at once, then one per window saying how many were left out."""
    import io
    import json
    import logging

    from creditstream import logs

    now = [0.0]
    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    [handler] = [h for h in logging.getLogger().handlers if getattr(h, "_creditstream_handler", False)]
    [repeated] = [f for f in handler.filters if isinstance(f, logs.RepeatedClientLines)]
    repeated.clock = lambda: now[0]
    refused = "Unable connect to node with id 0: [Error 58] SaslAuthenticationFailed: Authentication failed"
    client = logging.getLogger("aiokafka")
    for _ in range(40):  # 40 a second for 2 s
        client.error(refused)
        logging.getLogger("aiokafka.consumer.fetcher").error("Failed fetch messages from 0: NodeNotReadyError")
        logging.getLogger("creditstream.runner").warning("batch failed, retrying")  # ours: all kept
        now[0] += 0.05
    now[0] = 10.5
    client.error(refused)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    clients = [(line["logger"], line["level"], line["event"]) for line in lines if line["logger"] != "creditstream.runner"]
    assert clients == [
        ("aiokafka", "error", refused),
        ("aiokafka.consumer.fetcher", "warning", "Failed fetch messages from 0: NodeNotReadyError"),  # heals
        ("aiokafka", "error", f"{refused} (and 39 more like it in the last 10 s, not logged)"),
    ]
    assert sum(line["logger"] == "creditstream.runner" for line in lines) == 40


def test_the_traceback_of_a_stop_said_in_one_line_is_left_out_and_others_stay():
    """A worker that stops on a state not from its log says why in one line; Faust then logged the
    same exception again with its traceback ("Crashed reason=..."), which readers took for a bug.
    A marked exception's records are left out; an unmarked exception keeps its traceback."""
    import io
    import json
    import logging

    from creditstream import logs

    out = io.StringIO()
    logs.configure("INFO", "json", stream=out)
    faust_app = logging.getLogger("faust.app.base")
    for exc in (logs.said_in_one_line(RuntimeError("the state is not from this log")), RuntimeError("a bug")):
        try:
            raise exc
        except RuntimeError as raised:
            faust_app.exception("Crashed reason=%r", raised)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [line["event"] for line in lines] == ["Crashed reason=RuntimeError('a bug')"]
    assert "Traceback" in lines[0]["exception"]


def test_a_line_that_repeats_during_an_outage_is_logged_once_a_minute(monkeypatch):
    """Seen (an audit): "timer round failed" and "position check skipped" every 1-2 s per worker while
    Redis was down, some 6,000 lines an hour. creditstream.logs.Repeats: the first, then one a minute
    with how many were not logged, and the end said once."""
    from creditstream import logs

    now = [1000.0]
    monkeypatch.setattr(logs.time, "monotonic", lambda: now[0])
    repeats = logs.Repeats(every_s=60)
    logged = []
    for _ in range(150):  # a round a second for 150 s
        fields = repeats.due()
        if fields is not None:
            logged.append((now[0], fields))
        now[0] += 1
    assert logged == [(1000.0, {}), (1060.0, {"repeated": 59}), (1120.0, {"repeated": 59})]
    assert repeats.ended() == 150 and repeats.ended() == 0
    assert repeats.due() == {}  # a new outage: its first line at once
