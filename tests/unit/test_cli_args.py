"""`--scores` takes several values after one flag as well as the flag repeated."""

from __future__ import annotations

from orchestrator.cli.common import expand_multi_values


def test_several_values_after_one_flag_become_repeated_flags():
    argv = ["router", "train", "--scores", "a.jsonl", "b.jsonl", "--out", "r"]
    assert expand_multi_values(argv) == [
        "router", "train", "--scores", "a.jsonl", "--scores", "b.jsonl", "--out", "r",
    ]  # fmt: skip


def test_the_repeated_form_and_other_options_are_left_as_they_are():
    argv = ["router", "eval", "--scores", "a", "--scores", "b", "--router", "x", "--json"]
    assert expand_multi_values(argv) == argv
    assert expand_multi_values(["config", "validate", "gpu"]) == ["config", "validate", "gpu"]
    # values end at the next option, and `--` ends option parsing
    assert expand_multi_values(["--scores", "a", "--", "b"]) == ["--scores", "a", "--", "b"]
