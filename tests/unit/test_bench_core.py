"""bench/core.py ``core_stages``: the worker's stages in process over the benchmark's own inputs, the
floor under the worker's CPU per event that ``make bench`` reports beside it."""

from __future__ import annotations

import gc

from bench.core import STAGES, core_stages
from bench.inputs import generate


def test_every_stage_is_timed_and_only_inputs_that_reach_the_step_count():
    inputs = generate(400, 200, seed=3)
    enabled = gc.isenabled()
    r = core_stages(inputs, round_every=50)
    assert set(r["core_stage_us"]) == set(STAGES)
    # 1% of the generated inputs are malformed (dead letters in the worker): not counted
    assert 380 <= r["core_inputs"] < 400
    assert all(v > 0 for k, v in r["core_stage_us"].items()), r
    assert abs(sum(r["core_stage_us"].values()) - r["core_us_per_event"]) < 0.1 * len(STAGES)
    assert gc.isenabled() == enabled  # the collector is given back as it was


def test_a_subject_seen_before_is_read_back_from_its_stored_state():
    # an input about a subject seen before decodes the subject's stored state first (as the worker
    # reads it from Redis or its cache): the more inputs per subject, the more of them load a state
    few = core_stages(generate(200, 200, seed=5))   # (nearly) one input per subject
    many = core_stages(generate(200, 20, seed=5))   # ten per subject
    assert many["core_stage_us"]["state_load"] > few["core_stage_us"]["state_load"]
