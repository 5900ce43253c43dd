"""The last silent inputs: each case here was accepted without a word (or failed with a raw
error) before, and is now refused by name or handled as documented."""

import warnings

import h5py
import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz import io as skio
from skphotoz.baselines import GaussianProcessPhotoZ, photometry_baseline
from skphotoz.cli import main
from skphotoz.data import (
    ArchiveWriter,
    HDF5Images,
    load_npz_cube,
    open_archive,
    save_npz_cube,
    verify_archive,
    write_archive,
)
from skphotoz.exceptions import DamagedDataError
from skphotoz.metrics import bias, photoz_report, sigma_mad
from skphotoz.preprocessing import aperture_fluxes, aperture_masks
from skphotoz.search import SimilaritySearch
from tests.helpers import TINY, make_features, make_images


# ------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("head", ["bins", "regression"])
def test_missing_value_codes_are_not_redshifts(head):
    X, y = make_features(n=16)
    y = y.copy()
    y[[3, 7]] = -9999.0  # was: trained on, predictions of thousands
    with pytest.raises(ValueError, match=r"y must be > -1 .* 2 row\(s\) are not, e.g. row 3"):
        PhotoZRegressor(head=head, **TINY).fit(X, y)
    # Masked, the same codes are unlabelled rows: the fit uses the others.
    masked = np.ma.masked_equal(y, -9999.0)
    model = PhotoZRegressor(head=head, **TINY).fit(X, masked)
    assert np.all(np.abs(model.predict(X)) < 10)


def test_the_baselines_refuse_missing_value_codes_too():
    images = make_images(n=12, size=8)
    y = np.linspace(0.1, 0.3, 12)
    y[2] = -9999.0
    for model in ("forest", "gp"):
        with pytest.raises(ValueError, match="y must be > -1"):
            photometry_baseline(model, random_state=0).fit(images, y)
    X, z = make_features(n=12)
    with pytest.raises(ValueError, match="below 1e30"):
        GaussianProcessPhotoZ(n_restarts=0).fit(X, z * 1e300)


def test_unfitted_pdf_methods_and_text_coverage():
    X, y = make_features()
    for method in ("predict_pdf", "predict_interval", "predict_quantiles"):
        with pytest.raises(NotFittedError):  # was: AttributeError ... 'model_'
            getattr(PhotoZRegressor(**TINY), method)(X)
    model = PhotoZRegressor(**TINY).fit(X, y)
    for coverage in ("0.5", True, 1.0, float("nan")):
        with pytest.raises(ValueError, match="'coverage' parameter .* must be a float"):
            model.predict_interval(X, coverage)
    with pytest.raises(TypeError, match="quantiles must be numbers"):
        model.predict_quantiles(X, [True])
    with pytest.raises(TypeError, match="booleans"):
        PhotoZRegressor(**TINY).fit(X, y > 0.2)


def test_masked_input_is_named_as_masked():
    X, y = make_features()
    model = PhotoZRegressor(**TINY).fit(X, y)
    masked = np.ma.masked_array(X, mask=np.zeros(X.shape, bool))
    masked.mask[3, 1] = True
    with pytest.raises(ValueError, match=r"1 masked, NaN or infinite value\(s\) .* masked entr"):
        model.predict(masked)


def test_fits_leave_the_global_random_state_as_they_found_it():
    X, y = make_features(n=16)
    images = make_images(n=16, size=16)
    for fit in (
        lambda: PhotoZRegressor(**dict(TINY, n_epochs=3)).fit(X, y),
        lambda: MoCoEmbedder(queue_size=16, **TINY).fit(images),
    ):
        torch.manual_seed(0)
        before = torch.get_rng_state().clone()
        fit()
        assert torch.equal(torch.get_rng_state(), before)  # was: one draw per epoch


# ---------------------------------------------------------------------------- metrics
def test_metrics_never_return_infinity_for_finite_input():
    # Residuals far beyond any redshift: the mean and median must not overflow on the way.
    assert np.isfinite(bias([0.1, 0.2], [9e29, 9e29]))
    assert np.isfinite(sigma_mad([-0.9999999999999999, 0.1, 0.2], [9e29, 0.1, -0.5]))
    assert np.isfinite(list(photoz_report([0.1, 0.2], [9e29, -0.5]).values())).all()
    with pytest.raises(ValueError, match="below 1e30"):  # was: inf
        photoz_report([1.7e308, 0.1], [0.1, 0.1])


# ------------------------------------------------------------------------- data layer
def test_archives_refuse_what_they_would_store_wrongly(tmp_path):
    images = np.ones((3, 5, 8, 8), np.float32)
    path = tmp_path / "a.h5"
    cases = [
        (dict(objid=np.array([2**64 - 1, 1, 2], np.uint64)), "beyond the int64 range"),
        (dict(objid=np.array([-5, 1, 2])), "identifiers >= 0, or -1"),
        (dict(redshift=[1e39, 0.1, 0.2]), "below 1e30"),
        (dict(redshift=[-9999.0, 0.1, 0.2]), "redshift must be > -1"),
        (dict(redshift_err=[-1.0, 0.1, 0.2]), r"redshift_err must lie in >= 0"),
        (dict(extinction=np.full((3, 5), 1e39)), r"extinction must lie in \[-0.25, 60\]"),
        (dict(dec=[91.0, 0.0, 0.0]), r"dec must lie in \[-90, 90\]"),
    ]
    for columns, message in cases:
        with pytest.raises(ValueError, match=message):
            write_archive(path, images, **columns)
    with pytest.raises(ValueError, match="beyond the float32 range"):
        write_archive(path, np.full((3, 5, 8, 8), 1e39))  # was: stored as inf
    # Masked entries are unknown: NaN and -1, not the codes under the mask.
    z = np.ma.masked_equal([0.1, -9999.0, 0.3], -9999.0)
    ids = np.ma.masked_equal([7, -9999, 9], -9999)
    write_archive(path, images, z, objid=ids)
    with h5py.File(path, "r") as f:
        assert np.isnan(f["specz_redshift"][1]) and f["ObjID"][1] == -1


def test_a_2d_index_keeps_its_shape(tmp_path):
    images = np.random.default_rng(0).random((4, 5, 8, 8)).astype(np.float32)
    write_archive(tmp_path / "a.h5", images)
    index = np.array([[0, 1], [3, 0]])
    lazy = HDF5Images(tmp_path / "a.h5")
    np.testing.assert_array_equal(lazy[index], images[index])  # was: flattened to 4 rows


def test_malformed_npz_cubes_get_errors_naming_the_file(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, cube=np.zeros((6, 5, 8, 8)))
    with pytest.raises(ValueError, match="looks channels-first"):  # was: read as (6, 8, 5, 8)
        load_npz_cube(path)
    np.savez(path, cube=np.zeros((6, 8, 8, 5)), z=np.zeros(2))
    with pytest.raises(ValueError, match="label 'redshift' has shape"):
        load_npz_cube(path)
    np.savez(path, cube=np.zeros((6, 8, 8, 5)), labels=np.zeros(6))
    with pytest.raises(ValueError, match="1-D structured array"):
        load_npz_cube(path)
    np.savez(path, cube=np.array([object()] * 6, dtype=object))
    with pytest.raises(ValueError, match="never loads") as error:
        load_npz_cube(path)
    assert "allow_pickle" not in str(error.value)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="is not a .npz archive|could not be read"):
        load_npz_cube(path)


def test_a_dangling_link_is_reported(tmp_path):
    path = tmp_path / "ext.h5"
    with h5py.File(path, "w") as f:
        f["images"] = h5py.ExternalLink(str(tmp_path / "gone.h5"), "/images")
    with pytest.raises(DamagedDataError, match="point to nothing"):  # was: verified clean
        verify_archive(path)


# ---------------------------------------------------------------------- command line
def test_command_line_messages_name_the_argument(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["demo", "--out", str(tmp_path / "file")]) == 1
    err = capsys.readouterr().err
    assert "--out" in err and "is a file" in err and "Errno" not in err
    with pytest.raises(SystemExit):  # argparse's usage error, status 2
        main(["fit-photoz", "a.h5", "--output", "m.skops", "--seed", "-5"])
    assert "argument --seed: expected an integer >= 0" in capsys.readouterr().err
    archive = str(tmp_path / "a.h5")
    write_archive(archive, np.ones((4, 5, 8, 8), np.float32))
    np.savez(tmp_path / "e.npz", embeddings=np.zeros((4, 3)))
    assert main(["search", archive, "0", "--embeddings", str(tmp_path / "e.npz"), "-k", "2"]) == 1
    assert "is a .npz archive" in capsys.readouterr().err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.save(tmp_path / "e.npy", np.random.default_rng(0).normal(size=(4, 3)))
    assert main(["search", archive, "0", "--embeddings", str(tmp_path / "e.npy"), "-k", "9"]) == 0
    captured = capsys.readouterr()
    assert "holds only 3 galaxies besides the query" in captured.err
    assert len(captured.out.strip().splitlines()) == 2 + 3  # header lines and all 3


def test_io_trusted_must_be_a_bool_or_names(tmp_path):
    path = tmp_path / "m.skops"
    skio.dump({"a": 1}, path)
    for trusted in (3, None, "yes"):
        with pytest.raises(TypeError, match="trusted must be True, False or a list"):
            skio.load(path, trusted=trusted)


# ------------------------------------------------------------ second review round
def test_an_archive_is_never_written_over_its_own_images(tmp_path):
    path = tmp_path / "a.h5"
    write_archive(path, np.ones((3, 5, 8, 8), np.float32), [0.1, 0.2, 0.3])
    bunch = open_archive(path)
    with pytest.raises(ValueError, match="is the archive the images are read from"):
        write_archive(path, bunch.images, bunch.redshift)
    np.testing.assert_array_equal(open_archive(path).images[:], np.ones((3, 5, 8, 8)))
    writer = ArchiveWriter(tmp_path / "b.h5", 2, stamp_size=8)
    with writer:
        writer.append(np.ones((2, 5, 8, 8)))
    with pytest.raises(ValueError, match="writes one archive, once"):
        with writer:  # was: emptied the archive and marked it complete
            pass
    assert open_archive(tmp_path / "b.h5").images[:].shape == (2, 5, 8, 8)


def test_npz_cubes_refuse_what_they_would_store_wrongly(tmp_path):
    path = tmp_path / "c.npz"
    images = np.ones((3, 5, 8, 8))
    with pytest.raises(TypeError, match="got an array of dtype complex"):
        save_npz_cube(path, images, np.array([0.1, 0.2, 0.3]) + 0.5j)
    with pytest.raises(ValueError, match="redshift must be > -1"):
        save_npz_cube(path, images, [-9999.0, 0.2, 0.3])
    with pytest.raises(ValueError, match="beyond the float32 range"):
        save_npz_cube(path, np.full((3, 5, 8, 8), 1e39), [0.1, 0.2, 0.3])
    with pytest.raises(TypeError, match="label named 'z'"):
        save_npz_cube(path, images, [0.1, 0.2, 0.3], z=[1.0, 2.0, 3.0])
    save_npz_cube(path, images, np.ma.masked_equal([0.1, -9999.0, 0.3], -9999.0))
    assert np.isnan(load_npz_cube(path).redshift[1])  # the mask kept: unknown


def test_masks_are_missing_values_in_search_and_photometry():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(12, 4))
    query = np.ma.masked_array(E[:1].copy(), mask=[[True, False, False, False]])
    query.data[0, 0] = 1e6  # under the mask: must not be used
    search = SimilaritySearch(n_neighbors=2, metric="dot", device="cpu").fit(E)
    with pytest.raises(ValueError, match="NaN"):
        search.kneighbors(query)
    images = rng.normal(size=(2, 5, 8, 8))
    masked = np.ma.masked_array(images, mask=np.zeros(images.shape, bool))
    masked.mask[1, 0, 4, 4] = True
    with pytest.raises(ValueError, match=r"masked\) pixels in stamps \[1\]"):
        aperture_fluxes(masked)
    with pytest.raises(ValueError, match=r"in stamps \[0\]"):
        aperture_fluxes(np.where(np.arange(2)[:, None, None, None] == 0, np.nan, images))
    with pytest.raises(ValueError, match="radii must increase"):
        aperture_fluxes(images, radii=(3.0, 1.0))
    with pytest.raises(ValueError, match="'shape' parameter of aperture_masks"):
        aperture_masks((10**6, 10**6))


def test_hdf5_images_index_like_numpy(tmp_path):
    images = np.random.default_rng(0).random((6, 5, 8, 8)).astype(np.float32)
    write_archive(tmp_path / "a.h5", images)
    lazy = HDF5Images(tmp_path / "a.h5")
    keys = [np.array(3), ([0, 1], [0, 1]), ([3, 1, 3], slice(None), 0), ([2, 0], [1, 3], 4)]
    for key in keys:
        np.testing.assert_array_equal(lazy[key], images[key], err_msg=repr(key))
        assert lazy[key].shape == images[key].shape


def test_simulate_does_not_replace_a_file_unasked(tmp_path, capsys):
    path = tmp_path / "a.h5"
    path.write_text("precious")
    assert main(["simulate", str(path), "--n", "2", "--stamp-size", "8"]) == 1
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert path.read_text() == "precious"
    assert main(["simulate", str(tmp_path / "a.csv"), "--n", "2", "--stamp-size", "8"]) == 1
    assert "name it .h5" in capsys.readouterr().err
    assert main(["simulate", str(path), "--n", "2", "--stamp-size", "8", "--overwrite"]) == 0


def test_labels_beyond_any_galaxy_are_warned_about_and_booleans_refused():
    X, y = make_features(n=12)
    y = y.copy()
    y[2] = 99.0
    with pytest.warns(UserWarning, match="above z = 15, beyond any galaxy measured"):
        PhotoZRegressor(head="regression", **TINY).fit(X, y)
    with pytest.warns(UserWarning, match="above z = 15"):
        photometry_baseline("forest", random_state=0).fit(make_images(12, 8), y)
    for model in ("forest", "gp"):
        with pytest.raises(TypeError, match="booleans"):
            photometry_baseline(model, random_state=0).fit(make_images(12, 8), y > 0.2)


# ------------------------------------------------------------- third review round
def test_masks_inside_lists_are_kept():
    X, y = make_features()
    model = PhotoZRegressor(**TINY).fit(X, y)
    mask = np.zeros(X.shape, bool)
    mask[2, 1] = True
    rows = list(np.ma.masked_array(X, mask))  # np.asarray(rows) would drop the masks
    with pytest.raises(ValueError, match=r"masked, NaN or infinite value\(s\) .* \(rows \[2\]\)"):
        model.predict(rows)
    images = np.ones((2, 5, 8, 8))
    stamps = [np.ma.masked_array(images[0], images[0] > 2), np.ma.masked_array(images[1])]
    stamps[1].mask = np.zeros(stamps[1].shape, bool)
    stamps[1].mask[0, 4, 4] = True
    with pytest.raises(ValueError, match=r"stamps \[1\]"):
        aperture_fluxes(stamps)


def test_an_archive_writer_never_empties_its_source(tmp_path):
    path = tmp_path / "src.h5"
    images = np.random.default_rng(0).random((4, 5, 8, 8)).astype(np.float32)
    write_archive(path, images)
    source = HDF5Images(path)
    with ArchiveWriter(path, 4, stamp_size=8) as writer:  # written beside, then renamed
        writer.append(source[:4])
    np.testing.assert_array_equal(open_archive(path).images[:], images)


def test_hdf5_images_take_numpy_s_other_index_forms(tmp_path):
    images = np.random.default_rng(0).random((3, 5, 8, 8)).astype(np.float32)
    write_archive(tmp_path / "a.h5", images)
    lazy = HDF5Images(tmp_path / "a.h5")
    for key in (Ellipsis, None, (), (None, 0), (0, Ellipsis), (Ellipsis, 1)):
        np.testing.assert_array_equal(lazy[key], images[key], err_msg=repr(key))
        assert lazy[key].shape == images[key].shape
