"""The per-patient cache of prepared data (DESIGN.md Contract 3).

Layout: ``CACHE/<stage>/<patient_id>/<fingerprint>.npz``. The fingerprint hashes the stage's name and
version, its configuration and the bytes of its input files, so a changed configuration or input
rebuilds only what it touches and an unchanged one is skipped. Files are written to a temporary name and
renamed into place, so an interrupted write never leaves a file that a rerun trusts. Arrays are stored
without pickle; metadata rides along as a JSON string inside the archive.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

META_KEY = "__meta__"
_HASHES: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """BLAKE2b of a file's bytes, memoised per (path, size, mtime) within the process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def fingerprint(stage: str, version: int, config: Mapping, files: Iterable[Path]) -> str:
    """A short hash of everything a stage's output depends on (file names do not count, contents do)."""
    payload = {"stage": stage, "version": version, "config": dict(config),
               "files": sorted(file_digest(Path(f)) for f in files)}
    return hashlib.blake2b(json.dumps(payload, sort_keys=True, default=str).encode(), digest_size=8).hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_arrays(path: Path, arrays: Mapping[str, np.ndarray], meta: Mapping | None = None) -> None:
    """Save arrays (and JSON-able ``meta``) as one ``.npz``, atomically."""
    import io

    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[META_KEY] = np.frombuffer(json.dumps(meta or {}, sort_keys=True, default=_jsonable).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **payload)
    atomic_write_bytes(path, buffer.getvalue())


def load_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Load what :func:`save_arrays` wrote (never unpickles)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files if k != META_KEY}
        meta = json.loads(archive[META_KEY].tobytes().decode()) if META_KEY in archive.files else {}
    return arrays, meta


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class StageCache:
    """Where one cache keeps each stage's per-patient files."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, stage: str, patient_id: str, key: str) -> Path:
        return self.root / stage / patient_id / f"{key}.npz"

    def clean_stale(self, stage: str, patient_id: str, keep: str) -> None:
        """Remove a patient's outputs of ``stage`` made with another fingerprint, and stray temp files."""
        folder = self.root / stage / patient_id
        if folder.is_dir():
            for old in folder.iterdir():
                if old.name != f"{keep}.npz":
                    old.unlink(missing_ok=True)
