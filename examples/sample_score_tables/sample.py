"""Draw the sample score tables the README's examples run on, from the full published
train splits: a fixed number of rows of each, chosen at random with a fixed seed and kept
in their original order, and each set's price table (``models.json``) copied beside them.
Run again on the same tables, it writes the same files.

    .venv/bin/python examples/sample_score_tables/sample.py --source ../shared/data
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 0
ROWS = {  # set/table: rows drawn (350 in all)
    "routerdc/gsm8k_train.jsonl": 100,
    "routerdc/humaneval_train.jsonl": 30,  # a quarter of its 115: the set is small
    "routerdc/mmlu_train.jsonl": 100,
    "routellm/gsm8k_train.jsonl": 120,
}


def sample(lines: list[str], rows: int, seed: int) -> list[str]:
    """``rows`` of ``lines`` at random (the same for the same seed), in their order."""
    chosen = sorted(random.Random(seed).sample(range(len(lines)), rows))
    return [lines[i] for i in chosen]


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from other users
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, required=True, help="Folder of routerdc/ and routellm/, in full."
    )
    parser.add_argument("--out", type=Path, default=HERE, help="Where to write the sample.")
    args = parser.parse_args()
    for name, rows in ROWS.items():
        full = args.source / name
        try:
            lines = [line for line in full.read_text(encoding="utf-8").split("\n") if line]
        except OSError as exc:
            sys.exit(f"{full}: cannot read ({exc.strerror or exc})")
        if len(lines) < rows:
            sys.exit(f"{full}: {len(lines)} rows, fewer than the {rows} to draw")
        write_atomic(args.out / name, "\n".join(sample(lines, rows, SEED)) + "\n")
        prices = full.parent / "models.json"
        if prices.is_file():
            shutil.copyfile(prices, args.out / full.parent.name / "models.json")
        print(f"{args.out / name}: {rows} of {len(lines)} rows")


if __name__ == "__main__":
    main()
