"""The latency run's windows (bench/bench.py ``latency_windows``): samples grouped by when their
input was sent, so that a latency climbing through a run shows (docs/broker.md 10)."""

from bench.bench import latency_windows


def test_samples_are_grouped_by_the_window_their_input_was_sent_in():
    start = 1_000_000
    samples = [(start + 100 * i, 10.0 + i // 20) for i in range(60)]  # 6 s, latency +1 ms every 2 s
    windows = latency_windows(samples, start)
    assert [w["from_s"] for w in windows] == [0.0, 2.0, 4.0]
    assert [w["samples"] for w in windows] == [20, 20, 20]
    assert [w["p50_ms"] for w in windows] == [10.0, 11.0, 12.0]


def test_the_p99_of_a_window_is_its_tail():
    start = 0
    samples = [(i, 5.0) for i in range(98)] + [(98, 500.0), (99, 400.0)] + [(100, 5.0)] * 100
    (window,) = latency_windows(samples, start)  # 2 of 200 are slow: the 99th percentile is one of them
    assert window["samples"] == 200 and window["p50_ms"] == 5.0 and window["p99_ms"] == 400.0


def test_samples_sent_before_the_start_fall_in_the_first_window():
    assert latency_windows([(900, 1.0), (1_500, 2.0)], 1_000)[0]["samples"] == 2


def test_cpu_seconds_counts_a_process_s_own_work_not_its_sleep():
    import os
    import time

    from bench.bench import busy
    from ops.processes import cpu_seconds

    before = cpu_seconds(os.getpid())
    t = time.process_time()
    while time.process_time() - t < 0.2:  # work
        pass
    time.sleep(0.2)  # and a rest, not counted
    used = cpu_seconds(os.getpid()) - before
    assert 0.15 <= used <= 0.35
    assert cpu_seconds(2**22 + 12345) is None  # no such process
    assert busy(0.876) == "88%" and busy(None) == "n/a"
