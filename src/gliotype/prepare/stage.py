"""Stages: named per-patient derivations, registered once, run cached over a cohort.

A stage is a function ``(case, config) -> (arrays, meta)``; it raises ``ValueError`` (or ``ImageError``)
with a message naming the file and the fix when a patient cannot be prepared. :func:`run_stage` runs it
over patients in parallel processes (or as one task per patient on a Dask distributed cluster), skips
what the cache already holds, and reports failed patients without stopping the others.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
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
        cache.mark_used(path)
        return case.patient_id, path, None, False
    try:
        arrays, meta = stage.fn(case, config)
    except (ValueError, OSError) as err:
        return case.patient_id, None, str(err), False
    save_arrays(path, arrays, {**meta, "stage": stage.name, "fingerprint": key, "config": config.model_dump()})
    cache.clean_stale(stage.name, case.patient_id, keep=key)
    return case.patient_id, path, None, True


def run_stage(stage_name: str, cohort: Cohort, patient_ids: Sequence[str], config: StageConfig | None = None,
              cache_dir: str | Path | None = None, workers: int = 1, progress: bool = False,
              scheduler: str | None = None) -> StageResult:
    """Run a stage over patients, cached; failed patients are reported, never fatal.

    Args:
        workers: local worker processes (1: this process).
        scheduler: address of a Dask distributed scheduler (``tcp://host:8786``). When given, each patient is
            one task on that cluster's workers and ``workers`` is ignored; the workers need gliotype
            installed and must see the cohort and the cache at the same paths (a shared file system).

    Raises:
        ValueError: the scheduler cannot be reached (the message names the address and how to start one).
    """
    stage = get_stage(stage_name)
    config = config or stage.config_type()
    cache_root = Path(cache_dir) if cache_dir else default_cache(cohort)
    result = StageResult(stage.name)
    cases = [cohort[pid] for pid in patient_ids]
    if scheduler is not None:
        with _connect(scheduler) as client:
            outcomes = _on_cluster(client, stage.name, cases, config, cache_root)
            _collect(result, _track(outcomes, len(cases), stage.name, progress))
    elif workers > 1 and len(cases) > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        with ProcessPoolExecutor(max_workers=workers, initializer=_share_cores, initargs=(threads,)) as pool:
            futures = [pool.submit(_prepare_one, stage.name, c, config, cache_root) for c in cases]
            outcomes = (_outcome(f, c.patient_id, "in a worker process") for f, c in zip(futures, cases))
            _collect(result, _track(outcomes, len(cases), stage.name, progress))
    else:
        outcomes = (_prepare_one(stage.name, c, config, cache_root) for c in cases)
        _collect(result, _track(outcomes, len(cases), stage.name, progress))
    log.info("stage %s: %d ready (%d built), %d failed", stage.name, len(result.done), result.built, len(result.failed))
    return result


def _outcome(future, patient_id: str, where: str):
    """A finished task's outcome; an error :func:`_prepare_one` does not expect (or a dead worker) becomes that
    patient's failure, so the other patients go on."""
    try:
        return future.result()
    except Exception as err:  # noqa: BLE001 - any error of one task is that patient's failure
        return patient_id, None, f"{type(err).__name__} {where}: {err}", False


def _share_cores(threads: int) -> None:
    """Limit a local worker process to its share of the cores (torch, OpenMP and ITK thread pools), so that
    ``workers`` processes do not oversubscribe the machine."""
    for var in ("OMP_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _connect(address: str):
    """A ``distributed.Client`` of the scheduler at ``address``; a ``ValueError`` with the fix if unreachable."""
    from distributed import Client
    from distributed.comm.addressing import resolve_address

    try:
        resolve_address(address)  # a malformed address or unknown host fails here, before any Client exists
        return Client(address, set_as_default=False)
    except (OSError, ValueError) as err:
        raise ValueError(
            f"cannot reach the Dask scheduler at {address!r} ({err}); start one with `dask scheduler` (it prints "
            "its address, tcp://HOST:8786), start workers with `dask worker tcp://HOST:8786`, and pass that "
            "address to --scheduler"
        ) from err


def _on_cluster(client, stage_name: str, cases: Sequence[Case], config: StageConfig, cache_root: Path):
    """Prepare each case as one task on a Dask cluster; yield outcomes as they finish.

    A task that raises (a worker-side error :func:`_prepare_one` does not expect, a worker that died) becomes
    that patient's failure, so the other patients go on.
    """
    from distributed import as_completed

    log.info("stage %s: %d patients sent to the Dask scheduler at %s", stage_name, len(cases), client.scheduler.address)
    run = uuid.uuid4().hex[:8]
    patient_of = {}
    for case in cases:
        future = client.submit(_prepare_one, stage_name, _absolute(case), config, cache_root.absolute(),
                               key=f"prepare-{stage_name}-{case.patient_id}-{run}")
        patient_of[future] = case.patient_id
    for future in as_completed(list(patient_of), loop=client.loop):
        yield _outcome(future, patient_of[future], "on a Dask worker (its traceback is in that worker's log)")
        future.release()


def _absolute(case: Case) -> Case:
    """``case`` with absolute paths: a worker's current folder is not this process's."""
    return replace(case, folder=case.folder.absolute() if case.folder else None,
                   images={m: p.absolute() for m, p in case.images.items()},
                   histology=[p.absolute() for p in case.histology])


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


def load_prepared(path: Path, mmap: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """A prepared patient's (arrays, meta); ``mmap=True`` maps the large arrays read-only (:func:`load_arrays`)."""
    return load_arrays(path, mmap=mmap)
