"""Synthetic, deterministic data at any scale: valid identifiers and department event streams.

For tests, the benchmark and the reliability suite. ``EventGenerator(seed)`` yields
``(kind, record)`` pairs (Avro records ready for ``AvroCodec.encode``) with a configurable share of
duplicates, corrections, legacy-coded records and malformed input; the same seed gives the same
stream.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from domain.identifiers import org_code_check_char, resident_id_check_char, uscc_check_char
from streams.samples import sample_event

_ORG_BODY_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # USCC-safe characters
DIVISIONS = ("410100", "410300", "410700", "410200", "410500", "411300", "410800", "411000")
DOMAINS = ("market", "food_drug", "environment", "taxation", "work_safety", "wage_arrears")
UNITS = (
    ("郑州市市场监督管理局", "11410100005200036R"),
    ("国家税务总局郑州市税务局", "11410000416000784U"),
    ("郑州市生态环境局", "11410100MB1P372890"),
)


def org_code(n: int) -> str:
    """The n-th synthetic organisation code (valid check character)."""
    body = ""
    for _ in range(8):
        n, r = divmod(n, len(_ORG_BODY_ALPHABET))
        body = _ORG_BODY_ALPHABET[r] + body
    body = "M" + body[1:]  # M-prefixed bodies never collide with the public examples
    return body + org_code_check_char(body)


def uscc(n: int, division: str | None = None) -> str:
    """The n-th synthetic USCC: enterprise (91), a Henan division, a valid embedded org code."""
    division = division or DIVISIONS[n % len(DIVISIONS)]
    body = "91" + division + org_code(n)  # an org code's check char (0-9, X) is in the USCC alphabet
    return body + uscc_check_char(body)


def resident_id(n: int) -> str:
    birth = dt.date(1960, 1, 1) + dt.timedelta(days=n % 15000)
    body = f"{DIVISIONS[n % len(DIVISIONS)]}{birth:%Y%m%d}{n % 1000:03d}"
    return body + resident_id_check_char(body)


class EventGenerator:
    """A deterministic stream of department events over ``subjects`` subjects."""

    def __init__(self, seed: int = 1, *, subjects: int = 1000, duplicate_rate: float = 0.05,
                 correction_rate: float = 0.02, malformed_rate: float = 0.01, legacy_rate: float = 0.005,
                 start: dt.date = dt.date(2024, 1, 2), hot_share: float = 0.0):
        """``hot_share``: the share of new decisions about subject 0, a hot subject with a long
        history (stored split past 64 records: sinks/state_codec.py)."""
        self.rng = random.Random(seed)
        self.hot_share = hot_share
        self.subjects = subjects
        self.duplicate_rate = duplicate_rate
        self.correction_rate = correction_rate
        self.malformed_rate = malformed_rate
        self.legacy_rate = legacy_rate
        self.start = start
        self._sent: list[tuple[str, dict]] = []
        self._n = 0

    def _subject(self, i: int) -> dict:
        return {"subject_name": f"河南合成{i:06d}号商贸有限公司", "uscc": uscc(i)}

    def fresh(self) -> tuple[str, dict]:
        rng = self.rng
        i = 0 if self.hot_share and rng.random() < self.hot_share else rng.randrange(self.subjects)
        self._n += 1
        day = self.start + dt.timedelta(days=self._n % 700)
        unit, unit_code = UNITS[self._n % len(UNITS)]
        kind = rng.choices(("penalty", "license", "action"), weights=(6, 3, 1))[0]
        common = dict(self._subject(i), source_unit=unit, source_unit_uscc=unit_code, legal_rep_id_no=None,
                      event_id=f"synthetic-{self._n}")
        if kind == "penalty":
            rec = sample_event("penalty", **common, decision_doc_no=f"豫合罚〔{day.year}〕{self._n}号",
                               decision_date=day, valid_until=None, publicity_end_date=None,
                               severity=rng.choices(("一般", "严重", "轻微"), weights=(7, 1, 2))[0],
                               domain=rng.choice(DOMAINS),
                               fine_amount=Decimal(rng.randrange(1, 5000)) / 100)
        elif kind == "license":
            rec = sample_event("license", **common, license_doc_no=f"豫合许〔{day.year}〕{self._n}号",
                               decision_date=day, valid_from=day)
        else:
            rec = sample_event("action", **common, decision_doc_no=f"豫合检〔{day.year}〕{self._n}号",
                               decision_date=day, adverse=rng.random() < 0.3)
        if rng.random() < self.legacy_rate:
            # only the organisation code: attaches through the code embedded in a known USCC
            rec["org_code"] = rec["uscc"][8:17]
            rec["uscc"] = None
        return kind, rec

    def __iter__(self):
        return self

    def __next__(self) -> tuple[str, dict]:
        rng = self.rng
        r = rng.random()
        if self._sent and r < self.duplicate_rate:
            return rng.choice(self._sent)
        if self._sent and r < self.duplicate_rate + self.correction_rate:
            kind, rec = rng.choice(self._sent)
            rec = dict(rec, remarks=f"更正{rng.randrange(1000)}")
            return kind, rec
        if r < self.duplicate_rate + self.correction_rate + self.malformed_rate:
            return self.malformed()
        kind, rec = self.fresh()
        if len(self._sent) < 5000:
            self._sent.append((kind, rec))
        else:
            self._sent[rng.randrange(5000)] = (kind, rec)
        return kind, rec

    def malformed(self) -> tuple[str, dict]:
        kind, rec = self.fresh()
        which = self.rng.randrange(4)
        if which == 0:
            rec["fine_amount" if kind == "penalty" else "subject_name"] = (
                Decimal("-1") if kind == "penalty" else "")
        elif which == 1:  # a code of a bad shape (19 characters)
            if rec.get("uscc"):
                rec["uscc"] = rec["uscc"] + "Z"
            else:
                rec["org_code"] = (rec.get("org_code") or "") + "ZZ"
        elif which == 2:
            rec["decision_date"] = dt.date(2099, 1, 1)
        else:
            rec["subject_category"] = "外星人"
        return kind, rec

