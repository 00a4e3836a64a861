"""creditstream/connections.py ``error_text``: what a log line or /health says of a Redis error."""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError, ResponseError

from creditstream.connections import REDIS_FULL, error_text


def test_a_pipeline_error_is_said_without_the_command_redis_py_quotes():
    exc = ResponseError("Command # 3 (SET cs:live:subject:p.0123 {\"id\":\"110101199003077777\", \"name\") of "
                        "pipeline caused error: WRONGTYPE Operation against a key holding the wrong kind of value")
    assert error_text(exc) == "WRONGTYPE Operation against a key holding the wrong kind of value"


def test_a_full_redis_is_said_as_such_from_a_command_or_a_script():
    assert error_text(OutOfMemoryError("Command # 1 (MSET a \x01\xff) of pipeline caused error: command not "
                                       "allowed when used memory > 'maxmemory'.")) == REDIS_FULL
    assert error_text(ResponseError("Error running script (call to f_f046): @user_script:4: @user_script: 4: "
                                    "-OOM command not allowed when used memory > 'maxmemory'.")) == REDIS_FULL


def test_other_errors_pass_cut_to_the_limit():
    assert error_text(ConnectionError("x" * 500)) == "x" * 300
    assert error_text(ValueError("short"), limit=3) == "sho"


def test_a_full_redis_is_labelled_out_of_memory_however_it_came():
    """Seen (an audit): with Redis full, the ingest and registry agents' retries were counted as
    ResponseError (their scripts' error replies), the subject agent's as OutOfMemoryError, the cause the
    alert's description and docs/operations.md tell the operator to look for."""
    from creditstream.connections import error_cause

    script = ResponseError("Error running script (call to f_f046): @user_script:4: @user_script: 4: "
                           "-OOM command not allowed when used memory > 'maxmemory'.")
    assert error_cause(script) == error_cause(OutOfMemoryError("command not allowed")) == "OutOfMemoryError"
    assert error_cause(ResponseError("WRONGTYPE Operation")) == "ResponseError"
    assert error_cause(ConnectionError("refused")) == "ConnectionError"
