"""Per-patient inputs built from the cache when asked for, one patient at a time.

An epoch over a thousand prepared patients must not hold the cohort in RAM. :class:`LazyItems` keeps only
each patient's cache files and builds the patient's item (a method's ``item``) from memory-mapped arrays
each time it is asked for, keeping nothing; :class:`LazySequence` is the list of some patients' items that
:func:`gliotype.train.fit.fit_torch`'s DataLoader reads one item at a time, so at most a batch of items
(times the loader's prefetch) is alive at once. :class:`CachedRows` does the same for rows of one array
spread over many patients' files (histology patches): an index gathers just the rows it names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gliotype.prepare.stage import load_prepared


class LazyItems(Mapping[str, dict]):
    """``{patient_id: item}`` whose items are built on access from the patients' stage files.

    Args:
        paths: each patient's ``{stage: cache file}``.
        item: builds an item from ``{stage: {name: array}}``; the arrays may be read-only memory maps, so
            it copies what it keeps (as ``array.astype(...)`` does).
        with_patient_id: add ``item["patient_id"]``.
        mmap: map large arrays instead of reading them (``False`` reads them whole).
    """

    def __init__(self, paths: Mapping[str, Mapping[str, Path]], item: Callable[[dict], dict],
                 with_patient_id: bool = False, mmap: bool = True):
        self.paths = {pid: dict(stages) for pid, stages in paths.items()}
        self.item, self.with_patient_id, self.mmap = item, with_patient_id, mmap

    def __getitem__(self, patient_id: str) -> dict:
        stages = self.paths[patient_id]
        item = self.item({s: load_prepared(p, mmap=self.mmap)[0] for s, p in stages.items()})
        if self.with_patient_id:
            item["patient_id"] = patient_id
        return item

    def __contains__(self, patient_id: object) -> bool:  # Mapping's default would build the item
        return patient_id in self.paths

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} patients, built on access)"


class LazySequence(Sequence):
    """``[items[p] for p in ids]`` without building any: an index builds that patient's item, a slice is
    another lazy sequence, iteration builds one item at a time."""

    def __init__(self, items: Mapping[str, Any], ids: Sequence[str]):
        self.items, self.ids = items, list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return LazySequence(self.items, self.ids[i])
        return self.items[self.ids[i]]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items, built on access)"


def items_of(inputs: Mapping[str, Any], ids: Sequence[str]) -> list | LazySequence:
    """The items of ``ids`` in order: a :class:`LazySequence` when ``inputs`` builds items on access
    (:class:`LazyItems`), else a list."""
    return LazySequence(inputs, ids) if isinstance(inputs, LazyItems) else [inputs[p] for p in ids]


class CachedRows:
    """Some rows of one array kept in several patients' cache files, read on access.

    ``rows[index]`` maps each file the index needs, copies the rows it names and keeps nothing, so a
    cohort's histology patches are never in RAM together; only the (file, row) of each row is held.

    Args:
        parts: per patient, in order, its cache file and the rows of ``name`` to take from it.
        name: the array inside each file.

    Shapes:
        len(rows) = M, the rows of all parts; rows[index] (an int array or a slice) -> (k, *row shape)

    >>> rows = CachedRows([], "patches")
    >>> len(rows)
    0
    """

    def __init__(self, parts: Sequence[tuple[Path, Sequence[int]]], name: str):
        self.parts = [(Path(path), np.asarray(rows, dtype=np.int64)) for path, rows in parts]
        self.name = name
        self._part = np.repeat(np.arange(len(self.parts)), [len(rows) for _, rows in self.parts])
        self._row = np.concatenate([rows for _, rows in self.parts]) if self.parts else np.zeros(0, np.int64)

    @classmethod
    def concat(cls, many: Sequence[CachedRows]) -> CachedRows:
        """The rows of several, one after the other (all of one array name)."""
        names = {m.name for m in many}
        if len(names) > 1:
            raise ValueError(f"CachedRows.concat: rows of different arrays {sorted(names)}")
        return cls([part for m in many for part in m.parts], names.pop() if names else "")

    def __len__(self) -> int:
        return len(self._row)

    def _array(self, part: int) -> np.ndarray:
        return load_prepared(self.parts[part][0], mmap=True)[0][self.name]

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            raise TypeError("CachedRows takes an array of row indices or a slice (rows[[i]] for one row)")
        index = np.arange(*index.indices(len(self))) if isinstance(index, slice) else np.asarray(index, np.int64)
        if len(index) and not (-len(self) <= index.min() and index.max() < len(self)):
            raise IndexError(f"CachedRows: row indices must lie in [{-len(self)}, {len(self)}); "
                             f"got {index.min()}..{index.max()}")
        index = index % max(len(self), 1)  # negative indices count from the end, as numpy's do
        if not len(index):
            return np.array(self._array(0)[:0]) if self.parts else np.zeros(0)
        parts, out = self._part[index], None
        for part in np.unique(parts):
            at = np.flatnonzero(parts == part)
            block = self._array(part)[self._row[index[at]]]
            if out is None:
                out = np.empty((len(index), *block.shape[1:]), block.dtype)
            out[at] = block
        return out

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} rows of {self.name!r} in {len(self.parts)} files, read on access)"
