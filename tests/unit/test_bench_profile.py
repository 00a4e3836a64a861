"""The benchmark's profile summary charges each py-spy sample to the area of its innermost known frame."""

from bench.profile import summarize


def test_samples_are_charged_to_the_innermost_area():
    raw = "\n".join([
        "process 1:\"python\";run (streams/runner.py:115);process (agents/ingest.py:124);"
        "normalise_event (domain/validate.py:741);sub (re/__init__.py:185) 30",
        "run (streams/runner.py:115);begin (sinks/redis_state.py:100);read_response (redis/_parsers/resp2.py:15) 10",
        "run (streams/runner.py:115);begin (sinks/redis_state.py:100) 50",
        "run (streams/runner.py:169) 10",
        "garbage without a count",
    ])
    s = summarize(raw)
    assert s["samples"] == 100
    assert s["areas"] == {"state: load / dump / Redis transaction": 0.5, "rules core: validate and normalise": 0.3,
                          "Redis client": 0.1, "runner": 0.1}
    assert s["functions"][0] == ("begin (redis_state.py)", 0.5)
