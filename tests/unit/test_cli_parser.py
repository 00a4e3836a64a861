"""creditstream/cli_parser.py: numeric options out of their range are usage errors (exit 2, with
argparse's message; README and cli.py: 2 is usage), as the API refuses ``limit=0`` (400)."""

from __future__ import annotations

import pytest

from creditstream import cli


def parse(argv: list[str]):
    return cli.build_parser().parse_args(argv)


@pytest.mark.parametrize("argv, message", [
    (["list", "court_debtor", "--count", "0"], "--count: 0 is out of range: must be 1 or more"),
    (["list", "court_debtor", "--count", "-5"], "--count: -5 is out of range: must be 1 or more"),
    (["list", "court_debtor", "--count", "ten"], "--count: invalid int value: 'ten'"),
    (["list", "court_debtor", "--cursor", "-1"], "--cursor: -1 is out of range: must be 0 or more"),
    (["worker", "--web-port", "70000"], "--web-port"),
    (["worker", "--web-port", "-1"], "--web-port"),
    (["api", "--port", "65536"], "--port"),
    (["api", "--port", "0"], "--port: 0 is out of range: must be between 1 and 65535"),  # bound 6066 instead
    (["worker", "--web-port", "0"], "--web-port"),
    (["worker", "--wait", "-1"], "--wait"),
    (["api", "--wait", "nan"], "--wait"),
    (["api", "--wait", "inf"], "--wait"),
    (["replay", "--jobs", "0"], "--jobs: 0 is out of range: must be 1 or more"),
])
def test_out_of_range_numbers_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("usage: creditstream")


def test_main_exits_2_before_reading_any_settings(capsys):
    """`creditstream list court_debtor --count 0`: exit 2 (usage), not 1 (the list has no members)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(["list", "court_debtor", "--count", "0"])
    assert exc.value.code == 2 and "has no members" not in capsys.readouterr().err


def test_numbers_in_range_parse():
    args = parse(["list", "court_debtor", "--count", "100000", "--cursor", "0"])  # a whole list in one page
    assert (args.count, args.cursor) == (100000, 0)
    args = parse(["list", "court_debtor", "--count", "1", "--cursor", "123456789012345678901"])
    assert (args.count, args.cursor) == (1, 123456789012345678901)
    assert parse(["list"]).count == 100 and parse(["list"]).cursor == 0
    assert (parse(["worker"]).web_port, parse(["worker"]).wait) == (None, 30.0)
    assert (parse(["worker", "--web-port", "65535", "--wait", "0"]).web_port, parse(["api", "--wait", "0.5"]).wait) \
        == (65535, 0.5)
    assert parse(["replay", "--jobs", "1"]).jobs == 1 and parse(["replay"]).jobs is None


@pytest.mark.parametrize("argv, agent, as_json", [
    (["positions"], None, False),
    (["positions", "--json"], None, True),
    (["positions", "show", "--agent", "subject", "--json"], "subject", True),
    # seen: given before `show`, --agent and --json were replaced by show's own defaults, silently
    (["positions", "--agent", "registry", "show"], "registry", False),
    (["positions", "--json", "show"], None, True),
    (["positions", "--json", "show", "--agent", "ingest"], "ingest", True),
])
def test_positions_show_options_count_before_and_after_show(argv, agent, as_json):
    args = parse(argv)
    assert (args.show_agent, args.json) == (agent, as_json)


@pytest.mark.parametrize("argv", [
    ["positions", "--agent", "registry", "move", "ingest", "--to-end"],  # seen: moved ingest's, silently
    ["positions", "--json", "move", "ingest", "--to-end"],
])
def test_positions_show_options_with_move_are_usage_errors(argv, capsys):
    assert cli.main(argv) == 2
    assert "go with `positions show`" in capsys.readouterr().err


@pytest.mark.parametrize("argv, usage", [
    (["report", "--bogus"], "usage: creditstream report [-h] [--json]"),
    (["replay", "--verfy"], "usage: creditstream replay [-h]"),
])
def test_an_option_a_command_does_not_know_is_refused_by_that_command(argv, usage, capsys):
    # seen: `report --bogus` showed the top-level usage (every command), not report's
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and f"creditstream {argv[0]}: error: unrecognized arguments: {argv[1]}" in err
