"""Summaries for operators: subjects, records, parked and dead-lettered inputs."""

from __future__ import annotations

from collections import Counter

from creditstream.connections import redis_client
from creditstream.settings import Settings
from domain.identifiers import mask_id, mask_id_numbers_in_text
from ops.dlq import count_dead_letters
from ops.tables import table
from sinks.check_audit import check_counts
from sinks.keys import Keys, resolve_keys
from sinks.redis_state import read_states
from sinks.registry_index import RegistryIndex
from sinks.state_codec import awaiting_feedback, decode_state


async def _stats(redis, keys: Keys) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(keys.stats)).items()}


async def _dead_lettered(settings: Settings) -> dict[str, int]:
    """Dead-lettered messages by reason, one per message (a message read twice counts once:
    ops/dlq.py ``count_dead_letters``, which holds none of them)."""
    return await count_dead_letters(settings)


async def progress(settings: Settings) -> int:
    """How many department inputs are accounted for: applied to a subject (any outcome but a
    redelivery; timer ticks and legal-representative links are not inputs), parked (each re-send of
    a parked record too: ``RegistryIndex.parked_inputs``), or dead-lettered."""
    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        stats = await _stats(redis, keys)
        parked = await RegistryIndex(redis, keys).parked_inputs()
    finally:
        await redis.aclose()
    letters = await _dead_lettered(settings)
    return stats.get("inputs", 0) + parked + sum(letters.values())


def display_id(state: dict) -> str:
    return mask_id(state["id"]) if state.get("id_kind") == "resident_id" else state["id"]


async def summary(settings: Settings) -> dict:
    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        ids = sorted(s.decode() for s in await redis.smembers(keys.subjects))
        raw = await read_states(redis, keys, ids)
        index = RegistryIndex(redis, keys)
        parked = await index.parked_records()
        stats = await _stats(redis, keys)
    finally:
        await redis.aclose()
    from ops.inspect import list_names

    lists = await list_names(settings)
    subjects = []
    for state in raw:
        if state is None:
            continue
        records = state["records"].values()
        subjects.append({
            "id": display_id(state),
            "name": (state["names"] or ["?"])[-1],
            "category": state.get("category"),
            "records": len(records),
            "by_status": dict(Counter(r["status"] for r in records)),
            "by_kind": dict(Counter(r["kind"] for r in records)),
            "flags": state.get("flags", []),
        })
    # in the order shown (organisations by code, then persons by their masked number and name): stored
    # ids of persons are pseudonyms of a key each run dir draws, so their order moved from run to run
    subjects.sort(key=lambda sub: ("*" in sub["id"], sub["id"], sub["name"]))
    letters = await _dead_lettered(settings)
    return {
        "subjects": subjects,
        "outcomes": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("outcome:")},
        "parked": [{"lookup_keys": p.get("lookup_keys"), "origin": p.get("event", {}).get("origin")} for p in parked],
        "dead_letters": letters,
        "lists": lists,
        "list_changes": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("change:")},
    }


def render_summary(s: dict) -> str:
    lines = [f"Subjects: {len(s['subjects'])}"]
    rows = []
    for sub in s["subjects"]:
        st = sub["by_status"]
        statuses = f"{st.get('active', 0)}/{st.get('revoked', 0)}/{st.get('deleted', 0)}"
        flags = f"[{', '.join(sub['flags'])}]" if sub["flags"] else ""
        rows.append((sub["id"], sub["records"], statuses, sub["name"], flags))
    lines += table(rows, header=("subject", "records", "active/revoked/deleted", "name", ""), align="<><<<",
                   min_widths=(20, 7, 22), indent="  ")
    outcomes = ", ".join(f"{k} {v}" for k, v in s["outcomes"].items()) or "none"
    lines.append(f"Inputs applied: {outcomes}")
    lines.append("Lists: " + (", ".join(f"{n} {c}" for n, c in s["lists"].items()) or "none"))
    lines.append("List changes emitted: " + (", ".join(f"{n} {c}" for n, c in s["list_changes"].items()) or "none"))
    lines.append(f"Parked (waiting for the registry): {len(s['parked'])}")
    for p in s["parked"]:
        lines.append(f"  {p['origin']}  waiting for {', '.join(p['lookup_keys'] or [])}")
    total = sum(s["dead_letters"].values())
    detail = ", ".join(f"{k} {v}" for k, v in sorted(s["dead_letters"].items()))
    lines.append(f"Dead-lettered: {total}" + (f" ({detail})" if detail else ""))
    return "\n".join(lines)


async def operator_report(settings: Settings, *, progress: bool | None = None) -> dict:
    """Counts per source unit, domain and list; dead letters by reason; parked; lateness per unit.

    The counters are written by the subject agent in the same transaction as the states they
    describe (``stats`` hash: ``unit:<name>:records``, ``unit:<name>:late``, ``domain:<d>:records``,
    ``outcome:<o>``), so they never count a redelivered input twice. A unit's lateness counts each
    decision once, from its decision date to its earliest sighting, in any arrival order (a version
    that moves it takes the old count back: domain/engine.py ``Step.timeliness``).

    ``checks``: credit checks answered by the API (GET/POST /check) per matter and outcome, counted
    by the check-audit sink once the check-audit topic acknowledged their records (sinks/
    check_audit.py), and the records it had to drop: the counts match the topic without reading it.
    """
    from ops.inspect import list_names

    redis = redis_client(settings)
    try:
        keys = await resolve_keys(redis, settings.namespace)
        stats = await _stats(redis, keys)
        subjects = await redis.scard(keys.subjects)
        index = RegistryIndex(redis, keys)
        parked = await index.parked_count()
        waiting = await index.parked_records(limit=PARKED_SHOWN) if parked else []
        noted = await index.numbers_to_follow()
        checks = await check_counts(redis, settings.namespace)
    finally:
        await redis.aclose()
    units: dict[str, dict] = {}
    domains: dict[str, int] = {}
    for field, n in stats.items():
        parts = field.split(":")
        if parts[0] == "unit" and len(parts) >= 3:
            # a unit's name as the department sent it; an ID number put there (seen: a person's, in
            # source_unit) is masked, as anywhere in a report (two such units then count as one)
            unit, what = mask_id_numbers_in_text(":".join(parts[1:-1])), parts[-1]
            counts = units.setdefault(unit, {"records": 0, "late": 0, "on_time": 0, "late_workdays_total": 0})
            counts[what] = counts.get(what, 0) + n
        elif parts[0] == "domain" and len(parts) == 3:
            domains[parts[1]] = n
    # a unit whose decisions all turned out to be another unit's (a correction moved them: the
    # counts are taken back) has nothing left to show
    units = {unit: u for unit, u in units.items() if any(u.values())}
    for u in units.values():
        judged = u["late"] + u["on_time"]
        u["late_share"] = round(u["late"] / judged, 4) if judged else 0.0
    letters = await _dead_lettered(settings)
    overdue = await overdue_feedback_report(settings, progress=progress)
    return {
        "subjects": subjects,
        "feedback_overdue": overdue,
        "units": dict(sorted(units.items())),
        "domains": dict(sorted(domains.items())),
        "lists": await list_names(settings),
        "dead_letters": letters,
        "parked": parked,
        "parked_sample": [parked_entry(p) for p in waiting],
        "outcomes": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("outcome:")},
        "list_changes": {k.split(":", 1)[1]: v for k, v in sorted(stats.items()) if k.startswith("change:")},
        "checks": checks,
        "numbers_to_follow": noted.advice() if noted is not None else None,
    }


PARKED_SHOWN = 20
"""Parked records ``report`` shows (it counts them all)."""


def parked_entry(parked: dict) -> dict:
    """What ``report`` shows of one parked record: where it came from, when, which decision, and the
    numbers it waits for a registration to name (an ID-number-like one masked). Seen (an audit): an
    operator saw only a count, and records parked on a number no registration can name (an
    organisation code with O, outside the USCC alphabet) would have waited unseen."""
    from domain import clock

    event = parked.get("event") or {}
    record = event.get("record") or {}
    ms = event.get("event_ms")
    return {"origin": event.get("origin"), "since": clock.date_of_ms(int(ms)) if isinstance(ms, int) else None,
            "kind": record.get("kind"), "doc_no": record.get("doc_no"),
            "waiting_for": [_shown_key(k) for k in parked.get("lookup_keys") or ()]}


def _shown_key(key: str) -> str:
    """A lookup key as ``report`` shows it: a registration number that passes its check as it is (an
    organisation's, though 15 digits can read as a first-generation ID number), anything else with
    what reads as an ID number masked."""
    from domain.identifiers import is_valid_reg_no

    kind, _, number = key.partition(":")
    if kind in ("org", "reg_no") and (kind == "org" or is_valid_reg_no(number)):
        return key
    return mask_id_numbers_in_text(key)


FEEDBACK_SCAN_CHUNK = 1000  # subjects read per MGET by overdue_feedback_report


async def overdue_feedback_report(settings: Settings, today: str | None = None, sample: int = 20, *,
                                  progress: bool | None = None) -> dict:
    """List changes still without joint-punishment feedback ``settings.feedback_workdays`` working
    days after they were pushed (RULES.md 4: trigger - push - feedback).

    Reads every subject's state, :data:`FEEDBACK_SCAN_CHUNK` at a time, and parses only those that
    wait for feedback (sinks/state_codec.py ``awaiting_feedback``): the whole report at a million
    subjects 20 s instead of 37 s (docs/performance.md, thirty-fourth session). ``progress``: a
    progress line on standard error (default: when it is a terminal), the subjects read of ``SCARD
    subjects``."""
    from domain import clock
    from domain.calendar import WorkingCalendar
    from domain.engine import overdue_feedback
    from ops.replay import Progress

    cal = WorkingCalendar.from_file(settings.calendar_file) if settings.calendar_file else WorkingCalendar()
    clock.set_offset(settings.clock_offset_s)  # the workers' clock (domain/clock.py), skewed as theirs
    today = today or clock.date_of_ms(clock.now_ms())
    redis = redis_client(settings)
    found: list[dict] = []
    count = 0
    bar: Progress | None = None
    try:
        keys = await resolve_keys(redis, settings.namespace)
        bar = Progress(await redis.scard(keys.subjects), enabled=progress, label="report: feedback",
                       unit="subjects")
        batch: list[str] = []

        async def scan(ids: list[str]) -> None:
            nonlocal count
            for raw in await redis.mget([keys.subject(i) for i in ids]):
                if raw is None:
                    continue
                awaiting = awaiting_feedback(raw)
                if not awaiting:
                    continue
                for cid, pushed in overdue_feedback({"awaiting_feedback": awaiting}, today,
                                                    settings.feedback_workdays, cal):
                    count += 1
                    if len(found) < sample:
                        found.append({"subject": display_id(decode_state(raw)), "change_id": cid, "pushed": pushed})
            bar.advance(len(ids))

        async for member in redis.sscan_iter(keys.subjects, count=FEEDBACK_SCAN_CHUNK):
            batch.append(member.decode())
            if len(batch) >= FEEDBACK_SCAN_CHUNK:
                await scan(batch)
                batch = []
        if batch:
            await scan(batch)
    finally:
        if bar is not None:
            bar.close()
        await redis.aclose()
    return {"workdays": settings.feedback_workdays, "as_of": today, "count": count, "sample": found}


def render_operator_report(r: dict) -> str:
    out = [f"Subjects: {r['subjects']}    parked: {r['parked']}    dead letters: {sum(r['dead_letters'].values())}"]
    if r.get("numbers_to_follow"):
        out.append(f"TO DO: {r['numbers_to_follow']}")
    sample = r.get("parked_sample") or []
    if sample:
        out.append(f"parked records{' (the first ' + str(len(sample)) + ')' if r['parked'] > len(sample) else ''}, "
                   "each waiting for a registration that names one of its numbers:")
        out += table([(p["origin"] or "?", p["since"] or "?", f"{p['kind'] or '?'} {p['doc_no'] or ''}".strip(),
                       ", ".join(p["waiting_for"])) for p in sample],
                     header=("from", "since", "decision", "waiting for"), indent="  ")
    out.append("")
    out += table([(unit, u["records"], u["late"], f"{100 * u['late_share']:.1f}%", "")
                  for unit, u in r["units"].items()],
                 header=("source unit", "records", "late", "late %", " (7-working-day publication rule)"),
                 align="<>>><", min_widths=(34, 8, 6, 7), max_widths=(34,), sep=" ")
    if r["domains"]:
        out.append("")
        out.append("records by domain: " + ", ".join(f"{d} {n}" for d, n in r["domains"].items()))
    out.append("")
    out.append("lists: " + (", ".join(f"{n} {c}" for n, c in r["lists"].items()) or "none"))
    out.append("list changes: " + (", ".join(f"{n} {c}" for n, c in r["list_changes"].items()) or "none"))
    out.append("dead letters: " + (", ".join(f"{n} {c}" for n, c in r["dead_letters"].items()) or "none"))
    fb = r["feedback_overdue"]
    out.append(f"list changes without feedback after {fb['workdays']} working days (as of {fb['as_of']}): "
               f"{fb['count']}")
    out += table([(item["subject"], item["pushed"], item["change_id"]) for item in fb["sample"]],
                 min_widths=(20,), indent="  ")
    out.append("outcomes: " + (", ".join(f"{n} {c}" for n, c in r["outcomes"].items()) or "none"))
    checks = r.get("checks") or {"by_matter": {}, "dropped": 0}
    total = sum(sum(o.values()) for o in checks["by_matter"].values())
    out.append("")
    out.append(f"credit checks (应查必查) recorded on the check-audit topic: {total}"
               + (f"    audit records dropped: {checks['dropped']}" if checks["dropped"] else ""))
    if checks["by_matter"]:
        out += table([(matter, sum(o.values()), ", ".join(f"{k} {n}" for k, n in sorted(o.items())))
                      for matter, o in checks["by_matter"].items()],
                     header=("matter", "checks", "by outcome"), align="<><", min_widths=(24, 6), indent="  ")
    return "\n".join(out)
