"""Two inputs with the same date and the same stamp: the later in the log wins, at any offset.

Stamps tie for real: a producer that stamps each message with the registration date, a topic with
``message.timestamp.type=LogAppendTime`` (one producer batch, one stamp), two sends in one
millisecond. Then the inputs' origins (``topic/partition/offset``) decide, and two places compared
them as text, so that offset 9 outranked offset 10 (found by sending stock-client traffic; the
cases with offsets 1 and 2 passed):

* which company a legacy registration number maps to, when two registrations name it (a Redis
  script compares the mappings' versions: domain/attach.py ``mapping_version``): a penalty naming
  only that number was attached to the company registered first;
* a re-registered company's current name (its identity keys: domain/state.py ``identity_key``): the
  public pages and the credit report showed the old name.

Both now prefix the origin's partition and offset with their lengths (domain/state.py ``sortable_origin``).
"""

from __future__ import annotations

import datetime as dt

import pytest

from sinks.kafka import home_partition
from streams import samples, synthetic
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = pytest.mark.integration
REGISTRATION = schema_of("registration")
PENALTY = schema_of("penalty")
DAY = dt.date(2024, 3, 1)
STAMP = int(dt.datetime(2024, 3, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))).timestamp() * 1000)
DOC_NO = "豫罚〔2024〕4242号"


def registration(uscc: str, name: str, reg_no: str | None) -> dict:
    return sample_event("registration", uscc=uscc, subject_name=name, reg_no=reg_no, org_code=None, tax_no=None,
                        legal_rep_id_no=None, registered_at=DAY, event_id=f"reg-{uscc}-{name}")


async def send_at(department, record: dict, partition: int) -> int:
    """A registration sent to ``partition`` with the tied stamp; its offset."""
    topic = department.topics.registration
    await department.codec.ensure_writer(REGISTRATION, topic)
    value = department.codec.encode(REGISTRATION, record, topic=topic)
    sent = await department.producer.send(topic, value, key=record["uscc"].encode(), partition=partition,
                                          timestamp_ms=STAMP)
    return (await sent).offset


async def state_of(redis, settings, subject: str) -> dict | None:
    from sinks.keys import resolve_keys
    from sinks.redis_state import read_states

    [state] = await read_states(redis, await resolve_keys(redis, settings.namespace), [subject])
    return state


@pytest.mark.parametrize("before", [1, 9])
async def test_a_number_maps_to_the_later_registration(before, department, pipeline, redis, settings):
    """Registrations of two companies name the same registration number, on one partition, the
    mistaken one first; ``before`` other registrations ahead of them put them at offsets 1 and 2, or 9
    and 10."""
    first, later = synthetic.uscc(11), synthetic.uscc(12)
    for i in range(before):
        other = synthetic.uscc(100 + i)
        await send_at(department, registration(other, f"测试{other[-6:]}有限公司", None), 0)
    a = await send_at(department, registration(first, "郑州市先登记商贸有限公司", samples.COMPANY_REG_NO), 0)
    b = await send_at(department, registration(later, "郑州市后登记商贸有限公司", samples.COMPANY_REG_NO), 0)
    assert (a, b) == (before, before + 1)

    async def registered():
        return all([await state_of(redis, settings, first), await state_of(redis, settings, later)])

    await eventually(registered, timeout=30)
    await department.send(PENALTY, sample_event("penalty", uscc=None, org_code=None, reg_no=samples.COMPANY_REG_NO,
                                                legal_rep_id_no=None, decision_doc_no=DOC_NO),
                          key=samples.COMPANY_REG_NO.encode())

    async def attached_to():
        for subject in (first, later):
            state = await state_of(redis, settings, subject)
            if any(r["doc_no"] == DOC_NO for r in (state or {}).get("records", {}).values()):
                return subject
        return None

    assert await eventually(attached_to, timeout=30) == later, f"offsets {a} and {b}: the earlier registration won"


@pytest.mark.parametrize("before", [1, 9])
async def test_a_re_registered_companys_name_is_the_later_one(before, department, pipeline, redis, settings):
    """A company re-registered under a new name, both registrations dated and stamped with its
    founding date, on its partition after ``before`` other companies' registrations."""
    company = synthetic.uscc(21)
    home = home_partition(company.encode(), range(settings.partitions))
    for other in [u for u in (synthetic.uscc(1000 + i) for i in range(400))
                  if home_partition(u.encode(), range(settings.partitions)) == home][:before]:
        await send_at(department, registration(other, f"测试{other[-6:]}有限公司", None), home)
    old = await send_at(department, registration(company, "郑州市旧名称商贸有限公司", None), home)
    new = await send_at(department, registration(company, "郑州市新名称商贸有限公司", None), home)
    assert (old, new) == (before, before + 1)

    async def both():
        state = await state_of(redis, settings, company)
        return state if state and len(state.get("registrations_seen") or ()) >= 2 else None

    state = await eventually(both, timeout=30)
    assert state["names"][-1] == "郑州市新名称商贸有限公司", (old, new, state["names"])
