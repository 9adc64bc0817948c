"""A load harness for OpenAI-compatible chat endpoints (mixserve's, or a peer's such as
``vllm serve``): query mixes from real prompts, closed-loop clients or open-loop Poisson
arrivals, streamed requests timed to the first token, and reports of throughput,
goodput, latency percentiles, errors and refusals, per group and overall.

Public API: ``QueryMix``, ``ContextMix``, ``LoadSpec``, ``run_load``, ``summarize``, ``alternate``,
``plot_sweep``.
"""

from loadgen.compare import alternate
from loadgen.mix import ContextMix, QueryMix
from loadgen.plots import plot_sweep
from loadgen.report import summarize
from loadgen.run import LoadSpec, run_load

__all__ = ["ContextMix", "LoadSpec", "QueryMix", "alternate", "plot_sweep", "run_load", "summarize"]
