"""ops/dlq.py ``ListPrinter``: `dlq list` printed a page at a time reads as the listing printed whole
(``render_list``): the same columns, the same widths, the same last line."""

from __future__ import annotations

import pytest

from ops import dlq


def summary(n: int, *, reason: str = "bad-magic", topic: str = "cs.penalty", redriven: dict | None = None,
            redriven_from: str | None = None) -> dict:
    return {"ref": f"{n % 3}:{n * 1000}", "dead_lettered_at": 1_764_900_000_000 + n, "reason": reason,
            "detail": f"detail {n} " + "x" * (n * 7), "source_topic": topic, "source_partition": n % 4,
            "source_offset": n * 10, "redriven": redriven, "redriven_from": redriven_from}


LETTERS = [
    summary(1),
    summary(2, reason="a-reason-longer-than-twenty-columns", redriven={"at": "2026-12-05T10:00:00+08:00"}),
    summary(3, topic="a.topic.name.much.longer.than.the.source.column.allows", redriven_from="dead-letters/1/2"),
    summary(4, redriven={"at": "2026-12-05T10:00:00+08:00", "fixed": True}),
    summary(5, reason="原因-中文"),
    summary(600),
]


@pytest.mark.parametrize("page", [1, 2, 4, 100])
def test_pages_print_the_lines_of_the_whole_listing(page):
    lines: list[str] = []
    printer = dlq.ListPrinter([dict(d, redriven=None) for d in LETTERS], lines.append)
    for start in range(0, len(LETTERS), page):
        printer.page(LETTERS[start:start + page])
    printer.end()
    assert lines == dlq.render_list(LETTERS).splitlines()
    assert lines[-1] == "6 dead letter(s), 2 re-driven"


def test_no_letter_prints_what_the_whole_listing_prints():
    lines: list[str] = []
    printer = dlq.ListPrinter([], lines.append)
    printer.end()
    assert lines == [dlq.render_list([])]
