"""`creditstream rederive`: derive again, now, every subject kept under earlier rules.

After an upgrade that changes the rules (the rules file's ``version``) or the form of the
derivation (domain/facts.py ``BASIS_VERSION``), a worker derives a subject again when its next
decision, objection, repair or timer tick comes (domain/engine.py ``derived_otherwise``). A quiet
subject's next tick may be months away; until then its lists, the check API (应查必查) and the
public pages answer with the earlier judgment, and downstream hears nothing of what the new rules
change. This command finds those subjects and writes, for each, a tick to the subject-event log,
keyed by subject like the timer's ticks (agents/timer.py), so that the running workers derive it
again and announce what changed, as at any other input.

Each tick is dated at the subject's own clock (its ``as_of``): it moves no clock, so it announces
nothing a tick of that date would not, and nothing in the future. A subject already derived under
the workers' rules takes such a tick as a stale tick and changes nothing: the command can be run
again, and a tick delivered twice, without harm.

Steps:

1. The target: the rules version and derivation the running workers report in their heartbeats
   (creditstream/app.py). Workers that report different ones, or none (a version before this
   command), are refused: finish the upgrade first. With no worker running, the target is this
   process's rules file, and the ticks wait in the log for the workers.
2. Every subject of the live generation is read (``SSCAN subjects``, a chunk at a time, whole states
   through sinks/redis_state.py ``read_states``) and counted: current, derived otherwise (by the
   rules version and derivation it was derived under), or derived by a newer derivation than the
   target (never ticked: a worker of this version would stop on it).
3. Without ``--dry-run``, each chunk's ticks are produced and acknowledged before the next chunk is
   read. Interrupted, the command can simply be run again.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from creditstream.connections import redis_client
from creditstream.settings import Settings
from domain import clock, events
from domain.engine import derived_by, derived_otherwise
from domain.facts import BASIS_VERSION
from domain.rulebook import load_rulebook
from sinks.kafka import KafkaSink
from sinks.keys import Keys, resolve_keys
from sinks.redis_state import read_states, subject_chunks
from streams import kafka, placement
from streams.topics import Topics

CHUNK = 1000
"""Subjects read (one MGET) and ticked (one flush) at a time."""


class RederiveError(ValueError):
    """The command cannot tell which rules to derive toward (workers disagree, or are too old)."""


@dataclass
class Rederivation:
    rules: str                 # the rules version the subjects are derived toward
    derivation: int            # ... and the form of the derivation
    target_from: str           # "workers" (their heartbeats) or "rules file" (no worker runs)
    dry_run: bool
    local_rules: str = ""      # this process's rules file's version, when it differs from the workers'
    subjects: int = 0          # subjects read
    current: int = 0           # derived under the target already (or nothing to derive: no records)
    otherwise: Counter = field(default_factory=Counter)  # (rules version, derivation) -> subjects
    newer: int = 0             # derived by a newer derivation than the target: not ticked
    ticks: int = 0             # ticks produced
    seconds: float = 0.0

    @property
    def to_derive(self) -> int:
        return sum(self.otherwise.values())

    def as_dict(self) -> dict:
        return {"rules": self.rules, "derivation": self.derivation, "target_from": self.target_from,
                "dry_run": self.dry_run, "local_rules": self.local_rules or None, "subjects": self.subjects,
                "current": self.current, "to_derive": self.to_derive, "newer": self.newer, "ticks": self.ticks,
                "derived_under": [{"rules": r, "derivation": d, "subjects": n}
                                  for (r, d), n in sorted(self.otherwise.items(), key=lambda x: (-x[1], str(x[0])))],
                "seconds": round(self.seconds, 2)}

    def render(self) -> str:
        target = f"rules {self.rules!r}, derivation {self.derivation}"
        source = ("running workers" if self.target_from == "workers"
                  else "rules file of these settings: no worker runs")
        out = [f"target: {target} (from the {source})"]
        if self.local_rules:
            out.append(f"  (this process's rules file is version {self.local_rules!r}: the workers' rules "
                       "are the target)")
        out.append(f"subjects read: {self.subjects:,} in {self.seconds:.1f}s; derived under the target already: "
                   f"{self.current:,}")
        if self.otherwise:
            out.append(f"derived under other rules or another derivation: {self.to_derive:,}")
            for (rules, derivation), n in sorted(self.otherwise.items(), key=lambda x: (-x[1], str(x[0]))):
                out.append(f"  rules {rules!r}, derivation {derivation}: {n:,}")
        else:
            out.append("derived under other rules or another derivation: 0")
        if self.newer:
            out.append(f"derived by a newer derivation than the target: {self.newer:,} (not ticked: a worker of "
                       f"derivation {self.derivation} stops on them; run the newer version)")
        if self.dry_run:
            out.append(f"dry run: no tick written; without --dry-run, {self.to_derive:,} would be")
        elif self.ticks:
            where = ("the running workers derive them as they read the ticks (watch `creditstream positions`)"
                     if self.target_from == "workers" else
                     f"no worker runs: they wait in the log for workers of rules {self.rules!r}")
            out.append(f"ticks written to the subject-event log: {self.ticks:,}; {where}")
        else:
            out.append("nothing to derive again")
        return "\n".join(out)


async def _target(redis, keys, settings: Settings) -> tuple[str, int, str, str]:
    """(rules version, derivation, where from, this process's rules version if it differs)."""
    from ops.inspect import running_workers

    local = load_rulebook(settings.rules_file or None).version
    workers = await running_workers(redis, keys, scan=True)
    if not workers:
        return local, BASIS_VERSION, "rules file", ""
    reported = {(w.get("rules"), w.get("derivation")) for w in workers}
    if any(not isinstance(r, str) or not isinstance(d, int) for r, d in reported):
        raise RederiveError("a running worker does not report its rules (a version before `rederive`): "
                            "finish the upgrade (every worker of the new version) and run this again")
    if len(reported) > 1:
        names = ", ".join(f"rules {r!r} derivation {d}" for r, d in sorted(reported))
        raise RederiveError(f"the running workers report different rules ({names}): finish the upgrade, "
                            "so that every worker runs one version, and run this again")
    ((rules, derivation),) = reported
    if derivation != BASIS_VERSION:
        step = ("upgrading? stop every worker of the earlier version, start this version's, and run this again"
                if derivation < BASIS_VERSION else "run the workers' version of this command")
        raise RederiveError(f"the running workers derive by derivation {derivation}, this creditstream by "
                            f"{BASIS_VERSION}: {step}")
    return rules, derivation, "workers", local if local != rules else ""


async def rederive(settings: Settings, *, dry_run: bool = False, progress: bool | None = None,
                   chunk: int = CHUNK) -> Rederivation:
    """Count the live generation's subjects by how they were derived and, unless ``dry_run``, write a
    tick for each one derived otherwise than the workers' rules (module docstring). ``progress``: a
    progress line on standard error (default: when it is a terminal)."""
    from ops.replay import Progress

    started = time.monotonic()
    redis = redis_client(settings)
    producer = None
    bar = None
    try:
        keys = await resolve_keys(redis, settings.namespace)
        rules, derivation, source, local = await _target(redis, keys, settings)
        result = Rederivation(rules=rules, derivation=derivation, target_from=source, dry_run=dry_run,
                              local_rules=local)
        topic = Topics(settings).subject_events
        if not dry_run:
            producer = kafka.producer(settings)
            # each subject's tick goes where the workers put its events: over the partition count
            # its subjects are placed over (streams/placement.py), not the topic's count now
            producer.placement = await placement.recorded(redis, Keys(settings.namespace), [topic])
            await producer.start()
        today = clock.date_of_ms(clock.now_ms())
        bar = Progress(await redis.scard(keys.subjects), enabled=progress, label="rederive", unit="subjects")

        async def one_chunk(stored: list[str]) -> None:
            sink = KafkaSink(producer)
            for sid, state in zip(stored, await read_states(redis, keys, stored)):
                if state is None:
                    continue  # gone since the scan
                result.subjects += 1
                by = derived_by(state)
                if by is not None and by > derivation:
                    result.newer += 1
                elif derived_otherwise(state, rules, derivation):
                    result.otherwise[(state.get("facts_rules"), by)] += 1
                    tick = events.tick(state["id"], state.get("as_of") or today)
                    sink.add(topic, events.encode(tick), key=sid.encode())
                else:
                    result.current += 1
            if producer is not None:
                result.ticks += await sink.flush()
            bar.advance(len(stored))

        async for stored in subject_chunks(redis, keys, chunk):
            await one_chunk(stored)
        result.seconds = time.monotonic() - started
        return result
    finally:
        if bar is not None:
            bar.close()
        if producer is not None:
            await producer.stop()
        await redis.aclose()
