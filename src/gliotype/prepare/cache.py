"""The per-patient cache of prepared data (DESIGN.md Contract 3).

Layout: ``CACHE/<stage>/<patient_id>/<fingerprint>.npz``. The fingerprint hashes the stage's name and
version, its configuration and the bytes of its input files, so a changed configuration or input
rebuilds only what it touches and an unchanged one is skipped. Files are written to a temporary name and
renamed into place, so an interrupted write never leaves a file that a rerun trusts. Arrays are stored
without pickle, uncompressed; metadata rides along as a JSON string inside the archive. Because members are
stored as plain ``.npy`` bytes, :func:`load_arrays` can memory-map the large ones instead of reading them
(``mmap=True``): an epoch over a large cohort then reads each patient's pages on demand and never holds the
cohort in RAM. A rename never changes the bytes behind an open map (the old file lives on until unmapped).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

META_KEY = "__meta__"
MMAP_MIN_BYTES = 1 << 20
"""Members at least this large are memory-mapped by ``load_arrays(..., mmap=True)``; smaller ones are read."""
TEMP_GRACE_S = 3600.0
"""Temp files younger than this (seconds) are taken for another process's write in progress."""
KEEP_OUTPUTS = 4
"""Outputs of one stage and patient kept side by side, the most recently used: runs that configure a stage
differently (a method and its ablations, the demo's small settings and a full run) share the cache instead
of rebuilding each other's files, and the outputs of an edited input or an old configuration age out."""
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


def load_arrays(path: Path, mmap: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """Load what :func:`save_arrays` wrote (never unpickles).

    With ``mmap=True``, stored members of at least :data:`MMAP_MIN_BYTES` come back as read-only
    ``np.memmap`` views of the file (copy what you keep); small or compressed members are read as usual.
    """
    if not mmap:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {k: archive[k] for k in archive.files}
    else:
        with zipfile.ZipFile(path) as archive, open(path, "rb") as raw:
            arrays = {info.filename.removesuffix(".npy"): _read_member(path, archive, raw, info)
                      for info in archive.infolist()}
    meta = arrays.pop(META_KEY, None)
    return arrays, (json.loads(meta.tobytes().decode()) if meta is not None else {})


def _read_member(path: Path, archive: zipfile.ZipFile, raw, info: zipfile.ZipInfo) -> np.ndarray:
    """One ``.npy`` member: a read-only memmap when it is stored uncompressed and large, else read."""
    if info.compress_type == zipfile.ZIP_STORED and info.file_size >= MMAP_MIN_BYTES:
        mapped = _member_memmap(path, raw, info)
        if mapped is not None:
            return mapped
    with archive.open(info) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _member_memmap(path: Path, raw, info: zipfile.ZipInfo) -> np.memmap | None:
    """The memmap of a stored ``.npy`` member, or ``None`` where it cannot be mapped (an object dtype, no
    bytes, an ``.npy`` version without a public header reader, sizes that disagree): the caller reads it."""
    raw.seek(info.header_offset)
    local = raw.read(30)  # the zip local file header: fixed part, then the name and the extra field
    if local[:4] != b"PK\x03\x04":
        raise ValueError(f"{path}: member {info.filename!r} has no zip local header at offset {info.header_offset}; "
                         "the cache file is damaged: delete it and rerun to rebuild it")
    start = info.header_offset + 30 + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little")
    raw.seek(start)
    reader = _HEADER_READERS.get(np.lib.format.read_magic(raw))
    if reader is None:
        return None
    shape, fortran, dtype = reader(raw)
    offset, nbytes = raw.tell(), dtype.itemsize * math.prod(shape)
    if dtype.hasobject or nbytes == 0 or offset + nbytes != start + info.file_size:
        return None
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


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

    def mark_used(self, path: Path) -> None:
        """Record a cache hit in the file's modification time, which :meth:`clean_stale` ranks by. A cache
        that this process may not write (a shared, read-only one) is left as it is."""
        try:
            os.utime(path)
        except OSError:
            pass

    def clean_stale(self, stage: str, patient_id: str, keep: str) -> None:
        """Remove a patient's outputs of ``stage`` beyond the :data:`KEEP_OUTPUTS` most recently used
        (``keep``, the one just made, always stays), and temp files left by an interrupted write. A temp
        file younger than :data:`TEMP_GRACE_S` may be another process's write in progress (two runs
        preparing one cohort) and is left alone."""
        folder = self.root / stage / patient_id
        if not folder.is_dir():
            return
        now = time.time()
        outputs, doomed = [], []
        for old in folder.iterdir():
            try:
                mtime = old.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            if old.suffix == ".tmp":
                if now - mtime / 1e9 >= TEMP_GRACE_S:
                    doomed.append(old)
            elif old.name != f"{keep}.npz":
                outputs.append((mtime, old.name, old))
        doomed += [old for *_, old in sorted(outputs, reverse=True)[KEEP_OUTPUTS - 1:]]
        for old in doomed:
            old.unlink(missing_ok=True)
