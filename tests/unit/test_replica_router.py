"""The specialists' replica router's policy (no Ray cluster): power of two choices over
engine load, prefix affinity bounded by the imbalance threshold, bounded prefix memory;
and its config, refused with the YAML path when it names what does not exist."""

from __future__ import annotations

import random

import pytest

from orchestrator.serving.replica_router import EnginePolicy, prefix_key
from orchestrator.serving.wire import EngineCall


def payload(question: str, passages=(), earlier=(), specialist="general") -> EngineCall:
    messages = [*earlier, ["user", question]]
    return EngineCall.of(
        {"request_id": "r", "specialist": specialist, "messages": messages,
         "passages": list(passages), "max_tokens": 8}
    )  # fmt: skip


def test_prefix_key_is_what_the_prompt_shares_before_the_question():
    doc = [["guide.md", "Ray Serve routes requests to replicas."]]
    a = prefix_key(payload("What routes requests?", doc))
    assert a == prefix_key(payload("Who routes them?", doc))  # same passages, new question
    assert a != prefix_key(payload("What routes requests?", doc, specialist="code"))
    assert a != prefix_key(payload("What routes requests?", [["other.md", "x"]]))
    history = [["user", "hi"], ["assistant", "hello"]]
    assert prefix_key(payload("and then?", earlier=history)) is not None
    assert prefix_key(payload("a lone question")) is None  # only the system prompt to share
    assert prefix_key("not a call") is None


def test_the_less_loaded_of_two_drawn_replicas_comes_first():
    policy = EnginePolicy(rng=random.Random(0))
    loads = {"a": 3.0, "b": 1.0, "c": 7.0, "d": 0.5}
    for _ in range(50):
        ranks = policy.rank(list(loads), loads.__getitem__, None)
        assert len(ranks) == 2 and all(len(r) == 1 for r in ranks)
        first, second = ranks[0][0], ranks[1][0]
        assert loads[first] <= loads[second]
    one = policy.rank(["a"], loads.__getitem__, None)
    assert one == [["a"]] and policy.rank([], loads.__getitem__, None) == []


def test_load_counts_queue_engine_backlog_and_kv_cache():
    policy = EnginePolicy(kv_weight=4.0)
    assert policy.load(3, {}) == 3.0
    assert policy.load(None, {"waiting": 2, "kv_cache_usage": 0.5}) == 4.0
    assert policy.load(1, {"waiting": 0, "kv_cache_usage": 1.0, "running": 9}) == 5.0


def test_a_prefix_goes_home_while_load_is_even_and_elsewhere_when_it_is_not():
    policy = EnginePolicy(imbalance_threshold=2.0, rng=random.Random(1))
    key = "passages-of-guide.md"
    policy.routed(key, "b")
    even = {"a": 1.0, "b": 2.0, "c": 1.0}
    for _ in range(20):
        assert policy.rank(list(even), even.__getitem__, key)[0] == ["b"]
    assert policy.stats.by_prefix == 20
    hot = {"a": 1.0, "b": 5.0, "c": 1.0}  # b is 4 above the lighter: no affinity
    for _ in range(20):
        assert policy.rank(list(hot), hot.__getitem__, key)[0] != ["b"]
    assert policy.stats.prefix_overruled == 20
    gone = {"a": 0.0, "c": 0.0}  # b went away
    assert policy.rank(list(gone), gone.__getitem__, key)[0][0] in ("a", "c")


def test_prefix_memory_is_bounded_and_forgets_dead_replicas():
    policy = EnginePolicy(prefix_capacity=3)
    for i in range(5):
        policy.routed(f"k{i}", "a" if i % 2 else "b")
    assert list(policy.prefixes) == ["k2", "k3", "k4"]
    policy.routed("k2", "b")  # used again: most recent
    assert list(policy.prefixes) == ["k3", "k4", "k2"]
    policy.forget("b")
    assert list(policy.prefixes) == ["k3"]
    policy.routed(None, "a")  # nothing to remember
    assert list(policy.prefixes) == ["k3"]


def test_policy_refuses_bad_settings():
    with pytest.raises(ValueError, match="prefix_capacity >= 1"):
        EnginePolicy(prefix_capacity=0)
    with pytest.raises(ValueError, match="must be >= 0"):
        EnginePolicy(imbalance_threshold=-1)


def test_the_engine_call_shows_its_prompt_to_rays_request_routers():
    import pickle

    call = EngineCall.of(
        {
            "request_id": "r1",
            "specialist": "code",
            "passages": [("a.md", "passage")],
            "messages": [("user", "document"), ("assistant", "Noted."), ("user", "question")],
            "max_tokens": 8,
        }
    )
    assert [m["content"] for m in call.messages] == [
        "code", "passage", "document", "Noted.", "question",
    ]  # fmt: skip
    copy = pickle.loads(pickle.dumps(call))  # what Serve sends to the replica
    assert copy == call and prefix_key(copy) == prefix_key(call) is not None
