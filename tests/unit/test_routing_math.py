import numpy as np
import pytest

from router_model import Router, SpecialistProfile, head_names, register_head
from router_model.heads import NearestCentroidHead, build_head, softmax


def clustered(seed=0, dim=16):
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=dim) * 10  # a large common direction, as LM states have
    centers = rng.normal(size=(3, dim))
    return shared, centers


def test_centroid_head_separates_clusters_despite_a_shared_offset():
    shared, centers = clustered()
    rng = np.random.default_rng(1)
    examples = [shared + c + 0.1 * rng.normal(size=(5, 16)) for c in centers]
    head = NearestCentroidHead(temperature=0.1)
    head.fit_examples(examples)
    queries = shared + centers + 0.1 * rng.normal(size=(3, 16))
    probs = head.predict(queries)
    assert probs.shape == (3, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert list(probs.argmax(axis=1)) == [0, 1, 2]


def test_softmax_is_stable_for_large_logits():
    out = softmax(np.array([[1000.0, 1001.0]]))
    np.testing.assert_allclose(out, [[1 / (1 + np.e), np.e / (1 + np.e)]])


def test_router_falls_back_below_the_confidence_floor():
    table = {
        "code q": [1, 0],
        "math q": [0, 1],
        "code": [1, 0],
        "math": [0, 1],
        "ambiguous": [1, 1],
    }

    def embed(texts):
        return np.array([table[t] for t in texts], dtype=np.float32)

    profiles = [
        SpecialistProfile("code", "code", ["code q"]),
        SpecialistProfile("math", "math", ["math q"]),
    ]
    head = NearestCentroidHead(temperature=0.05)
    head.fit_examples([embed(["code", "code q"]), embed(["math", "math q"])])
    router = Router(
        embed,
        head,
        profiles,
        fallback="math",
        min_confidence=0.9,
        head_name="nc",
    )
    sure = router.route("code q")
    assert sure.choice == "code" and sure.confidence > 0.99
    unsure = router.route("ambiguous")
    assert unsure.confidence == pytest.approx(0.5, abs=1e-3)
    assert unsure.choice == "math" and "below" in unsure.reason
    assert router.route_batch([]) == []


def test_head_registry_rejects_duplicates_and_unknown_names():
    assert "nearest_centroid" in head_names()
    with pytest.raises(ValueError, match="already registered"):
        register_head("nearest_centroid")(NearestCentroidHead)
    with pytest.raises(ValueError, match="unknown routing head"):
        build_head("nope")


def test_head_requires_examples():
    with pytest.raises(ValueError):
        NearestCentroidHead().fit_examples([np.zeros((0, 4))])
    with pytest.raises(ValueError, match="unknown parameter"):
        NearestCentroidHead(k=3)


def test_cost_tradeoff_moves_the_choice_to_the_cheaper_specialist():
    class Fixed(NearestCentroidHead):
        def predict(self, queries):
            return np.tile([0.8, 0.7], (len(queries), 1))

    profiles = [
        SpecialistProfile("big", "", ["x"], relative_cost=1.0),
        SpecialistProfile("small", "", ["y"], relative_cost=0.1),
    ]
    router = Router(lambda t: np.zeros((len(t), 2)), Fixed(), profiles, tradeoff=0.0)
    assert router.route("q").choice == "big"
    # 0.8 - 0.2 * 1.0 = 0.6 < 0.7 - 0.2 * 0.1 = 0.68
    cheap = router.route("q", tradeoff=0.2)
    assert cheap.choice == "small" and cheap.tradeoff == 0.2
    assert cheap.utilities == {"big": pytest.approx(0.6), "small": pytest.approx(0.68)}
    # 0.05 keeps the big one: 0.75 > 0.695
    assert router.route_batch(["a", "b"], [0.05, None])[0].choice == "big"
