"""The deploy history of one application: every Serve config ``mixserve deploy`` applied,
numbered, with the specialists' versions, so ``mixserve rollback`` can apply the one
before and ``mixserve status`` can say which release runs.

One JSON file per release under ``<state dir>/releases/<app>/``, written atomically
(temporary file, fsync, rename); a file that does not parse is reported, never used.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


class ReleaseError(ValueError):
    """A history that cannot be read, or a release that does not exist."""


@dataclass
class Release:
    number: int
    app: str
    versions: dict[str, str]  # specialist -> version
    serve_config: dict[str, Any]
    source: str  # the config file (or profile) it was built from
    created: float = field(default_factory=time.time)
    rollback_of: int | None = None  # the release this one returned to, for a rollback

    def changed_from(self, before: Release | None) -> dict[str, tuple[str | None, str | None]]:
        """Specialist -> (old version, new version), for those that differ."""
        old = before.versions if before is not None else {}
        names = sorted(set(old) | set(self.versions))
        return {
            n: (old.get(n), self.versions.get(n))
            for n in names
            if old.get(n) != self.versions.get(n)
        }


class Releases:
    def __init__(self, state_dir: Path, app: str) -> None:
        self.folder = state_dir / "releases" / app
        self.app = app

    def _path(self, number: int) -> Path:
        return self.folder / f"{number:06d}.json"

    def numbers(self) -> list[int]:
        if not self.folder.is_dir():
            return []
        return sorted(int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit())

    def get(self, number: int) -> Release:
        path = self._path(number)
        try:
            data = json.loads(path.read_text())
            return Release(**data)
        except FileNotFoundError:
            known = ", ".join(map(str, self.numbers())) or "none"
            raise ReleaseError(f"no release {number} of {self.app} (releases: {known})") from None
        except (OSError, ValueError, TypeError) as exc:
            raise ReleaseError(f"{path}: corrupt release record: {exc}") from None

    def latest(self) -> Release | None:
        numbers = self.numbers()
        return self.get(numbers[-1]) if numbers else None

    def record(
        self,
        versions: dict[str, str],
        serve_config: dict[str, Any],
        source: str,
        rollback_of: int | None = None,
    ) -> Release:
        numbers = self.numbers()
        release = Release(
            number=(numbers[-1] + 1) if numbers else 1,
            app=self.app,
            versions=versions,
            serve_config=serve_config,
            source=source,
            rollback_of=rollback_of,
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(release.number)
        tmp = path.with_suffix(f".tmp-{os.getpid()}")
        with tmp.open("w") as f:
            json.dump(asdict(release), f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return release
