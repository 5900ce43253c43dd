import os
import pickle
import tracemalloc

import h5py
import numpy as np
import pytest

from skphotoz.data import HDF5Images, write_archive


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(60, 5, 15, 15)).astype(np.float32)
    extinction = rng.uniform(0, 0.4, (60, 5)).astype(np.float32)
    path = tmp_path_factory.mktemp("lazy") / "a.h5"
    write_archive(path, images, rng.uniform(0, 0.4, 60), extinction=extinction)
    return path, images, extinction


def test_shape_dtype_len(archive):
    path, images, _ = archive
    X = HDF5Images(path)
    assert X.shape == images.shape and len(X) == 60 and X.ndim == 4
    assert X.dtype == np.float32
    assert HDF5Images(path, crop=7).shape == (60, 5, 7, 7)


@pytest.mark.parametrize(
    "index",
    [
        3,
        -1,
        slice(None),
        slice(5, 40, 7),
        slice(None, None, -3),
        [17, 2, 2, 59, 0, 17],
        np.array([40, -60, 31, 30, 29, 1, 58]),
        np.arange(60) % 2 == 0,
        [],
    ],
)
def test_indexing_matches_numpy(archive, index):
    path, images, _ = archive
    X = HDF5Images(path)
    expected = images[index]
    got = X[index]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)


def test_tuple_index_selects_bands(archive):
    path, images, _ = archive
    X = HDF5Images(path)
    np.testing.assert_array_equal(X[[4, 1], 2], images[[4, 1], 2])
    np.testing.assert_array_equal(X[3, 1:3], images[3, 1:3])


def test_centre_crop(archive):
    path, images, _ = archive
    X = HDF5Images(path, crop=9)
    np.testing.assert_array_equal(X[[5, 2, 5]], images[[5, 2, 5]][:, :, 3:12, 3:12])
    # An even crop of an odd stamp keeps the stamp's central pixel at index crop // 2.
    X = HDF5Images(path, crop=8)
    np.testing.assert_array_equal(X[0][:, 4, 4], images[0][:, 7, 7])


def test_deredden_on_read(archive):
    path, images, extinction = archive
    X = HDF5Images(path, crop=5, deredden=True)
    idx = [9, 3, 9]
    # Band b of galaxy i is brightened by 10**(0.4 A_ib), A read from the e_bv column.
    factor = 10.0 ** (0.4 * extinction[idx].astype(np.float64))[:, :, None, None]
    expected = images[idx][:, :, 5:10, 5:10] * factor
    got = X[idx]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_array_conversion_and_iteration(archive):
    path, images, _ = archive
    X = HDF5Images(path)
    np.testing.assert_array_equal(np.asarray(X), images)
    np.testing.assert_array_equal(np.stack(list(X)), images)


def test_pickles_without_handle(archive):
    path, images, _ = archive
    X = HDF5Images(path, crop=9, deredden=True)
    X[0]  # opens the file and loads the extinction column
    assert X._file is not None
    Y = pickle.loads(pickle.dumps(X))
    assert Y._file is None and Y._extinction is None
    np.testing.assert_array_equal(Y[[1, 0]], X[[1, 0]])
    # The copy reads the galaxies themselves, not what the original had cached.
    Z = pickle.loads(pickle.dumps(HDF5Images(path, crop=9)))
    np.testing.assert_array_equal(Z[[1, 0]], images[[1, 0]][:, :, 3:12, 3:12])
    X.close()
    assert X._file is None
    np.testing.assert_array_equal(X[[1, 0]], Y[[1, 0]])  # reopens after close
    X.close()
    Y.close()


def test_errors(archive, tmp_path):
    path, _, _ = archive
    X = HDF5Images(path)
    with pytest.raises(IndexError, match="index 60 is out of bounds for 60 images"):
        X[60]
    with pytest.raises(IndexError, match="indices must lie in \\[-60, 60\\)"):
        X[[0, 70]]
    with pytest.raises(IndexError, match="boolean index must have shape \\(60,\\)"):
        X[np.ones(3, dtype=bool)]
    with pytest.raises(ValueError, match="crop must be at most the stamp size 15; got 20"):
        HDF5Images(path, crop=20)
    with pytest.raises(ValueError, match="no dataset 'cube'"):
        HDF5Images(path, key="cube")
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f["images"] = np.zeros((2, 5, 4, 4), np.float32)
    with pytest.raises(ValueError, match="deredden=True needs the per-band extinction"):
        HDF5Images(bare, deredden=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"crop": 0},
            r"'crop' parameter of HDF5Images must be an int in the range \[1, inf\) or None\. "
            r"Got 0 instead",
        ),
        ({"crop": True}, r"'crop' .* Got True instead"),
        ({"crop": 4.0}, r"'crop' .* Got 4.0 instead"),
        ({"crop": "64"}, r"'crop' .* Got '64' instead"),
        ({"deredden": 1}, r"'deredden' parameter of HDF5Images must be an instance of 'bool'"),
        ({"deredden": "no"}, r"'deredden' .* Got 'no' instead"),
        ({"key": 0}, r"'key' parameter of HDF5Images must be an instance of 'str'"),
        ({"extinction_key": None}, r"'extinction_key' .* Got None instead"),
    ],
)
def test_argument_validation(archive, kwargs, match):
    path, _, _ = archive
    with pytest.raises(ValueError, match=match):
        HDF5Images(path, **kwargs)


def test_numpy_scalars_are_accepted(archive):
    path, images, _ = archive
    X = HDF5Images(path, crop=np.int64(9), deredden=np.bool_(False))
    np.testing.assert_array_equal(X[2], images[2][:, 3:12, 3:12])


def _bytes_read_by_this_process() -> int | None:
    """Bytes this process has read through system calls (Linux ``rchar``), or None."""
    try:
        with open("/proc/self/io") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))
    except (OSError, StopIteration):
        return None


def test_reading_a_few_rows_reads_only_their_chunks(tmp_path):
    """Four galaxies of an 11.6 MB archive cost the chunks that hold them, not the file.

    The peak resident memory of reads from a 1.1 GB archive is measured by
    ``benchmarks/lazy_memory.py``; here the bytes read from disk (Linux) and the peak of
    Python's and numpy's allocations (tracemalloc) stand in for it, which are exact and fast.
    """
    n, size = 1000, 24
    rng = np.random.default_rng(2)
    images = rng.normal(size=(n, 5, size, size)).astype(np.float32)
    extinction = rng.uniform(0, 0.3, (n, 5)).astype(np.float32)
    path = tmp_path / "mid.h5"
    write_archive(path, images, extinction=extinction)
    file_size = os.path.getsize(path)
    assert file_size > images.nbytes
    chunk_bytes = 8 * 5 * size * size * 4  # the writer stores 8 galaxies per chunk
    rows = [5, 400, 401, 999]  # in three chunks: 0, 50 (both 400 and 401) and 124

    X = HDF5Images(path, crop=16, deredden=True)
    tracemalloc.start()
    try:
        before = _bytes_read_by_this_process()
        out = X[rows]
        after = _bytes_read_by_this_process()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    factor = 10.0 ** (0.4 * extinction[rows].astype(np.float64))[:, :, None, None]
    np.testing.assert_allclose(out, images[rows][:, :, 4:20, 4:20] * factor, rtol=1e-6)
    # A few hundred kB at most, against 11.6 MB for the file.
    assert peak < file_size / 20, f"peak allocation {peak} B for a {file_size} B file"
    if before is None:
        X.close()
        return
    read = after - before
    # The three chunks, the whole extinction column, and HDF5's metadata (a few kB).
    assert read <= 3 * chunk_bytes + extinction.nbytes + 64 * 1024, f"read {read} B"
    # The instrument sees a full read: converting the whole array reads the whole file.
    X.close()
    before = _bytes_read_by_this_process()
    np.asarray(X)
    assert _bytes_read_by_this_process() - before >= images.nbytes
    X.close()


def test_deredden_refuses_non_finite_extinction_naming_rows(tmp_path):
    path = tmp_path / "nan_ext.h5"
    extinction = np.full((9, 5), 0.1, np.float32)
    extinction[[1, 2, 3, 4, 6, 8], 2] = np.nan
    extinction[6, 0] = np.inf
    with pytest.raises(ValueError, match="extinction must be finite, or NaN for unknown"):
        write_archive(path, np.ones((9, 5, 4, 4)), extinction=extinction)
    with h5py.File(path, "w") as f:  # as another tool writes it
        f["images"] = np.ones((9, 5, 4, 4), np.float32)
        f["e_bv"] = extinction
    with pytest.raises(
        ValueError,
        match=r"6 of 9 galaxies of .* have NaN or infinite 'e_bv' \(rows 1, 2, 3, 4, 6, \.\.\.\)",
    ):
        HDF5Images(path, deredden=True)
    # Without dereddening the images themselves are fine.
    np.testing.assert_array_equal(HDF5Images(path)[0], np.ones((5, 4, 4)))
    # An archive written without any extinction holds NaN there: refused the same way.
    write_archive(path, np.ones((2, 5, 4, 4)))
    with pytest.raises(ValueError, match=r"2 of 2 galaxies .* \(rows 0, 1\)"):
        HDF5Images(path, deredden=True)


def test_deredden_refuses_a_missing_value_code_as_extinction(tmp_path):
    extinction = np.full((4, 5), 0.05)
    extinction[2, 1] = -9999.0
    path = tmp_path / "a.h5"
    with pytest.raises(ValueError, match=r"extinction must lie in \[-0.25, 60\].*e.g. -9999"):
        write_archive(path, np.ones((4, 5, 8, 8)), [0.1] * 4, extinction=extinction)
    with h5py.File(path, "w") as f:  # as another tool writes it
        f["images"] = np.ones((4, 5, 8, 8), np.float32)
        f["e_bv"] = extinction
    with pytest.raises(ValueError, match=r"extinction >= -0.25 mag, but 1 of 4 .*rows 2; e.g. -9"):
        HDF5Images(path, deredden=True)  # was: galaxy 2 dereddened to all-zero pixels
    assert HDF5Images(path).shape == (4, 5, 8, 8)
    extinction[2, 1] = 99.0  # a code at the other end: dereddening would overflow float32
    with h5py.File(path, "w") as f:
        f["images"] = np.ones((4, 5, 8, 8), np.float32)
        f["e_bv"] = extinction
    with pytest.raises(ValueError, match=r"extinction <= 60 mag, but 1 of 4 .*rows 2; e.g. 99"):
        HDF5Images(path, deredden=True)


def test_deredden_refuses_misshapen_extinction(tmp_path):
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((3, 5, 4, 4), np.float32)
        f["e_bv"] = np.zeros((3,), np.float32)
    with pytest.raises(ValueError, match=r"'e_bv' of shape \(n_samples, n_bands\) = \(3, 5\)"):
        HDF5Images(path, deredden=True)
