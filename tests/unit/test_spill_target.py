"""Spill-over's choice: the next best by utility, never a specialist on the engine that
was just found full (the specialists of one engine share one queue), nor one predicted too low."""

from __future__ import annotations

from orchestrator.serving.answering import spill_target

ROUTING = {
    "utilities": {"code": 0.9, "math": 0.8, "general": 0.5},
    "scores": {"code": 0.9, "math": 0.8, "general": 0.5},
}
ALL = {"general": 1, "code": 1, "math": 1}


def test_the_next_best_on_another_engine():
    apart = {"general": "specialist-general", "code": "specialist-code", "math": "specialist-math"}
    assert spill_target(ROUTING, ["code"], apart, ALL, 0.0) == "math"
    shared = {"general": "engine-big", "code": "engine-gemma", "math": "engine-gemma"}
    assert spill_target(ROUTING, ["code"], shared, ALL, 0.0) == "general"  # not math: same queue
    assert spill_target(ROUTING, ["code", "general"], shared, ALL, 0.0) is None


def test_too_low_a_prediction_or_a_missing_specialist_is_never_the_target():
    assert spill_target(ROUTING, ["code"], {}, ALL, 0.85) is None
    assert spill_target(ROUTING, ["code"], {}, {"code": 1, "general": 1}, 0.0) == "general"
    assert spill_target({"scores": {"a": 0.2, "b": 0.7}}, ["a"], {}, {"a": 1, "b": 1}, 0.0) == "b"


def test_a_utility_margin_bounds_how_much_worse_the_target_may_be():
    apart = {}
    assert spill_target(ROUTING, ["code"], apart, ALL, 0.0, 0.1) == "math"  # 0.8: within 0.1
    assert spill_target(ROUTING, ["code"], apart, ALL, 0.0, 0.05) is None  # 0.8 is 0.1 below
    # measured from the first choice, not from the last one tried
    assert spill_target(ROUTING, ["code", "math"], apart, ALL, 0.0, 0.3) is None
    assert spill_target(ROUTING, ["code", "math"], apart, ALL, 0.0, 0.4) == "general"
    assert spill_target(ROUTING, ["code"], apart, ALL, 0.0, None) == "math"  # no margin: any
