"""Origins compared as text sort by partition and offset as numbers (domain/events.py
``sortable_origin``): where a mapping's version or an identity key ties on date and stamp, the later
input in the log wins at offsets 9 and 10 as at 1 and 2 (tests/integration/test_origin_order.py
shows it through a worker)."""

from __future__ import annotations

import itertools

from domain import events as ev
from domain.attach import mapping_version
from domain.state import IDENTITY_FORM, apply_record, new_state, sortable_origin, with_current_identity
from tests.builders import ORG, arrival, record


def test_partitions_and_offsets_sort_as_numbers():
    origins = ["reg/0/9", "reg/0/10", "reg/1/2", "reg/10/0", "reg/2/100"]
    assert sorted(origins, key=sortable_origin) == ["reg/0/9", "reg/0/10", "reg/1/2", "reg/2/100", "reg/10/0"]
    for origin in origins + ["link:91410100MA0000000X:penalty/3/12"]:
        assert sortable_origin(sortable_origin(origin)) == sortable_origin(origin)  # the same text, made sortable again
    assert sortable_origin("link:91410100MA0000000X:penalty/3/12") == "link:91410100MA0000000X:penalty/01:3/02:12"
    for other in ("tick:x:2026-01-01", "", "penalty/a/1", "penalty/1/-1", "bench/9", "penalty/1/" + "9" * 100):
        assert sortable_origin(other) == other


def test_a_mapping_from_a_later_offset_outranks_one_from_an_earlier():
    for earlier, later in [("reg/0/9", "reg/0/10"), ("reg/0/99", "reg/0/100"), ("reg/3/1", "reg/12/0")]:
        versions = [mapping_version(registration=True, dated="2024-03-01", stamp_ms=1, origin=o)
                    for o in (earlier, later)]
        assert versions[0] < versions[1], versions
    # the date and the stamp still decide first
    assert mapping_version(registration=True, dated="2024-03-02", stamp_ms=1, origin="reg/0/9") > \
        mapping_version(registration=True, dated="2024-03-01", stamp_ms=1, origin="reg/0/10")


def _registration(name: str) -> dict:
    return dict(record("registration", "", "2007-09-12"), kind="registration", subject_name=name,
                subject_category="legal_entity", ids={"uscc": ORG})


def test_a_later_registration_names_the_subject_in_every_arrival_order():
    same_stamp = arrival("2007-09-12")
    inputs = [("reg/0/9", "郑州市旧名称商贸有限公司"), ("reg/0/10", "郑州市新名称商贸有限公司")]
    for order in itertools.permutations(inputs):
        state = new_state(ORG, "uscc")
        for origin, name in order:
            state, _ = apply_record(state, ev.of_record(ORG, "uscc", origin, _registration(name), same_stamp))
        assert state["names"][-1] == "郑州市新名称商贸有限公司", order


def _as_it_came(sortable: str) -> str:
    head, _, offset = sortable.rpartition("/")
    topic, _, partition = head.rpartition("/")
    return f"{topic}/{partition.partition(':')[2]}/{offset.partition(':')[2]}"


def test_a_file_of_identity_form_2_is_derived_again_with_sortable_keys():
    """A file kept before the origins were made sortable: its registrations' keys are made so when its
    identity is derived again, and nothing else is added to what it keeps."""
    same_stamp = arrival("2007-09-12")
    state = new_state(ORG, "uscc")
    for origin, name in [("reg/0/10", "郑州市新名称商贸有限公司"), ("reg/0/9", "郑州市旧名称商贸有限公司")]:
        state, _ = apply_record(state, ev.of_record(ORG, "uscc", origin, _registration(name), same_stamp))
    # as form 2 kept it: origins as they came, so the name at offset 9 ranked last
    kept = dict(state, names=["郑州市新名称商贸有限公司", "郑州市旧名称商贸有限公司"],
                identity_at={**state["identity_at"], "v": 2},
                registered={d: [[*at[:2], _as_it_came(at[2]), *at[3:]], ident]
                            for d, (at, ident) in state["registered"].items()})
    assert {at[2] for at, _ in kept["registered"].values()} == {"reg/0/10", "reg/0/9"}
    derived = with_current_identity(kept)
    assert derived["identity_at"]["v"] == IDENTITY_FORM
    assert derived["names"][-1] == "郑州市新名称商贸有限公司"
    assert derived["registered"] == state["registered"]  # sortable, and no entry added
