"""The vocabularies of the inputs (词表): each enumeration's Chinese terms and English codes, the
domains, the list actions and the record kinds an objection or repair can name. Pure data."""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------------------------------------
# enumerations: the Chinese term or the English code

_SUBJECT_CATEGORY: Final = {
    "法人及非法人组织": "legal_entity",
    "法人和非法人组织": "legal_entity",
    "法人、非法人组织": "legal_entity",
    "法人或非法人组织": "legal_entity",
    "法人": "legal_entity",
    "非法人组织": "legal_entity",
    "自然人": "natural_person",
    "个体工商户": "individual_business",
    "legal_entity": "legal_entity",
    "natural_person": "natural_person",
    "individual_business": "individual_business",
}
_SEVERITY: Final = {
    "轻微": "minor",
    "一般": "general",
    "严重": "severe",
    "minor": "minor",
    "general": "general",
    "severe": "severe",
}
_LICENSE_CATEGORY: Final = {
    "普通": "ordinary",
    "特许": "special",
    "认可": "recognition",
    "核准": "approval",
    "登记": "registration",
    "其他": "other",
    **{c: c for c in ("ordinary", "special", "recognition", "approval", "registration", "other")},
}
_ACTION_KIND: Final = {
    "强制": "enforcement",
    "确认": "confirmation",
    "征收": "levy",
    "给付": "payment",
    "裁决": "adjudication",
    "补偿": "compensation",
    "奖励": "reward",
    "检查": "inspection",
    **{
        c: c
        for c in (
            "enforcement",
            "confirmation",
            "levy",
            "payment",
            "adjudication",
            "compensation",
            "reward",
            "inspection",
        )
    },
}
_LISTING_REASON_CODES: Final = ("refuse_with_ability", "obstruct", "false_report", "evade", "other")
# Chinese: the situations of the 2017 court rule, matched by a key phrase (first hit wins).
# Situation 6 (无正当理由拒不履行执行和解协议) also says 拒不履行: the settlement phrases come before
# it, or a refused settlement agreement would read as "able but refuses" (no fixed term, RULES.md 4).
_LISTING_REASON_PHRASES: Final = (
    ("有履行能力", "refuse_with_ability"),
    ("执行和解", "other"),
    ("和解协议", "other"),
    ("拒不履行", "refuse_with_ability"),
    ("财产报告", "false_report"),
    ("虚假报告", "false_report"),
    ("规避", "evade"),
    ("妨碍", "obstruct"),
    ("抗拒", "obstruct"),
    ("限制消费", "other"),
    ("其他", "other"),
)
_DELETION_REASON_CODES: Final = (
    "performed",
    "settlement_performed",
    "creditor_request",
    "enforcement_ended",
    "listing_revoked",
    "term_expired",
)
# The court rule's article 10 (1)-(7) and article 11 (a listing found wrong). Situation (4),
# 终结本次执行程序后...申请执行人或者其他人未提供有效财产线索, names the creditor too: the ended
# enforcement comes before 申请执行人, and the creditor's own request (申请删除) before both.
_DELETION_REASON_PHRASES: Final = (
    ("和解", "settlement_performed"),
    ("申请删除", "creditor_request"),
    ("终结", "enforcement_ended"),
    ("中止", "enforcement_ended"),
    ("不予执行", "enforcement_ended"),
    ("申请执行人", "creditor_request"),
    ("撤销", "listing_revoked"),
    ("纳入错误", "listing_revoked"),
    ("不应将其纳入", "listing_revoked"),
    ("不应纳入", "listing_revoked"),
    ("届满", "term_expired"),
    ("到期", "term_expired"),
    ("履行", "performed"),
)
_RECORD_STATUS: Final = {
    "正常": "normal",
    "有效": "normal",
    "撤销": "revoked",
    "已撤销": "revoked",
    "撤回": "revoked",
    "normal": "normal",
    "revoked": "revoked",
}
_DOMAIN: Final = {
    "税务": "taxation",
    "税收": "taxation",
    "安全生产": "work_safety",
    "生态环境": "environment",
    "环境保护": "environment",
    "环保": "environment",
    "政府采购": "procurement",
    "拖欠工资": "wage_arrears",
    "拖欠农民工工资": "wage_arrears",
    "欠薪": "wage_arrears",
    "食品药品": "food_drug",
    "食品": "food_drug",
    "药品": "food_drug",
    "市场监管": "market",
    "市场监督管理": "market",
    "消防": "fire",
    "特种设备": "special_equipment",
    "建筑": "construction",
    "建设": "construction",
    "法院执行": "court_enforcement",
}
# Credit office inputs.
_OBJECTION_STATUS: Final = {
    "受理": "filed",
    "已受理": "filed",
    "受理中": "filed",
    "核查中": "filed",
    "核实中": "filed",
    "处理中": "filed",
    "属实": "upheld",
    "异议属实": "upheld",
    "异议成立": "upheld",
    "不属实": "rejected",
    "异议不属实": "rejected",
    "异议不成立": "rejected",
    "不予受理": "rejected",
    "驳回": "rejected",
    **{c: c for c in ("filed", "upheld", "rejected")},
}
_OBJECTION_OUTCOME: Final = {
    "更正": "corrected",
    "已更正": "corrected",
    "修改": "corrected",
    "撤销": "revoked",
    "已撤销": "revoked",
    "删除": "revoked",
    "已删除": "revoked",
    **{c: c for c in ("corrected", "revoked")},
}
_LIST_ACTION: Final = {
    "列入": "list",
    "纳入": "list",
    "认定": "list",
    "列入名单": "list",
    "移出": "remove",
    "移除": "remove",
    "移出名单": "remove",
    "退出": "remove",
    **{c: c for c in ("list", "remove")},
}
_LIST_DOMAINS: Final = frozenset(
    "taxation work_safety environment procurement wage_arrears food_drug market court_enforcement other".split()
)
# Public names of the codes the rules file may refer to (domain/rulebook.py: the measures catalogue).
LIST_DOMAINS: Final = _LIST_DOMAINS
LISTING_REASONS: Final = frozenset(_LISTING_REASON_CODES)
# The kind part of the decision key of a record an objection or a repair names (action records:
# "action:<action_kind>", see _target_kind).
_TARGET_KIND: Final = {
    "行政处罚": "penalty",
    "处罚": "penalty",
    "行政许可": "license",
    "许可": "license",
    "失信被执行人": "court_listing",
    "严重失信主体名单": "listing_decision",
    "严重失信主体名单认定": "listing_decision",
    "失信主体名单": "listing_decision",
    **{c: c for c in ("penalty", "license", "court_listing", "listing_decision")},
}
_BOOL_WORDS: Final = {"true": True, "1": True, "是": True, "yes": True,
                      "false": False, "0": False, "否": False, "no": False}
# the ID types whose numbers are GB 11643 resident ID numbers (居民身份证号码): the card, its number
# by its official names, the temporary card, and the residence permits of Hong Kong, Macao and
# Taiwan residents (港澳台居民居住证: the same 18-character number, 81/82/83 for its division)
_RESIDENT_ID_TYPES: Final = frozenset((
    "身份证", "居民身份证", "公民身份证", "身份证号码", "身份证号", "居民身份证号码", "公民身份号码",
    "居民身份号码", "公民身份证号码", "身份證", "居民身份證", "公民身份號碼", "居民身份號碼", "临时身份证",
    "临时居民身份证", "港澳台居民居住证", "港澳居民居住证", "台湾居民居住证",
    "01", "1", "111", "RESIDENT_ID", "ID_CARD", "IDCARD"))
# words that make an ID type not listed above a resident ID (any wording of 身份证号码), unless one of
# _NOT_RESIDENT_ID_WORDS is in it too
_RESIDENT_ID_WORDS: Final = ("身份证", "身份證", "身份号码", "身份號碼")
# words that name some other document, whatever else the type says: a foreigner's permanent
# residence card (外国人永久居留身份证) is not a resident ID card, nor a passport or travel permit
_NOT_RESIDENT_ID_WORDS: Final = ("外国", "外國", "护照", "護照", "通行证", "通行證", "军官", "士兵", "警官", "PASSPORT")
