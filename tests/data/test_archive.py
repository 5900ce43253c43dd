import h5py
import numpy as np
import pytest

from skphotoz.data import (
    ArchiveWriter,
    HDF5Images,
    load_npz_cube,
    open_archive,
    save_npz_cube,
    write_archive,
)


def _galaxies(n=12, size=11, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "images": rng.normal(size=(n, 5, size, size)).astype(np.float32),
        "redshift": rng.uniform(0, 0.4, n).astype(np.float32),
        "redshift_err": rng.uniform(0, 1e-4, n).astype(np.float32),
        "extinction": rng.uniform(0, 0.3, (n, 5)).astype(np.float32),
        "ra": rng.uniform(0, 360, n),
        "dec": rng.uniform(-10, 70, n),
        "objid": rng.integers(0, 2**62, n),
        "specobjid": rng.integers(0, 2**62, n),
    }


def test_hdf5_round_trip_uses_published_keys(tmp_path):
    data = _galaxies()
    path = tmp_path / "archive.h5"
    write_archive(path, **data, chunk_size=5)
    with h5py.File(path, "r") as f:
        assert set(f) == {
            "images", "specz_redshift", "specz_redshift_err", "e_bv", "ra", "dec", "ObjID",
            "specObjID", "images_crc32",
        }  # fmt: skip
        assert f["images"].dtype == np.float32
        assert f["e_bv"].shape == (12, 5)
    bunch = open_archive(path)
    assert isinstance(bunch.images, HDF5Images)
    np.testing.assert_array_equal(np.asarray(bunch.images), data["images"])
    for key in ("redshift", "redshift_err", "extinction", "ra", "dec", "objid", "specobjid"):
        np.testing.assert_array_equal(bunch[key], data[key])


def test_missing_columns_are_marked_unknown(tmp_path):
    path = tmp_path / "a.h5"
    write_archive(path, np.zeros((3, 5, 4, 4)), [0.1, 0.2, 0.3])
    bunch = open_archive(path)
    assert np.isnan(bunch.ra).all()
    assert (bunch.objid == -1).all()
    np.testing.assert_allclose(bunch.redshift, [0.1, 0.2, 0.3], rtol=1e-6)


def test_streaming_writer_in_batches(tmp_path):
    data = _galaxies(n=10)
    path = tmp_path / "s.h5"
    with ArchiveWriter(path, n_samples=10, stamp_size=11) as writer:
        for start in (0, 3, 7):
            stop = {0: 3, 3: 7, 7: 10}[start]
            writer.append(images=data["images"][start:stop], redshift=data["redshift"][start:stop])
    bunch = open_archive(path)
    np.testing.assert_array_equal(bunch.images[:], data["images"])
    np.testing.assert_array_equal(bunch.redshift, data["redshift"])


def test_writer_errors(tmp_path):
    path = tmp_path / "e.h5"
    with pytest.raises(ValueError, match="images must have shape \\(n_batch, 5, 11, 11\\)"):
        with ArchiveWriter(path, 4, stamp_size=11) as writer:
            writer.append(images=np.zeros((2, 5, 10, 10)))
    with pytest.raises(ValueError, match="created for n_samples=2"):
        with ArchiveWriter(path, 2, stamp_size=4) as writer:
            writer.append(images=np.zeros((3, 5, 4, 4)))
    with pytest.raises(ValueError, match="but 1 galaxies were written"):
        with ArchiveWriter(path, 2, stamp_size=4) as writer:
            writer.append(images=np.zeros((1, 5, 4, 4)))
    with pytest.raises(TypeError, match=r"unknown columns \['z'\]; expected any of \['redshift'"):
        with ArchiveWriter(path, 1, stamp_size=4) as writer:
            writer.append(images=np.zeros((1, 5, 4, 4)), z=[0.1])
    with pytest.raises(ValueError, match="redshift must have 3 rows"):
        write_archive(path, np.zeros((3, 5, 4, 4)), [0.1])
    with pytest.raises(
        TypeError, match=r"write_archive takes the public column names.*e_bv= -> extinction="
    ):
        write_archive(path, np.zeros((1, 5, 4, 4)), e_bv=np.zeros((1, 5)))
    with pytest.raises(TypeError, match=r"write_archive got unknown columns \['zz'\]"):
        write_archive(path, np.zeros((1, 5, 4, 4)), zz=[0.1])
    with pytest.raises(ValueError, match=r"no empty axis; got \(0, 5, 4, 4\)"):
        write_archive(path, np.zeros((0, 5, 4, 4)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"n_samples": 0},
            r"'n_samples' parameter of ArchiveWriter must be an int in the range \[1, inf\)\. "
            r"Got 0 instead",
        ),
        ({"n_samples": True}, r"'n_samples' .* Got True instead"),
        ({"n_samples": 2.0}, r"'n_samples' .* Got 2.0 instead"),
        ({"n_samples": 2, "stamp_size": -4}, r"'stamp_size' .* Got -4 instead"),
        ({"n_samples": 2, "stamp_size": 4096}, r"'stamp_size' .* range \[1, 2048\]. Got 4096"),
        ({"n_samples": 2, "n_bands": 17}, r"'n_bands' .* range \[1, 16\]. Got 17 instead"),
        ({"n_samples": 2, "n_bands": np.float64(5)}, r"'n_bands' .* Got (np.float64\()?5.0"),
        (
            {"n_samples": 2, "compression": "zip"},
            r"'compression' parameter of ArchiveWriter must be a str among \{.*'gzip'.*\} or None",
        ),
    ],
)
def test_writer_argument_validation(tmp_path, kwargs, match):
    path = tmp_path / "never.h5"
    with pytest.raises(ValueError, match=match):
        ArchiveWriter(path, **kwargs)
    # Refused at construction: no file is created.
    assert not path.exists()


def test_writer_accepts_numpy_integers_and_compression(tmp_path):
    path = tmp_path / "c.h5"
    with ArchiveWriter(path, np.int64(2), stamp_size=np.int32(4), compression="gzip") as w:
        w.append(images=np.ones((2, 5, 4, 4)))
    with h5py.File(path, "r") as f:
        assert f["images"].compression == "gzip"
        np.testing.assert_array_equal(f["images"][...], 1.0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chunk_size": 0}, r"'chunk_size' parameter of write_archive must be an int .* Got 0"),
        ({"chunk_size": True}, r"'chunk_size' .* Got True instead"),
        ({"chunk_size": 1.5}, r"'chunk_size' .* Got 1.5 instead"),
        ({"chunk_size": 65537}, r"'chunk_size' .* range \[1, 65536\]. Got 65537 instead"),
    ],
)
def test_write_archive_argument_validation(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        write_archive(tmp_path / "a.h5", np.zeros((3, 5, 4, 4)), **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"crop": 0},
            r"'crop' parameter of open_archive must be an int in the range \[1, inf\) or None\. "
            r"Got 0 instead",
        ),
        ({"crop": True}, r"'crop' .* Got True instead"),
        ({"crop": 3.0}, r"'crop' .* Got 3.0 instead"),
        ({"deredden": 1}, r"'deredden' parameter of open_archive must be an instance of 'bool'"),
        ({"deredden": "yes"}, r"'deredden' .* Got 'yes' instead"),
    ],
)
def test_open_archive_argument_validation(tmp_path, kwargs, match):
    path = tmp_path / "a.h5"
    write_archive(path, np.zeros((3, 5, 4, 4)), extinction=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=match):
        open_archive(path, **kwargs)
    # numpy booleans and integers are as good as Python's.
    bunch = open_archive(path, crop=np.int64(2), deredden=np.bool_(True))
    assert bunch.images.shape == (3, 5, 2, 2)


def test_npz_cube_round_trip_is_channels_last(tmp_path):
    data = _galaxies(n=4, size=8)
    path = tmp_path / "cube.npz"
    save_npz_cube(path, data["images"], data["redshift"], ebv=data["extinction"][:, 2] / 2.285)
    with np.load(path) as raw:
        assert raw["cube"].shape == (4, 8, 8, 5)
        np.testing.assert_array_equal(raw["cube"][..., 2], data["images"][:, 2])
        assert raw["labels"].dtype.names == ("z", "ebv")
    bunch = load_npz_cube(path)
    np.testing.assert_array_equal(bunch.images, data["images"])
    np.testing.assert_allclose(bunch.redshift, data["redshift"], rtol=1e-7)
    np.testing.assert_allclose(bunch.ebv, data["extinction"][:, 2] / 2.285, rtol=1e-6)


def test_npz_errors(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((1, 4, 4, 5)))
    with pytest.raises(ValueError, match="expected the key 'cube'"):
        load_npz_cube(path)
    with pytest.raises(ValueError, match="label 'z' must have 2 rows"):
        save_npz_cube(tmp_path / "x.npz", np.zeros((2, 5, 4, 4)), [0.1])


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("specz_redshift", "redshift"),
        ("specz_redshift_err", "redshift_err"),
        ("e_bv", "extinction"),
        ("ObjID", "objid"),
        ("specObjID", "specobjid"),
    ],
)
def test_append_names_the_public_column_for_an_archive_key(tmp_path, old, new):
    with pytest.raises(TypeError, match=rf"public column names.*use {old}= -> {new}="):
        with ArchiveWriter(tmp_path / "k.h5", 1, stamp_size=4) as writer:
            writer.append(images=np.zeros((1, 5, 4, 4)), **{old: [1]})


def test_append_takes_the_names_open_archive_returns(tmp_path):
    data = _galaxies(n=3, size=4)
    path = tmp_path / "p.h5"
    with ArchiveWriter(path, 3, stamp_size=4) as writer:
        writer.append(**data)
    bunch = open_archive(path)
    for key in ("redshift", "redshift_err", "extinction", "ra", "dec", "objid", "specobjid"):
        np.testing.assert_array_equal(bunch[key], data[key])


def test_append_refuses_float_identifiers_and_string_images(tmp_path):
    with pytest.raises(TypeError, match=r"objid must be integer identifiers; got dtype float64"):
        with ArchiveWriter(tmp_path / "f.h5", 1, stamp_size=4) as writer:
            writer.append(images=np.zeros((1, 5, 4, 4)), objid=[1.237e18])
    with pytest.raises(TypeError, match=r"images must be real-valued fluxes; got dtype <U1"):
        write_archive(tmp_path / "s.h5", np.full((1, 5, 4, 4), "a"))
    with pytest.raises(TypeError, match=r"redshift must be real numbers; got dtype <U3"):
        write_archive(tmp_path / "s.h5", np.zeros((1, 5, 4, 4)), np.array(["0.1"]))


def _raw_archive(path, images, **datasets):
    with h5py.File(path, "w") as f:
        if images is not None:
            f["images"] = images
        for key, values in datasets.items():
            f[key] = values


@pytest.mark.parametrize(
    ("key", "values", "match"),
    [
        (
            "specz_redshift",
            np.zeros(2),
            r"column 'redshift' \(key 'specz_redshift'\) has 2 rows but the archive has 3 images",
        ),
        ("ObjID", np.zeros(4, np.int64), r"column 'objid' \(key 'ObjID'\) has 4 rows .* 3 images"),
        ("e_bv", np.zeros((3, 4)), r"'extinction' \(key 'e_bv'\) must have shape .*\(3, 5\); got"),
    ],
)
def test_open_archive_refuses_columns_of_another_length(tmp_path, key, values, match):
    path = tmp_path / "short.h5"
    _raw_archive(path, np.zeros((3, 5, 4, 4), np.float32), **{key: values})
    with pytest.raises(ValueError, match=match):
        open_archive(path)


def test_open_archive_says_what_is_wrong_with_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no archive at '.*nowhere.h5': .*does not exist"):
        open_archive(tmp_path / "nowhere.h5")
    with pytest.raises(ValueError, match=r"is a folder; expected an HDF5 archive file"):
        open_archive(tmp_path)
    cube = tmp_path / "cube.npy"
    np.save(cube, np.zeros((2, 4, 4, 5), np.float32))
    with pytest.raises(ValueError, match=r"cube.npy' is not an HDF5 file"):
        open_archive(cube)
    no_images = tmp_path / "cols.h5"
    _raw_archive(no_images, None, specz_redshift=np.zeros(3))
    with pytest.raises(ValueError, match=r"has no dataset 'images' \(the images\); it holds"):
        open_archive(no_images)


@pytest.mark.parametrize("shape", [(0, 5, 4, 4), (2, 5, 0, 0), (2, 0, 4, 4)])
def test_open_archive_refuses_empty_images(tmp_path, shape):
    path = tmp_path / "empty.h5"
    _raw_archive(path, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=r"is empty: shape .* has a zero-length axis"):
        open_archive(path)


def test_open_archive_refuses_non_numeric_images(tmp_path):
    path = tmp_path / "str.h5"
    _raw_archive(path, np.full((2, 5, 4, 4), b"x"))
    with pytest.raises(ValueError, match=r"must hold real numbers \(fluxes\); got dtype \|S1"):
        open_archive(path)


def test_unknown_columns_cost_no_memory(tmp_path):
    """Columns never given are NaN / -1 through HDF5's fill value, not a written array: a
    writer for a billion galaxies opens at once (and then says none were written)."""
    path = tmp_path / "big.h5"
    with pytest.raises(ValueError, match="created for n_samples=1000000000 but 0 galaxies"):
        with ArchiveWriter(path, 10**9, stamp_size=2):
            assert (tmp_path / "big.h5.partial").stat().st_size < 1e6
    assert not path.exists()  # a failed write leaves nothing


def test_write_archive_into_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the folder '.*nodir' does not exist"):
        write_archive(tmp_path / "nodir" / "a.h5", np.zeros((2, 5, 8, 8)), [0.1, 0.2])


@pytest.mark.parametrize("stop", ["under-filled", "interrupted"])
def test_an_archive_whose_writer_stopped_early_is_refused_on_open(tmp_path, stop):
    path = tmp_path / "a.h5"
    with pytest.raises((ValueError, KeyboardInterrupt)):
        with ArchiveWriter(path, 10, stamp_size=8) as writer:
            writer.append(np.ones((4, 5, 8, 8)), redshift=np.full(4, 0.1))
            if stop == "interrupted":
                raise KeyboardInterrupt
    # was: opened as 10 galaxies, the last 6 all-zero images with NaN redshifts; now nothing
    # is left at the path (the writer writes beside it and renames when complete)
    assert not path.exists() and not (tmp_path / "a.h5.partial").exists()
    write_archive(path, np.ones((3, 5, 8, 8)), [0.1, 0.2, 0.3])  # a finished write opens
    assert open_archive(path).images.shape == (3, 5, 8, 8)
    # A failed rewrite leaves the archive that was there as it was.
    with pytest.raises((ValueError, KeyboardInterrupt)):
        with ArchiveWriter(path, 10, stamp_size=8) as writer:
            writer.append(np.zeros((4, 5, 8, 8)))
            if stop == "interrupted":
                raise KeyboardInterrupt
    np.testing.assert_array_equal(open_archive(path).images[:], np.ones((3, 5, 8, 8)))


def test_a_partial_file_left_by_a_killed_writer_is_refused_on_open(tmp_path):
    path = tmp_path / "a.h5"
    writer = ArchiveWriter(path, 10, stamp_size=8).__enter__()
    writer.append(np.ones((4, 5, 8, 8)), redshift=np.full(4, 0.1))
    writer._file.flush()  # what a kill -9 leaves: no __exit__, the partial file on disk
    partial = tmp_path / "a.h5.partial"
    try:
        with pytest.raises(ValueError, match=r"incomplete archive: its writer stopped after 4"):
            open_archive(partial)
        with pytest.raises(ValueError, match=r"incomplete archive"):
            HDF5Images(partial)
        assert not path.exists()
    finally:
        writer._file.close()
