import importlib.util

import h5py
import numpy as np
import pytest

from skphotoz.cli import build_parser, main, run_search_cli
from skphotoz.data import open_archive, write_archive
from tests.helpers import make_images


def test_simulate_pretrain_embed(tmp_path, capsys):
    archive = tmp_path / "sim.h5"
    assert main(["simulate", str(archive), "--n", "24", "--stamp-size", "32", "--seed", "3"]) == 0
    bunch = open_archive(archive)
    assert bunch.images.shape == (24, 5, 32, 32)
    assert np.all((bunch.redshift > 0) & (bunch.redshift < 0.5))

    model = tmp_path / "emb.skops"
    args = ["pretrain", str(archive), "--output", str(model), "--epochs", "1", "--batch-size", "8"]
    assert main([*args, "--device", "cpu", "--deredden"]) == 0
    out = tmp_path / "emb.npy"
    assert main(["embed", str(model), str(archive), "--output", str(out), "--deredden"]) == 0
    assert np.load(out).shape == (24, 512)
    assert "saved (24, 512) embeddings" in capsys.readouterr().out

    png = tmp_path / "neighbours.png"
    # (the figure needs the optional matplotlib: the minimum-versions job runs without it)
    plot = ["--plot", str(png)] if importlib.util.find_spec("matplotlib") else []
    assert main(["search", str(archive), "5", "--embeddings", str(out), "-k", "3", *plot]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("query #5  z=")
    ranks = [line.split() for line in printed[2:]]
    assert [int(r[0]) for r in ranks] == [1, 2, 3]
    assert 5 not in [int(r[1]) for r in ranks]
    similarities = [float(r[2]) for r in ranks]
    assert similarities == sorted(similarities, reverse=True)
    assert not plot or png.stat().st_size > 0


def _archive_and_embeddings(tmp_path, n=30, d=32):
    rng = np.random.default_rng(13)
    images = np.abs(rng.normal(size=(n, 5, 8, 8))).astype(np.float32)
    archive = tmp_path / "a.h5"
    write_archive(archive, images, redshift=np.linspace(0.01, 0.3, n))
    embeddings = rng.normal(size=(n, d)).astype(np.float32)
    np.save(tmp_path / "e.npy", embeddings)
    return archive, embeddings


def test_run_search_cli_on_archive(tmp_path, capsys):
    pytest.importorskip("matplotlib").use("Agg")
    archive, embeddings = _archive_and_embeddings(tmp_path)
    result = run_search_cli(
        archive, 5, n_neighbors=4, embeddings_path=tmp_path / "e.npy", output_png=tmp_path / "n.png"
    )
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    expected = np.argsort(-(unit @ unit[5]))[1:5]
    np.testing.assert_array_equal(result.indices, expected)
    np.testing.assert_allclose(result.redshift, np.linspace(0.01, 0.3, 30)[expected])
    assert (tmp_path / "n.png").stat().st_size > 0
    assert "query #5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "query_index, match",
    [
        (
            -1,
            r"The 'query_index' parameter of run_search_cli must be an int in the range \[0, inf\)",
        ),
        (1.0, r"The 'query_index' parameter of run_search_cli must be an int"),
        (30, r"query_index must be in \[0, 29\]; got 30"),
    ],
)
def test_run_search_cli_checks_query_index(tmp_path, query_index, match):
    archive, _ = _archive_and_embeddings(tmp_path)
    with pytest.raises(ValueError, match=match):
        run_search_cli(archive, query_index, embeddings_path=tmp_path / "e.npy")


def test_search_needs_embeddings_or_model(tmp_path):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", str(tmp_path / "a.h5"), "0"])


def test_parser_rejects_unknown_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train"])


def test_pretrain_semi_supervised_uses_the_archive_redshifts(tmp_path):
    import joblib

    from skphotoz import MOCO_PRESETS

    archive = tmp_path / "sim.h5"
    assert main(["simulate", str(archive), "--n", "24", "--stamp-size", "16", "--seed", "1"]) == 0
    model = tmp_path / "emb.joblib"
    args = ["pretrain", str(archive), "--output", str(model), "--epochs", "1", "--batch-size", "8"]
    assert main([*args, "--redshift-weight", "0.5"]) == 0
    embedder = joblib.load(model)
    assert set(embedder.heads_) == {"photometry", "redshift"}
    assert embedder.redshift_weight == 0.5
    assert main([*args, "--photometry-weight", "0"]) == 0
    assert len(joblib.load(model).heads_) == 0
    # --preset offers every preset (spelled out in the parser to keep --help free of torch).
    pretrain = build_parser()._subparsers._group_actions[0].choices["pretrain"]
    (preset,) = [a for a in pretrain._actions if a.dest == "preset"]
    assert sorted(preset.choices) == sorted(MOCO_PRESETS)


# -- the command line itself: version, help, errors -------------------------------------------
def _subparsers():
    return build_parser()._subparsers._group_actions[0].choices


def test_version(capsys):
    import skphotoz

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"skphotoz {skphotoz.__version__}"


def test_help_imports_neither_torch_nor_sklearn():
    import subprocess
    import sys

    commands = sorted(_subparsers())
    code = (
        "import sys\n"
        "from skphotoz.cli import main\n"
        f"for argv in [['--help']] + [[c, '--help'] for c in {commands!r}]:\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, argv\n"
        "heavy = [m for m in ('torch', 'sklearn', 'scipy', 'h5py') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for command in commands:
        assert f"usage: skphotoz {command}" in done.stdout


def test_every_option_has_help_and_its_default():
    import argparse

    from skphotoz.cli._options import HelpFormatter

    for name, parser in _subparsers().items():
        formatter = HelpFormatter(f"skphotoz {name}")
        # Alternatives of which one is required (search ROW | --objid) have no default.
        alternatives = {
            action
            for group in parser._mutually_exclusive_groups
            if group.required
            for action in group._group_actions
        }
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"{name} {action.dest} has no help"
            if (
                action.option_strings
                and action.nargs != 0
                and not action.required
                and action not in alternatives
            ):
                text = formatter._get_help_string(action)
                assert "default" in text, f"{name} {action.option_strings[0]}: {text!r}"


@pytest.mark.parametrize("command", ["pretrain", "fit-photoz"])
def test_training_options_left_out_take_the_estimators_defaults(command):
    """The parser holds no copy of an estimator's default: an option that sets an estimator
    parameter is None when left out, and the command passes the default of the estimator's
    signature, so that the two cannot drift apart."""
    import inspect

    from skphotoz import MoCoEmbedder, PhotoZRegressor
    from skphotoz.cli import _train
    from skphotoz.cli._options import TRAINING_OPTIONS

    args = build_parser().parse_args([command, "a.h5", "--output", "m.joblib"])
    if command == "pretrain":
        estimator, names, params = (
            MoCoEmbedder,
            _train.PRETRAIN_PARAMS,
            _train.pretrain_params(args),
        )
    else:
        estimator, names, params = (
            PhotoZRegressor,
            _train.FIT_PHOTOZ_PARAMS,
            _train.fit_photoz_params(args),
        )
    defaults = {name: p.default for name, p in inspect.signature(estimator).parameters.items()}
    assert set(TRAINING_OPTIONS) <= set(names)
    for name in names:
        assert getattr(args, name) is None, name
        assert params[name] == defaults[name], name
    assert params["random_state"] == 0 and params["verbose"] is True  # --seed, not --quiet
    # every option named after a parameter of the estimator is one of them (the encoder
    # excepted: a path, not a setting)
    options = {action.dest for action in _subparsers()[command]._actions}
    assert (options & set(defaults)) - {"encoder"} == set(names)
    # and the estimator built from them is the default one
    assert estimator(**params).get_params() == {
        **estimator().get_params(),
        "random_state": 0,
        "verbose": True,
    }


def test_pretrain_options_override_the_preset_which_overrides_the_estimator():
    from skphotoz import MOCO_PRESETS
    from skphotoz.cli._train import pretrain_params

    argv = ["pretrain", "a.h5", "--output", "e.joblib", "--preset", "published", "--lr", "0.5"]
    params = pretrain_params(build_parser().parse_args(argv))
    assert params["lr"] == 0.5
    assert params["n_epochs"] == MOCO_PRESETS["published"]["n_epochs"]
    assert params["queue_size"] == MOCO_PRESETS["published"]["queue_size"]  # not an option
    assert params["num_workers"] == 0  # neither the option nor the preset: the estimator's


def _error_line(capsys, command):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"skphotoz {command}: error: "), err
    return err


def test_errors_are_one_line_with_exit_status_1(tmp_path, capsys):
    missing = str(tmp_path / "missing.h5")
    out = str(tmp_path / "out.csv")
    assert main(["predict", str(tmp_path / "m.joblib"), missing, "--output", out]) == 1
    assert "MODEL" in _error_line(capsys, "predict")
    # A file that is not an archive, and a model file that is not a pickle.
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    assert main(["pretrain", str(junk), "--output", str(tmp_path / "e.joblib")]) == 1
    assert "is not an HDF5 file" in _error_line(capsys, "pretrain")
    assert main(["embed", str(junk), str(junk), "--output", str(tmp_path / "e.npy")]) == 1
    assert "is not a model file: neither a skops file" in _error_line(capsys, "embed")
    # The output folder is checked before any work is done.
    args = ["fit-photoz", str(junk), "--output", str(tmp_path / "no" / "m.joblib")]
    assert main(args) == 1
    assert "does not exist" in _error_line(capsys, "fit-photoz")
    # An archive without redshifts has nothing to fit a photo-z on.
    archive = tmp_path / "unlabelled.h5"
    write_archive(archive, np.ones((4, 5, 8, 8), np.float32))
    args = ["fit-photoz", str(archive), "--output", str(tmp_path / "m.joblib"), "--epochs", "1"]
    assert main(args) == 1
    line = _error_line(capsys, "fit-photoz")
    assert "no redshift column" in line or "no galaxy with a finite redshift" in line


@pytest.mark.parametrize(
    "argv, message",
    [
        (["predict", "m", "a.h5", "--output", "p.csv", "--chunk-size", "0"], "integer >= 1"),
        (["predict", "m", "a.h5", "--output", "p.csv", "--quantiles", "0.5,2"], "[0, 1]"),
        (["predict", "m", "a.h5", "--output", "p.txt"], "must end in .csv, .h5 or .hdf5"),
        (["predict", "m", "a.h5", "--output", "p.csv", "--pdf"], "--pdf needs an HDF5"),
        (["fit-photoz", "a.h5", "--output", "m", "--epochs", "many"], "expected an integer"),
        (["fit-photoz", "a.h5", "--output", "m", "--lr", "inf"], "finite number > 0"),
        (["fit-photoz", "a.h5", "--output", "m", "--nan-policy", "drop"], "invalid choice"),
        (["search", "a.h5", "--embeddings", "e.npy"], "as ROW or as --objid, not neither"),
        (["search", "a.h5", "3", "--objid", "7", "--embeddings", "e.npy"], "not both"),
        (["search", "a.h5", "--embeddings", "e.npy", "x"], "argument ROW: expected an integer"),
        (["search", "a.h5", "1", "--embeddings", "e.npy", "2"], "unrecognized arguments: 2"),
        (["ingest", "c.npy", "--output", "a.h5", "--column", "redshift"], "PUBLIC=CATALOG"),
    ],
)
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_debug_shows_the_traceback(tmp_path):
    argv = ["embed", str(tmp_path / "m.joblib"), str(tmp_path / "a.h5"), "--output", "e.npy"]
    with pytest.raises(FileNotFoundError, match="MODEL"):
        main(["--debug", *argv])
    with pytest.raises(FileNotFoundError, match="MODEL"):
        main([*argv, "--debug"])  # global options are accepted after the command too


def test_error_exit_status_of_the_console_script(tmp_path):
    import subprocess
    import sys

    # (an error found before anything heavy is imported: the subprocesses stay quick)
    argv = ["predict", str(tmp_path / "m.joblib"), "a.h5", "--output", str(tmp_path / "p.csv")]
    code = "import sys; from skphotoz.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("skphotoz predict: error: MODEL ")
    assert len(done.stderr.splitlines()) == 1
    done = subprocess.run(
        [sys.executable, "-c", code, "--debug", *argv], capture_output=True, text=True
    )
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr


def test_ctrl_c_exits_130(monkeypatch, capsys):
    import skphotoz.cli as cli

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "simulate", interrupted)
    assert main(["simulate", "x.h5", "--n", "3"]) == 130
    assert "Traceback" not in capsys.readouterr().err


def test_warnings_are_one_line(monkeypatch, capsys):
    import warnings

    import skphotoz.cli as cli

    def warns(args):
        warnings.warn("first line\n  second line", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setattr(cli, "simulate", warns)
    assert main(["simulate", "x.h5", "--n", "3"]) == 0
    assert capsys.readouterr().err == "skphotoz simulate: warning: first line second line\n"


def _archive(path, n=8, size=8):
    images = make_images(n, size)
    write_archive(path, images, np.linspace(0.05, 0.3, n), objid=np.arange(n) + 100)
    return str(path)


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
    assert "is neither a .npy array of numbers nor an HDF5 file with a dataset 'embeddings'" in (
        capsys.readouterr().err
    )
    with h5py.File(tmp_path / "x.h5", "w") as f:
        f["other"] = embeddings
    assert main(["search", archive, "0", "--embeddings", str(tmp_path / "x.h5")]) == 1
    assert "without a dataset 'embeddings' (it holds ['other'])" in capsys.readouterr().err


def test_cli_preset_crop_larger_than_the_stamps_names_the_preset(tmp_path, capsys):
    archive = _archive(tmp_path / "a.h5", size=16)
    argv = ["pretrain", archive, "--output", str(tmp_path / "m.joblib"), "--preset", "published"]
    assert main(argv) == 1
    err = capsys.readouterr().err  # was: "crop_size ... got crop_size=64", never given
    assert "--preset published trains on crops of 64 px, but the stamps of" in err
    assert "are 16 px; give --crop-size (at most 16)" in err
