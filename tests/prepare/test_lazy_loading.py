"""Lazy inputs: an epoch over prepared patients builds each item once, when read, and never holds the cohort.

The cohort: 40 patients, each one float16 cube of 4 x 100^3 = 8,000,000 bytes (320 MB in all), whose voxels
all hold the patient's number. A batch of 2 holds 16 MB of items and 16 MB of stacked batch.
"""

import tracemalloc
import weakref
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from gliotype.cohort import Cohort
from gliotype.methods import create_method
from gliotype.methods.lazy import CachedRows, LazyItems, LazySequence, items_of
from gliotype.prepare import load_prepared
from gliotype.prepare.cache import save_arrays
from gliotype.train.fit import ItemDataset

N, SHAPE, BATCH = 40, (4, 100, 100, 100), 2
PATIENT_BYTES = 2 * 4 * 100**3
IDS = [f"P{i:03d}" for i in range(N)]


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("lazy")
    out = {}
    for i, pid in enumerate(IDS):
        save_arrays(root / pid / "cube.npz", {"image": np.full(SHAPE, i, np.float16)}, {"patient": pid})
        out[pid] = {"cube": root / pid / "cube.npz"}
    return out


def held() -> int:
    """Bytes of Python and numpy memory this process holds now (tracemalloc; numpy reports its array buffers
    to it, memory-mapped file pages are not counted). Unlike the RSS, it does not depend on what earlier
    tests freed and the allocator kept."""
    return tracemalloc.get_traced_memory()[0]


@pytest.fixture
def traced():
    tracemalloc.start()
    yield
    tracemalloc.stop()


class Tracker:
    """An ``item`` and a ``collate`` that count builds and live items, and sample the memory held at each step."""

    def __init__(self):
        self.built, self.alive, self.max_alive, self.held = Counter(), 0, 0, []

    def item(self, arrays):
        image = arrays["cube"]["image"]
        assert isinstance(image, np.memmap) and not image.flags.writeable
        copy = np.array(image)  # the one copy, of this patient only
        self.built[int(copy[0, 0, 0, 0])] += 1
        self.alive += 1
        self.max_alive = max(self.max_alive, self.alive)
        weakref.finalize(copy, self._died)  # the copy lives as long as the item's tensor
        self.held.append(held())
        return {"image": torch.from_numpy(copy)}

    def _died(self):
        self.alive -= 1

    def collate(self, batch):
        items, _ = zip(*batch)
        stacked = torch.stack([it["image"] for it in items])
        self.held.append(held())  # the batch's items alive
        return [it["patient_id"] for it in items], stacked


def test_items_are_paths_until_read(paths):
    tracker = Tracker()
    inputs = LazyItems(paths, tracker.item, with_patient_id=True)
    assert len(inputs) == N and "P007" in inputs and "P040" not in inputs and list(inputs) == IDS
    sequence = items_of(inputs, IDS)
    assert isinstance(sequence, LazySequence) and isinstance(sequence[5:9], LazySequence) and len(sequence[5:9]) == 4
    assert tracker.built == Counter()  # membership, length, iteration over ids and slicing read nothing
    item = inputs["P007"]
    assert item["patient_id"] == "P007" and item["image"].shape == SHAPE and bool((item["image"] == 7).all())
    assert tracker.built == Counter({7: 1})
    assert items_of(dict(a=1, b=2), ["b", "a"]) == [2, 1]  # built inputs stay a list


def test_an_epoch_reads_each_patient_once_and_holds_at_most_a_batch(paths, traced):
    tracker = Tracker()
    sequence = items_of(LazyItems(paths, tracker.item, with_patient_id=True), IDS)
    loader = DataLoader(ItemDataset(sequence, np.zeros(N, int)), batch_size=BATCH, shuffle=True,
                        collate_fn=tracker.collate, generator=torch.Generator().manual_seed(0))
    before, seen = held(), []
    for ids, images in loader:
        assert images[:, 0, 0, 0, 0].tolist() == [int(p[1:]) for p in ids]  # each item is its patient's
        seen += ids
        del images
    growth = max(tracker.held) - before
    assert sorted(seen) == IDS and seen != IDS  # shuffled, every patient once
    assert tracker.built == Counter(range(N))  # built exactly once each
    assert tracker.max_alive == BATCH
    assert N * PATIENT_BYTES == 320_000_000
    assert growth < 100_000_000, f"held memory grew {growth / 1e6:.0f} MB over an epoch of a 320 MB cohort"
    eager = list(sequence)  # what the eager inputs did: the same gauge sees the whole cohort
    assert held() - before > 0.9 * N * PATIENT_BYTES
    del eager


def test_loader_workers_read_lazy_items(paths):
    sequence = items_of(LazyItems(paths, Tracker().item, with_patient_id=True), IDS[:8])
    loader = DataLoader(ItemDataset(sequence), batch_size=BATCH, collate_fn=Tracker().collate, num_workers=2)
    seen = [(p, int(v)) for ids, images in loader for p, v in zip(ids, images[:, 0, 0, 0, 0])]
    assert seen == [(p, i) for i, p in enumerate(IDS[:8])]


def test_image_methods_prepare_lazy_inputs_equal_to_eager_ones(tiny_mri_cohort, tmp_path, monkeypatch):
    monkeypatch.setattr("gliotype.prepare.cache.MMAP_MIN_BYTES", 1)  # map even the tiny cubes
    method = create_method("cnn3d", size=16, spacing=3.0)
    prepared = method.prepare(Cohort.from_folder(tiny_mri_cohort), ["P000", "P001"], cache_dir=tmp_path / "cache")
    assert isinstance(prepared.inputs, LazyItems) and sorted(prepared.inputs.paths) == ["P000", "P001"]
    (stage, path), = prepared.inputs.paths["P001"].items()
    assert stage == "tumour_image" and path.is_file()
    eager = torch.from_numpy(load_prepared(path)[0]["image"].astype(np.float32))
    item = prepared.inputs["P001"]
    assert item["image"].dtype == torch.float32 and torch.equal(item["image"], eager)
    assert item["image"].numpy().flags.writeable  # a copy, not the read-only map


@pytest.fixture(scope="module")
def patch_files(tmp_path_factory):
    """20 files of 100 patches of 64 x 64 x 3 uint8 (1.2 MB each, so mapped); patch r of file f holds f * 100 + r."""
    root = tmp_path_factory.mktemp("rows")
    values = np.arange(2000).reshape(20, 100)
    for f in range(20):
        patches = np.broadcast_to((values[f] % 256).astype(np.uint8)[:, None, None, None], (100, 64, 64, 3))
        save_arrays(root / f"f{f}.npz", {"patches": np.ascontiguousarray(patches), "source": values[f]})
    return [root / f"f{f}.npz" for f in range(20)]


def test_cached_rows_gather_the_rows_asked_for_in_order(patch_files):
    rows = CachedRows.concat([CachedRows([(patch_files[0], [1, 3])], "patches"),
                              CachedRows([(patch_files[1], [0, 2, 4])], "patches")])
    assert len(rows) == 5  # values 1, 3 | 100, 102, 104
    assert rows[np.array([4, 0, 2])][:, 0, 0, 0].tolist() == [104 % 256, 1, 100]
    assert rows[1:3][:, 5, 7, 2].tolist() == [3, 100]
    assert rows[np.array([-1, -5])][:, 0, 0, 0].tolist() == [104 % 256, 1]
    with pytest.raises(IndexError, match=r"\[-5, 5\); got 0..5"):
        rows[np.array([0, 5])]
    assert rows[np.array([], int)].shape == (0, 64, 64, 3)
    with pytest.raises(TypeError, match="slice"):
        rows[0]


def test_cached_rows_hold_only_the_batch(patch_files, traced):
    rows = CachedRows([(path, np.arange(0, 100, 2)) for path in patch_files], "patches")  # 1,000 of 2,000 patches
    pick = np.random.default_rng(0).choice(len(rows), 16, replace=False)
    tracemalloc.reset_peak()
    before = held()
    batch = rows[pick]
    peak = tracemalloc.get_traced_memory()[1] - before
    assert batch.shape == (16, 64, 64, 3) and peak < 2 * batch.nbytes + 100_000  # reading a file whole: 1.2 MB
    files, kept = pick // 50, 2 * (pick % 50)
    assert batch[:, 0, 0, 0].tolist() == ((files * 100 + kept) % 256).tolist()
