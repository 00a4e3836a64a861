"""The benchmark's table (bench/bench.py ``render``): the figures of the JSON line, as read."""

from __future__ import annotations

from bench.bench import median_of, median_run, render, topics_of_runs_done, two_workers_ceiling

RESULT = {  # the keys render reads, from a `make bench BROKER=kafka SIZE=100000 RUNS=1` line
    "size": 100000, "runs": 1, "broker": "kafka", "rules_core": "compiled", "subjects": 50000, "hot_share": 0.0,
    "pipeline_events_per_s": 4495.0, "pipeline_runs_events_per_s": [4495.0],
    "pipeline_worker_cpu_us_per_event": 213.0, "core_us_per_event": 156.0,
    "faust_forward_events_per_s": 6314.0, "raw_forward_events_per_s": 213079.0,
    "ratio_vs_faust_forward": 0.712, "ratio_vs_raw_forward": 0.021, "offered_rate": 1000,
    "latency_p50_ms": 42.8, "latency_p99_ms": 88.8, "latency_worker_busy": 0.44,
    "replay_events_per_s": 12850.0, "replay_jobs": 2, "startup_s": 0.86, "restart_after_kill_s": 2.02,
    "peak_rss_mib": 287.0, "two_workers_events_per_s": 7988.0, "two_workers_ratio": 1.78, "two_workers_busy": 0.80,
    "pipeline_broker_busy": 0.175, "pipeline_redis_busy": 0.044,
    "two_workers_broker_busy": 0.156, "two_workers_redis_busy": 0.073,
    "redis_bytes_per_subject": 1092.0, "check_offered_rate": 500, "check_p50_ms": 1.49, "check_p99_ms": 2.99,
    "hot_subject_us_per_event_first": 131.0, "hot_subject_us_per_event_last": 166.0,
    "hot_subject_us_per_event_by_thousand": [112.9, 107.0, 121.4, 130.0, 145.2],
    "hot_subject_head_bytes_by_thousand": [341, 350, 358, 368, 372],
}


def _row(table: str, label: str) -> str:
    [line] = [line for line in table.splitlines() if line.strip().startswith(label)]
    return line


def test_the_table_shows_the_broker_and_redis_beside_the_workers():
    table = render(RESULT)
    assert "18% / 4%" in _row(table, "broker / Redis busy, 1 worker")
    assert "16% / 7%" in _row(table, "broker / Redis busy, 2 workers")
    assert "80%" in _row(table, "each worker busy")


def test_two_workers_ceiling_is_the_cores_over_what_one_worker_keeps_busy():
    # one worker 98% of a core, the broker 8%, Redis 4%: two need 2.2 cores of 2
    assert round(two_workers_ceiling(2, 0.98, 0.08, 0.04), 3) == 1.818
    assert two_workers_ceiling(8, 0.98, 0.08, 0.04) == 2.0  # more cores than two workers need
    assert two_workers_ceiling(2, 0.98, None, 0.04) is None
    assert two_workers_ceiling(None, 0.98, 0.08, 0.04) is None
    table = render({**RESULT, "cpus": 2, "two_workers_ceiling": 1.818})
    assert "1.82x" in _row(table, "this machine's ceiling")
    assert "2 cores in all" in _row(table, "each worker busy")
    assert "this machine's ceiling" not in render(RESULT)  # a result of before: no such row


def test_a_share_not_measured_is_shown_as_such():
    table = render({**RESULT, "pipeline_broker_busy": None, "two_workers_redis_busy": None})
    assert "n/a / 4%" in _row(table, "broker / Redis busy, 1 worker")
    assert "16% / n/a" in _row(table, "broker / Redis busy, 2 workers")


def test_the_median_of_the_runs_leaves_out_runs_without_a_figure():
    assert median_of([0.2, None, 0.1, 0.3]) == 0.2
    assert median_of([None, None]) is None


def test_two_workers_are_the_median_of_their_runs():
    runs = [{"events_per_s": 6273.0, "worker_busy": 0.73}, {"events_per_s": 8654.0, "worker_busy": 0.81},
            {"events_per_s": 7991.0, "worker_busy": 0.79}]
    assert median_run(runs) == runs[2]  # its busy share with it, not another run's
    table = render({**RESULT, "two_workers_runs_events_per_s": [r["events_per_s"] for r in runs]})
    assert "6,273, 8,654, 7,991" in _row(table, "two-worker runs")
    assert "two-worker runs" not in render(RESULT)  # a result of before: no such row


def test_the_hot_subject_shows_its_cost_per_thousand_inputs():
    assert "113 / 107 / 121 / 130 / 145 us" in _row(render(RESULT), "per 1,000 inputs")


def test_the_hot_subject_shows_its_stored_head_every_thousand_inputs():
    assert "341 / 350 / 358 / 368 / 372 B" in _row(render(RESULT), "stored head every 1,000 inputs")


def test_the_scale_table_shows_the_servers_beside_the_worker():
    from bench.bench import render_scale

    row = {"subjects": 1_000_000, "events": 2_000_000, "events_per_s": 3502.0, "us_per_event": 285.5,
           "peak_rss_mib": 583.0, "worker_cpu_us_per_event": 268.9, "worker_busy": 0.94, "subjects_stored": 840287,
           "redis_bytes_per_subject": 1089.2, "redis_rewrites": 8, "broker_busy": 0.123, "redis_busy": 0.31}
    [line] = [line for line in render_scale({"broker": "tansu", "scale": [row]}).splitlines()
              if line.strip().startswith("1,000,000")]
    assert "12% / 31%" in line and line.rstrip().endswith("8")


def test_between_runs_on_apache_kafka_only_the_topics_of_this_benchmarks_runs_done_go():
    names = ["b17p0.penalty-records", "b17p0.subject-events", "b17p1.penalty-records", "b17f0.bench-source",
             "b171p0.x", "creditstream.penalty-records", "__consumer_offsets", "b16p1.penalty-records"]
    # run 1's stay (the check API's run reads them); another benchmark's (b16, b171) and the product's stay
    assert topics_of_runs_done(names, "b17", keep="b17p0.") == ["b17f0.bench-source", "b17p1.penalty-records"]


def test_with_several_rounds_each_ratio_is_also_shown_within_its_round():
    rounds = {**RESULT, "runs": 3, "pipeline_runs_events_per_s": [4495.0, 3900.0, 4600.0],
              "ratio_vs_faust_forward_by_round": [0.712, 0.80, 0.745],
              "replay_runs_events_per_s": [12850.0, 11000.0, 13900.0], "replay_ratio_by_round": [2.86, 2.82, 3.02],
              "two_workers_ratio_by_round": [1.78, 1.61, 1.83]}
    table = render(rounds)
    lines = table.splitlines()
    by_round = [i for i, line in enumerate(lines) if line.strip().startswith("by round")]
    assert [lines[i].split()[2:5] for i in by_round] == [["0.71x,", "0.80x,", "0.74x"], ["2.86x,", "2.82x,", "3.02x"],
                                                         ["1.78x,", "1.61x,", "1.83x"]]
    # each under its own figure: the Faust ratio, the replay, the two workers
    assert lines[by_round[0] - 1].strip().startswith("pipeline / Faust forward")
    assert lines[by_round[1] - 1].strip().startswith("replay runs")
    assert "12,850, 11,000, 13,900" in _row(table, "replay runs")
    assert lines[by_round[2] - 1].strip().startswith("two-worker runs") or \
        lines[by_round[2] - 1].strip().startswith("two workers")
    one = render(RESULT)  # one round (or a result of before): no such rows
    assert "by round" not in one and "replay runs" not in one


def test_the_ceiling_table_splits_the_workers_cpu_into_plumbing_ingest_and_subject_stage():
    from bench.bench import render_ceiling

    def run(name, stand_in, rate, cpu):
        return {"run": name, "stand_in": stand_in, "events_per_s": rate, "worker_cpu_us_per_event": cpu,
                "ratio_vs_faust_forward": rate / 5000, "ratio_vs_faust_forward_by_round": [rate / 5000]}

    r = {"broker": "kafka", "size": 40000, "runs": 1, "faust_forward_events_per_s": 5000.0,
         "ceiling": [run("pipeline", None, 4500.0, 210.0), run("subject stood in for", "subject", 11000.0, 88.0),
                     run("domain stood in for", "domain", 18500.0, 51.0)]}
    text = render_ceiling(r)
    assert "the Faust forward 5,000/s" in text
    [line] = [x for x in text.splitlines() if x.strip().startswith("domain stood in for")]
    assert line.split()[4:6] == ["18,500", "3.70"]
    assert text.splitlines()[-1].endswith("the plumbing (Avro decoding included) 51 us, ingest's domain work 37 us, "
                                          "the subject stage's 122 us")
    # a run without a CPU figure: no split is claimed
    r["ceiling"][1]["worker_cpu_us_per_event"] = None
    assert "plumbing" not in render_ceiling(r)


def test_a_scale_run_with_stand_ins_says_so():
    from bench.bench import render_scale

    row = {"subjects": 10000, "stand_in": "domain", "events_per_s": 19000.0, "us_per_event": 52.6,
           "worker_cpu_us_per_event": 49.0, "worker_busy": 0.93, "peak_rss_mib": 106.0,
           "redis_bytes_per_subject": 485.0, "broker_busy": 0.12, "redis_busy": 0.08, "redis_rewrites": 0}
    assert "domain stood in for (bench/ceiling.py)" in render_scale({"broker": "tansu", "scale": [row]})
    assert "stood in" not in render_scale({"broker": "tansu", "scale": [{**row, "stand_in": None}]})
