"""Regenerate events.jsonl, the demo's sample data set: ``python data/demo/make_events.py``.

Several departments and cities of Henan; penalties, licences, court listings and other actions;
a duplicate, a correction, a revocation, legacy-coded records whose registration arrives later,
a natural person, an early-pilot USCC that fails its check, and a few malformed records.
Timestamps are fixed so that every run (and every replay) sees the same event times.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

from stdnum.cn import uscc
from stdnum.iso7064 import mod_11_10

from domain.identifiers import resident_id_check_char
from streams.codec import to_json
from streams.samples import SCHEMA_OF_KIND, sample_event

OUT = Path(__file__).with_name("events.jsonl")


ORG_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def make_org_code(body8: str) -> str:
    """GB 11714: weights 3 7 9 10 5 8 4 2, c = 11 - sum mod 11; 10 -> X, 11 -> 0."""
    total = sum(ORG_ALPHABET.index(ch) * w for ch, w in zip(body8, (3, 7, 9, 10, 5, 8, 4, 2)))
    c = 11 - total % 11
    return body8 + {10: "X", 11: "0"}.get(c, str(c))


def make_uscc(prefix8: str, org_body8: str) -> str:
    body17 = prefix8 + make_org_code(org_body8)
    return body17 + uscc.calc_check_digit(body17)


def make_id(body17: str) -> str:
    return body17 + resident_id_check_char(body17)


def make_reg_no(body14: str) -> str:
    return body14 + mod_11_10.calc_check_digit(body14)


LUOYANG_CO = ("洛阳市西工区宏远机械制造有限公司", make_uscc("91410303", "MA44K7R2"), make_reg_no("41030300004567"))
XINXIANG_CO = ("新乡市红旗区绿源化工有限公司", make_uscc("91410702", "MA3X5QJ8"), None)
KAIFENG_SHOP = ("开封市鼓楼区老王烩面馆", make_uscc("92410204", "MA45GJ6T"), None)
PILOT_CO = ("厦门市思明区试点贸易有限公司", "91350211M00013FA1N", None)
PERSON = ("王小明", make_id("41010519900307123"))
LUOYANG_SAMR = ("洛阳市市场监督管理局", make_uscc("11410300", "MB1P3825"))
XINXIANG_ECO = ("新乡市生态环境局", make_uscc("11410700", "MB1P4761"))
KAIFENG_HEALTH = ("开封市卫生健康委员会", make_uscc("11410200", "MB1P5932"))


def line(kind: str, fields: dict, ts: str) -> str:
    return json.dumps({"kind": kind, "fields": to_json(SCHEMA_OF_KIND[kind], fields), "timestamp": ts},
                      ensure_ascii=False)


def main() -> None:
    lines = []
    add = lines.append
    # Zhengzhou company: licence, penalty (sent twice: a duplicate), then corrected; court listing.
    add(line("license", sample_event("license"), "2023-08-03T09:00:00+08:00"))
    add(line("penalty", sample_event("penalty"), "2024-05-22T10:00:00+08:00"))
    add(line("penalty", sample_event("penalty"), "2024-05-23T10:00:00+08:00"))  # duplicate (batch re-export)
    add(line("penalty", sample_event("penalty", penalty_content="罚款4.5万元，没收违法所得0.36万元",
                                     fine_amount=Decimal("4.5")), "2024-05-27T15:30:00+08:00"))  # correction
    add(line("court_listing", sample_event("court_listing"), "2024-01-18T11:00:00+08:00"))
    add(line("action", sample_event("action"), "2024-06-05T09:30:00+08:00"))
    # Luoyang company, legacy-coded: only its registration number; registration arrives later.
    name, code, reg_no = LUOYANG_CO
    legacy = dict(subject_name=name, uscc=None, org_code=None, reg_no=reg_no, legal_rep_name="陈宏远",
                  legal_rep_id_no=None, source_unit=LUOYANG_SAMR[0], source_unit_uscc=LUOYANG_SAMR[1],
                  deciding_authority=LUOYANG_SAMR[0], deciding_authority_uscc=LUOYANG_SAMR[1],
                  domain="market", severity="一般")
    add(line("penalty", sample_event("penalty", decision_doc_no="洛市监罚〔2024〕031号", **legacy,
                                     decision_date=dt.date(2024, 3, 11)), "2024-03-14T10:00:00+08:00"))
    add(line("penalty", sample_event("penalty", decision_doc_no="洛市监罚〔2024〕077号", **legacy,
                                     decision_date=dt.date(2024, 7, 2)), "2024-07-05T10:00:00+08:00"))
    # Xinxiang chemical company: a severe environment penalty, and one that is revoked.
    name, code, _ = XINXIANG_CO
    env = dict(subject_name=name, uscc=code, legal_rep_name="刘绿源", legal_rep_id_no=make_id("41070219780405211"),
               source_unit=XINXIANG_ECO[0], source_unit_uscc=XINXIANG_ECO[1], deciding_authority=XINXIANG_ECO[0],
               deciding_authority_uscc=XINXIANG_ECO[1], domain="environment")
    add(line("penalty", sample_event("penalty", decision_doc_no="新环罚〔2024〕015号", severity="严重",
                                     violation_type="通过暗管排放水污染物", fine_amount=Decimal("80"),
                                     decision_date=dt.date(2024, 4, 8), **env), "2024-04-10T16:00:00+08:00"))
    add(line("penalty", sample_event("penalty", decision_doc_no="新环罚〔2024〕022号", severity="一般",
                                     decision_date=dt.date(2024, 5, 6), **env), "2024-05-08T16:00:00+08:00"))
    add(line("penalty", sample_event("penalty", decision_doc_no="新环罚〔2024〕022号", severity="一般",
                                     decision_date=dt.date(2024, 5, 6), record_status="revoked", **env),
             "2024-06-18T16:00:00+08:00"))  # revocation
    # Kaifeng individual business (个体工商户): a health licence.
    name, code, _ = KAIFENG_SHOP
    add(line("license", sample_event("license", subject_name=name, subject_category="个体工商户", uscc=code,
                                     legal_rep_name="王德福", license_doc_no="汴卫许〔2024〕102号",
                                     certificate_name="公共场所卫生许可证", license_no="汴卫公证字〔2024〕第102号",
                                     licensing_authority=KAIFENG_HEALTH[0], licensing_authority_uscc=KAIFENG_HEALTH[1],
                                     source_unit=KAIFENG_HEALTH[0], source_unit_uscc=KAIFENG_HEALTH[1]),
             "2024-02-20T09:00:00+08:00"))
    # A natural person (自然人), keyed by ID number.
    add(line("penalty", sample_event("penalty", subject_name=PERSON[0], subject_category="自然人", uscc=None,
                                     legal_rep_name=None, legal_rep_id_type=None, legal_rep_id_no=None,
                                     person_id_type="身份证", person_id_no=PERSON[1],
                                     decision_doc_no="郑市监罚〔2024〕210号", fine_amount=Decimal("0.2"),
                                     penalty_content="罚款2000元", severity="轻微"), "2024-06-12T10:00:00+08:00"))
    # An early-pilot USCC that fails its check character: flagged, attached, never dropped.
    name, code, _ = PILOT_CO
    add(line("license", sample_event("license", subject_name=name, uscc=code, license_doc_no="厦思许〔2016〕009号",
                                     decision_date=dt.date(2016, 3, 28), valid_from=dt.date(2016, 3, 28),
                                     valid_to=dt.date(2099, 12, 31)),
             "2016-04-01T09:00:00+08:00"))
    # The registration of the Luoyang company arrives: its two parked penalties attach.
    name, code, reg_no = LUOYANG_CO
    add(line("registration", sample_event("registration", uscc=code, subject_name=name, reg_no=reg_no,
                                          org_code=code[8:17], tax_no=None, legal_rep_name="陈宏远",
                                          legal_rep_id_no=make_id("41030319700101321"),
                                          source_unit=LUOYANG_SAMR[0], source_unit_uscc=LUOYANG_SAMR[1],
                                          event_id=f"samr-ly-registration-{code}"), "2024-07-20T09:00:00+08:00"))
    # Malformed: each goes to the dead-letter topic with its reason.
    add(line("penalty", sample_event("penalty", decision_doc_no="郑市监罚〔2024〕301号", fine_amount=Decimal("-3")),
             "2024-07-01T10:00:00+08:00"))  # negative amount
    add(line("penalty", sample_event("penalty", decision_doc_no="郑市监罚〔2024〕302号", severity="特别严重"),
             "2024-07-01T10:01:00+08:00"))  # unknown enum
    add(line("penalty", sample_event("penalty", decision_doc_no="郑市监罚〔2024〕303号", uscc="91410100ABCD"),
             "2024-07-01T10:02:00+08:00"))  # bad identifier
    add(line("penalty", sample_event("penalty", decision_doc_no="郑市监罚〔2024〕304号",
                                     decision_date=dt.date(2031, 1, 1)), "2024-07-01T10:03:00+08:00"))  # future date
    add(json.dumps({"kind": "raw", "topic": "penalty", "value_hex": "7b226e6f74223a2261766f726f227d",
                    "timestamp": "2024-07-01T10:04:00+08:00"}))  # JSON bytes, not Avro: bad magic
    OUT.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} events to {OUT}")


if __name__ == "__main__":
    main()
