"""``mixserve bench``: the command group the ``mixserve.cli`` entry point names. Importing
it registers every subcommand (load and sweep, overhead and overload, ceiling, skew,
retrieval).

Public API: ``bench_app``.
"""

from mixserve_bench.cli import ceiling, retrieval, skew, suites  # noqa: F401 - registers them
from mixserve_bench.cli.load import bench_app

__all__ = ["bench_app"]
