"""Plain-text tables aligned by *display width*, not by character count.

A Chinese character (a unit name such as 上海市生态环境局, a subject's name) takes two columns on a
terminal, so ``f"{name:<20}"`` misaligns every column after it. :func:`width` measures text as a
terminal shows it (``wcwidth``: wide East Asian characters 2, combining marks and control
characters 0); :func:`pad` and :func:`clip` use it, and :func:`table` lays out rows so that every
column starts at the same display column in every row.

Every table the command line prints goes through here: ``creditstream report``, ``list``,
``lists``, ``topics``, ``dlq list`` / ``dlq redrive`` and the demo summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from wcwidth import wcswidth, wcwidth

__all__ = ["width", "pad", "clip", "table"]

ELLIPSIS = "..."


def width(text: object) -> int:
    """Columns ``text`` takes on a terminal (characters ``wcwidth`` cannot place count 0)."""
    s = str(text)
    if s.isascii() and s.isprintable():
        return len(s)
    w = wcswidth(s)
    if w >= 0:
        return w
    return sum(max(wcwidth(ch), 0) for ch in s)


def clip(text: object, limit: int) -> str:
    """``text`` cut to at most ``limit`` columns, ending in ``...`` when something was cut (when
    ``limit`` leaves room for it)."""
    s = str(text)
    if width(s) <= limit:
        return s
    marker = ELLIPSIS if limit > len(ELLIPSIS) else ""
    room = limit - len(marker)
    out, used = [], 0
    for ch in s:
        w = max(wcwidth(ch), 0)
        if used + w > room:
            break
        out.append(ch)
        used += w
    return "".join(out) + marker


def pad(text: object, columns: int, align: str = "<") -> str:
    """``text`` padded with spaces to ``columns`` display columns: ``<`` left, ``>`` right, ``^``
    centred. Text wider than ``columns`` is returned as it is (use :func:`clip` first)."""
    s = str(text)
    gap = columns - width(s)
    if gap <= 0:
        return s
    if align == ">":
        return " " * gap + s
    if align == "^":
        return " " * (gap // 2) + s + " " * (gap - gap // 2)
    return s + " " * gap


def table(rows: Iterable[Sequence[object]], *, header: Sequence[object] | None = None, align: str = "",
          min_widths: Sequence[int] = (), max_widths: Sequence[int | None] = (), sep: str = "  ",
          indent: str = "") -> list[str]:
    """The lines of a table: every column as wide as its widest cell (at least ``min_widths[i]``,
    cells cut to ``max_widths[i]``), ``align[i]`` ``<`` (default), ``>`` or ``^``, columns
    separated by ``sep``. The last column is not padded (no trailing spaces)."""
    body = [[str(c) for c in row] for row in rows]
    head = [str(c) for c in header] if header is not None else None
    all_rows = ([head] if head is not None else []) + body
    if not all_rows:
        return []
    n = max(len(r) for r in all_rows)
    for r in all_rows:
        r.extend([""] * (n - len(r)))
    for i in range(n):
        limit = max_widths[i] if i < len(max_widths) else None
        if limit is not None:
            for r in all_rows:
                r[i] = clip(r[i], limit)
    widths = [max([width(r[i]) for r in all_rows] + [min_widths[i] if i < len(min_widths) else 0])
              for i in range(n)]
    lines = []
    for r in all_rows:
        cells = [pad(r[i], widths[i], align[i] if i < len(align) else "<") for i in range(n - 1)]
        last_align = align[n - 1] if n - 1 < len(align) else "<"
        cells.append(pad(r[n - 1], widths[n - 1], last_align) if last_align != "<" else r[n - 1])
        lines.append((indent + sep.join(cells)).rstrip())
    return lines
