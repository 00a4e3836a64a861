"""Tables aligned by display width (ops/tables.py): with Chinese names in them, every row's columns
start at the same display column in `report`, `list`, `lists`, `dlq list` and the demo summary."""

from __future__ import annotations

import pytest

from creditstream.cli import render_list_sizes, render_memberships
from ops.dlq import render_list
from ops.report import render_operator_report, render_summary
from ops.tables import clip, pad, table, width


def starts(line: str, cells: list[str], align: str = "") -> list[int]:
    """The display column each of ``cells`` starts at in ``line`` (found left to right); for a
    right-aligned column (``align[i] == ">"``) the column it ends at."""
    out, pos = [], 0
    for n, cell in enumerate(cells):
        i = line.index(cell, pos)
        right = n < len(align) and align[n] == ">"
        out.append(width(line[:i + len(cell)]) if right else width(line[:i]))
        pos = i + len(cell)
    return out


def assert_aligned(lines: list[str], rows: list[list[str]], align: str = "") -> None:
    """Every row's columns start (right-aligned ones: end) at the same display column."""
    assert len(lines) == len(rows)
    columns = [starts(line, cells, align) for line, cells in zip(lines, rows)]
    for c in columns[1:]:
        assert c == columns[0], "\n" + "\n".join(lines)


def test_width_pad_clip():
    assert width("abc") == 3
    assert width("上海市") == 6
    assert width("e\u0301") == 1  # combining accent
    assert width("a\x07b") == 2  # a control character takes no column
    assert width(12) == 2
    assert pad("上海", 6) == "上海  " and width(pad("上海", 6)) == 6
    assert pad("上海", 6, ">") == "  上海"
    assert pad("上海市生态环境局", 4) == "上海市生态环境局"  # too wide: as it is
    assert clip("上海市生态环境局", 9) == "上海市..." and width(clip("上海市生态环境局", 9)) == 9
    assert width(clip("上海市生态环境局", 10)) <= 10
    assert clip("abc", 3) == "abc" and clip("abcdef", 2) == "ab"


def test_table_aligns_wide_and_narrow_cells():
    rows = [("上海市生态环境局", 12, "x"), ("EPB", 3, "不良记录"), ("浦东新区", 1234567, "y")]
    lines = table(rows, header=("unit", "n", "note"), align="<><")
    assert_aligned(lines, [["unit", "n", "note"]] + [[r[0], str(r[1]), r[2]] for r in rows], "<><")
    assert all(line == line.rstrip() for line in lines)


UNITS = {
    "上海市生态环境局": {"records": 120, "late": 3, "on_time": 117, "late_share": 0.025},
    "Shanghai Market Supervision": {"records": 7, "late": 0, "on_time": 7, "late_share": 0.0},
    "浦东新区市场监督管理局执法大队第一中队（派出机构）": {
        "records": 45678, "late": 456, "on_time": 45222, "late_share": 0.01},
}


def test_report_units_table_with_chinese_unit_names():
    r = {"subjects": 3, "parked": 0, "dead_letters": {}, "units": UNITS, "domains": {}, "lists": {},
         "list_changes": {}, "outcomes": {},
         "feedback_overdue": {"workdays": 10, "as_of": "2024-06-01", "count": 2,
                              "sample": [{"subject": "91310115MA1K3YJ12X", "pushed": "2024-05-01",
                                          "change_id": "c1"},
                                         {"subject": "110**************X", "pushed": "2024-05-02",
                                          "change_id": "c2"}]}}
    text = render_operator_report(r)
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("source unit"))
    table_lines = lines[head:head + 1 + len(UNITS)]
    cells = [["source unit", "records", "late", "late %"]]
    for unit, u in UNITS.items():
        shown = clip(unit, 34)
        cells.append([shown, str(u["records"]), str(u["late"]), f"{100 * u['late_share']:.1f}%"])
    assert_aligned(table_lines, cells, "<>>>")
    # the long name is cut to 34 columns, not 34 characters
    assert width(clip("浦东新区市场监督管理局执法大队第一中队（派出机构）", 34)) <= 34
    sample = [line for line in lines if line.startswith("  ") and "2024-05-0" in line]
    assert_aligned(sample, [["91310115MA1K3YJ12X", "2024-05-01", "c1"], ["110**************X", "2024-05-02", "c2"]])


def test_demo_summary_with_chinese_subject_names():
    subjects = [
        {"id": "91310115MA1K3YJ12X", "name": "上海某某环保科技有限公司", "records": 3,
         "by_status": {"active": 2, "revoked": 1}, "flags": ["escalated"]},
        {"id": "110**************X", "name": "张三", "records": 12, "by_status": {"active": 12},
         "flags": ["court_debtor"]},
        {"id": "91310000MA1FL00001", "name": "ACME Ltd", "records": 1, "by_status": {"deleted": 1}, "flags": []},
    ]
    s = {"subjects": subjects, "outcomes": {}, "lists": {}, "list_changes": {}, "parked": [], "dead_letters": {}}
    lines = render_summary(s).splitlines()[1:1 + 1 + len(subjects)]
    assert_aligned(lines[:3], [["subject", "records", "active/revoked/deleted", "name"],
                               ["91310115MA1K3YJ12X", "3", "2/1/0", "上海某某环保科技有限公司"],
                               ["110**************X", "12", "12/0/0", "张三"]], "<><<")
    # the flags after the names line up too
    assert starts(lines[1], ["[escalated]"]) == starts(lines[2], ["[court_debtor]"])


def test_dlq_list_with_chinese_reasons_and_details():
    def letter(ref, reason, detail, topic="creditstream.penalty"):
        return {"ref": ref, "dead_lettered_at": 1716256800000, "reason": reason, "source_topic": topic,
                "source_partition": 0, "source_offset": 7, "redriven": None, "redriven_from": None,
                "detail": detail}

    letters = [letter("0:1", "missing-field", "field 处罚决定书文号 is empty"),
               letter("0:12", "字段缺失", "处罚机关：上海市生态环境局"),
               letter("3:1024", "bad-magic", "first byte 0x7b")]
    lines = render_list(letters).splitlines()
    cells = [["ref", "dead-lettered", "reason", "source", "re-driven", "detail"]]
    cells += [[d["ref"], "2024-05-21T10:00:00+08:00", d["reason"], "creditstream.penalty/0/7", d["detail"]]
              for d in letters]
    got = [starts(line, c) for line, c in zip(lines, cells)]
    for g in got[1:]:  # the rows have no re-drive: compare the columns they have
        assert g[:4] == got[0][:4] and g[4] == got[0][5], "\n".join(lines)


@pytest.mark.parametrize("sizes", [{"blacklist:environment": 12, "blacklist:环境": 3456, "红名单": 7}])
def test_list_sizes(sizes):
    lines = render_list_sizes(sizes)
    assert_aligned(lines, [[name, str(n), "member(s)"] for name, n in sizes.items()], "<><")


def test_lists_memberships():
    lists = {"blacklist:环境保护": {"since": "2024-05-01", "until": "2027-05-01", "causes": ["a"]},
             "court_debtor": {"since": "2024-01-02", "until": None, "causes": ["a", "b"], "suspended": True}}
    lines = render_memberships(lists)
    assert_aligned(lines, [["blacklist:环境保护", "since 2024-05-01", "until 2027-05-01", "causes 1"],
                           ["court_debtor", "since 2024-01-02", "until no fixed end", "causes 2"]])
