"""``creditstream``: the command line for operators, department systems and developers.

Every command reads the settings (creditstream/settings.py): environment variables
``CREDITSTREAM_*``, a settings file, or the embedded stack started by ``creditstream stack up``.

Exit codes, decided in one place (:func:`main`'s handler, :func:`_failure`):

* 0 success (also when the reader of standard output went away: ``creditstream list | head -1``);
* 1 the thing asked for does not exist, or a check failed, or an operation stopped part-way (a
  replay one of whose processes was killed, by the kernel for memory most often, or that stopped
  before its new generation filled Redis);
* 2 usage: bad arguments, bad settings, an input file that cannot be read, credentials refused
  (by Redis, the schema registry, or the Kafka broker: also its SASL mechanism or TLS certificate),
  an operation the Kafka broker refuses for want of an ACL;
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
import io
import json
import os
import select
import sys
import textwrap
from collections.abc import Callable

from creditstream import cli_parser
from creditstream.probes import (
    KAFKA,
    REDIS,
    REGISTRY,
    KafkaSecurityError,
    ServiceUnreachable,  # noqa: F401 - cli.ServiceUnreachable: what the handler reads
    _access_refused,
    _address,
    _chain,
    _credentials_refused,
    _one_line,
    _outages_of,
    kafka_authorization,
    mask_url,
    probe_services,
)

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


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
    from creditstream import eventloop

    wrong_loop = eventloop.problem(settings.event_loop)
    if wrong_loop is None:
        eventloop.install(settings.event_loop)  # before the command creates its loop (asyncio.run, Faust)
    elif getattr(args, "func", None) is not cmd_config:  # `config check` lists it with the other problems
        print(f"creditstream: bad settings: {wrong_loop}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if getattr(args, "func", None) is not cmd_worker:  # the worker sets up its own, Faust's with it
        _logs(args, settings)  # on standard error, in the settings' format: standard output is the answer
    needs = _needs(args)
    if needs:
        probe_services(settings, needs)
    return settings


def _logs(args, settings=None):
    from creditstream import logs

    level = getattr(args, "log_level", None) or (settings.log_level if settings else "INFO")
    try:
        logs.configure(level=level, fmt=settings.log_format if settings else "auto",
                       libraries=settings.libraries_log_level if settings else None)
    except ValueError as exc:  # a level or format no logger knows
        if getattr(args, "func", None) is not cmd_config:  # `config check` lists it with the other problems
            print(f"creditstream: bad settings: {exc}", file=sys.stderr)
            sys.exit(EXIT_USAGE)
        logs.configure()


class _WholeWrites(io.RawIOBase):
    """A standard stream's file descriptor as a raw file whose writes always complete.

    Something in a command's process can leave the pipe behind standard output non-blocking
    (uvloop does so to file descriptors it watches: MagicStack/uvloop#460, #712; the flag belongs
    to the pipe, so any process holding it can set it). Python 3.11's buffered writer then loses,
    silently and with exit status 0, whatever the pipe cannot take at once: a fresh CI run got a
    ``dlq redrive --json`` answer cut at 65,536 bytes, the pipe's size. Here a write that would
    block waits until the reader makes room."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self._fd = fd

    def fileno(self) -> int:
        return self._fd

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # a terminal stays one: progress bars, console logs (io's default says no)
        try:
            return os.isatty(self._fd)
        except OSError:
            return False

    def write(self, data) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            try:
                done += os.write(self._fd, view[done:])
            except BlockingIOError:
                select.select([], [self._fd], [])
        return done

    def close(self) -> None:  # the descriptor stays open: it is the process's standard stream
        self.flush()
        super().close()


def complete_stdio() -> None:
    """Make ``sys.stdout`` and ``sys.stderr`` write whole whatever the pipes' blocking mode
    (:class:`_WholeWrites`): a command's answer, and the worker's log lines under a burst. Each is
    left alone when it is not the process's own file (pytest's capture, embedding) or was replaced
    already; ``sys.__stdout__`` / ``sys.__stderr__`` stay as they were and keep the descriptors open."""
    sys.stdout = _whole(sys.stdout, sys.__stdout__)
    sys.stderr = _whole(sys.stderr, sys.__stderr__)


def _whole(out, original):
    if out is not original or not isinstance(out, io.TextIOWrapper):
        return out
    try:
        fd = out.fileno()
    except (AttributeError, OSError, ValueError):
        return out
    out.flush()
    return io.TextIOWrapper(io.BufferedWriter(_WholeWrites(fd)), encoding=out.encoding, errors=out.errors,
                            line_buffering=out.line_buffering, write_through=out.write_through)


def _own_stderr() -> bool:
    """Standard error is the process's own file: as it started, or wrapped by :func:`complete_stdio`."""
    return sys.stderr is sys.__stderr__ or isinstance(getattr(getattr(sys.stderr, "buffer", None), "raw", None),
                                                      _WholeWrites)


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str))


class _JsonItems:
    """A JSON list printed as :func:`_print_json` prints it, byte for byte, each item as it comes,
    not held: the list alone, or with ``head`` the object ``{**head, "<items>": [...]}`` (``items``
    sorts after ``head``'s keys). The opening is written with the first item, so a command that
    fails before any prints no half answer."""

    def __init__(self, head: dict | None = None, items: str = "items") -> None:
        if head is None:
            self.whole: object = []
            self.opening, self.indent, self.closing = "[", "  ", "\n]"
        else:
            assert all(k < items for k in head)
            self.whole = {**head, items: []}
            text = json.dumps(self.whole, ensure_ascii=False, indent=2, sort_keys=True, default=str)
            assert text.endswith("[]\n}")
            self.opening, self.indent, self.closing = text[:-3], "    ", "\n  ]\n}"
        self.any = False

    def add(self, item: dict) -> None:
        text = json.dumps(item, ensure_ascii=False, indent=2, sort_keys=True, default=str)
        print((",\n" if self.any else self.opening + "\n") + textwrap.indent(text, self.indent), end="")
        self.any = True

    def end(self) -> None:
        if self.any:
            print(self.closing)
        else:
            _print_json(self.whole)


# --- services: probes before a command, and what an exception means ------------------------


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
    if command in ("topics",):
        return {KAFKA}
    if command in ("positions", "partitions"):
        return {REDIS, KAFKA}
    if command == "dlq":
        return {REDIS, KAFKA, REGISTRY} if getattr(args, "fix", None) else {REDIS, KAFKA}
    return set()


def _no_stack_hint(settings) -> str:
    """Where the addresses are the defaults because no embedded stack runs in the run directory (after
    `stack down`, or in another directory): said, for the defaults may be another's servers."""
    from creditstream.settings import Settings, stack_file

    if settings is None or stack_file(settings.run_dir).is_file():
        return ""
    if settings.redis_url != Settings.redis_url and settings.broker_url != Settings.broker_url:
        return ""
    return (f". No embedded stack runs in {settings.run_dir} (its stack.json is missing), so the default "
            "addresses were used: `creditstream stack up`, or set CREDITSTREAM_REDIS_URL and CREDITSTREAM_BROKER_URL")


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
            f"cannot reach {service} at {address} ({_one_line(mask_url(reason), 300)})"
            for service, address, reason in outages) + _no_stack_hint(settings)
    from ops.dlq import RedriveError
    from streams.runner import PositionAhead

    if isinstance(exc, PositionAhead):  # the worker's state is not from this log: what to do is in the line
        return EXIT_NOT_FOUND, f"creditstream: worker stopped: {_one_line(exc, 900)}"
    refused = kafka_authorization(exc, settings)
    if refused:
        return EXIT_USAGE, f"creditstream: {_one_line(refused, 600)}"
    for e in _chain(exc):
        if isinstance(e, KafkaSecurityError):
            return EXIT_USAGE, (f"creditstream: {_one_line(e, 400)} (`creditstream config check` shows the "
                                "security_protocol, sasl_* and ssl_* settings)")
        if _credentials_refused(e):
            return EXIT_USAGE, (f"creditstream: Redis at {_address(REDIS, settings)} refused the credentials "
                                f"({_one_line(e, 200)}); check redis_url (`creditstream config check`)")
        if _access_refused(e):
            from creditstream.connections import access_refused

            namespace = settings.namespace if settings is not None else "cs"
            return EXIT_USAGE, (f"creditstream: Redis at {_address(REDIS, settings)}: "
                                f"{_one_line(access_refused(e, namespace), 400)}")
        if isinstance(e, RegistryError) and e.kind in ("auth", "tls", "config"):
            # credentials refused, a certificate not trusted, TLS files that do not load: the settings
            return EXIT_USAGE, (f"creditstream: {_one_line(mask_url(str(e)))} (`creditstream config check` "
                                "shows the schema_registry_* settings)")
        if isinstance(e, RegistryError):
            return EXIT_NOT_FOUND, (f"creditstream: the schema registry at {_address(REGISTRY, settings)} "
                                    f"refused: {_one_line(mask_url(str(e)))}")
    if isinstance(exc, RedriveError):
        return EXIT_USAGE, f"creditstream: {exc}"
    from sinks.keys import PseudonymKeyMissing

    if isinstance(exc, PseudonymKeyMissing):
        return EXIT_USAGE, f"creditstream: bad settings: {exc}"
    from streams.placement import PlacementError

    if isinstance(exc, PlacementError):  # a topic created again with fewer partitions
        return EXIT_USAGE, f"creditstream: {_one_line(exc, 800)}"
    from creditstream.connections import RedisUnsuitable

    if isinstance(exc, RedisUnsuitable):  # Redis's configuration, not creditstream's: fixed there
        return EXIT_USAGE, f"creditstream: {exc}"
    from redis.exceptions import OutOfMemoryError

    if any(isinstance(e, OutOfMemoryError) for e in _chain(exc)):
        return EXIT_NOT_FOUND, ("creditstream: Redis refused a write: it is full (maxmemory reached; creditstream "
                                "requires maxmemory-policy noeviction, so nothing is evicted). Give it memory, or "
                                "delete old generations' keys with the admin user (docs/operations.md, Durability)")
    replaying = sys.modules.get("ops.replay")  # loaded by a replay only: nothing imported here for others
    if replaying is not None and isinstance(exc, replaying.ReplayStopped):
        # a replay's process killed (out of memory) or crashed; Redis nearly full
        return EXIT_NOT_FOUND, f"creditstream: {exc}"
    from creditstream.access import AccessConfigError

    if isinstance(exc, AccessConfigError):  # the API's tokens, TLS files, or where it may listen
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
    from ops.stack import Stack, StackError, StackRefused
    run_dir = os.environ.get("CREDITSTREAM_RUN_DIR", Settings.run_dir)
    stack = Stack(run_dir)
    if args.action == "up":
        password = None
        if args.redis_password_file:
            with open(args.redis_password_file, encoding="utf-8") as fh:
                password = fh.read().strip()
            if not password:
                print(f"creditstream: {args.redis_password_file} is empty: no Redis password in it", file=sys.stderr)
                return EXIT_USAGE
        broker = args.broker or stack.last_broker_kind()
        before = stack.info()  # (each server's pid before: which did this `up` start, which were running)
        if broker == "kafka" and not (stack.status().get("broker") or {}).get("answering"):
            print("starting Apache Kafka (the first start resolves its jars with Maven)...", file=sys.stderr)
        try:
            info = stack.up(broker=broker, nodes=args.nodes, redis_password=password)
        except StackRefused as exc:  # (a refusal, not an outage: exit 2, as the README's codes say)
            print(f"creditstream: {exc}", file=sys.stderr)
            return EXIT_USAGE
        except StackError as exc:
            print(f"creditstream: the embedded stack did not start: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        def started(pid: int, was: int | None) -> str:
            return "running" if pid == was else "started"

        print(f"broker          {stack.broker_description()}  {info.broker_url}  pid {info.broker_pid}  "
              f"{started(info.broker_pid, before and before.broker_pid)}")
        print(f"redis-server    {mask_url(info.redis_url)}  pid {info.redis_pid}  "
              f"{started(info.redis_pid, before and before.redis_pid)}  (password in stack.json)")
        print(f"run dir         {info.run_dir}  (settings in {info.run_dir}/stack.json)")
        if info.set_aside and info.broker_kind == "kafka":
            print(f"creditstream: Apache Kafka's log here is not the one the state Redis kept was built from (a "
                  f"Tansu's, or a log directory formatted now): the state was moved to {info.set_aside} and "
                  "redis-server started empty (send the inputs again)", file=sys.stderr)
        elif info.set_aside:
            print(f"creditstream: Tansu started anew with an empty log (it keeps its log in memory): the state "
                  f"Redis kept was built from the log that is gone, so it was moved to {info.set_aside} and "
                  "redis-server started empty (send the inputs again; keep state across restarts with "
                  "`stack down` then `stack up --broker kafka`, and send them there)", file=sys.stderr)
        return EXIT_OK
    if args.action == "down":
        workers = _workers_on(stack)
        was = stack.down()
        print("stopped the embedded stack" if was else "the embedded stack was not running")
        if workers:  # they lose their broker and Redis now: said, so that nobody wonders at their errors
            where = ", ".join(f"{w.get('host', '?')} pid {w.get('pid', '?')}" for w in workers)
            print(f"creditstream: {len(workers)} worker(s) of this stack still run ({where}): they cannot reach "
                  f"the broker or Redis now; stop them (SIGTERM), or start the stack again", file=sys.stderr)
        return EXIT_OK
    status = stack.status()
    _print_json(status)
    return EXIT_OK if status.get("running") else EXIT_NOT_FOUND


def _workers_on(stack) -> list[dict]:
    """The workers whose heartbeat the running embedded stack's Redis holds (none when it does not answer)."""
    from creditstream.settings import load
    from ops.inspect import running_workers
    from sinks.keys import Keys

    info = stack.info()
    if info is None or not stack.status().get("running"):
        return []

    async def ask() -> list[dict]:
        from creditstream.connections import redis_client

        settings = load(env={**os.environ, "CREDITSTREAM_RUN_DIR": str(info.run_dir)})
        redis = redis_client(settings)
        try:
            return await asyncio.wait_for(running_workers(redis, Keys(settings.namespace)), 3.0)
        finally:
            await redis.aclose()

    try:
        return asyncio.run(ask())
    except Exception:  # noqa: BLE001 - a question asked on the way out: no answer, nothing said
        return []


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

    # creditstream's logging (structlog, ID numbers masked), set up here: Faust's own set-up
    # (override_logging) would add its terminal spinner, which sets the root logger to DEBUG
    # (docs/performance.md)
    try:
        logs.configure(level=level, fmt=settings.log_format, libraries=settings.libraries_log_level)
    except ValueError as exc:  # a level or format no logger knows
        print(f"creditstream: bad settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    import structlog

    from creditstream.settings import unknown_variables

    for warning in unknown_variables():
        structlog.get_logger("creditstream.cli").warning("a CREDITSTREAM_ variable is not a setting", detail=warning)
    files = [p for p in settings.validate() if p.startswith(("rules_file:", "calendar_file:"))]
    if files:  # one line each, exit 2, before Faust (it logged two tracebacks and "We experienced a crash!")
        for problem in files:
            print(f"creditstream: bad settings: {problem}", file=sys.stderr)
        return EXIT_USAGE
    app = create_faust_app(settings, agents, web=args.web)  # settings errors first: exit 2
    # Until Faust's worker installs its own handler (its stop: creditstream/app.py Pipeline.stop), a
    # SIGTERM (a deploy, a scale-down) ends the waiting for the services at once, with exit code 0
    with _stop_on_sigterm() as stopped:
        try:
            _wait_for_services(settings, args.wait)  # ServiceUnreachable after --wait: exit 3, one line
            _refuse_unsuitable_redis(settings)  # RedisUnsuitable: exit 2, one line (the pipeline checks again)
            worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False, override_logging=False)
            # no terminal spinner: it writes cursor controls to standard output whatever that is, and
            # a log file then had them before the next JSON line; creditstream logs its own start
            worker.spinner = None
            try:
                worker.execute_from_commandline()
            except SystemExit:
                if app.pipeline.failure is not None:  # one line and exit 2 from main's handler (a missing ACL)
                    raise app.pipeline.failure from None
                raise
        except StopRequested:
            import structlog

            structlog.get_logger("creditstream.cli").info(
                "stopping: asked to stop (SIGTERM) before the worker started; nothing to hand over",
                waited_s=round(stopped.waited(), 2))
            return EXIT_OK
    return EXIT_OK


class StopRequested(BaseException):
    """SIGTERM before the worker's own handling of it: a BaseException, as KeyboardInterrupt, so that no
    ``except Exception`` of a probe takes it for a failure of the service."""


class _StopOnSigterm:
    def __init__(self) -> None:
        import time

        self.t0 = time.monotonic()
        self.previous = None

    def waited(self) -> float:
        import time

        return time.monotonic() - self.t0

    def _raise(self, signum, frame) -> None:
        raise StopRequested(f"signal {signum}")

    def __enter__(self) -> _StopOnSigterm:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        # Faust's event loop replaced the handler with its own once it ran; put back the one from
        # before only if ours is still installed (a worker called in-process, by tests)
        if self.previous is not None and signal.getsignal(signal.SIGTERM) == self._raise:
            signal.signal(signal.SIGTERM, self.previous)


def _stop_on_sigterm() -> _StopOnSigterm:
    """Within it, SIGTERM raises :class:`StopRequested` (in the main thread only)."""
    return _StopOnSigterm()


def _refuse_unsuitable_redis(settings) -> None:
    """Before a worker starts: RedisUnsuitable for a Redis that may evict any key or is a Redis Cluster;
    a warning logged for one that may evict keys with a time to live (creditstream/connections.py
    ``check_redis``)."""
    import asyncio

    import structlog

    from creditstream.connections import check_redis, redis_client

    async def check() -> str | None:
        redis = redis_client(settings)
        try:
            return await check_redis(redis, settings.namespace)
        finally:
            await redis.aclose()

    warning = asyncio.run(check())
    if warning:
        structlog.get_logger("creditstream.cli").warning("redis set-up", problem=warning)


def _refuse_redis_access(settings) -> None:
    """Before the API serves: RedisUnsuitable when Redis's ACL refuses the namespace's keys to the user of
    redis_url (creditstream/connections.py ``check_redis_access``); every request would fail else."""
    from creditstream.connections import api_redis_client, check_redis_access

    async def check() -> None:
        redis = api_redis_client(settings)
        try:
            await check_redis_access(redis, settings.namespace)
        finally:
            await redis.aclose()

    asyncio.run(check())


def _wait_for_services(settings, wait_s: float) -> None:
    """Before the worker or the API starts: Kafka and Redis (and a remote registry) must answer within
    ``wait_s`` seconds (probed every 2 s, one log line per round), else ServiceUnreachable."""
    import logging
    import time

    import structlog

    from creditstream.probes import KAFKA, REDIS, REGISTRY, probe_services

    log = structlog.get_logger("creditstream.cli")
    deadline = time.monotonic() + max(0.0, wait_s)
    quiet = logging.getLogger("aiokafka")  # its connect errors would repeat every retry
    before = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        while True:
            try:
                probe_services(settings, {KAFKA, REDIS, REGISTRY})
                return
            except ServiceUnreachable as exc:
                if time.monotonic() >= deadline:
                    raise
                log.warning("waiting for services", unreachable=str(exc).splitlines()[0][:300],
                            gives_up_in_s=round(deadline - time.monotonic()))
                time.sleep(2.0)
    finally:
        quiet.setLevel(before)


# --- query API -----------------------------------------------------------------------------
def cmd_api(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from creditstream.api import check_port_free, check_serving, serve

    host = args.host or settings.web_bind
    port = args.port or settings.web_port
    check_serving(settings, host)  # AccessConfigError: exit 2 (a non-loopback host without tokens, ...)
    check_port_free(host, port, "--port" if args.port else "web_port")
    _wait_for_services(settings, args.wait)  # ServiceUnreachable after --wait: exit 3, one line
    _refuse_redis_access(settings)  # RedisUnsuitable (the ACL refuses the namespace): exit 2, one line
    scheme = "https" if settings.api_tls_certfile else "http"
    print(f"creditstream API on {scheme}://{host}:{port}/ (Ctrl-C to stop; endpoints in docs/openapi.yaml)",
          file=sys.stderr)
    asyncio.run(serve(settings, host, port))
    return EXIT_OK


# --- department side -------------------------------------------------------------------------
def cmd_produce(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from ops.produce import ProduceReport, produce_file

    # the schemas are registered before any line is encoded or sent: the registry going away
    # raises RegistryError (an outage: exit 3, nothing sent), it never makes lines "refused"
    report = ProduceReport(source=args.file, dry_run=args.dry_run)
    try:
        report = asyncio.run(produce_file(settings, args.file, dry_run=args.dry_run, report=report))
    except KeyboardInterrupt:  # Ctrl-C: what was sent, and where to go on from
        report.interrupted = True
        print(report.render())
        return 130
    print(report.render())
    return EXIT_OK if not report.refused or args.allow_refused else EXIT_NOT_FOUND


# --- inspection ----------------------------------------------------------------------------
def _no_subject(code: str) -> str:
    """The one line for a code no subject has, with why none can have it where the code says so (a
    check character that does not match, a placeholder: the check API's ``code_problem``)."""
    from domain.identifiers import code_problem

    problem = code_problem(code)
    return (f"creditstream: no subject {code!r} (looked up as a USCC, ID number and legacy number)"
            + (f": {problem}" if problem else ""))


def cmd_subject(args) -> int:
    settings = _settings(args)
    from ops.inspect import subject_state

    state = asyncio.run(subject_state(settings, args.code))
    if state is None:
        print(_no_subject(args.code), file=sys.stderr)
        return EXIT_NOT_FOUND
    _print_json(state)
    return EXIT_OK


def cmd_lists(args) -> int:
    settings = _settings(args)
    from ops.inspect import subject_lists

    info = asyncio.run(subject_lists(settings, args.code))
    if info is None:
        print(_no_subject(args.code), file=sys.stderr)
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
    if args.personal:  # an operator entitled to personal data (RULES.md 7): on the record
        import structlog

        from ops import dlq

        _logs(args, settings)  # on stderr: stdout is the answer
        structlog.get_logger("creditstream.list").warning("list shown with personal data", list=args.name,
                                                           members=len(members), operator=dlq.operator())
    else:
        from domain.identifiers import mask_ids_in_text

        members = [mask_ids_in_text(m) for m in members]  # natural persons' ID numbers, as report and the API
    for m in members:
        print(m)
    if cursor:
        print(f"-- more: creditstream list {args.name} --cursor {cursor}", file=sys.stderr)
    return EXIT_OK


def cmd_report_verify(args) -> int:
    """Recompute a credit report's content hash (creditstream/report_verify.py; no settings needed)."""
    from creditstream.report_verify import run

    token = os.environ.get("CREDITSTREAM_API_TOKEN") or None
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as exc:
            print(f"creditstream: cannot read {args.token_file}: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
    code, line = run(args.source, token)
    print(line, file=sys.stdout if code == EXIT_OK or line.startswith("FAILED") else sys.stderr)
    return code


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
    from ops.replay import live_changes, per_subject, replay, stale_copies

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
    if args.jobs is not None and args.jobs < 1:
        print("creditstream: --jobs takes a number of processes, 1 or more", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = asyncio.run(replay(settings, generation=args.generation, verify=args.verify, switch=args.switch,
                                    start=start, from_timestamp_ms=from_ts, jobs=args.jobs))
    except ValueError as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # Ctrl-C: nothing switched; a rebuild begun is marked failed (ops/replay.py)
        print("creditstream: replay interrupted: nothing was switched to; a generation it had begun is marked "
              "failed, and its keys can be deleted (docs/operations.md, Replay). Run it again to rebuild.",
              file=sys.stderr)
        return 130
    for gen in result.abandoned:
        print(f"an earlier replay into generation {gen!r} was interrupted: marked abandoned; its keys "
              f"({settings.namespace}:{gen}:*) can be deleted with the admin user (never the live generation's)",
              file=sys.stderr)
    processes = f"{result.jobs} process{'es' if result.jobs > 1 else ''}"
    if result.fenced:
        processes += ", fenced: a subject's inputs sit on more than one partition"
    print(f"replayed {result.events} subject events into generation {result.generation!r} "
          f"in {result.seconds:.2f}s ({result.rate:,.0f} events/s, {processes}); {result.change_count} list changes")
    code = EXIT_OK
    if args.verify:
        behind = -sum(n for n in result.live_offset.values() if n < 0)
        ahead = sum(n for n in result.live_offset.values() if n > 0)
        if behind or ahead:
            parts = ", ".join(f"{p}: {n:+d}" for p, n in sorted(result.live_offset.items()))
            print(f"verify: the live workers were {behind} event(s) behind and {ahead} ahead of the rebuild "
                  f"(by partition, {parts}): differences may be only that; rerun once they have caught up")
        if result.differences:
            print(f"{len(result.differences)} difference(s) with the live state:")
            for line in result.differences:
                print(f"  {line}")
            code = EXIT_NOT_FOUND
        else:
            print("verify: 0 differences with the live state")
        sent = asyncio.run(live_changes(settings))
        live = per_subject(sent)
        rebuilt = per_subject(result.changes)
        stale = stale_copies(sent)
        if stale:
            print(f"verify: {stale} stale copies on the list-change topic (sent again by a worker paused between its "
                  f"state write and its produce, after newer changes of their subjects): a subscriber that skips a "
                  f"change whose sequence is below its subject's highest, as docs/events.md says, skips them")
        if live != rebuilt:
            bad = sorted(s for s in set(live) | set(rebuilt) if live.get(s) != rebuilt.get(s))
            print(f"verify: list-change ids differ for {len(bad)} subject(s): {', '.join(bad[:10])}")
            code = EXIT_NOT_FOUND
        else:
            print(f"verify: list-change ids identical ({sum(map(len, live.values()))} changes, "
                  f"{len(live)} subjects, same order per subject)")
    if result.switched:
        print(f"readers now use generation {result.generation!r}")
    else:  # (the workers' Redis user may not delete keys: deploy/redis.acl)
        print(f"the rebuilt generation {result.generation!r} stays in Redis (the state of the {result.events:,} "
              f"subject events it replayed): once inspected, delete its keys "
              f"({settings.namespace}:{result.generation}:*) with the admin user (docs/operations.md, Replay)",
              file=sys.stderr)
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
        # the summaries held, sorted; each page's re-drives read, masked and printed in turn
        letters = asyncio.run(dlq.list_dead_letters(
            settings, reason=flt.reason, source_topic=flt.source_topic, since=flt.since_ms, until=flt.until_ms,
            source_time=flt.source_time, with_redrives=False))
        json_items = _JsonItems() if args.json else None
        text = None if args.json else dlq.ListPrinter(letters, print)

        async def pages() -> None:
            async for part in dlq.with_redrives_by_page(settings, letters):
                masked = [dlq.mask_personal(d) for d in part]
                if json_items is not None:
                    for d in masked:
                        json_items.add(d)
                else:
                    text.page(masked)

        asyncio.run(pages())
        if json_items is not None:
            json_items.end()
        else:
            text.end()
            if not letters and flt.reason:  # a misspelt reason matches nothing: say which there are
                counts = asyncio.run(dlq.count_dead_letters(settings))
                if flt.reason not in counts:
                    held = ", ".join(f"{r} ({n})" for r, n in counts.items()) or "none"
                    print(f"(no dead letter has reason {flt.reason!r}; the reasons there are: {held})",
                          file=sys.stderr)
        return EXIT_OK
    if args.action == "show":
        letter = asyncio.run(dlq.show(settings, args.ref))
        if letter is None:
            print(f"creditstream: no dead letter at {args.ref} (see `creditstream dlq list`)", file=sys.stderr)
            return EXIT_NOT_FOUND
        if args.personal:  # an operator entitled to personal data (RULES.md 7): on the record
            import structlog

            _logs(args, settings)  # on stderr: stdout is the answer
            structlog.get_logger("creditstream.dlq").warning("dead letter shown with personal data", ref=args.ref,
                                                              operator=dlq.operator())
        else:
            letter = dlq.mask_personal(letter)
        if args.json:
            _print_json(letter)
        else:
            print(dlq.render_show(letter))
        return EXIT_OK
    # each letter printed once its chunk is done (a selection of millions is never held as a report)
    json_items = _JsonItems({"dry_run": args.dry_run}) if args.json else None

    def printed(item) -> None:
        if json_items is not None:
            json_items.add(item.__dict__)
        else:
            for line in dlq.RedriveReport.render_item(item):
                print(line)

    report = asyncio.run(dlq.redrive(settings, args.refs, flt=None if flt.empty else flt, fix=args.fix,
                                     kind=args.kind, dry_run=args.dry_run, force=args.force, window=args.window,
                                     emit=printed))
    if json_items is not None:
        json_items.end()
    else:
        for line in report.render_end():
            print(line)
    # a ref not found, or a letter refused (its original gone from its source): exit 1
    return EXIT_NOT_FOUND if report.failed or not report.total else EXIT_OK


def cmd_positions(args) -> int:
    """Show where each agent stands, or move the ingest or registry agent's positions."""
    if args.action == "move" and (args.show_agent or args.json):
        print("creditstream: --agent and --json go with `positions show`; `positions move AGENT` names its agent "
              "as its argument and prints a table", file=sys.stderr)
        return EXIT_USAGE
    settings = _settings(args)
    from ops import positions
    from ops.tables import table

    def cell(v) -> str:
        return "-" if v is None else str(v)

    if args.action in (None, "show"):
        agents = (args.show_agent,) if args.show_agent else positions.AGENTS
        missing = asyncio.run(positions.missing_topics(settings, agents))
        if missing:
            print(f"creditstream: {positions.missing_message(missing)}", file=sys.stderr)
        rows = asyncio.run(positions.show(settings, agents))
        if args.json:
            _print_json([r.as_dict() for r in rows])
            return EXIT_OK
        body = [(r.agent, f"{r.topic}/{r.partition}", "lost" if r.redis_lost else cell(r.redis), cell(r.committed),
                 cell(r.start), cell(r.end), cell(r.behind), cell(r.deleted))
                for r in rows]
        for line in table([("AGENT", "PARTITION", "REDIS", "COMMITTED", "START", "END", "BEHIND", "DELETED"), *body],
                          sep="  "):
            print(line)
        deleted = [r for r in rows if r.deleted]
        if deleted:
            n = sum(r.deleted or 0 for r in deleted)
            print(f"warning: {n} input(s) on {len(deleted)} partition(s) were deleted "
                  "by the broker before they were read (DELETED): a worker skips them, and they are never applied; "
                  "ask their department to send them again (docs/operations.md, \"Inputs deleted before they were "
                  "read\")", file=sys.stderr)
        return EXIT_OK
    to, offset, at_ms = "end", None, None
    if args.to_start:
        to = "start"
    elif args.to_offset is not None:
        to, offset = "offset", args.to_offset
    elif args.to_time is not None:
        from ops.dead_letters import parse_time

        try:
            to, at_ms = "time", parse_time(args.to_time)
        except ValueError as exc:
            print(f"creditstream: {exc}", file=sys.stderr)
            return EXIT_USAGE
    try:
        moves = asyncio.run(positions.plan(settings, args.agent, to=to, offset=offset, at_ms=at_ms,
                                           topic=args.topic, partition=args.partition))
        if not args.dry_run:  # (refused: nothing on standard output, the reason on standard error)
            asyncio.run(positions.move(settings, args.agent, moves))
    except positions.PositionsError as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND if exc.busy or exc.missing else EXIT_USAGE
    rows = [(f"{m.topic}/{m.partition}", cell(m.committed), cell(m.redis), str(m.to)) for m in moves]
    for line in table([("PARTITION", "COMMITTED", "REDIS", "TO"), *rows], sep="  "):
        print(line)
    if args.dry_run:
        print("(dry run: nothing moved)")
        busy = asyncio.run(positions.workers_running(settings, args.agent))
        if busy:  # the move itself would be refused now
            print(f"warning: the move would be refused now: {busy}", file=sys.stderr)
    else:
        print(f"moved {len(moves)} partition(s) of the {args.agent} agent")
    return EXIT_OK


def cmd_rederive(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from ops.rederive import RederiveError, rederive

    try:
        result = asyncio.run(rederive(settings, dry_run=args.dry_run))
    except RederiveError as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("creditstream: rederive interrupted: the ticks written so far stand (each chunk's acknowledged "
              "before the next is read); run it again to finish", file=sys.stderr)
        return 130
    if args.json:
        _print_json(result.as_dict())
    else:
        print(result.render())
    return EXIT_OK


def cmd_follow_numbers(args) -> int:
    settings = _settings(args)
    _logs(args, settings)
    from ops.follow_numbers import follow_numbers

    try:
        result = asyncio.run(follow_numbers(settings, dry_run=args.dry_run))
    except KeyboardInterrupt:
        print("creditstream: follow-numbers interrupted: what it remembered stands; run it again to finish",
              file=sys.stderr)
        return 130
    if args.json:
        _print_json(result.as_dict())
    else:
        print(result.render())
    return EXIT_OK


def cmd_partitions(args) -> int:
    settings = _settings(args)
    from ops import partitions
    from ops.tables import table

    if args.dry_run and args.to is None:
        print("creditstream: --dry-run goes with --to N", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.to:
            rows, to_change = asyncio.run(partitions.grow(settings, args.to, dry_run=args.dry_run))
        else:
            rows, to_change = asyncio.run(partitions.show(settings)), False
    except partitions.PartitionsRefused as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND if exc.busy else EXIT_USAGE
    if args.json:
        _print_json([r.as_json() for r in rows])
        return EXIT_OK
    head = ("TOPIC", "PARTITIONS", "PLACED OVER") + (("AFTER", "") if args.to else ())
    body = [(r.topic, str(r.partitions) if r.partitions else "-", str(r.placed_over) if r.placed_over else "-")
            + ((str(r.after) if r.after else "-", r.note) if args.to else ()) for r in rows]
    for line in table([head, *body], sep="  "):
        print(line.rstrip())
    if args.to:
        if not to_change:
            print(f"nothing to change: every topic has {args.to} partitions or more, and subjects are placed "
                  f"over {args.to} or more")
        elif args.dry_run:
            print("(dry run: nothing changed)")
        else:
            print(f"done: subjects are placed over {args.to} partitions. Set CREDITSTREAM_PARTITIONS={args.to} "
                  "for topics created later, then start the workers. Downstream readers of the list-change "
                  "topic: a subject's next changes may sit on another partition than its earlier ones. Where "
                  "each placed topic's log ended is recorded with the count: a replay reads the log span by span, "
                  "each subject's events in the order the workers applied them")
    return EXIT_OK


def cmd_topics(args) -> int:
    settings = _settings(args)
    from ops.tables import table
    from streams import kafka
    from streams.topics import Topics

    created = asyncio.run(kafka.ensure_topics(settings))
    for line in table([(name, "created" if name in created else "exists") for name in Topics(settings).all()],
                      min_widths=(45,), sep=" "):
        print(line)
    drift = asyncio.run(kafka.topic_config_drift(settings))
    if drift is None:
        print("(this broker does not describe topic configurations: not compared)")
        return EXIT_OK
    if not drift:
        return EXIT_OK
    if args.apply:
        names = sorted({d.topic for d in drift})
        try:
            asyncio.run(kafka.apply_topic_config(settings, names))
        except kafka.ConfigsUnchangeable as exc:
            for d in drift:
                print(f"warning: {d.topic} has {d.name}={d.current}, the settings want {d.wanted}", file=sys.stderr)
            print(f"creditstream: {exc}: nothing changed{_TANSU_TOPICS if settings.is_tansu else ''}", file=sys.stderr)
            return EXIT_NOT_FOUND
        for d in drift:
            print(f"changed {d.topic} {d.name}: {d.current} -> {d.wanted}")
        return EXIT_OK
    for d in drift:
        print(f"warning: {d.topic} has {d.name}={d.current}, the settings want {d.wanted}", file=sys.stderr)
    if settings.is_tansu:
        print(f"Tansu does not change a topic's configuration{_TANSU_TOPICS}", file=sys.stderr)
    else:
        print("run `creditstream topics --apply` to change them", file=sys.stderr)
    return EXIT_OK


_TANSU_TOPICS = (" (on the embedded development broker retention is not relied on; a topic it auto-created "
                 "before `creditstream topics` keeps its defaults until the stack is started afresh)")


def _calendar_warning(settings) -> list[str]:
    """The working-day calendar's coverage of this year and the next, as a worker loads it."""
    import datetime as dt

    from domain.calendar import WorkingCalendar, coverage_warning
    from domain.clock import date_of_ms, now_ms

    cal = WorkingCalendar.from_file(settings.calendar_file) if settings.calendar_file else WorkingCalendar()
    warning = coverage_warning(cal, dt.date.fromisoformat(date_of_ms(now_ms())))
    return [warning] if warning else []


def cmd_config(args) -> int:
    settings = _settings(args)
    from creditstream.access import exposure_warnings
    from creditstream.settings import unknown_variables

    problems = settings.validate()
    _print_json(settings.masked())
    warnings = [*unknown_variables(), *settings.warnings(), *exposure_warnings(settings.web_bind, settings)]
    if not any(p.startswith("calendar_file:") for p in problems):
        warnings += _calendar_warning(settings)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if problems:
        print("\nproblems:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print("\nsettings OK", file=sys.stderr)
    return EXIT_OK


def cmd_demo(args) -> int:
    from creditstream import logs
    from ops.demo import run_demo

    # the summary alone: a client library's retries (aiokafka's "Got error produce response ...
    # NotLeaderForPartitionError, retrying" while a new Apache Kafka topic's leader settles) are not
    # the demo's output; what fails is said by the demo itself, and the worker logs to its own file
    logs.configure(level="WARNING", libraries="ERROR")
    return run_demo(keep=args.keep, broker=args.broker)


# --- parser --------------------------------------------------------------------------------
COMMANDS: dict[str, Callable[..., int]] = {
    "api": cmd_api,
    "config": cmd_config,
    "demo": cmd_demo,
    "dlq": cmd_dlq,
    "list": cmd_list,
    "lists": cmd_lists,
    "partitions": cmd_partitions,
    "positions": cmd_positions,
    "produce": cmd_produce,
    "rederive": cmd_rederive,
    "follow-numbers": cmd_follow_numbers,
    "replay": cmd_replay,
    "report": cmd_report,
    "report-verify": cmd_report_verify,
    "stack": cmd_stack,
    "subject": cmd_subject,
    "topics": cmd_topics,
    "worker": cmd_worker,
}


def build_parser() -> argparse.ArgumentParser:
    return cli_parser.build_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    """Run one command; the one place where exceptions become exit codes (module docstring)."""
    parser = build_parser()
    args = cli_parser.parse(parser, argv)  # usage errors: argparse exits 2
    complete_stdio()
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
    if silence_after and _own_stderr():
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
    return code


if __name__ == "__main__":
    sys.exit(main())
