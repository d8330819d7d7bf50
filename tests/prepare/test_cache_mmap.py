"""``load_arrays(mmap=True)``: large members of a cache file come back as read-only memory maps, equal to
what was saved; small, compressed and pickled members do not."""

import zipfile

import numpy as np
import pytest

from gliotype.prepare.cache import MMAP_MIN_BYTES, load_arrays, save_arrays


def saved(tmp_path):
    arrays = {
        "cube": np.arange(4 * 80 * 80 * 80, dtype=np.float16).reshape(4, 80, 80, 80),  # 4,096,000 bytes
        "fortran": np.asfortranarray(np.arange(600 * 500, dtype=np.float32).reshape(600, 500)),  # 1,200,000 bytes
        "index": np.arange(200_000, dtype=np.int64) - 7,  # 1,600,000 bytes
        "small": np.array([[1, 2, 3], [4, 5, 6]], np.uint8),  # 6 bytes
        "flag": np.array(True),  # 0-d
    }
    path = tmp_path / "patient.npz"
    save_arrays(path, arrays, {"stage": "test", "n": 3})
    return path, arrays


def test_large_members_are_read_only_maps_equal_to_what_was_saved(tmp_path):
    path, arrays = saved(tmp_path)
    loaded, meta = load_arrays(path, mmap=True)
    assert meta == {"stage": "test", "n": 3} and sorted(loaded) == sorted(arrays)
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)
    mapped = {name for name, a in loaded.items() if isinstance(a, np.memmap)}
    assert mapped == {"cube", "fortran", "index"}  # the three over MMAP_MIN_BYTES (1 MiB)
    assert all(arrays[n].nbytes >= MMAP_MIN_BYTES for n in mapped)
    assert not any(loaded[n].flags.writeable for n in mapped)
    assert loaded["fortran"].flags.f_contiguous and loaded["fortran"][1, 0] == 500.0
    eager, _ = load_arrays(path)
    assert not any(isinstance(a, np.memmap) for a in eager.values())


def test_an_atomic_rewrite_leaves_an_open_map_intact(tmp_path):
    path, arrays = saved(tmp_path)
    before, _ = load_arrays(path, mmap=True)
    save_arrays(path, {"cube": np.zeros((4, 80, 80, 80), np.float16)})  # temp file + rename over it
    np.testing.assert_array_equal(before["cube"], arrays["cube"])  # the map still reads the old file
    after, _ = load_arrays(path, mmap=True)
    assert list(after) == ["cube"] and not after["cube"].any()


def test_compressed_members_are_read_not_mapped(tmp_path):
    path = tmp_path / "compressed.npz"
    np.savez_compressed(path, big=np.ones(300_000, np.float64))
    assert zipfile.ZipFile(path).infolist()[0].compress_type == zipfile.ZIP_DEFLATED
    loaded, meta = load_arrays(path, mmap=True)
    assert meta == {} and not isinstance(loaded["big"], np.memmap) and loaded["big"].sum() == 300_000


def test_object_members_are_refused_not_unpickled(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, big=np.array([{"k": i} for i in range(200_000)], dtype=object))  # a pickle of over 1 MiB
    assert zipfile.ZipFile(path).infolist()[0].file_size >= MMAP_MIN_BYTES
    with pytest.raises(ValueError, match="allow_pickle"):
        load_arrays(path, mmap=True)
