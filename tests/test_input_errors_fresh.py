"""Regressions of the acceptance check of the bad-input work: a clear error or a finite result
for inputs found misbehaving by a fresh red-team run (not the cases the issue listed)."""

import warnings

import h5py
import numpy as np
import pytest

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.cli import main
from skphotoz.data import read_catalog, write_archive
from skphotoz.preprocessing import AperturePhotometry

TINY = dict(n_epochs=1, batch_size=4, device="cpu", random_state=0)


def _features(n=12, d=4):
    X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
    return X, 0.2 + 0.05 * np.tanh(X[:, 0]).astype(np.float64)


def _archive(path, n=8, size=8):
    images = np.random.default_rng(0).normal(size=(n, 5, size, size)).astype(np.float32)
    write_archive(path, images, np.linspace(0.05, 0.3, n), objid=np.arange(n) + 100)
    return str(path)


# ------------------------------------------------------------------ CLI outputs
@pytest.mark.parametrize(
    "argv, clash",
    [
        (["predict", "{model}", "{archive}", "--output", "{archive}"], "ARCHIVE"),
        (["embed", "{model}", "{archive}", "--output", "{archive}"], "ARCHIVE"),
        (["predict", "{model}", "{archive}", "--output", "{model}"], "MODEL"),
        (["pretrain", "{archive}", "--output", "{archive}"], "ARCHIVE"),
        (["fit-photoz", "{archive}", "--encoder", "{model}", "--output", "{model}"], "--encoder"),
        (["ingest", "{cube}", "--catalog", "{csv}", "--output", "{csv}"], "--catalog"),
    ],
)
def test_cli_output_that_is_an_input_is_refused_before_writing(tmp_path, capsys, argv, clash):
    paths = {
        "archive": _archive(tmp_path / "a.h5"),
        "model": str(tmp_path / "m.h5"),  # any existing file: the check comes first
        "cube": str(tmp_path / "cube.npy"),
        "csv": str(tmp_path / "cat.csv"),
    }
    (tmp_path / "m.h5").write_bytes(b"model")
    np.save(paths["cube"], np.zeros((2, 8, 8, 5), dtype=np.float32))
    (tmp_path / "cat.csv").write_text("objid,z\n1,0.1\n2,0.2\n")
    before = {name: open(path, "rb").read() for name, path in paths.items()}
    assert main([a.format(**paths) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"is the {clash} being read; writing it would destroy the input" in err
    assert {name: open(path, "rb").read() for name, path in paths.items()} == before


def test_cli_search_reads_hdf5_embeddings_and_names_a_bad_file(tmp_path, capsys):
    archive = _archive(tmp_path / "a.h5")
    embeddings = np.random.default_rng(1).normal(size=(8, 3)).astype(np.float32)
    with h5py.File(tmp_path / "e.h5", "w") as f:  # what `skphotoz embed --output e.h5` writes
        f["embeddings"] = embeddings
    assert main(["search", archive, "0", "--embeddings", str(tmp_path / "e.h5"), "-k", "2"]) == 0
    capsys.readouterr()
    (tmp_path / "e.csv").write_text("a,b\n1,2\n")
    assert main(["search", archive, "0", "--embeddings", str(tmp_path / "e.csv")]) == 1
    assert "is neither a .npy array nor an HDF5 file with a dataset 'embeddings'" in (
        capsys.readouterr().err
    )
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["other"] = embeddings
    assert main(["search", archive, "0", "--embeddings", str(tmp_path / "x.h5")]) == 1
    assert "without a dataset 'embeddings' (it holds ['other'])" in capsys.readouterr().err


# ------------------------------------------------------------------ data layer
def test_catalogue_without_a_recognised_column_is_refused(tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text("100,150.0,2.0,0.05\n101,150.1,2.0,0.08\n")  # the header row is missing
    with pytest.raises(ValueError, match=r"none of the recognised columns .* header row is "):
        read_catalog(path)
    assert read_catalog(path, {"redshift": None}) == {}  # naming nothing stays allowed


def test_catalogue_not_in_utf8_names_the_encoding(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_text("objid,z,name\n1,0.1,Ångström\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"the byte b'\\xc5', which is not UTF-8"):
        read_catalog(path)


def test_write_archive_into_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"the folder '.*nodir' does not exist"):
        write_archive(tmp_path / "nodir" / "a.h5", np.zeros((2, 5, 8, 8)), [0.1, 0.2])


def test_aperture_photometry_refuses_channels_last_stamps():
    images = np.ones((3, 16, 16, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"square stamps .* It looks channels-last"):
        AperturePhotometry().fit(images)
    with pytest.raises(ValueError, match=r"got shape \(3, 5, 16, 12\)\.$"):
        AperturePhotometry().fit(np.ones((3, 5, 16, 12)))


# ------------------------------------------------------------------ estimators
def test_checkpoint_dir_that_is_a_file_is_named(tmp_path):
    X, _ = _features()
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(NotADirectoryError, match=r"checkpoint_dir must be a folder .* a file"):
        MoCoEmbedder(**TINY, checkpoint_dir=str(path)).fit(X)


def test_score_with_text_or_unlabelled_y_names_y():
    X, y = _features()
    model = PhotoZRegressor(**TINY).fit(X, y)
    with pytest.raises(TypeError, match=r"y must hold real numbers .* got string values"):
        model.score(X, np.array(["a"] * len(X)))
    assert np.isfinite(model.score(X, y))
    unlabelled = y.copy()
    unlabelled[[2, 5]] = np.nan  # was: scikit-learn's bare "Input contains NaN."
    with pytest.raises(ValueError, match=r"y holds NaN in 2 row\(s\) \[2, 5\]: NaN marks an unl"):
        model.score(X, unlabelled)


def test_float16_and_read_only_input_give_no_warning():
    X, y = _features()
    model = PhotoZRegressor(**TINY).fit(X, y)
    read_only = X.copy()
    read_only.setflags(write=False)  # as a memory-mapped .npy opened with mmap_mode="r"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        half = model.predict(X.astype(np.float16))  # was: RuntimeWarning, overflow in cast
        same = model.predict(read_only)  # was: torch's UserWarning on non-writable arrays
    assert np.isfinite(half).all()
    np.testing.assert_allclose(same, model.predict(X))


def test_shipped_tables_are_read_without_leaving_a_file_open():
    from skphotoz.datasets._catalog import _read_csv_gz

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # was: ResourceWarning, unclosed file (CLI simulate)
        table = _read_csv_gz("sdss_template_fluxes.csv.gz")
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    assert len(table) > 1 and all(np.isfinite(v).all() for v in table.values())


def test_cli_preset_crop_larger_than_the_stamps_names_the_preset(tmp_path, capsys):
    archive = _archive(tmp_path / "a.h5", size=16)
    argv = ["pretrain", archive, "--output", str(tmp_path / "m.joblib"), "--preset", "published"]
    assert main(argv) == 1
    err = capsys.readouterr().err  # was: "crop_size ... got crop_size=64", never given
    assert "--preset published trains on crops of 64 px, but the stamps of" in err
    assert "are 16 px; give --crop-size (at most 16)" in err


@pytest.mark.parametrize("stop", ["under-filled", "interrupted"])
def test_an_archive_whose_writer_stopped_early_is_refused_on_open(tmp_path, stop):
    from skphotoz.data import ArchiveWriter, HDF5Images, open_archive

    path = tmp_path / "a.h5"
    with pytest.raises((ValueError, KeyboardInterrupt)):
        with ArchiveWriter(path, 10, stamp_size=8) as writer:
            writer.append(np.ones((4, 5, 8, 8)), redshift=np.full(4, 0.1))
            if stop == "interrupted":
                raise KeyboardInterrupt
    # was: opened as 10 galaxies, the last 6 all-zero images with NaN redshifts
    with pytest.raises(ValueError, match=r"incomplete archive: its writer stopped after 4 of 10"):
        open_archive(path)
    with pytest.raises(ValueError, match=r"incomplete archive"):
        HDF5Images(path)
    write_archive(path, np.ones((3, 5, 8, 8)), [0.1, 0.2, 0.3])  # a finished write opens
    assert open_archive(path).images.shape == (3, 5, 8, 8)


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("z", "-9999", r"column 'z' \(redshift\) must be > -1; 1 row\(s\) are not, e.g. row 1"),
        ("ebv", "-9999", r"column 'ebv' \(ebv\) must be >= -0.05; .* row 1 is -9999: a missing"),
        ("extinction_u", "-99", r"\(extinction\) must be >= -0.25; .* row 1 is -99"),
    ],
)
def test_catalogue_missing_value_codes_are_refused(tmp_path, column, value, match):
    header = ["objid", "z", "ebv"] if column != "extinction_u" else ["objid", "z"]
    if column == "extinction_u":
        header += [f"extinction_{b}" for b in "ugriz"]
    rows = [[str(i + 1)] + ["0.1"] + ["0.02"] * (len(header) - 2) for i in range(3)]
    rows[1][header.index(column)] = value  # SDSS writes -9999 where a value is missing
    path = tmp_path / "cat.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    with pytest.raises(ValueError, match=match):
        read_catalog(path)
    rows[1][header.index(column)] = ""  # an empty cell is the way to say "unknown"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    table = read_catalog(path)
    assert np.isnan(table["redshift" if column == "z" else "extinction"][1]).any()


def test_cli_fit_photoz_refuses_impossible_redshifts_before_training(tmp_path, capsys):
    z = np.array([0.1, -9999.0, 0.2, 0.3])
    write_archive(tmp_path / "a.h5", np.ones((4, 5, 8, 8)), z)
    argv = ["fit-photoz", str(tmp_path / "a.h5"), "--output", str(tmp_path / "m.joblib")]
    assert main([*argv, "--device", "cpu", "--epochs", "1"]) == 1
    err = capsys.readouterr().err  # was: trained, then failed in the score's z_spec check
    assert "redshift must be > -1 (1 + z > 0) or NaN for unlabelled galaxies; 1 row(s)" in err
    assert "(1; e.g. -9999)" in err and not (tmp_path / "m.joblib").exists()


def test_deredden_refuses_a_missing_value_code_as_extinction(tmp_path):
    from skphotoz.data import HDF5Images

    extinction = np.full((4, 5), 0.05)
    extinction[2, 1] = -9999.0
    path = tmp_path / "a.h5"
    write_archive(path, np.ones((4, 5, 8, 8)), [0.1] * 4, extinction=extinction)
    with pytest.raises(ValueError, match=r"extinction >= -0.25 mag, but 1 of 4 .*rows 2; e.g. -9"):
        HDF5Images(path, deredden=True)  # was: galaxy 2 dereddened to all-zero pixels
    assert HDF5Images(path).shape == (4, 5, 8, 8)


def test_catalogue_with_a_repeated_column_name_is_refused(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("objid,z,z,ra,\n1,0.1,0.2,3,\n")  # (an empty name is not a repeat)
    with pytest.raises(ValueError, match=r"has several columns named \['z'\]; rename them"):
        read_catalog(path)  # was: "say which with columns={'redshift': 'z'}", which cannot
