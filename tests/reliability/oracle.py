"""The oracle: the pure rules core applied to the subject-event log in order, with no Redis, no
Kafka sink, no agent. The live system must end in exactly its states and list changes."""

from __future__ import annotations

import orjson

from domain import events
from domain.calendar import WorkingCalendar
from domain.engine import step
from domain.rulebook import load_rulebook
from streams import kafka
from streams.topics import Topics


async def fold(settings) -> tuple[dict[str, dict], dict[str, list[str]], int]:
    """(states by subject, change ids per subject in order, events folded)."""
    rules, cal = load_rulebook(settings.rules_file or None), WorkingCalendar()
    states: dict[str, dict] = {}
    changes: dict[str, list[str]] = {}
    seen: set[str] = set()
    n = 0
    async for batch in kafka.read_to_end(settings, Topics(settings).subject_events):
        for msg in batch:
            n += 1
            try:
                event = events.decode(msg.value if msg.value is not None else b"")
            except events.BadEvent:
                continue  # dead-lettered by the agent
            sid = event.subject
            try:
                result = step(states.get(sid), event, rules, cal)
            except Exception:  # noqa: BLE001 - dead-lettered by the agent, state unchanged
                continue
            if result.outcome in ("redelivered", "invalid"):
                continue  # the agent writes nothing for these
            states[sid] = orjson.loads(orjson.dumps(result.state))  # as stored: JSON round trip
            for change in result.changes:
                if change["change_id"] not in seen:
                    seen.add(change["change_id"])
                    changes.setdefault(sid, []).append(change["change_id"])
    return states, changes, n
