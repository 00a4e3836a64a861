"""Probing the services a command needs, and reading what an exception says about them: which
service (Redis, the Kafka broker, the schema registry) is down at which address, with passwords
masked. Used by the command line's error handler (creditstream/cli.py)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

REDIS, KAFKA, REGISTRY = "Redis", "the Kafka broker", "the schema registry"

CONNECT_TIMEOUT_S = 3.0
"""How long the probe before a command waits for each service (connect and first answer)."""


class KafkaSecurityError(Exception):
    """The Kafka broker answered, but this client's security settings do not fit it: credentials it
    does not accept, a SASL mechanism it does not offer, or a TLS certificate this client does not
    trust. Not an outage: waiting does not help (the command line exits 2, at once)."""

    def __init__(self, address: str, reason: str):
        self.address, self.reason = address, reason
        super().__init__(f"cannot connect to the Kafka broker at {address} with these settings: {reason}")


class ServiceUnreachable(Exception):
    """One or more services did not answer: ``outages`` is a list of (service, address, reason)."""

    def __init__(self, outages: list[tuple[str, str, str]]):
        self.outages = outages
        super().__init__("; ".join(f"{s} at {a}: {r}" for s, a, r in outages))


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*)(?P<password>:[^@\s]*)?@")


def mask_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` masked the way
    ``config check`` masks ``redis_url`` and ``schema_registry`` (settings.mask_secret:
    ``user:***@``, or ``***@`` without a user or without a password, where the user part may be a
    token)."""
    def repl(m: re.Match) -> str:
        user = m.group("user")
        return f"{m.group('scheme')}{user}:***@" if user and m.group("password") else f"{m.group('scheme')}***@"

    return _USERINFO.sub(repl, text)


def _address(service: str, settings) -> str:
    if settings is None:
        return "(address unknown: the settings did not load)"
    if service == REDIS:
        if getattr(settings, "redis_sentinels", "").strip():
            return f"Sentinel {settings.redis_sentinels} (master {settings.redis_sentinel_master})"
        return mask_url(settings.redis_url)
    if service == KAFKA:
        return mask_url(settings.broker_url)
    if service == REGISTRY:
        return mask_url(settings.schema_registry)
    return "?"


def _one_line(text: object, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _registry_outage(exc) -> bool:
    """A RegistryError that means the registry is down (unreachable, or a 5xx / 408 / 429 answer),
    not that it refused a schema or the credentials (4xx: not an outage): ``RegistryError.outage``."""
    return bool(getattr(exc, "outage", False))


async def _probe_redis(settings, timeout: float) -> None:
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ResponseError

    from creditstream.connections import redis_from_settings

    client = redis_from_settings(settings, socket_connect_timeout=timeout, socket_timeout=timeout,
                                 retry=Retry(NoBackoff(), 0))
    try:
        await asyncio.wait_for(client.ping(), timeout + 1)
    except ResponseError:
        pass  # it answered (e.g. NOPERM for an ACL user without PING): reachable
    except TimeoutError:
        raise TimeoutError(f"no answer within {timeout:g} s") from None
    finally:
        await client.aclose()


async def _probe_kafka(settings, timeout: float) -> None:
    import logging

    from aiokafka.client import AIOKafkaClient
    from aiokafka.errors import KafkaConnectionError

    said: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record)

    # the client logs each failed connect (its reason; a metadata request that failed after the
    # connect, at WARNING) and raises "Unable to bootstrap": keep the reason for the handler's one
    # line instead of letting the log print it
    quiet = logging.getLogger("aiokafka")
    level, propagate, keep = quiet.level, quiet.propagate, Keep(logging.WARNING)
    quiet.setLevel(logging.WARNING)
    quiet.propagate = False
    quiet.addHandler(keep)
    client = None
    try:
        client = AIOKafkaClient(request_timeout_ms=int(timeout * 1000), **settings.kafka_client_kwargs())
        await asyncio.wait_for(client.bootstrap(), timeout + 1)
    except TimeoutError:
        raise TimeoutError(f"no metadata answer within {timeout:g} s") from None
    except KafkaConnectionError as exc:
        refused = kafka_refusal(_logged_error(said[-1]), settings) if said else None
        if refused:
            raise KafkaSecurityError(mask_url(settings.broker_url), refused) from None
        reason = said[-1].getMessage().rstrip() if said else str(exc)
        timed_out = reason.endswith(":")  # a connect that timed out says nothing more
        if timed_out:
            reason += f" no answer within {timeout:g} s"
        raise KafkaConnectionError(reason + _protocol_hint(reason, timed_out, settings)) from None
    finally:
        try:
            if client is not None:
                await client.close()
        finally:
            quiet.removeHandler(keep)
            quiet.setLevel(level)
            quiet.propagate = propagate


def _protocol_hint(reason: str, timed_out: bool, settings) -> str:
    """What may be wrong with ``security_protocol`` when a broker closed the connection at once, or
    never answered a TLS handshake: what a listener does to a client that does not speak its
    protocol (it says nothing more). Empty otherwise (e.g. a refused connect: the broker is down)."""
    protocol = settings.security_protocol
    if reason.endswith(" closed") and protocol in ("SSL", "SASL_SSL") and not settings.ssl_certfile:
        return (f" (a listener closes a client of another protocol, or one without a client certificate where it "
                f"requires one: check security_protocol, now {protocol}, and ssl_certfile, not set)")
    if reason.endswith(" closed"):
        return f" (a listener closes a client of another protocol: check security_protocol, now {protocol})"
    if timed_out and protocol in ("SSL", "SASL_SSL"):
        return f" (a listener without TLS never answers a TLS handshake: check security_protocol, now {protocol})"
    return ""


def _logged_error(record) -> BaseException | None:
    """The exception a Kafka client's log ``record`` names ("Unable connect to ...": its last argument)."""
    return next((a for a in reversed(record.args or ()) if isinstance(a, BaseException)), None)


async def kafka_connect_refusal(settings, timeout: float) -> str | None:
    """Why the first bootstrap server refuses this client's security settings (:func:`kafka_refusal`),
    from one connect made as the clients make it (TLS, SASL); None when it does not refuse them (it
    accepts them, or does not answer: an outage). For a process whose clients run meanwhile, where
    the client's log cannot be read for the reason (the query API's /health)."""
    from aiokafka.conn import create_conn

    host, _, port = settings.bootstrap_servers[0].rpartition(":")
    kw = settings.kafka_client_kwargs()
    del kw["bootstrap_servers"], kw["metadata_max_age_ms"]  # a client's, not a connection's
    try:
        conn = await asyncio.wait_for(create_conn(host, int(port), request_timeout_ms=int(timeout * 1000), **kw),
                                      timeout)
    except Exception as exc:  # noqa: BLE001 - anything else is not a refusal
        return kafka_refusal(exc, settings)
    conn.close()
    return None


def kafka_refusal(err: BaseException | None, settings) -> str | None:
    """What the Kafka client's connect error ``err`` says the broker refused, as a sentence naming the
    settings to check; None when it is not a refusal (the broker is down, slow, or closed the
    connection: an outage)."""
    import ssl

    from aiokafka import errors as kerr

    if isinstance(err, (kerr.SaslAuthenticationFailed, kerr.AuthenticationFailedError)):
        return (f"it refused the credentials ({_one_line(err, 200)}): check sasl_username and sasl_password "
                f"(sasl_mechanism {settings.sasl_mechanism or 'not set'})")
    if isinstance(err, (kerr.UnsupportedSaslMechanismError, kerr.IllegalSaslStateError)):
        return (f"it does not offer the SASL mechanism {settings.sasl_mechanism or '(none)'}: "
                "check sasl_mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512) and security_protocol")
    if isinstance(err, ssl.SSLCertVerificationError):
        detail = err.verify_message or str(err)
        ca = settings.ssl_cafile or "none set: the system's CAs"
        return f"its TLS certificate is not trusted ({detail}): check ssl_cafile ({ca})"
    return None


ACL_DOCS = "docs/operations.md, Security: the ACLs creditstream needs"


def kafka_authorization(exc: BaseException, settings) -> str | None:
    """What the Kafka broker refused this client for want of an ACL, as a sentence naming the
    principal, the resource and the ACLs to grant; None when no exception in ``exc``'s chain is an
    authorization failure. The broker answered: not an outage, and waiting does not help (an ACL is
    granted by an operator), so the command line exits 2, as for refused credentials."""
    from aiokafka import errors as kerr

    user = getattr(settings, "sasl_username", "") or "this client"
    who = f"user {user!r}" if user != "this client" else user
    where = _address(KAFKA, settings)
    for e in _chain(exc):
        names = ", ".join(str(a) for a in getattr(e, "args", ()) if isinstance(a, str) and a and " " not in a)
        if isinstance(e, kerr.TopicAuthorizationFailedError):
            what = f"topic {names}" if names else "a topic"
            grant = ("Read to consume, Write to produce, Describe to list, Create to create, DescribeConfigs / "
                     "AlterConfigs for `creditstream topics`")
        elif isinstance(e, kerr.GroupAuthorizationFailedError):
            what = f"consumer group {names}" if names else "a consumer group"
            grant = "Read on the group (joining it, committing and reading its offsets; Describe comes with it)"
        elif isinstance(e, kerr.ClusterAuthorizationFailedError):
            what = "a cluster operation"
            grant = ("an idempotent producer needs Write on a topic (Kafka 3.0+; IdempotentWrite on the cluster "
                     "before); creating topics needs Create on the topic prefix or the cluster")
        elif isinstance(e, (kerr.TransactionalIdAuthorizationFailed, kerr.DelegationTokenAuthorizationFailed)):
            what, grant = type(e).__name__, "an ACL"
        else:
            continue
        return (f"the Kafka broker at {where} refused {who} access to {what} ({type(e).__name__}): "
                f"it lacks an ACL: {grant} ({ACL_DOCS})")
    return None


async def _probe_registry(settings, timeout: float) -> None:
    """The registry answers ``GET /subjects`` within ``timeout`` (with the configured credentials and
    TLS): the same client as the commands use (creditstream/connections.py)."""
    from creditstream.connections import registry_client

    await registry_client(settings).check(timeout=timeout)


def probe_services(settings, needs: set[str], timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ServiceUnreachable` naming every service in ``needs`` that does not answer
    within ``timeout`` seconds (the probes run at the same time). The schema registry is probed
    only when it is a remote one. Other failures (e.g. Redis refusing the credentials) propagate."""
    probes: dict[str, Callable] = {}
    if REDIS in needs:
        probes[REDIS] = lambda: _probe_redis(settings, timeout)
    if KAFKA in needs:
        probes[KAFKA] = lambda: _probe_kafka(settings, timeout)
    if REGISTRY in needs and settings.schema_registry != "local":
        probes[REGISTRY] = lambda: _probe_registry(settings, timeout)
    if not probes:
        return

    async def run_all():
        return await asyncio.gather(*(make() for make in probes.values()), return_exceptions=True)

    outages: list[tuple[str, str, str]] = []
    for service, result in zip(probes, asyncio.run(run_all())):
        if not isinstance(result, BaseException):
            continue
        found = _outages_of(result, settings)
        if found is None and isinstance(result, (TimeoutError, ConnectionError)):
            found = [(service, "", str(result) or type(result).__name__)]  # e.g. the probe's own timeout
        if found is None:
            raise result
        # a probe knows which service it asked, whatever the exception looks like
        outages += [(service, _address(service, settings), reason) for _, _, reason in found]
    if outages:
        raise ServiceUnreachable(outages)


def _service_of_frames(exc: BaseException) -> str | None:
    """Which service's client code raised ``exc`` (innermost frame first), if any."""
    tb = exc.__traceback__
    modules = []
    while tb is not None:
        modules.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    for name in reversed(modules):
        if name == "redis" or name.startswith("redis."):
            return REDIS
        if name.startswith(("aiokafka", "kafka.", "streams.kafka")):
            return KAFKA
        if name == "streams.codec":
            return REGISTRY
    return None


def _chain(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _outages_of(exc: BaseException, settings) -> list[tuple[str, str, str]] | None:
    """(service, address, reason) for each service ``exc`` says is unreachable, or None when
    ``exc`` is not an outage."""
    import socket

    import redis.exceptions as rexc
    from aiokafka import errors as kerr

    from streams.codec import RegistryError

    redis_down = (rexc.ConnectionError, rexc.TimeoutError, rexc.ReadOnlyError, rexc.TryAgainError,
                  rexc.ClusterDownError)
    kafka_down = (kerr.KafkaConnectionError, kerr.KafkaTimeoutError, kerr.NoBrokersAvailable,
                  kerr.RequestTimedOutError, kerr.NodeNotReadyError, kerr.BrokerNotAvailableError,
                  kerr.KafkaUnavailableError, kerr.LeaderNotAvailableError, kerr.NotEnoughReplicasError,
                  kerr.NotEnoughReplicasAfterAppendError)
    for e in _chain(exc):
        service = None
        if isinstance(e, ServiceUnreachable):
            return e.outages
        if isinstance(e, KafkaSecurityError):
            return None  # the broker answered: not an outage (its client's error is in the context)
        if isinstance(e, rexc.RedisError):
            service = REDIS if isinstance(e, redis_down) and not _credentials_refused(e) else None
        elif isinstance(e, kafka_down):
            service = KAFKA
        elif isinstance(e, RegistryError):
            service = REGISTRY if _registry_outage(e) else None
        elif isinstance(e, (TimeoutError, ConnectionError)):
            # asyncio.TimeoutError is TimeoutError: wait_for_broker's names the broker
            service = KAFKA if "Kafka broker" in str(e) else _service_of_frames(e)
            if service is None:
                for inner in _chain(e):
                    service = _service_of_frames(inner)
                    if service:
                        break
        elif isinstance(e, socket.gaierror):  # a host name that does not resolve
            service = _service_of_frames(e)
        if service is not None:
            reason = str(e) or type(e).__name__
            if isinstance(e, (kerr.KafkaError, TimeoutError)) and type(e).__name__ not in reason:
                reason = f"{type(e).__name__}: {reason}"
            return [(service, _address(service, settings), reason)]
    return None


def _access_refused(exc: BaseException) -> bool:
    """Redis's ACL refused a command or a key to the user of redis_url (NOPERM)."""
    import redis.exceptions as rexc

    return isinstance(exc, rexc.NoPermissionError)


def _credentials_refused(exc: BaseException) -> bool:
    import redis.exceptions as rexc

    return isinstance(exc, (rexc.AuthenticationError, rexc.AuthorizationError,
                            getattr(rexc, "ExternalAuthProviderError", rexc.AuthenticationError)))
