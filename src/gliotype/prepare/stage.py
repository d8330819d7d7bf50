"""Stages: named per-patient derivations, registered once, run cached over a cohort.

A stage is a function ``(case, config) -> (arrays, meta)``; it raises ``ValueError`` (or ``ImageError``)
with a message naming the file and the fix when a patient cannot be prepared. :func:`run_stage` runs it
over patients in parallel processes, skips what the cache already holds, and reports failed patients
without stopping the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from gliotype.cohort import Case, Cohort
from gliotype.cohort.layout import expand
from gliotype.prepare.cache import StageCache, fingerprint, load_arrays, save_arrays

log = logging.getLogger(__name__)


class StageConfig(BaseModel):
    """Base of every stage's configuration: typed, frozen, serialisable."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass(frozen=True)
class Stage:
    """A registered stage: its name, the modalities it needs (and those it reads when a patient has them),
    its config type and its function."""

    name: str
    needs: tuple[str, ...]
    config_type: type[StageConfig]
    fn: Callable[[Case, StageConfig], tuple[dict[str, np.ndarray], dict]]
    version: int = 1
    optional: tuple[str, ...] = ()

    def inputs(self, case: Case) -> list[Path]:
        """The files whose bytes this stage's output depends on."""
        needs = expand(self.needs) | set(self.optional)
        files = [p for m, p in sorted(case.images.items()) if m in needs]
        if "histology" in self.needs:
            files += case.histology
        return files

    def key(self, case: Case, config: StageConfig) -> str:
        return fingerprint(self.name, self.version, config.model_dump(), self.inputs(case))


STAGES: dict[str, Stage] = {}


def register_stage(name: str, needs: Sequence[str], config_type: type[StageConfig], version: int = 1,
                   optional: Sequence[str] = ()):
    """Decorator registering a stage function under ``name``; ``optional`` modalities are read when present."""

    def decorate(fn):
        STAGES[name] = Stage(name, tuple(needs), config_type, fn, version, tuple(optional))
        return fn

    return decorate


def get_stage(name: str) -> Stage:
    if name not in STAGES:
        raise ValueError(f"unknown preparation stage {name!r}; known stages: {sorted(STAGES)}")
    return STAGES[name]


@dataclass
class StageResult:
    """What :func:`run_stage` did: the cache file of each prepared patient, and each failure's reason."""

    stage: str
    done: dict[str, Path] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    built: int = 0


def _prepare_one(stage_name: str, case: Case, config: StageConfig, cache_root: Path) -> tuple[str, Path | None, str | None, bool]:
    """Prepare one patient; returns (patient, path, error, built). Runs in a worker process."""
    stage = get_stage(stage_name)
    cache = StageCache(cache_root)
    key = stage.key(case, config)
    path = cache.path(stage.name, case.patient_id, key)
    if path.is_file():
        return case.patient_id, path, None, False
    try:
        arrays, meta = stage.fn(case, config)
    except (ValueError, OSError) as err:
        return case.patient_id, None, str(err), False
    save_arrays(path, arrays, {**meta, "stage": stage.name, "fingerprint": key, "config": config.model_dump()})
    cache.clean_stale(stage.name, case.patient_id, keep=key)
    return case.patient_id, path, None, True


def run_stage(stage_name: str, cohort: Cohort, patient_ids: Sequence[str], config: StageConfig | None = None,
              cache_dir: str | Path | None = None, workers: int = 1, progress: bool = False) -> StageResult:
    """Run a stage over patients, cached; failed patients are reported, never fatal."""
    stage = get_stage(stage_name)
    config = config or stage.config_type()
    cache_root = Path(cache_dir) if cache_dir else default_cache(cohort)
    result = StageResult(stage.name)
    cases = [cohort[pid] for pid in patient_ids]
    if workers > 1 and len(cases) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(_prepare_one, stage.name, c, config, cache_root) for c in cases]
            outcomes = (f.result() for f in futures)
            _collect(result, _track(outcomes, len(cases), stage.name, progress))
    else:
        outcomes = (_prepare_one(stage.name, c, config, cache_root) for c in cases)
        _collect(result, _track(outcomes, len(cases), stage.name, progress))
    log.info("stage %s: %d ready (%d built), %d failed", stage.name, len(result.done), result.built, len(result.failed))
    return result


def _collect(result: StageResult, outcomes) -> None:
    for pid, path, error, built in outcomes:
        if error is not None:
            result.failed[pid] = error
        else:
            result.done[pid] = path
            result.built += built


def _track(iterable, total: int, name: str, progress: bool):
    if not progress:
        return iterable
    from rich.progress import track

    return track(iterable, total=total, description=f"prepare {name}", transient=True)


def default_cache(cohort: Cohort) -> Path:
    return cohort.root / ".gliotype-cache"


def load_prepared(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    return load_arrays(path)
