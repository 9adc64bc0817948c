"""The worker process the symbolic engine solves in: one JSON request per line on stdin
(``{"op": "question"|"expression", "text": ..., "limits": {...}}``), one JSON outcome per
line on stdout. Its address space is capped, and the engine kills it when a solve runs
past its time limit, so no input can hang or exhaust the replica that serves it."""

from __future__ import annotations

import json
import os
import resource
import sys


def cap_memory(extra_mb: int) -> None:
    """Cap the address space at what the process has now plus ``extra_mb``."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[0])
    limit = pages * os.sysconf("SC_PAGE_SIZE") + extra_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def main() -> None:
    out = sys.stdout
    sys.stdout = sys.stderr  # whatever else prints must not corrupt the replies
    from specialists.symbolic.limits import Limits
    from specialists.symbolic.solve import Outcome, evaluate, work

    capped = False
    out.write('{"ready": true}\n')
    out.flush()
    for line in sys.stdin:
        request = json.loads(line)
        limits = Limits(**request["limits"])
        if not capped:
            cap_memory(limits.memory_mb)
            capped = True
        try:
            if request["op"] == "expression":
                outcome = evaluate(request["text"], limits)
            else:
                outcome = work(request["text"], limits)
        except MemoryError:
            outcome = Outcome("refused", "I cannot work on this: it needs too much memory.")
        out.write(json.dumps(outcome.as_dict()) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
