"""The photo-z command line end to end: a channels-last cube and a CSV catalogue go to redshift
predictions with ``ingest``, ``pretrain``, ``fit-photoz`` and ``predict`` alone; ``embed`` and
``search`` reuse what the models remember of their preprocessing.

The models are trained once per module (one epoch on 32 stamps of 16 px, on the CPU): the
tests check the mechanics of the command line, not the quality of the redshifts.
"""

import csv

import h5py
import numpy as np
import pytest

from skphotoz import io as skio
from skphotoz.cli import main
from skphotoz.data import HDF5Images, open_archive, write_archive

N, SIZE, CROP = 32, 16, 12
NAN_ROW = 7
UNLABELLED = (3, 11, 20)
TRAIN = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--seed", "0"]


def _cube_and_catalog(folder):
    rng = np.random.default_rng(0)
    z = rng.uniform(0.02, 0.3, N)
    yy, xx = np.mgrid[:SIZE, :SIZE] - (SIZE - 1) / 2
    profile = np.exp(-(xx**2 + yy**2) / 8.0)
    colour = np.linspace(0.5, 2.0, 5)[None, :] * (1 + 3 * z[:, None])
    cube = colour[:, None, None, :] * profile[None, :, :, None]  # (n, H, W, bands)
    cube = (cube + 0.02 * rng.normal(size=cube.shape)).astype(np.float32)
    cube[NAN_ROW, 3, 4, 2] = np.nan  # a masked pixel, as real cutouts have
    np.save(folder / "cube.npy", cube)
    objid = 1237650000000000000 + np.arange(N) * 17
    ebv = rng.uniform(0.01, 0.08, N)
    with open(folder / "catalog.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["objid", "ra", "dec", "Z_BEST", "ebv"])
        for i in range(N):
            label = "" if i in UNLABELLED else f"{z[i]:.6f}"
            writer.writerow([objid[i], 150 + i / 100, 2 - i / 100, label, f"{ebv[i]:.4f}"])
    return objid, np.where(np.isin(np.arange(N), UNLABELLED), np.nan, np.round(z, 6))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The acceptance path, once: ingest -> pretrain -> fit-photoz -> predict."""
    folder = tmp_path_factory.mktemp("cli")
    objid, z = _cube_and_catalog(folder)
    paths = {name: str(folder / name) for name in ("a.h5", "emb.skops", "m.skops", "p.csv")}
    printed = {}

    def step(name, argv):
        capsys_out = _Capture()
        with capsys_out:
            status = main(argv)
        assert status == 0, capsys_out.err
        printed[name] = capsys_out.out

    step(
        "ingest",
        ["ingest", str(folder / "cube.npy"), "--catalog", str(folder / "catalog.csv")]
        + ["--column", "redshift=Z_BEST", "--output", paths["a.h5"]],
    )
    step(
        "pretrain",
        ["pretrain", paths["a.h5"], "--output", paths["emb.skops"], *TRAIN]
        + ["--deredden", "--crop", str(CROP), "--nan-policy", "fill", "--quiet"],
    )
    step(
        "fit-photoz",
        ["fit-photoz", paths["a.h5"], "--encoder", paths["emb.skops"]]
        + ["--output", paths["m.skops"], *TRAIN, "--nan-policy", "fill", "--holdout", "0.25"]
        + ["--quiet"],
    )
    step("predict", ["predict", paths["m.skops"], paths["a.h5"], "--output", paths["p.csv"]])
    return dict(folder=folder, objid=objid, z=z, printed=printed, **paths)


class _Capture:
    """Capture stdout/stderr of one call (the module fixture cannot use capsys)."""

    def __enter__(self):
        import contextlib
        import io

        self._out, self._err = io.StringIO(), io.StringIO()
        self._stack = contextlib.ExitStack()
        self._stack.enter_context(contextlib.redirect_stdout(self._out))
        self._stack.enter_context(contextlib.redirect_stderr(self._err))
        return self

    def __exit__(self, *exc):
        self._stack.close()
        self.out, self.err = self._out.getvalue(), self._err.getvalue()


def _read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    kind = {"row": int, "objid": int, "rank": int, "strategy": str}
    return {key: np.array([kind.get(key, float)(r[key]) for r in rows]) for key in rows[0]}


def test_cube_and_csv_to_redshift_predictions(run):
    printed = run["printed"]
    assert "galaxies with non-finite (NaN/inf) pixels: 1 (row 7:" in printed["ingest"]
    assert f"wrote {N} galaxies ({N - len(UNLABELLED)} with a redshift)" in printed["ingest"]
    archive = open_archive(run["a.h5"])
    assert archive.images.shape == (N, 5, SIZE, SIZE)
    np.testing.assert_array_equal(archive.objid, run["objid"])
    # The embedder and the regressor remember how the archive was read.
    embedder, model = skio.load(run["emb.skops"]), skio.load(run["m.skops"])
    assert embedder.preprocessing_ == {"deredden": True, "crop": CROP}
    assert model.preprocessing_ == {"deredden": True, "crop": CROP}
    assert printed["pretrain"].startswith("saved ")  # --quiet: no table
    assert "σ_MAD" in printed["fit-photoz"] and "held-out galaxies" in printed["fit-photoz"]

    table = _read_csv(run["p.csv"])
    assert list(table) == ["row", "objid", "z_pred", "z_q16", "z_q50", "z_q84", "redshift"]
    np.testing.assert_array_equal(table["row"], np.arange(N))
    np.testing.assert_array_equal(table["objid"], run["objid"])
    np.testing.assert_allclose(table["redshift"], run["z"], rtol=1e-6)
    assert np.isfinite(table["z_pred"]).all()  # the galaxy with a NaN pixel too (fill)
    assert np.all(table["z_q16"] <= table["z_q50"]) and np.all(table["z_q50"] <= table["z_q84"])
    expected = model.predict(HDF5Images(run["a.h5"], deredden=True, crop=CROP))
    np.testing.assert_allclose(table["z_pred"], expected, rtol=1e-5)


def test_predict_hdf5_in_chunks_with_pdfs(run, tmp_path, capsys):
    out = tmp_path / "p.h5"
    argv = ["predict", run["m.skops"], run["a.h5"], "--output", str(out), "--pdf"]
    assert main([*argv, "--chunk-size", "5", "--quantiles", "0.05,0.5,0.95", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""  # --quiet: no progress bar
    assert captured.out.startswith(f"wrote redshifts of {N} galaxies")
    table = _read_csv(run["p.csv"])
    model = skio.load(run["m.skops"])
    with h5py.File(out, "r") as f:
        assert {"row", "objid", "z_pred", "z_q5", "z_q50", "z_q95", "redshift", "pdf"} <= set(f)
        np.testing.assert_allclose(f["z_pred"][...], table["z_pred"], rtol=1e-6)
        np.testing.assert_allclose(f["z_q50"][...], table["z_q50"], rtol=1e-6)
        np.testing.assert_allclose(f["pdf"][...].sum(axis=1), 1, atol=1e-5)
        np.testing.assert_array_equal(f["redshift_bins"][...], model.redshift_bins_)
        np.testing.assert_array_equal(f.attrs["quantiles"], [0.05, 0.5, 0.95])
        assert f.attrs["deredden"] and f.attrs["crop"] == CROP
    assert not (tmp_path / "p.h5.partial").exists()


def test_predict_refuses_flags_that_contradict_the_model(run, tmp_path, capsys):
    base = ["predict", run["m.skops"], run["a.h5"], "--output", str(tmp_path / "p.csv")]
    assert main([*base, "--no-deredden"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("skphotoz predict: error: --no-deredden conflicts with")
    assert "deredden=True" in err
    assert main([*base, "--crop", "10"]) == 1
    assert "--crop 10 conflicts with" in capsys.readouterr().err
    # An embedder is not a photo-z model.
    assert main(["predict", run["emb.skops"], run["a.h5"], "--output", base[-1]]) == 1
    assert "a fitted PhotoZRegressor" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_fit_photoz_refuses_a_flag_that_contradicts_the_encoder(run, tmp_path, capsys):
    argv = ["fit-photoz", run["a.h5"], "--encoder", run["emb.skops"]]
    assert main([*argv, "--output", str(tmp_path / "m.skops"), "--crop", "8"]) == 1
    assert "--crop 8 conflicts with" in capsys.readouterr().err


def test_embed_reads_the_archive_as_the_embedder_was_fitted(run, tmp_path, capsys):
    embedder = skio.load(run["emb.skops"])
    expected = embedder.transform(HDF5Images(run["a.h5"], deredden=True, crop=CROP))
    npy, h5 = tmp_path / "e.npy", tmp_path / "e.h5"
    assert main(["embed", run["emb.skops"], run["a.h5"], "--output", str(npy)]) == 0
    np.testing.assert_allclose(np.load(npy), expected, rtol=1e-5, atol=1e-6)
    argv = ["embed", run["emb.skops"], run["a.h5"], "--output", str(h5), "--chunk-size", "6"]
    assert main(argv) == 0
    with h5py.File(h5, "r") as f:
        np.testing.assert_allclose(f["embeddings"][...], expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(f["objid"][...], run["objid"])
    capsys.readouterr()
    assert main(["embed", run["emb.skops"], run["a.h5"], "--output", str(npy), "--no-deredden"])
    assert "--no-deredden conflicts with" in capsys.readouterr().err


def test_search_by_objid(run, tmp_path, capsys):
    rng = np.random.default_rng(1)
    np.save(tmp_path / "e.npy", rng.normal(size=(N, 8)).astype(np.float32))
    base = ["search", run["a.h5"], "--embeddings", str(tmp_path / "e.npy"), "-k", "3"]
    assert main([*base, "5"]) == 0
    by_row = capsys.readouterr().out.splitlines()
    assert main([*base, "--objid", str(run["objid"][5])]) == 0
    by_objid = capsys.readouterr().out.splitlines()
    assert by_objid[0].startswith(f"query #5 (objid {run['objid'][5]})")
    assert by_objid[1:] == by_row[1:]
    assert main([*base, "--objid", "42"]) == 1
    assert "objid 42 is not in archive" in capsys.readouterr().err
    # An archive written without ObjIDs.
    plain = tmp_path / "plain.h5"
    write_archive(plain, np.ones((N, 5, 8, 8), np.float32))
    argv = ["search", str(plain), "--objid", "42", "--embeddings", str(tmp_path / "e.npy")]
    assert main(argv) == 1
    assert "has no ObjID column" in capsys.readouterr().err


def test_search_with_the_model_reads_the_archive_as_it_was_fitted(run, capsys):
    argv = ["search", run["a.h5"], "4", "--model", run["emb.skops"], "-k", "2", "--device", "cpu"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("query #4") and len(lines) == 4
    assert main([*argv, "--crop", str(SIZE)]) == 1
    assert f"--crop {SIZE} conflicts with" in capsys.readouterr().err


def test_fit_photoz_from_scratch_scores_on_the_training_rows(run, tmp_path, capsys):
    out = tmp_path / "scratch.skops"
    argv = ["fit-photoz", run["a.h5"], "--output", str(out), *TRAIN, "--nan-policy", "fill"]
    assert main([*argv, "--crop", str(CROP)]) == 0
    printed = capsys.readouterr().out
    assert f"training on {N - len(UNLABELLED)} labelled galaxies of {N}, from scratch" in printed
    assert "training galaxies (optimistic" in printed
    model = skio.load(out)
    assert model.encoder is None
    assert model.preprocessing_ == {"deredden": False, "crop": CROP}


def test_ingest_keeps_an_existing_archive_and_predict_without_quantiles(run, tmp_path, capsys):
    argv = ["ingest", str(run["folder"] / "cube.npy"), "--output", run["a.h5"]]
    assert main(argv) == 1
    assert "--overwrite" in capsys.readouterr().err
    out = tmp_path / "p.csv"
    argv = ["predict", run["m.skops"], run["a.h5"], "--output", str(out), "--quantiles", "none"]
    assert main([*argv, "--chunk-size", "100"]) == 0
    assert list(_read_csv(out)) == ["row", "objid", "z_pred", "redshift"]


def test_fit_photoz_with_photometry_trains_and_predicts_a_hybrid(run, tmp_path, capsys):
    out = tmp_path / "hybrid.skops"
    argv = ["fit-photoz", run["a.h5"], "--output", str(out), *TRAIN, "--nan-policy", "fill"]
    assert main([*argv, "--photometry", "--bottleneck", "3"]) == 0
    capsys.readouterr()
    model = skio.load(out)
    assert model.photometry is True and model.bottleneck == 3
    assert model.model_.encoder.out_features == 3 + 11
    predictions = tmp_path / "hybrid.csv"
    assert main(["predict", str(out), run["a.h5"], "--output", str(predictions)]) == 0
    z_pred = [float(row) for row in _read_csv(predictions)["z_pred"]]
    assert len(z_pred) == N and np.isfinite(z_pred).all()


def test_cli_fit_photoz_refuses_impossible_redshifts_before_training(tmp_path, capsys):
    z = np.array([0.1, -9999.0, 0.2, 0.3])
    with pytest.raises(ValueError, match="redshift must be > -1"):  # skphotoz never writes it
        write_archive(tmp_path / "a.h5", np.ones((4, 5, 8, 8)), z)
    with h5py.File(tmp_path / "a.h5", "w") as f:  # an archive written by another tool
        f["images"] = np.ones((4, 5, 8, 8), np.float32)
        f["specz_redshift"] = z
    argv = ["fit-photoz", str(tmp_path / "a.h5"), "--output", str(tmp_path / "m.skops")]
    assert main([*argv, "--device", "cpu", "--epochs", "1"]) == 1
    err = capsys.readouterr().err  # was: trained, then failed in the score's z_spec check
    assert "redshift must be > -1 (1 + z > 0) or NaN for unlabelled galaxies; 1 row(s)" in err
    assert "e.g. row 1 is -9999" in err and not (tmp_path / "m.skops").exists()


# ------------------------------------------------------------------------------ select
def _targets(path):
    table = _read_csv(path)
    assert list(table) == ["rank", "row", "objid", "strategy"]
    return table


def test_select_ranks_new_targets_around_the_labelled_galaxies(run, tmp_path, capsys):
    from skphotoz.selection import CoverageSelection

    embeddings = np.random.default_rng(2).normal(size=(N, 6)).astype(np.float32)
    np.save(tmp_path / "e.npy", embeddings)
    with open(tmp_path / "spec.csv", "w") as f:
        f.write("objid,z\n" + "".join(f"{run['objid'][r]},0.1\n" for r in (4, 9)))
    out = tmp_path / "targets.csv"
    argv = ["select", run["a.h5"], "--n", "5", "--embeddings", str(tmp_path / "e.npy")]
    argv += ["--labelled", str(tmp_path / "spec.csv"), "--strategy", "coverage"]
    assert main([*argv, "--output", str(out)]) == 0
    table = _targets(out)
    np.testing.assert_array_equal(table["rank"], np.arange(1, 6))
    expected = CoverageSelection().select(embeddings, 5, labelled=[4, 9])
    np.testing.assert_array_equal(table["row"], expected)
    np.testing.assert_array_equal(table["objid"], run["objid"][expected])
    assert "wrote 5 targets" in capsys.readouterr().out
    # The same selection from labelled rows instead of ObjIDs, with a seed: reproducible.
    (tmp_path / "rows.csv").write_text("row\n4\n9\n")
    argv[argv.index(str(tmp_path / "spec.csv"))] = str(tmp_path / "rows.csv")
    assert main([*argv, "--output", str(tmp_path / "t2.csv")]) == 0
    np.testing.assert_array_equal(_targets(tmp_path / "t2.csv")["row"], expected)


def test_select_on_photometry_names_the_galaxy_without_one(run, tmp_path, capsys):
    # Row 7 holds a NaN pixel in its apertures: no photometry, so no place among the others.
    out = tmp_path / "t.csv"
    assert main(["select", run["a.h5"], "--n", "3", "--output", str(out)]) == 1
    assert "rows [7]" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "t.csv.partial").exists()


def test_select_by_uncertainty_takes_the_widest_pdfs(run, tmp_path, capsys):
    from skphotoz.selection import prediction_width

    model = skio.load(run["m.skops"])
    width = prediction_width(model, np.asarray(HDF5Images(run["a.h5"], deredden=True, crop=CROP)))
    np.save(tmp_path / "e.npy", np.random.default_rng(3).normal(size=(N, 4)).astype(np.float32))
    out = tmp_path / "t.csv"
    argv = ["select", run["a.h5"], "--n", "3", "--strategy", "uncertainty", "--model"]
    argv += [run["m.skops"], "--embeddings", str(tmp_path / "e.npy"), "--output", str(out)]
    assert main(argv) == 0
    rows = _targets(out)["row"]
    # The three widest of the 30 most uncertain galaxies' clusters, the widest first.
    assert np.all(np.diff(width[rows]) <= 1e-12)
    assert width[rows[0]] == pytest.approx(width.max())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--n", "40"], "--n 40 is more than the 32 galaxies"),
        (["--n", "2", "--strategy", "uncertainty"], "needs a fitted photo-z model"),
        (["--n", "2", "--labelled", "UNKNOWN"], "1 ObjID(s) are not in the archive"),
        (["--n", "2", "--labelled", "NOCOLUMN"], "must have an 'objid' or a 'row' column"),
        (["--n", "2", "--embeddings", "SHORT"], "has shape (10, 3); the archive has 32"),
        (["--n", "2", "--features", "both"], "--features both needs --embeddings"),
        (["--n", "2", "--labelled", "BADLINE"], "line 5: objid must be an integer; got 'abc'"),
        (["--n", "2", "--features", "photometry", "--embeddings", "SHORT"], "is not read with"),
        (["--n", "2", "--strategy", "uncertainty", "--model", "EMBEDDER"], "predict_interval"),
    ],
)
def test_select_refuses_bad_input_and_writes_nothing(run, tmp_path, capsys, extra, message):
    (tmp_path / "unknown.csv").write_text("objid\n42\n")
    (tmp_path / "nocolumn.csv").write_text("name\nM31\n")
    (tmp_path / "badline.csv").write_text(f"objid\n{run['objid'][0]}\n\n   \nabc\n")
    np.save(tmp_path / "short.npy", np.zeros((10, 3), dtype=np.float32))
    files = {
        "UNKNOWN": "unknown.csv",
        "NOCOLUMN": "nocolumn.csv",
        "SHORT": "short.npy",
        "BADLINE": "badline.csv",
    }
    extra = [str(tmp_path / files[a]) if a in files else a for a in extra]
    extra = [run["emb.skops"] if a == "EMBEDDER" else a for a in extra]
    out = tmp_path / "t.csv"
    assert main(["select", run["a.h5"], *extra, "--output", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "t.csv.partial").exists()


def test_select_reads_a_spreadsheet_csv_and_never_overwrites_it(run, tmp_path, capsys):
    # A byte-order mark and padded names, as spreadsheets write them.
    spectra = tmp_path / "spectra.csv"
    spectra.write_bytes(b"\xef\xbb\xbf Objid ,z\r\n" + f"{run['objid'][4]},0.1\r\n".encode())
    np.save(tmp_path / "e.npy", np.random.default_rng(4).normal(size=(N, 3)).astype(np.float32))
    base = ["select", run["a.h5"], "--n", "2", "--embeddings", str(tmp_path / "e.npy")]
    base += ["--labelled", str(spectra)]
    assert main([*base, "--output", str(tmp_path / "t.csv")]) == 0
    assert 4 not in _targets(tmp_path / "t.csv")["row"]
    before = spectra.read_bytes()
    assert main([*base, "--output", str(spectra)]) == 1
    assert "is the --labelled being read" in capsys.readouterr().err
    assert spectra.read_bytes() == before
