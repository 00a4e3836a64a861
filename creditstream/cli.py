"""``creditstream``: the command line for operators, department systems and developers.

Every command reads the settings (creditstream/settings.py): environment variables
``CREDITSTREAM_*``, a settings file, or the embedded stack started by ``creditstream stack up``.
Exit codes: 0 success, 1 the thing asked for does not exist or a check failed, 2 usage error,
3 the broker or Redis cannot be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Callable

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _settings(args):
    from creditstream.settings import SettingsError, load

    try:
        return load()
    except SettingsError as exc:
        print(f"creditstream: bad settings: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


def _logs(args, settings=None):
    from creditstream import logs

    level = getattr(args, "log_level", None) or (settings.log_level if settings else "INFO")
    logs.configure(level=level, fmt=settings.log_format if settings else "auto")


def _print_json(obj) -> None:
    print(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str))


# --- stack ---------------------------------------------------------------------------------
def cmd_stack(args) -> int:
    from creditstream.settings import Settings
    from ops.stack import Stack, StackError

    import os
    run_dir = os.environ.get("CREDITSTREAM_RUN_DIR", Settings.run_dir)
    stack = Stack(run_dir)
    if args.action == "up":
        try:
            info = stack.up()
        except StackError as exc:
            print(f"creditstream: the embedded stack did not start: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        print(f"broker (Tansu)  {info.broker_url}  pid {info.broker_pid}")
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
    return EXIT_OK if not report.refused or args.allow_refused else EXIT_NOT_FOUND


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
    for name, m in sorted(info["lists"].items()):
        until = m.get("until") or "no fixed end"
        flag = "  SUSPENDED (objection pending)" if m.get("suspended") else ""
        print(f"  {name:<28} since {m['since']}  until {until}  causes {len(m.get('causes', []))}{flag}")
    for oid in info["overdue_objections"]:
        print(f"  objection {oid} is OVERDUE")
    if info["next_due"]:
        print(f"  next change due {info['next_due']}")
    return EXIT_OK


def cmd_list(args) -> int:
    settings = _settings(args)
    from ops.inspect import list_members, list_names

    if not args.name:
        sizes = asyncio.run(list_names(settings))
        if not sizes:
            print("no list has members")
        for name, n in sizes.items():
            print(f"{name:<32} {n:>8} member(s)")
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
    try:
        return _dlq_action(args, settings, dlq, flt)
    except dlq.RedriveError as exc:
        print(f"creditstream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # noqa: BLE001 - Kafka/Redis client errors are not OSError subclasses
        from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
        from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

        if isinstance(exc, (KafkaConnectionError, KafkaTimeoutError, RedisConnectionError, RedisTimeoutError)):
            print(f"creditstream: cannot reach a service: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE
        raise


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
    from streams import kafka
    from streams.topics import Topics

    created = asyncio.run(kafka.ensure_topics(settings))
    for name in Topics(settings).all():
        print(f"{name:<45} {'created' if name in created else 'exists'}")
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

    return run_demo(keep=args.keep)


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

    sp = add("stack", cmd_stack, "start, stop or show the embedded broker (Tansu) and redis-server",
             "Start (up), stop (down) or show (status) the embedded default: a Tansu broker and a "
             "redis-server on free loopback ports under the run directory (.run/). Other commands "
             "find them through .run/stack.json.")
    sp.add_argument("action", choices=["up", "down", "status"])

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
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        return 130
    except (ConnectionError, TimeoutError, OSError) as exc:
        print(f"creditstream: cannot reach a service: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
