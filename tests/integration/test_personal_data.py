"""Personal data at rest (RULES.md 7): a natural person's ID number never appears in a Redis key name,
a set or sorted-set member, or a Kafka message key of the subject-event and list-change topics; the
readers still find the person by ID number and show it; the timer still fires a person's due instant.

The real pipeline runs against the session's stack (Tansu + redis-server); the scan covers every key
of the test's namespace."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from domain.identifiers import resident_id_of_legacy
from sinks.state_codec import state_json
from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PERSON_ID = samples.PERSON_ID                            # 18 digits
PERSON_ID_15 = PERSON_ID[:6] + PERSON_ID[8:17]           # the first-generation (15-digit) form
OLD_CARD_ID = "410105750412003"                          # a person known by a 15-digit card only
OLD_CARD_ID_18 = "41010519750412003"                     # its 18-digit form without the check char
OLD_CARD_ID_CURRENT = resident_id_of_legacy(OLD_CARD_ID)  # ... and with it: the person's subject
SECRETS = (PERSON_ID, PERSON_ID_15, samples.LEGAL_REP_ID, samples.LEGAL_REP_ID[:6] + samples.LEGAL_REP_ID[8:17],
           OLD_CARD_ID, OLD_CARD_ID_18)


def person_penalty(person_id: str, doc_no: str, **overrides) -> dict:
    today = dt.date.today()
    return sample_event("penalty", subject_name=samples.PERSON, subject_category="自然人", uscc=None,
                        person_id_type="身份证", person_id_no=person_id, legal_rep_name=None,
                        legal_rep_id_type=None, legal_rep_id_no=None, severity="严重", domain="environment",
                        source_unit=samples.ECO_ZZ, source_unit_uscc=samples.ECO_ZZ_USCC, decision_doc_no=doc_no,
                        decision_date=today - dt.timedelta(days=30), valid_until=None,
                        publicity_end_date=None, **overrides)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


async def redis_dump(redis, namespace: str) -> dict[str, list[str]]:
    """Every key of the namespace with the names it holds: set and sorted-set members, hash fields."""
    out: dict[str, list[str]] = {}
    async for raw in redis.scan_iter(match=f"{namespace}:*", count=1000):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        if kind == "set":
            names = [m.decode() for m in await redis.smembers(key)]
        elif kind == "zset":
            names = [m.decode() for m in await redis.zrange(key, 0, -1)]
        elif kind == "hash":
            names = [f.decode() for f in await redis.hkeys(key)]
        else:
            names = []
        out[key] = names
    return out


async def message_keys(settings, topic: str) -> list[str]:
    from streams import kafka

    return [m.key.decode() async for batch in kafka.read_to_end(settings, topic) for m in batch]


def cli(settings, *argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITSTREAM_")}
    env.update(CREDITSTREAM_REDIS_URL=settings.redis_url, CREDITSTREAM_BROKER_URL=settings.broker_url,
               CREDITSTREAM_BROKER_KIND=settings.broker_kind, CREDITSTREAM_NAMESPACE=settings.namespace,
               CREDITSTREAM_TOPIC_PREFIX=settings.topic_prefix, CREDITSTREAM_RUN_DIR=settings.run_dir,
               CREDITSTREAM_PSEUDONYM_KEY=settings.pseudonym_key, CREDITSTREAM_SETTINGS="", PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "creditstream.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=60, cwd=Path(settings.run_dir).parent)


async def test_no_id_number_in_keys_members_or_message_keys(pipeline, department, redis, settings):
    from ops.inspect import Reader
    from sinks.keys import resolve_keys, storage_id

    # a person with a blacklist entry (publicity: a due instant), a person known by a 15-digit card,
    # and a company whose penalty names its legal representative (a link to a person's state)
    await department.send(schema_of("penalty"), person_penalty(PERSON_ID, "郑环罚〔2026〕001号"))
    await department.send(schema_of("penalty"), person_penalty(OLD_CARD_ID, "郑环罚〔2026〕002号"))
    await department.send(schema_of("penalty"), sample_event("penalty", severity="严重", domain="environment"))
    # an organisation's record whose only number is a person's ID number, as its tax number (seen:
    # parked for ever under `cs:parked:tax_no:<the number>`): a dead letter, no key names it
    await department.send(schema_of("penalty"), sample_event(
        "penalty", decision_doc_no="郑环罚〔2026〕003号", uscc=None, org_code=None, reg_no=None, tax_no=PERSON_ID,
        institution_cert_no=None, legal_rep_name=None, legal_rep_id_no=None))
    reader = Reader(settings, redis)

    async def all_there():
        found = [await reader.subject(code) for code in (PERSON_ID, OLD_CARD_ID, samples.LEGAL_REP_ID)]
        return found if all(found) else None

    person, old_card, rep = await eventually(all_there, timeout=30)
    from ops.report import progress

    async def all_accounted():
        return await progress(settings) >= 4

    await eventually(all_accounted, timeout=30)
    assert (person["id"], old_card["id"], rep["id"]) == (PERSON_ID, OLD_CARD_ID_CURRENT, samples.LEGAL_REP_ID)
    assert person["evaluation"]["next_due"]  # scheduled: the due set has an entry for the person

    keys = await resolve_keys(redis, settings.namespace, settings.pseudonym_key)
    stored = keys.storage_id(PERSON_ID)
    assert stored.startswith("p.") and len(stored) == 34
    dump = await redis_dump(redis, settings.namespace)
    assert keys.subject(PERSON_ID) in dump and stored in dump[keys.subjects] and stored in dump[keys.due]
    assert stored in dump[keys.list_members("blacklist:environment")]
    assert samples.COMPANY_USCC in dump[keys.subjects]  # an organisation's USCC stays as it is
    for key, names in dump.items():
        assert not leaks(key), key
        assert not leaks(" ".join(names)), (key, leaks(" ".join(names)))
    # the look-up stays inside the state: its value names the person
    assert PERSON_ID.encode() in state_json(await redis.get(keys.subject(stored)))

    subject_keys = await message_keys(settings, department.topics.subject_events)
    # the person's own list change, not any (the company's, its legal representative's and the other
    # person's come from batches of their own, each produced after its state write)
    async def the_persons_change_keyed():
        keys = await message_keys(settings, department.topics.list_changes)
        return keys if stored in keys else None

    change_keys = await eventually(the_persons_change_keyed)
    assert stored in subject_keys and stored in change_keys and samples.COMPANY_USCC in subject_keys
    assert not leaks(" ".join(subject_keys + change_keys))

    # the readers find the person by the number a user types (printed forms too) and show it
    assert (await reader.subject(f" {PERSON_ID[:6]} {PERSON_ID[6:]} "))["id"] == PERSON_ID
    assert (await reader.subject_lists(PERSON_ID))["subject"] == PERSON_ID
    members, _ = await reader.members("blacklist:environment")
    assert {PERSON_ID, OLD_CARD_ID_CURRENT, samples.COMPANY_USCC} <= set(members)
    shown = await asyncio.to_thread(cli, settings, "subject", PERSON_ID)
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["id"] == PERSON_ID
    # a list's members: persons' numbers masked, as the report and the API show them; in clear, on the record
    from domain.identifiers import mask_id

    listed = await asyncio.to_thread(cli, settings, "list", "blacklist:environment")
    assert listed.returncode == 0, listed.stderr
    assert PERSON_ID not in listed.stdout and OLD_CARD_ID_CURRENT not in listed.stdout and stored not in listed.stdout
    assert mask_id(PERSON_ID) in listed.stdout and samples.COMPANY_USCC in listed.stdout
    listed = await asyncio.to_thread(cli, settings, "list", "blacklist:environment", "--personal")
    assert listed.returncode == 0, listed.stderr
    assert PERSON_ID in listed.stdout and OLD_CARD_ID_CURRENT in listed.stdout and stored not in listed.stdout
    assert "list shown with personal data" in listed.stderr and "operator" in listed.stderr
    # without the key, a person cannot be looked up: a clear error, no traceback
    keyless = await asyncio.to_thread(cli, settings.replace(pseudonym_key=""), "subject", PERSON_ID)
    assert keyless.returncode == 2 and "pseudonym_key" in keyless.stderr and "Traceback" not in keyless.stderr

    # the pseudonym is the same in another process with the same key, different with another key
    code = ("import sys; from sinks.keys import storage_id; "
            "print(storage_id(sys.argv[1], sys.argv[2]), storage_id(sys.argv[1], sys.argv[2] + 'x'))")
    out = subprocess.run([sys.executable, "-c", code, PERSON_ID, settings.pseudonym_key], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == stored == storage_id(PERSON_ID, settings.pseudonym_key)
    assert out[1] != stored and out[1].startswith("p.")

    # the timer fires a person's due instant through the pseudonym in the due set: the tick names the
    # person in clear (in the event) and is keyed by the pseudonym
    async def ticks_counted() -> int:  # a tick at or before the subject's clock counts as stale: fired all the same
        return sum(int(v or 0) for v in await redis.hmget(keys.stats, ["outcome:tick", "outcome:stale-tick"]))

    ticks_before = await ticks_counted()
    await redis.zadd(keys.due, {stored: int(time.time() * 1000) - 1000})

    async def ticked():
        return await ticks_counted() > ticks_before

    await eventually(ticked, timeout=30)
    from domain import events
    from streams import kafka

    ticks = [(m.key.decode(), events.decode(m.value))
             async for batch in kafka.read_to_end(settings, department.topics.subject_events)
             for m in batch if m.value.startswith(b'{"type":"tick"')]
    assert (stored, PERSON_ID) in [(k, e.subject) for k, e in ticks]
    dump = await redis_dump(redis, settings.namespace)
    assert not any(leaks(k) or leaks(" ".join(v)) for k, v in dump.items())


async def test_the_report_masks_an_id_number_sent_as_a_source_unit(pipeline, department, settings):
    """Seen: a penalty whose source_unit held a person's ID number and name was accepted, and
    `creditstream report` printed the number in clear in its table of units."""
    from ops.report import operator_report, progress, render_operator_report

    await department.send(schema_of("penalty"), sample_event(
        "penalty", decision_doc_no="郑罚〔2026〕77号", source_unit=f"{PERSON_ID}{samples.PERSON}"))

    async def applied():
        return await progress(settings) >= 1

    await eventually(applied, timeout=60)
    report = await operator_report(settings, progress=False)
    text = orjson.dumps(report).decode() + render_operator_report(report)
    assert PERSON_ID not in text, [u for u in report["units"]]
    assert any(u.startswith(PERSON_ID[:3] + "*") for u in report["units"]), report["units"]
