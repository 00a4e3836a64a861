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
    assert light.info["reason"] == "bad-magic" and "detail" not in light.info
    assert not hasattr(light, "value")


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
