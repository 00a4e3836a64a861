"""The query API's two guards that need no server: which codes the public role is refused before any
look-up (creditstream/api.py ``_names_a_person``), and the API's own Redis client, with a short
deadline and no retry after a timeout, beside the workers' patient one (creditstream/connections.py).
The same against a real redis-server and the pipeline: tests/integration/test_api_hung_redis.py,
tests/integration/test_api_legacy_ids.py."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from creditstream.api import _names_a_person
from creditstream.connections import api_redis_client, redis_client
from creditstream.settings import Settings
from domain.identifiers import is_valid_reg_no, looks_like_legacy_id

KEY = "k" * 32


@pytest.mark.parametrize("code", [
    "410105850312004",          # a first-generation ID number that passes the registration-number check too
    "410105850312012",          # the same
    "110101900307451",          # one that does not
    "410105 850312 004",        # printed in groups
    "４１０１０５８５０３１２００４",  # full width
    "11010519491231002X",       # 18 characters
])
def test_codes_that_may_be_id_numbers_are_refused(code):
    assert _names_a_person(code)


def test_every_legacy_looking_code_is_refused_whatever_its_reg_no_check():
    """Of the 15-digit codes the masking reads as ID numbers, those that pass the registration-number
    check (about 1 in 10) were let through to the look-up: a 403 / 404 oracle."""
    codes = [f"410105850312{n:03d}" for n in range(1000)]
    legacy = [c for c in codes if looks_like_legacy_id(c)]
    assert len(legacy) == len(codes) and sum(map(is_valid_reg_no, legacy)) > 50
    assert all(_names_a_person(c) for c in legacy)


@pytest.mark.parametrize("code", [
    "91350211MA0000000X",       # a USCC
    "D2143569X",                # an organisation code
    "990105850312004",          # 15 digits, no province 99: not an ID number
    "410105851312001",          # 15 digits, month 13: not an ID number
    "4101058503120",            # 13 digits
])
def test_codes_that_cannot_be_id_numbers_are_looked_up(code):
    assert not _names_a_person(code)


def _config(client) -> tuple[dict, tuple]:
    kwargs = client.connection_pool.connection_kwargs
    return kwargs, tuple(kwargs["retry"]._supported_errors)


def test_the_api_client_gives_up_within_its_deadline():
    settings = Settings()
    assert settings.api_redis_timeout_s == 2.0
    kwargs, retried = _config(api_redis_client(settings.replace(api_redis_timeout_s=1.5)))
    assert kwargs["socket_timeout"] == 1.5 and kwargs["socket_connect_timeout"] == 1.5
    assert RedisTimeoutError not in retried and TimeoutError not in retried
    assert RedisConnectionError in retried and kwargs["retry"].get_retries() == 1


def test_the_workers_client_retries_connections_patiently_but_waits_once_for_an_answer():
    """A refused or dropped connection is tried 3 more times; in a worker, a command a hung Redis did
    not answer in 10 s is not repeated (the batch runner retries the batch, and says so); the
    operator commands repeat it (test_redis_client_timeouts)."""
    kwargs, retried = _config(redis_client(Settings(), repeat_unanswered=False))
    assert kwargs["socket_timeout"] == 10
    assert RedisConnectionError in retried and RedisTimeoutError not in retried
    assert kwargs["retry"].get_retries() == 3
    kwargs, retried = _config(redis_client(Settings()))
    assert RedisConnectionError in retried and RedisTimeoutError in retried
    assert kwargs["retry"].get_retries() == 3


@pytest.mark.parametrize("value, ok", [(2.0, True), (0.2, True), (30, True), (0, False), (-1, False), (31, False)])
def test_api_redis_timeout_is_checked(value, ok):
    problems = [p for p in Settings(api_redis_timeout_s=value).validate() if p.startswith("api_redis_timeout_s")]
    assert (problems == []) is ok, problems


def test_a_port_in_use_is_refused_in_one_line():
    """Seen: `creditstream worker --web` on a port another process held exited 1 with Faust's
    traceback. Refused before anything starts (AccessConfigError: exit 2)."""
    import socket

    from creditstream.access import AccessConfigError
    from creditstream.api import check_port_free

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        with pytest.raises(AccessConfigError, match=f"web_port: port {port} on 127.0.0.1 is in use"):
            check_port_free("127.0.0.1", port)
        with pytest.raises(AccessConfigError, match=r"choose another \(--port\)"):
            check_port_free("127.0.0.1", port, "--port")
    check_port_free("127.0.0.1", port)  # released: free again


def test_a_busy_pool_is_not_said_as_redis_not_answering():
    """The re-check of the connection pool's fix: with every connection in use for the whole wait (a host
    short of CPU), the 503 said "Redis did not answer" while Redis answered pings in 2 ms."""
    from redis import exceptions as rexc

    from creditstream.api import _unavailable

    busy = _unavailable(rexc.ConnectionError("No connection available."))
    assert busy is not None and busy.status == 503 and "busy" in busy.message and "Redis did not" not in busy.message
    down = _unavailable(rexc.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."))
    assert down is not None and down.message == "Redis did not answer; try again later"
