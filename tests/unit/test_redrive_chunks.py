"""ops/dlq.py ``_whole``: a selection's light entries read back whole, chunk by chunk; one gone from
the dead-letter topic since it was selected (its retention) is left out, its item saying so."""

from __future__ import annotations

from ops import dlq
from ops.dead_letters import DeadLetter, Selected


def letter(partition: int, offset: int) -> DeadLetter:
    headers = [("dlq.reason", b"bad-magic"), ("dlq.detail", b"x" * 200), ("dlq.source.topic", b"cs.penalty"),
               ("dlq.source.partition", b"1"), ("dlq.source.offset", str(offset).encode())]
    return DeadLetter.of(type("Msg", (), {"partition": partition, "offset": offset, "timestamp": 5, "key": b"k",
                                          "value": b"\x00" * 1000, "headers": headers})())


def test_a_selected_entry_holds_what_the_selection_decides_on_not_the_bytes():
    whole = letter(2, 9)
    light = Selected.of(whole)
    assert (light.ref, light.source_topic, light.source_place) == (whole.ref, whole.source_topic, whole.source_place)
    assert (light.reason, light.source_partition, light.source_offset) == ("bad-magic", 1, 9)
    assert not hasattr(light, "value") and not hasattr(light, "info") and not hasattr(light, "__dict__")
    # the strings naming a topic and a reason are one object for all the letters of a selection
    other = Selected.of(letter(3, 10))
    assert other.source_topic is light.source_topic and other.reason is light.reason


def test_chunks_never_split_the_letters_of_one_message():
    """A message dead-lettered twice lands in one chunk, so that the one re-driven stands for both."""
    letters = sorted([letter(0, o) for o in (1, 2, 3)] + [letter(1, 2), letter(1, 3)],
                     key=lambda x: (x.source_topic, x.source_partition, x.source_offset, x.partition, x.offset))
    # source offsets 1, 2, 2, 3, 3
    assert dlq._chunk_bounds(letters, 2) == [(0, 3), (3, 5)]
    assert dlq._chunk_bounds(letters, 1) == [(0, 1), (1, 3), (3, 5)]
    assert dlq._chunk_bounds(letters, 10) == [(0, 5)]
    assert dlq._chunk_bounds([], 3) == []


def test_one_message_dead_lettered_twice_is_re_driven_by_the_letter_re_driven_before():
    twice = [letter(0, 2), letter(1, 2)]  # the same source message, dead-lettered on two partitions
    decided, todo = dlq._decide(twice, {}, by_ref=False, force=False)
    assert [x.ref for x, _ in todo] == ["0:2"] and decided[1].action == "skipped" and "0:2" in decided[1].note
    decided, todo = dlq._decide(twice, {"1:2": {"at": "then", "by": "op"}}, by_ref=False, force=True)
    assert [x.ref for x, _ in todo] == ["1:2"] and decided[0].action == "skipped"
    # named by their refs, both go
    decided, todo = dlq._decide(twice, {}, by_ref=True, force=False)
    assert [x.ref for x, _ in todo] == ["0:2", "1:2"]


def test_a_report_handed_its_items_keeps_only_the_counts():
    seen = []
    report = dlq.RedriveReport(dry_run=False, emit=seen.append)
    for action in ("redriven", "skipped", "redriven", "original-gone"):
        report.add(dlq.Redriven("0:1", action))
    assert [i.action for i in seen] == ["redriven", "skipped", "redriven", "original-gone"] and not report.items
    assert (report.count("redriven"), report.total, report.failed) == (2, 4, True)
    assert report.render_end()[0].startswith("re-drove 2, skipped 1")
    assert dlq.RedriveReport(dry_run=True).render_end() == ["no dead letter matches"]


async def test_the_chunk_is_read_back_whole_and_a_letter_gone_meanwhile_is_said(monkeypatch):
    kept, gone = letter(0, 1), letter(0, 2)
    asked = []

    async def fetch(settings, places):
        asked.append(places)
        return {(0, 1): kept}

    monkeypatch.setattr(dlq, "_fetch", fetch)
    items = [dlq.Redriven(kept.ref, ""), dlq.Redriven(gone.ref, "")]
    out = await dlq._whole(None, [(Selected.of(kept), items[0]), (Selected.of(gone), items[1])])
    assert asked == [[(0, 1), (0, 2)]]  # one read for the chunk
    assert out == [(kept, items[0])]
    assert items[1].action == "not-found" and "retention" in items[1].note
