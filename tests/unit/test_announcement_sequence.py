"""agents/subject.py ``announcement_sequence``: each announcement of a subject above its previous one,
whatever the clock says (a worker whose clock is behind another's, a rebuilt state), and every change
of one announcement with the same number (docs/events.md, Folding)."""

from __future__ import annotations

from agents.subject import announcement_sequence
from domain import clock


def test_each_announcement_is_above_the_last_and_its_changes_share_it():
    now = clock.now_ms() * 1000
    changes = [{"change_id": "a"}, {"change_id": "b"}]
    state: dict = {}
    first = announcement_sequence(None, state, changes)
    assert first >= now and state["sequence"] == first and [c["sequence"] for c in changes] == [first, first]
    # a state written by a worker whose clock ran an hour ahead: still above it
    ahead = {"sequence": now + 3_600_000_000}
    after: dict = {}
    assert announcement_sequence(ahead, after, [{}]) == ahead["sequence"] + 1 == after["sequence"]
    # two announcements in one millisecond: still increasing
    again: dict = {}
    assert announcement_sequence(after, again, [{}]) == after["sequence"] + 1
