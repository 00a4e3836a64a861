"""Train the zstd dictionary subject states are stored with (sinks/state_codec.py).

``python -m bench.train_state_dict`` builds sample subject states through the real rules core
(department records from streams/samples.py and streams/synthetic.py, normalised by
domain/validate.py, attached by domain/attach.py, folded by domain/engine.py, the links to legal
representatives and persons followed, feedback answered, ticks fired), then trains a 16 KiB
dictionary on their JSON (COVER, fixed parameters, one thread, fixed dictionary id). The same seed
gives the same states and the same file, so rerunning it reproduces the current dictionary
(``--check`` verifies that against the sha256 recorded in sinks/state_codec.py). An
earlier dictionary was trained on the states of its time (version 1: before the rules core's
basis kept sorted date pairs), so it is reproduced only by the code of that time.

The states are varied so that the dictionary is not fitted to one sample: organisations with
penalties (every severity and domain), licences, inspections, court listings and deletions,
listing decisions, objections (filed, upheld, rejected) and repairs, registrations; natural
persons penalised in their own name; legal representatives given severe records by link; states
from a handful of records to a few hundred. It lives in bench/ because the product never imports
the sample data (tests/unit/test_layers.py).

A new dictionary ships as a new version (``--version 2`` writes sinks/state-v2.zdict with id
0x43530002); the old one stays in ``DICTIONARIES`` so states written with it stay readable.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import sys
import time
from decimal import Decimal
from pathlib import Path

import orjson
import zstandard

from domain import events
from domain.attach import Attached, plan
from domain.calendar import WorkingCalendar
from domain.clock import due_ms
from domain.engine import step
from domain.rulebook import load_rulebook
from domain.validate import Rejection, normalise_event
from streams import samples
from streams.samples import sample_event, schema_of
from streams.synthetic import DOMAINS, UNITS, EventGenerator, resident_id, uscc

SEED = 20240520
DICT_SIZE = 16 * 1024
K, D = 1024, 8  # COVER segment and dmer sizes: fixed, so training does not search (deterministic)
SINKS = Path(__file__).resolve().parents[1] / "sinks"
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
SEVERITIES = ("一般", "严重", "轻微")
COURT = (samples.COURT_ZZ, samples.COURT_ZZ_USCC)
CREDIT = (samples.CREDIT_ZZ, samples.CREDIT_ZZ_USCC)


def dict_id(version: int) -> int:
    return 0x43530000 + version  # "CS" + the version: outside zstd's reserved ranges


class Fold:
    """The rules core over inputs, in process: states by subject, links followed."""

    def __init__(self) -> None:
        self.rules, self.cal = load_rulebook(), WorkingCalendar()
        self.states: dict[str, dict] = {}
        self.n = 0
        self.rejected = 0

    def record(self, kind: str, rec: dict, arrived: dt.date) -> None:
        """A department record (an Avro record of ``kind``), arriving at 10:00 on ``arrived``."""
        self.n += 1
        ms = due_ms(arrived.isoformat()) + 36_000_000
        canon = normalise_event(schema_of(kind), rec, event_time_ms=ms)
        if isinstance(canon, Rejection):
            self.rejected += 1
            return
        target = plan(canon)
        if not isinstance(target, Attached):
            self.rejected += 1
            return
        self.apply(events.of_record(target.subject_id, target.id_kind, f"creditstream.{kind}/0/{self.n}", canon, ms))

    def apply(self, event) -> None:
        queue = [event]
        while queue:
            ev = queue.pop(0)
            result = step(self.states.get(ev.subject), ev, self.rules, self.cal)
            if result.outcome in ("redelivered", "invalid"):
                continue
            self.states[ev.subject] = result.state
            queue += result.links

    def tick(self, subject: str, due: dt.date) -> None:
        if subject in self.states:
            self.apply(events.tick(subject, due.isoformat()))


def person_name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


def organisations(fold: Fold, rng: random.Random, count: int, start: int) -> None:
    """``count`` organisations with varied histories; their legal representatives get links."""
    for i in range(start, start + count):
        code = uscc(i)
        name = f"河南{rng.choice('郑洛新开许平焦安')}{rng.choice(('华', '鑫', '瑞', '恒', '中原'))}{i:05d}" \
               f"{rng.choice(('商贸有限公司', '科技股份有限公司', '建筑工程有限公司', '食品厂', '物流有限公司'))}"
        rep_id = resident_id(10_000 + i) if rng.random() < 0.5 else None
        who = {"subject_name": name, "uscc": code, "legal_rep_name": person_name(rng),
               "legal_rep_id_no": rep_id}
        day = dt.date(2022, 1, 3) + dt.timedelta(days=rng.randrange(900))
        if rng.random() < 0.4:
            fold.record("registration", sample_event("registration", **who, reg_no=None, org_code=code[8:17],
                                                     tax_no=None, event_id=f"reg-{i}"), day)
        penalties = []
        size = rng.choice((1, 2, 3, 5, 8, 13, 30)) if rng.random() < 0.97 else rng.randrange(60, 200)
        for n in range(size):
            day += dt.timedelta(days=rng.randrange(1, 20))
            unit, unit_code = rng.choice(UNITS)
            what = rng.choices(("penalty", "license", "action"), weights=(6, 3, 2))[0]
            arrived = day + dt.timedelta(days=rng.choice((0, 1, 3, 8, 15)))
            if what == "penalty":
                doc = f"豫罚〔{day.year}〕{i}-{n}号"
                severe = rng.choices(SEVERITIES, weights=(7, 1, 2))[0]
                rec = sample_event("penalty", **who, decision_doc_no=doc, decision_date=day, severity=severe,
                                   domain=rng.choice(DOMAINS), source_unit=unit, source_unit_uscc=unit_code,
                                   deciding_authority=unit, deciding_authority_uscc=unit_code,
                                   valid_until=None if rng.random() < 0.5 else day + dt.timedelta(days=365),
                                   publicity_end_date=None,
                                   simplified_procedure=rng.random() < 0.1,
                                   fine_amount=Decimal(rng.randrange(1, 50_000)) / 100,
                                   confiscated_amount=None if rng.random() < 0.7 else Decimal(rng.randrange(100)) / 10,
                                   event_id=f"pen-{i}-{n}")
                penalties.append((doc, unit, unit_code, day))
            elif what == "license":
                rec = sample_event("license", **{k: v for k, v in who.items() if k != "legal_rep_id_no"},
                                   license_doc_no=f"豫许〔{day.year}〕{i}-{n}号", decision_date=day, valid_from=day,
                                   valid_to=day + dt.timedelta(days=rng.choice((365, 1095, 1825))),
                                   source_unit=unit, source_unit_uscc=unit_code, event_id=f"lic-{i}-{n}")
            else:
                rec = sample_event("action", **{k: v for k, v in who.items() if k != "legal_rep_id_no"},
                                   decision_doc_no=f"豫检〔{day.year}〕{i}-{n}号", decision_date=day,
                                   adverse=rng.random() < 0.3, domain=rng.choice(DOMAINS), source_unit=unit,
                                   source_unit_uscc=unit_code, event_id=f"act-{i}-{n}")
            fold.record(what, rec, arrived)
            if rng.random() < 0.04:  # a correction: the same decision re-sent with other content
                fold.record(what, dict(rec, event_id=f"{rec['event_id']}-c"), arrived + dt.timedelta(days=2))
        if rng.random() < 0.12:
            listed = day + dt.timedelta(days=rng.randrange(1, 60))
            case = f"({listed.year})豫01执{i}号"
            fold.record("court_listing", sample_event("court_listing", **who, case_no=case, listing_date=listed,
                                                      publish_date=listed + dt.timedelta(days=2),
                                                      aggravated=rng.random() < 0.2, event_id=f"court-{i}"),
                        listed + dt.timedelta(days=3))
            if rng.random() < 0.4:
                gone = listed + dt.timedelta(days=rng.randrange(30, 300))
                fold.record("court_deletion", sample_event("court_deletion", subject_name=name, uscc=code,
                                                           case_no=case, deletion_date=gone,
                                                           event_id=f"court-del-{i}"), gone)
        if rng.random() < 0.06:
            decided = day + dt.timedelta(days=rng.randrange(1, 60))
            fold.record("listing_decision", sample_event("listing_decision", **who,
                                                         doc_no=f"豫失信〔{decided.year}〕{i}号",
                                                         list_domain=rng.choice(DOMAINS), decision_date=decided,
                                                         event_id=f"list-{i}"), decided)
        if penalties and rng.random() < 0.12:
            doc, unit, unit_code, decided = rng.choice(penalties)
            target = {"subject_name": name, "uscc": code, "target_source_unit": unit,
                      "target_source_unit_uscc": unit_code, "target_doc_no": doc, "target_kind": "penalty",
                      "handling_unit": CREDIT[0], "handling_unit_uscc": CREDIT[1]}
            filed = decided + dt.timedelta(days=rng.randrange(5, 40))
            oid = f"ZZXY-YY-{filed.year}-{i:04d}"
            fold.record("objection", sample_event("objection", **target, objection_id=oid, filed_date=filed,
                                                  event_id=f"obj-{i}-filed"), filed)
            if rng.random() < 0.6:
                done = filed + dt.timedelta(days=rng.randrange(5, 30))
                upheld = rng.random() < 0.5
                fold.record("objection", sample_event("objection", **target, objection_id=oid, filed_date=filed,
                                                      status="异议属实" if upheld else "异议不成立",
                                                      resolved_date=done, outcome="更正" if upheld else None,
                                                      event_id=f"obj-{i}-done"), done)
        if penalties and rng.random() < 0.1:
            doc, unit, unit_code, decided = rng.choice(penalties)
            approved = decided + dt.timedelta(days=rng.randrange(90, 400))
            fold.record("repair", sample_event("repair", subject_name=name, uscc=code, target_source_unit=unit,
                                               target_source_unit_uscc=unit_code, target_doc_no=doc,
                                               repair_id=f"郑信修〔{approved.year}〕{i}号", decision_date=approved,
                                               approved=rng.random() < 0.85, event_id=f"rep-{i}"), approved)
        state = fold.states.get(code)
        for change_id, effective in list((state or {}).get("awaiting_feedback", {}).items()):
            if rng.random() < 0.5:
                answered = dt.date.fromisoformat(effective) + dt.timedelta(days=rng.randrange(1, 20))
                fold.record("feedback", sample_event("feedback", change_id=change_id, subject_id=code,
                                                     feedback_id=f"FK-{i}-{rng.randrange(10**6)}",
                                                     measure_date=answered, event_id=f"fb-{i}"), answered)
        if rng.random() < 0.3:
            fold.tick(code, day + dt.timedelta(days=rng.randrange(30, 1200)))


def persons(fold: Fold, rng: random.Random, count: int) -> None:
    """Natural persons penalised in their own name."""
    for i in range(count):
        pid = resident_id(50_000 + i)
        name = person_name(rng)
        day = dt.date(2022, 3, 1) + dt.timedelta(days=rng.randrange(700))
        for n in range(rng.choice((1, 1, 2, 3, 6))):
            day += dt.timedelta(days=rng.randrange(1, 60))
            unit, unit_code = rng.choice(UNITS)
            fold.record("penalty", sample_event(
                "penalty", subject_name=name, subject_category="自然人", uscc=None, person_id_type="身份证",
                person_id_no=pid, legal_rep_name=None, legal_rep_id_type=None, legal_rep_id_no=None,
                severity=rng.choices(SEVERITIES, weights=(6, 2, 2))[0], domain=rng.choice(DOMAINS),
                source_unit=unit, source_unit_uscc=unit_code, deciding_authority=unit,
                deciding_authority_uscc=unit_code, decision_doc_no=f"豫罚个〔{day.year}〕{i}-{n}号",
                decision_date=day, valid_until=None, publicity_end_date=None,
                fine_amount=Decimal(rng.randrange(1, 5000)) / 100, event_id=f"person-{i}-{n}"), day)


def synthetic(fold: Fold, seed: int, size: int) -> None:
    """The benchmark's stream (streams/synthetic.py): many small states, duplicates and corrections."""
    gen = EventGenerator(seed, subjects=max(size // 3, 1), malformed_rate=0.0, legacy_rate=0.0)
    day = dt.date(2024, 1, 2)
    for n in range(size):
        kind, rec = next(gen)
        fold.record(kind, rec, max(rec.get("decision_date") or day, day) + dt.timedelta(days=n % 5))


def sample_states(seed: int = SEED, organisations_n: int = 1500, persons_n: int = 300,
                  synthetic_n: int = 3000) -> list[bytes]:
    """The JSON of every state built from the inputs above, in subject order (deterministic)."""
    fold = Fold()
    rng = random.Random(seed)
    organisations(fold, rng, organisations_n, start=700_000)
    persons(fold, rng, persons_n)
    synthetic(fold, seed, synthetic_n)
    if fold.rejected > fold.n // 10:
        raise RuntimeError(f"{fold.rejected} of {fold.n} sample inputs rejected: the samples no longer fit the rules")
    return [orjson.dumps(fold.states[s]) for s in sorted(fold.states)]


def train(states: list[bytes], version: int) -> bytes:
    d = zstandard.train_dictionary(DICT_SIZE, states, k=K, d=D, dict_id=dict_id(version), threads=0)
    return d.as_bytes()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.train_state_dict", description=__doc__.split("\n\n")[0])
    from sinks.state_codec import CURRENT

    parser.add_argument("--version", type=int, default=CURRENT - dict_id(0),
                        help="dictionary version (file sinks/state-v<N>.zdict; default: the current one's)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", help="where to write it (default sinks/state-v<version>.zdict)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing: rebuild and compare with the sha256 in sinks/state_codec.py")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    states = sample_states(args.seed)
    data = train(states, args.version)
    digest = hashlib.sha256(data).hexdigest()
    sizes = sorted(len(s) for s in states)
    cctx = zstandard.ZstdCompressor(level=3, dict_data=zstandard.ZstdCompressionDict(data))
    packed = [len(cctx.compress(s)) for s in states]
    print(f"{len(states)} sample states, JSON mean {sum(sizes) / len(sizes):,.0f} B "
          f"(median {sizes[len(sizes) // 2]:,}, max {sizes[-1]:,}); "
          f"with the dictionary mean {sum(packed) / len(packed):,.0f} B; "
          f"{time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(f"dictionary id {dict_id(args.version):#x}, {len(data)} bytes, sha256 {digest}")
    if args.check:
        from sinks.state_codec import DICTIONARIES

        known = DICTIONARIES.get(dict_id(args.version))
        if known is None or known.sha256 != digest:
            print(f"differs from sinks/state_codec.py ({known.sha256 if known else 'no such dictionary'})",
                  file=sys.stderr)
            return 1
        return 0
    out = Path(args.out) if args.out else SINKS / f"state-v{args.version}.zdict"
    out.write_bytes(data)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
