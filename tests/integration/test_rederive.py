"""``creditstream rederive``: after an upgrade of the rules, every subject kept under the earlier
rules is derived again by the running workers now, not at its next input months later, and what
changed is announced (ops/rederive.py)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import orjson
import pytest

from streams.samples import sample_event, schema_of
from tests.conftest import eventually
from tests.workers import run_to_end, worker_env

pytestmark = pytest.mark.integration

PENALTY = schema_of("penalty")
PERSON = "11010519491231002X"  # a natural person: stored under a pseudonym, ticked under it
SUBJECTS = ["91350100M000100Y43", "91310110666007217T", "91310115591693856A", PERSON]
DEFAULT_RULES = Path(__file__).resolve().parents[2] / "domain" / "rules_default.toml"
ENVIRONMENT_RULE = 'domain = "environment"\nseverity = "severe"\nkinds = ["penalty"]\nperiod_years = 3\n'


def rules_with_a_shorter_environment_listing(tmp_path) -> str:
    """The shipped rules, a new version, an environment blacklisting of 1 year instead of 3."""
    text = DEFAULT_RULES.read_text(encoding="utf-8")
    assert ENVIRONMENT_RULE in text
    text = text.replace(ENVIRONMENT_RULE, ENVIRONMENT_RULE.replace("period_years = 3", "period_years = 1"))
    text = text.replace('version = "', 'version = "test-shorter-', 1)
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


async def rederive(settings, *args: str) -> tuple[int, dict | str, str]:
    rc, out, err = await run_to_end([sys.executable, "-m", "creditstream.cli", "rederive", *args],
                                    env=worker_env(settings))
    return rc, (json.loads(out) if rc == 0 and "--json" in args else out.decode()), err.decode()


async def derived(redis, settings) -> dict[str, tuple[str, list[str]]]:
    """Subject -> (rules version it was derived under, its lists)."""
    from sinks.keys import resolve_keys
    from sinks.redis_state import read_states

    keys = await resolve_keys(redis, settings.namespace, settings.pseudonym_key)
    states = await read_states(redis, keys, SUBJECTS)
    return {s: (st["facts_rules"], sorted(st["evaluation"]["lists"])) for s, st in zip(SUBJECTS, states)
            if st is not None}


async def test_rederive_has_the_workers_derive_every_subject_kept_under_earlier_rules(settings, department,
                                                                                      redis, tmp_path):
    from creditstream.app import Pipeline
    from domain.rulebook import load_rulebook

    shipped = load_rulebook(None).version
    pipeline = Pipeline(settings)
    await pipeline.start()
    try:
        for n, subject in enumerate(SUBJECTS):  # severe environment penalties of 2025-06-01: listed 3 years
            who = (dict(uscc=None, subject_name="张三", subject_category="自然人", person_id_type="身份证",
                        person_id_no=subject) if subject == PERSON else dict(uscc=subject))
            await department.send(PENALTY, sample_event(
                "penalty", decision_doc_no=f"郑环罚〔2025〕{n + 1}号", severity="严重",
                domain="environment", decision_date=dt.date(2025, 6, 1), legal_rep_name=None,
                legal_rep_id_type=None, legal_rep_id_no=None, **who))
        listed = ["blacklist:environment"]
        await eventually(lambda: _all(redis, settings, (shipped, listed)), timeout=60)
    finally:
        await pipeline.stop()

    upgraded = settings.replace(rules_file=rules_with_a_shorter_environment_listing(tmp_path))
    newer = load_rulebook(upgraded.rules_file).version
    pipeline = Pipeline(upgraded)
    await pipeline.start()
    try:
        # a quiet subject keeps the earlier judgment under the new workers
        assert await derived(redis, settings) == {s: (shipped, listed) for s in SUBJECTS}
        rc, counted, err = await rederive(settings, "--dry-run", "--json")
        assert rc == 0, err
        assert counted["rules"] == newer and counted["target_from"] == "workers"
        assert counted["local_rules"] == shipped  # (the command's own settings name the shipped rules)
        assert (counted["subjects"], counted["to_derive"], counted["current"], counted["ticks"]) == (4, 4, 0, 0)
        assert counted["derived_under"][0]["rules"] == shipped and counted["derived_under"][0]["subjects"] == 4
        assert await derived(redis, settings) == {s: (shipped, listed) for s in SUBJECTS}  # a dry run writes nothing

        rc, done, err = await rederive(settings, "--json")
        assert rc == 0, err
        assert (done["to_derive"], done["ticks"]) == (4, 4)
        # derived again under the new rules: listed 1 year from 2025-06-01, so off the list today
        await eventually(lambda: _all(redis, settings, (newer, [])), timeout=60)

        rc, again, err = await rederive(settings, "--json")
        assert rc == 0, err
        assert (again["subjects"], again["current"], again["to_derive"], again["ticks"]) == (4, 4, 0, 0)

        rc, text, err = await rederive(settings)
        assert rc == 0, err
        assert f"target: rules {newer!r}" in text and "nothing to derive again" in text
    finally:
        await pipeline.stop()

    # the list-change topic told downstream: each subject's exit, dated a year after its listing
    exits = await _list_changes(settings, "exited")
    assert {(c["subject_id"], c["list"], str(c["effective_date"])) for c in exits} == {
        (s, "blacklist:environment", "2026-06-01") for s in SUBJECTS}


async def test_rederive_refuses_while_workers_report_different_rules(settings, redis):
    import time

    from sinks.keys import resolve_keys

    keys = await resolve_keys(redis, settings.namespace)
    now = int(time.time() * 1000)
    beats = {"a": {"host": "h", "pid": 1, "rules": "2026-12-07.1", "derivation": 99},
             "b": {"host": "h", "pid": 2, "rules": "other", "derivation": 99}}
    for name, beat in beats.items():
        await redis.set(keys.worker(name), orjson.dumps(beat), px=60_000)
        await redis.zadd(keys.workers, {name: now})
    rc, _, err = await rederive(settings, "--dry-run")
    assert rc == 2 and "report different rules" in err, err
    await redis.set(keys.worker("b"), orjson.dumps({"host": "h", "pid": 2}), px=60_000)  # a version before
    rc, _, err = await rederive(settings, "--dry-run")
    assert rc == 2 and "does not report its rules" in err, err
    # mid-upgrade, only workers of the earlier derivation running: the next step is to finish it
    from domain.facts import BASIS_VERSION

    earlier = {"host": "h", "pid": 1, "rules": "2026-12-07.1", "derivation": BASIS_VERSION - 1}
    for name in beats:
        await redis.set(keys.worker(name), orjson.dumps(earlier), px=60_000)
    rc, _, err = await rederive(settings, "--dry-run")
    assert rc == 2 and "stop every worker of the earlier version, start this version's" in err, err
    newer = dict(earlier, derivation=BASIS_VERSION + 1)
    for name in beats:
        await redis.set(keys.worker(name), orjson.dumps(newer), px=60_000)
    rc, _, err = await rederive(settings, "--dry-run")
    assert rc == 2 and "run the workers' version of this command" in err, err


async def _all(redis, settings, expected) -> bool:
    got = await derived(redis, settings)
    return got if got == {s: expected for s in SUBJECTS} else False


async def _list_changes(settings, transition: str) -> list[dict]:
    from creditstream.connections import make_codec
    from streams import kafka
    from streams.topics import Topics

    codec = make_codec(settings)
    out = []
    async for batch in kafka.read_to_end(settings, Topics(settings).list_changes):
        for msg in batch:
            _, change = codec.decode(msg.value)
            if change["transition"] == transition:
                out.append(change)
    return out

