"""The router's precision: ``auto`` reads the CPU's flags on the router's own machine
(bfloat16 only with native bfloat16 arithmetic); a trained head runs at either precision,
never on other weights, another layer or another truncation."""

from __future__ import annotations

import pytest

from router_model.artifact import ArtifactError, RouterArtifact
from router_model.backbone import BackboneSpec
from router_model.heads import build_head
from router_model.precision import cpu_flags, resolve_dtype

AVX2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma f16c\n"
SPR = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni amx_bf16 amx_int8\n"
ZEN4 = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n"


def test_auto_is_bfloat16_only_where_the_cpu_computes_in_it():
    assert resolve_dtype("auto", cpu_flags(AVX2)) == "float32"
    assert resolve_dtype("auto", cpu_flags(SPR)) == "bfloat16"
    assert resolve_dtype("auto", cpu_flags(ZEN4)) == "bfloat16"
    assert resolve_dtype("auto", set()) == "float32"  # no flags to read: the safe one


def test_a_set_precision_is_kept_whatever_the_cpu():
    assert resolve_dtype("float32", cpu_flags(SPR)) == "float32"
    assert resolve_dtype("bfloat16", cpu_flags(AVX2)) == "bfloat16"
    with pytest.raises(ValueError, match="float16"):
        resolve_dtype("float16")


def test_this_machines_flags_are_read():
    flags = cpu_flags()
    assert "sse2" in flags  # every x86-64 CPU has it: the flags line was found and read
    assert resolve_dtype("auto") == (
        "bfloat16" if flags & {"avx512_bf16", "amx_bf16"} else "float32"
    )


def artifact(spec: BackboneSpec) -> RouterArtifact:
    return RouterArtifact("linear", build_head("linear"), spec, "package:x", ["a", "b"], {}, {})


def test_a_head_trained_in_float32_runs_on_bfloat16_states_but_nowhere_else():
    trained = artifact(BackboneSpec("w" * 64, 1, 64, "float32"))
    trained.check_backbone(BackboneSpec("w" * 64, 1, 64, "bfloat16"))
    trained.check_backbone(BackboneSpec("w" * 64, 1, 64, "float32"))
    for other in (
        BackboneSpec("v" * 64, 1, 64, "float32"),
        BackboneSpec("w" * 64, 2, 64, "float32"),
        BackboneSpec("w" * 64, 1, 128, "bfloat16"),
    ):
        with pytest.raises(ArtifactError, match="retrain it"):
            trained.check_backbone(other)
