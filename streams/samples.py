"""Deterministic sample events (valid Avro records) with realistic Henan data.

``sample_event(kind, **overrides)`` returns a fresh record for the schema of ``kind`` (dates as
``datetime.date``, amounts as ``Decimal``, ready for ``AvroCodec.encode``). For tests, demos and
integration scenarios. Every identifier here passes its check unless an override says otherwise.
``KINDS`` are the input kinds (what ``domain.validate.normalise_event`` takes, including the credit
office's objection, repair, listing decision and feedback); ``ALL_KINDS`` adds the system's own
outputs, ``list_change`` (名单变动) and ``check_audit`` (信用核查记录).
The subject names and numbers are made up; the USCC ``91310110666007217T`` is a public example.
"""

from __future__ import annotations

import copy
import datetime as _dt
from decimal import Decimal

from domain.kinds import KINDS as _KINDS
from domain.kinds import SCHEMA_OF_KIND as _SCHEMA_OF_KIND

__all__ = ["SCHEMA_OF_KIND", "KINDS", "OUTPUT_KINDS", "ALL_KINDS", "sample_event", "schema_of"]

SCHEMA_OF_KIND = dict(_SCHEMA_OF_KIND)  # the catalogue of event kinds (domain/kinds.py)
OUTPUT_KINDS = tuple(k.name for k in _KINDS if k.role == "output")
# The input kinds: every one of these is a valid input of domain.validate.normalise_event.
KINDS = tuple(k for k in SCHEMA_OF_KIND if k not in OUTPUT_KINDS)
ALL_KINDS = tuple(SCHEMA_OF_KIND)

# Units (their USCCs pass the check; 11 = 机关, 410100 = 郑州市).
SAMR_ZZ = "郑州市市场监督管理局"
SAMR_ZZ_USCC = "11410100005200036R"
TAX_ZZ = "国家税务总局郑州市税务局"
TAX_ZZ_USCC = "11410000416000784U"
COURT_ZZ = "河南省郑州市中级人民法院"
COURT_ZZ_USCC = "12410100416012347J"
ECO_ZZ = "郑州市生态环境局"
ECO_ZZ_USCC = "11410100MB1P372890"
CREDIT_ZZ = "郑州市信用中心"
CREDIT_ZZ_USCC = "12410100MB1P38506K"
DEV_ZZ = "郑州市发展和改革委员会"
DEV_ZZ_USCC = "11410100005200044L"
FINANCE_ZZ = "郑州市财政局"
FINANCE_ZZ_USCC = "11410100005200028Y"

# The subject: a company (USCC and its embedded organisation code) and its legal representative.
COMPANY = "郑州市金水区恒达商贸有限公司"
COMPANY_USCC = "91310110666007217T"
COMPANY_ORG_CODE = "666007217"
COMPANY_REG_NO = "410100000123452"
LEGAL_REP = "李建国"
LEGAL_REP_ID = "410105198503121235"
PERSON = "张卫东"
PERSON_ID = "410102198703154518"

_BASE: dict[str, dict] = {
    "penalty": {
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "uscc": COMPANY_USCC,
        "legal_rep_name": LEGAL_REP,
        "legal_rep_id_type": "身份证",
        "legal_rep_id_no": LEGAL_REP_ID,
        "decision_doc_no": "郑市监罚〔2024〕123号",
        "violation_type": "销售不符合食品安全标准的食品",
        "facts": "当事人于2024年3月销售标签不符合规定的预包装食品，货值金额1.2万元。",
        "legal_basis": "《中华人民共和国食品安全法》第一百二十四条第一款",
        "penalty_category": "罚款;没收违法所得",
        "penalty_content": "罚款5万元，没收违法所得0.36万元",
        "fine_amount": Decimal("5.000000"),
        "confiscated_amount": Decimal("0.360000"),
        "decision_date": _dt.date(2024, 5, 20),
        "valid_until": _dt.date(2025, 5, 20),
        "publicity_end_date": _dt.date(2025, 5, 20),
        "deciding_authority": SAMR_ZZ,
        "deciding_authority_uscc": SAMR_ZZ_USCC,
        "source_unit": SAMR_ZZ,
        "source_unit_uscc": SAMR_ZZ_USCC,
        "severity": "一般",
        "domain": "food_drug",
        "simplified_procedure": False,
        "record_status": "normal",
        "event_id": "samr-zz-penalty-000123",
    },
    "license": {
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "uscc": COMPANY_USCC,
        "legal_rep_name": LEGAL_REP,
        "doc_name": "食品经营许可决定书",
        "license_doc_no": "郑市监许〔2023〕0456号",
        "license_category": "普通",
        "certificate_name": "食品经营许可证",
        "license_no": "JY14101050045612",
        "content": "预包装食品销售（含冷藏冷冻食品）",
        "decision_date": _dt.date(2023, 8, 1),
        "valid_from": _dt.date(2023, 8, 1),
        "valid_to": _dt.date(2028, 7, 31),
        "licensing_authority": SAMR_ZZ,
        "licensing_authority_uscc": SAMR_ZZ_USCC,
        "source_unit": SAMR_ZZ,
        "source_unit_uscc": SAMR_ZZ_USCC,
        "status": "有效",
        "record_status": "normal",
        "event_id": "samr-zz-license-000456",
    },
    "court_listing": {
        "case_no": "(2023)豫01执1234号",
        "court": COURT_ZZ,
        "court_uscc": COURT_ZZ_USCC,
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "uscc": COMPANY_USCC,
        "legal_rep_name": LEGAL_REP,
        "legal_rep_id_no": LEGAL_REP_ID,
        "enforcement_basis_no": "(2022)豫0105民初5678号",
        "enforcement_basis_unit": "郑州市金水区人民法院",
        "obligation": "支付货款人民币386000元及利息",
        "performance": "全部未履行",
        "dishonest_behaviour": "有履行能力而拒不履行生效法律文书确定义务",
        "listing_reason": "refuse_with_ability",
        "aggravated": False,
        "aggravation_years": 0,
        "listing_date": _dt.date(2024, 1, 15),
        "publish_date": _dt.date(2024, 1, 18),
        "source_unit": COURT_ZZ,
        "source_unit_uscc": COURT_ZZ_USCC,
        "record_status": "normal",
        "event_id": "court-zz-listing-2023-1234",
    },
    "court_deletion": {
        "case_no": "(2023)豫01执1234号",
        "court": COURT_ZZ,
        "court_uscc": COURT_ZZ_USCC,
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "uscc": COMPANY_USCC,
        "deletion_reason": "performed",
        "deletion_date": _dt.date(2024, 9, 10),
        "source_unit": COURT_ZZ,
        "source_unit_uscc": COURT_ZZ_USCC,
        "event_id": "court-zz-deletion-2023-1234",
    },
    "action": {
        "action_kind": "检查",
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "uscc": COMPANY_USCC,
        "decision_doc_no": "郑环检〔2024〕078号",
        "content": "对企业废气排放情况进行现场检查",
        "decision_date": _dt.date(2024, 6, 3),
        "result": "检查不合格：挥发性有机物排放超标",
        "adverse": True,
        "deciding_authority": ECO_ZZ,
        "deciding_authority_uscc": ECO_ZZ_USCC,
        "source_unit": ECO_ZZ,
        "source_unit_uscc": ECO_ZZ_USCC,
        "domain": "environment",
        "record_status": "normal",
        "event_id": "eco-zz-inspection-000078",
    },
    "registration": {
        "uscc": COMPANY_USCC,
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "reg_no": COMPANY_REG_NO,
        "org_code": COMPANY_ORG_CODE,
        "tax_no": "410105666007217",
        "other_ids": [],
        "legal_rep_name": LEGAL_REP,
        "legal_rep_id_no": LEGAL_REP_ID,
        "registered_at": _dt.date(2007, 9, 12),
        "status": "存续",
        "source_unit": SAMR_ZZ,
        "source_unit_uscc": SAMR_ZZ_USCC,
        "event_id": "samr-zz-registration-91310110666007217T",
    },
    # The company disputes its penalty 郑市监罚〔2024〕123号 (the "penalty" sample): filed, the
    # market regulator must verify. The repair sample approves the repair of the same penalty.
    "objection": {
        "objection_id": "ZZXY-YY-2024-0087",
        "subject_name": COMPANY,
        "uscc": COMPANY_USCC,
        "target_source_unit": SAMR_ZZ,
        "target_source_unit_uscc": SAMR_ZZ_USCC,
        "target_doc_no": "郑市监罚〔2024〕123号",
        "target_kind": "penalty",
        "status": "受理",
        "filed_date": _dt.date(2024, 6, 10),
        "resolved_date": None,
        "provider_verification": True,
        "outcome": None,
        "handling_unit": CREDIT_ZZ,
        "handling_unit_uscc": CREDIT_ZZ_USCC,
        "remarks": "主体称罚款金额录入有误",
        "event_id": "credit-zz-objection-0087-filed",
    },
    "repair": {
        "repair_id": "郑信修〔2024〕015号",
        "subject_name": COMPANY,
        "uscc": COMPANY_USCC,
        "target_source_unit": SAMR_ZZ,
        "target_source_unit_uscc": SAMR_ZZ_USCC,
        "target_doc_no": "郑市监罚〔2024〕123号",
        "target_kind": "penalty",
        "approved": True,
        "decision_date": _dt.date(2024, 9, 2),
        "deciding_unit": CREDIT_ZZ,
        "deciding_unit_uscc": CREDIT_ZZ_USCC,
        "remarks": "已履行行政处罚决定，完成信用承诺和信用修复培训",
        "event_id": "credit-zz-repair-2024-015",
    },
    "listing_decision": {
        "doc_no": "郑环失信〔2024〕006号",
        "subject_name": COMPANY,
        "subject_category": "法人及非法人组织",
        "uscc": COMPANY_USCC,
        "legal_rep_name": LEGAL_REP,
        "legal_rep_id_no": LEGAL_REP_ID,
        "list_domain": "environment",
        "action": "列入",
        "decision_date": _dt.date(2024, 7, 15),
        "period_years": 3,
        "reason": "篡改、伪造自动监测数据，逃避监管排放大气污染物",
        "source_unit": ECO_ZZ,
        "source_unit_uscc": ECO_ZZ_USCC,
        "event_id": "eco-zz-listing-2024-006",
    },
    "list_change": {
        "change_id": "lc-91310110666007217T-blacklist:environment-entered-2024-07-15",
        "subject_id": COMPANY_USCC,
        "subject_kind": "uscc",
        "list": "blacklist:environment",
        "list_kind": "blacklist",
        "domain": "environment",
        "transition": "entered",
        "effective_date": _dt.date(2024, 7, 15),
        "cause_record_ids": [f"listing_decision|{ECO_ZZ_USCC}|郑环失信〔2024〕006号"],
        # what fastavro decodes a timestamp-millis to (an int of ms encodes the same)
        "event_time": _dt.datetime(2024, 7, 15, 2, 0, tzinfo=_dt.UTC),
        "rules_version": "henan-2024.1",
    },
    "check_audit": {
        "check_id": "0f8e9c1a6b2d4e7f9a3c5b1d2e4f6a8b",
        "client": "zz-public-resource-trading",
        "checked_at": _dt.datetime(2024, 8, 1, 1, 30, tzinfo=_dt.UTC),
        "subject": COMPANY_USCC,
        "subject_kind": "uscc",
        "matter": "bidding",
        "at": _dt.date(2024, 8, 1),
        "outcome": "restricted",
        "measures": ["bidding.exclude"],
        "rules_version": "henan-2024.1",
        "batch_id": "5c3b1a9e7d2f4c6a8e0b2d4f6a8c0e1f",
    },
    "feedback": {
        "feedback_id": "ZZCZ-FK-2024-0031",
        "change_id": "lc-91310110666007217T-blacklist:environment-entered-2024-07-15",
        "subject_id": COMPANY_USCC,
        "implementing_unit": FINANCE_ZZ,
        "implementing_unit_uscc": FINANCE_ZZ_USCC,
        "measure": "限制参与政府采购活动",
        "measure_date": _dt.date(2024, 7, 22),
        "remarks": "已在政府采购平台设置限制",
        "event_id": "finance-zz-feedback-0031",
    },
}


def schema_of(kind: str) -> str:
    """Full schema name of a sample kind (``penalty`` -> ``creditstream.AdministrativePenalty``)."""
    return SCHEMA_OF_KIND[kind]


def sample_event(kind: str, **overrides) -> dict:
    """A valid Avro record of ``kind`` (one of ``ALL_KINDS``; a full schema name works too), with
    ``overrides`` applied (a value of ``None`` clears an optional field). Deterministic."""
    if kind not in _BASE:
        by_schema = {v: k for k, v in SCHEMA_OF_KIND.items()}
        short = {v.rsplit(".", 1)[1]: k for k, v in SCHEMA_OF_KIND.items()}
        kind = by_schema.get(kind) or short.get(kind) or kind
    if kind not in _BASE:
        raise KeyError(f"unknown sample kind {kind!r}; one of {ALL_KINDS}")
    record = copy.deepcopy(_BASE[kind])
    record.update(overrides)
    return record
