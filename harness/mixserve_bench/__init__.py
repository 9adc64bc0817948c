"""mixserve's benchmark harness: the ``mixserve bench`` commands and the retrieval
evaluation, over the ``loadgen`` load generator. A distribution of its own
(``mixserve-bench``, in ``harness/``): the service never imports it.

Public API: ``mixserve_bench.cli.bench_app`` (the ``bench`` command group, the
``mixserve.cli`` entry point) and ``mixserve_bench.retrieval_eval``.
"""
