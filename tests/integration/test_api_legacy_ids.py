"""The public role and first-generation (15-digit) ID numbers, against the embedded stack through the
real pipeline: a code the masking treats as a legacy ID number (domain/identifiers.py
``looks_like_legacy_id``) is refused before any look-up, so the answer is the same whether a person
has that number or not, also when the number happens to pass the registration-number check digit
(about 1 in 10 do): ``/subjects/{code}``, ``/subjects/{code}/lists``, ``/subjects/{code}/report``
403, the disclosure's search refused and its subject page 403."""

from __future__ import annotations

import datetime as dt

import pytest
from aiohttp.test_utils import TestClient, TestServer

from creditstream.api import create_api
from domain.identifiers import is_valid_reg_no, looks_like_legacy_id
from streams import samples
from streams.samples import sample_event, schema_of
from tests.conftest import eventually

pytestmark = pytest.mark.integration

CST = dt.timezone(dt.timedelta(hours=8))
STORED = "410105850312004"      # the person's first-generation card number
CURRENT = "410105198503120048"  # ... and its 18-character form (check character 8)
UNKNOWN = "410105850312012"     # same shape, no one has it
UNKNOWN_NOT_REG_NO = "110101900307451"
NAME = "钱老汉"


async def produce_legacy_person(department) -> None:
    today = dt.datetime.now(CST).date()
    penalty = sample_event("penalty", subject_name=NAME, subject_category="自然人", uscc=None,
                           person_id_type="身份证", person_id_no=STORED, legal_rep_name=None,
                           legal_rep_id_type=None, legal_rep_id_no=None, severity="一般", domain="environment",
                           source_unit=samples.ECO_ZZ, source_unit_uscc=samples.ECO_ZZ_USCC,
                           decision_doc_no="郑环罚〔2026〕904号", decision_date=today - dt.timedelta(days=10),
                           facts=f"当事人{NAME}倾倒垃圾。", valid_until=None, publicity_end_date=None,
                           event_id="eco-zz-legacy-904")
    await department.send(schema_of("penalty"), penalty,
                          timestamp_ms=int(dt.datetime.now(dt.UTC).timestamp() * 1000))


def test_the_numbers_are_what_the_test_needs():
    """Both numbers read as legacy ID numbers and pass the registration-number check (the case
    that leaked); the third reads as one and does not."""
    assert all(looks_like_legacy_id(c) for c in (STORED, UNKNOWN, UNKNOWN_NOT_REG_NO))
    assert is_valid_reg_no(STORED) and is_valid_reg_no(UNKNOWN) and not is_valid_reg_no(UNKNOWN_NOT_REG_NO)


async def test_public_role_answers_the_same_for_known_and_unknown_legacy_id_numbers(settings, pipeline,
                                                                                       department):
    from ops.inspect import subject_state

    await produce_legacy_person(department)
    state = await eventually(lambda: subject_state(settings, STORED), timeout=60)
    # kept under the 18-character number of the same card (GB 11643-1999), found by either
    assert state["id"] == CURRENT and "resident-id-15-digit" in state["flags"]

    # the personal role: the person is stored, the other numbers are not (the premise of the test)
    async with TestClient(TestServer(create_api(settings.replace(api_anonymous_role="personal")))) as personal:
        for code in (STORED, CURRENT):
            resp = await personal.get(f"/subjects/{code}")
            assert resp.status == 200 and (await resp.json())["id"] == CURRENT
        for code in (UNKNOWN, UNKNOWN_NOT_REG_NO):
            assert (await personal.get(f"/subjects/{code}")).status == 404
        # the credit check finds the person by either number too (seen: ``no_record`` by the 15 digits
        # for a person it answered by the 18; ops/inspect.py Reader.subjects)
        for code in (STORED, CURRENT):
            resp = await personal.get("/check", params={"subject": code, "matter": "honours"})
            body = await resp.json()
            assert resp.status == 200 and body["outcome"] == "clear", (code, body)
        resp = await personal.post("/check", json={"matter": "honours", "subjects": [STORED, CURRENT, UNKNOWN]})
        assert [r["outcome"] for r in (await resp.json())["results"]] == ["clear", "clear", "no_record"]

    # the public role (the anonymous role on loopback by default): 403 before any look-up, whoever
    async with TestClient(TestServer(create_api(settings))) as public:
        answers = {}
        for suffix in ("", "/lists", "/report?format=json"):
            for code in (STORED, UNKNOWN, UNKNOWN_NOT_REG_NO):
                resp = await public.get(f"/subjects/{code}{suffix}")
                answers[code, suffix] = (resp.status, await resp.json())
            # the same answer, word for word, for the stored number and the unknown ones
            assert answers[STORED, suffix] == answers[UNKNOWN, suffix] == answers[UNKNOWN_NOT_REG_NO, suffix], \
                {code: answers[code, suffix] for code in (STORED, UNKNOWN, UNKNOWN_NOT_REG_NO)}
            status, body = answers[UNKNOWN, suffix]
            assert status == 403 and body["error"] == "forbidden" and "personal role" in body["message"], body
        for code in (STORED, UNKNOWN, UNKNOWN_NOT_REG_NO):
            # the disclosure's search: refused before any look-up (docs/disclosure.md)
            resp = await public.get("/disclosure", params={"q": code, "format": "json"})
            assert resp.status == 200
            search = (await resp.json())["search"]
            assert search["refused"] and search["matches"] == [] and search["subject"] is None, (code, search)
            resp = await public.get("/disclosure/penalties", params={"q": code, "format": "json"})
            assert resp.status == 200 and (await resp.json())["records"] == []
            # natural persons have no disclosure page: 403 before any look-up
            resp = await public.get(f"/disclosure/subjects/{code}", params={"format": "json"})
            assert resp.status == 403, (code, resp.status, await resp.text())
