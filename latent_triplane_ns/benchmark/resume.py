"""What a rerun of a benchmark into the same output folder reuses: the record of every stage that completed."""

from __future__ import annotations

import json
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Optional

from latent_triplane_ns.ae_training import settings_differences
from latent_triplane_ns.atomic import write_json

RECORD_SUFFIX = ".stage.json"
"""A stage's record in the benchmark's logs folder: `<stage>.stage.json`."""


def plain(value: Any) -> Any:
    """Settings (dataclasses, paths, tuples, nested) as JSON values, compared after a JSON round trip."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return value


def folder_identity(folder: Path) -> str:
    """A folder given to the benchmark (an autoencoder, a basis) as a stage key sees it: its resolved path and a digest
    of every file's name and bytes under it, so that a folder whose weights were replaced in place since a stage
    was recorded is not mistaken for the one that stage used."""
    import hashlib

    root = Path(folder).resolve()
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return f"{root} (sha256 {digest.hexdigest()[:16]})"


@dataclass
class StageRecords:
    """The completed stages of a benchmark's output folder.

    When a stage completes, its record (`<logs>/<stage>.stage.json`) is written atomically: the settings that made
    it (its key), the figures it measured, its wall time, and an id that the keys of the stages built on it include.
    A rerun with the same output folder reuses a stage whose record has the same key and whose outputs are still
    whole, and reports the figures the first run measured (not measured again, and their time not counted twice);
    any other stage runs again, its old record removed first, so a stage that is killed is never taken for done.
    """

    folder: Path
    """The benchmark's logs folder."""
    say: Callable[[str], None] = print
    """Where the lines saying what is reused or run again go."""
    reused: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    """The stages this run reused: their wall time as the earlier run measured it, and when that was."""

    def path(self, stage: str) -> Path:
        return Path(self.folder) / f"{stage}{RECORD_SUFFIX}"

    def lookup(self, stage: str, key: Dict[str, Any], outputs_problem: Callable[[], Optional[str]] = lambda: None):
        """The record of a completed stage with this key, or None (the stage must run, and its old record is gone).

        Args:
            stage: the stage's name.
            key: the settings (and upstream stage ids) that make the stage's outputs.
            outputs_problem: what is wrong with the stage's outputs on disk, or None when they are whole.
        """
        path = self.path(stage)
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            saved_key = record["key"]
            if not isinstance(record["figures"], dict):
                raise TypeError("figures")
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
            self._rerun(stage, f"its record {path} cannot be read ({type(err).__name__})")
            return None
        differences = settings_differences(saved_key, plain(key))
        if differences:
            self._rerun(stage, f"its settings differ from the earlier run's ({', '.join(differences)})")
            return None
        problem = outputs_problem()
        if problem is not None:
            self._rerun(stage, problem)
            return None
        self.reused[stage] = {"wall_seconds": record.get("wall_seconds"), "recorded_at": record.get("recorded_at")}
        self.say(
            f"{stage}: reused from the earlier run into this output folder (done {record.get('recorded_at', '?')}, "
            f"{(record.get('wall_seconds') or 0) / 60:.1f} min then); its figures are the ones measured then"
        )
        return record

    def _rerun(self, stage: str, why: str) -> None:
        self.say(f"{stage}: not reused, {why}; running it again")
        self.forget(stage)

    def forget(self, stage: str) -> None:
        """Removes a stage's record (before the stage runs again)."""
        self.path(stage).unlink(missing_ok=True)

    def save(self, stage: str, key: Dict[str, Any], figures: Any, wall_seconds: float) -> Dict[str, Any]:
        """Records a completed stage atomically; returns the record (its `id` goes into the keys built on it)."""
        record = {
            "stage": stage,
            "id": secrets.token_hex(8),
            "key": plain(key),
            "figures": figures,
            "wall_seconds": wall_seconds,
            "recorded_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        write_json(self.path(stage), record)
        return record

    def run(
        self,
        stage: str,
        key: Dict[str, Any],
        compute: Callable[[], Any],
        outputs_problem: Callable[[], Optional[str]] = lambda: None,
        leftover: Optional[Path] = None,
        restart_reason: str = "it starts again",
    ) -> Dict[str, Any]:
        """The record of a stage: the earlier run's when it can be reused, else that of running `compute()` now.

        Args:
            stage, key, outputs_problem: as for `lookup`.
            compute: runs the stage and returns its figures (JSON).
            leftover: the folder an unfinished run of the stage leaves (its nerfstudio run folder); removed before
                the stage runs again, saying so with `restart_reason` when no record explains it (a killed run).
            restart_reason: why such a run starts again instead of continuing.
        """
        had_record = self.path(stage).is_file()
        record = self.lookup(stage, key, outputs_problem)
        if record is not None:
            return record
        self.forget(stage)
        if leftover is not None and Path(leftover).exists():
            if not had_record:
                self.say(f"{stage}: an earlier run did not finish ({leftover} is left from it); {restart_reason}")
            shutil.rmtree(leftover)
        start = time.perf_counter()
        figures = compute()
        return self.save(stage, key, figures, time.perf_counter() - start)
