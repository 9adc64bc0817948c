"""Adversarial math the symbolic engine must refuse, quickly and with its reason: each
``(question, words of the reason)``; ``PWNED`` is the file the code case would create
if it were ever run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.helpers.http import chat

PWNED = "/tmp/mixserve-test-pwned"
ADVERSARIAL = [
    ("9**9**9**9", "the exponent 387420489 is past the limit of 1000"),
    (" + ".join(str(i) for i in range(10_000)), "characters long; the limit is 2,000"),
    (f"__import__('os').system('touch {PWNED}')", "this is code"),
    ("(" * 500 + "1" + ")" * 500, "nests deeper than 24 levels"),
]


def assert_refused(client: Any, question: str, reason: str) -> None:
    """The math specialist refuses ``question`` in under a second: a 200 whose answer
    gives ``reason``, marked ``refused``, and nothing run."""
    started = time.monotonic()
    resp = chat(client, question, model="math", max_tokens=64, temperature=0)
    elapsed = time.monotonic() - started
    assert resp.status_code == 200, resp.text
    body = resp.json()
    text = body["choices"][0]["message"]["content"]
    assert text.startswith("I cannot work on this:") and reason in text, text
    assert body["mixserve"]["policy"]["method"] == "refused"
    assert elapsed < 1.0
    assert not Path(PWNED).exists()
