import os
import pickle
import subprocess
import sys
import textwrap

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
    with pytest.raises(KeyError, match="no dataset 'cube'"):
        HDF5Images(path, key="cube")
    bare = tmp_path / "bare.h5"
    with h5py.File(bare, "w") as f:
        f["images"] = np.zeros((2, 5, 4, 4), np.float32)
    with pytest.raises(KeyError, match="deredden=True needs the per-band extinction"):
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


_PEAK_RSS_SCRIPT = textwrap.dedent(
    """
    import resource, sys
    import numpy as np
    from skphotoz.data import HDF5Images

    X = HDF5Images(sys.argv[1], crop=64, deredden=True)
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(X), 100)
    def status_kb(key):
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(key))

    # Peak during the read minus the resident memory just before it. Importing torch leaves
    # a higher earlier peak, so the kernel's peak counter (VmHWM) is reset first.
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        peak = lambda: status_kb("VmHWM:")
    except OSError:
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    before_kb = status_kb("VmRSS:")
    out = X[idx]
    after_kb = peak()
    assert out.shape == (100, 5, 64, 64), out.shape
    print((after_kb - before_kb) / 1024.0)
    """
)


def test_lazy_read_from_large_file_uses_little_memory(tmp_path):
    """Reading 100 galaxies from a >= 1 GB archive raises peak RSS by < 200 MB."""
    path = tmp_path / "big.h5"
    n = 4800  # 4800 x 5 x 107 x 107 float32 = 1.10 GB
    block = np.random.default_rng(1).normal(size=(200, 5, 107, 107)).astype(np.float32)
    with h5py.File(path, "w") as f:
        images = f.create_dataset("images", (n, 5, 107, 107), np.float32, chunks=(8, 5, 107, 107))
        for start in range(0, n, len(block)):
            images[start : start + len(block)] = block
        f["e_bv"] = np.full((n, 5), 0.1, np.float32)
    assert os.path.getsize(path) >= 1_000_000_000
    result = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_SCRIPT, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    increase_mb = float(result.stdout.strip().splitlines()[-1])
    assert increase_mb < 200, f"peak RSS grew by {increase_mb:.0f} MB"
