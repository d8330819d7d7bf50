"""Per-patient inputs built from the cache when asked for, one patient at a time.

An epoch over a thousand prepared patients must not hold the cohort in RAM. :class:`LazyItems` keeps only
each patient's cache files and builds the patient's item (a method's ``item``) from memory-mapped arrays
each time it is asked for, keeping nothing; :class:`LazySequence` is the list of some patients' items that
:func:`gliotype.train.fit.fit_torch`'s DataLoader reads one item at a time, so at most a batch of items
(times the loader's prefetch) is alive at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

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
