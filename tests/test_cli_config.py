"""``--config FILE.toml`` of the long-running commands, and what the command line does under
``torchrun`` (rank 0 writes and prints; the other ranks train in silence).

Most tests replace the command by a function that records its arguments: they check how the
options are assembled, not the training. Two run a real one-epoch fit on 32 stamps of 16 px.
"""

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

import joblib
import pytest

import skphotoz.cli as cli
from skphotoz.cli import main
from skphotoz.cli._config import apply_config

ROOT = Path(__file__).resolve().parents[1]
TINY = {"epochs": 1, "batch-size": 8, "device": "cpu", "seed": 0}


def _toml(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _config(folder, values: dict, name: str = "run.toml") -> str:
    path = folder / name
    path.write_text("".join(f"{key} = {_toml(value)}\n" for key, value in values.items()))
    return str(path)


@contextlib.contextmanager
def _toml_file(text: str):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "block.toml")
        with open(path, "w", encoding="utf-8") as file:
            file.write(text)
        yield path


@pytest.fixture
def recorded(monkeypatch):
    """Replace the commands by one that records the arguments it is given."""
    calls = []

    def record(args):
        calls.append(args)
        return 0

    for name in ("pretrain", "fit_photoz", "predict", "embed", "ingest", "simulate"):
        monkeypatch.setattr(cli, name, record)
    return calls


def _error(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"skphotoz {command}: error: config file "), err
    return err


def test_the_file_gives_the_options_and_the_positional_arguments(tmp_path, recorded):
    values = {
        "archive": "galaxies.h5",
        "output": "emb.joblib",
        "preset": "published",
        "backbone": "resnet18",
        "epochs": 7,
        "batch-size": 64,
        "lr": 1,  # an integer where a number is expected
        "checkpoint_dir": "ckpt",  # underscores are accepted
        "deredden": True,
        "quiet": True,
    }
    assert main(["pretrain", "--config", _config(tmp_path, values)]) == 0
    (args,) = recorded
    assert (args.archive, args.output, args.preset, args.backbone) == (
        "galaxies.h5",
        "emb.joblib",
        "published",
        "resnet18",
    )
    assert (args.n_epochs, args.batch_size, args.lr) == (7, 64, 1.0)
    assert (args.checkpoint_dir, args.deredden, args.quiet) == ("ckpt", True, True)
    # the parser's defaults otherwise (None: the estimator's own, filled in when it runs)
    assert args.crop is None and args.num_workers is None


def test_the_command_line_overrides_the_file(tmp_path, recorded):
    config = _config(tmp_path, {"archive": "a.h5", "output": "m.joblib", "epochs": 3, "lr": 0.5})
    argv = ["fit-photoz", "b.h5", "--epochs", "9", "--config", config, "--output", "n.joblib"]
    assert main(argv) == 0
    (args,) = recorded
    assert (args.archive, args.output, args.n_epochs, args.lr) == ("b.h5", "n.joblib", 9, 0.5)
    # --config=FILE and an abbreviation of it, as argparse accepts them
    assert main(["fit-photoz", f"--config={config}", "--epochs", "auto"]) == 0
    assert main(["fit-photoz", "--conf", config]) == 0
    assert [(a.archive, a.n_epochs) for a in recorded[1:]] == [("a.h5", "auto"), ("a.h5", 3)]


def test_positional_arguments_from_the_file(tmp_path, recorded):
    both = _config(tmp_path, {"model": "m.joblib", "archive": "a.h5", "output": "p.csv"})
    archive_only = _config(tmp_path, {"archive": "a.h5", "output": "p.csv"}, "archive.toml")
    assert main(["predict", "--config", both]) == 0
    assert main(["predict", "--config", both, "m2.joblib", "b.h5"]) == 0
    assert main(["predict", "m2.joblib", "--config", both, "b.h5"]) == 0
    assert main(["predict", "--config", archive_only, "m2.joblib"]) == 0
    got = [(args.model, args.archive) for args in recorded]
    assert got == [
        ("m.joblib", "a.h5"),
        ("m2.joblib", "b.h5"),
        ("m2.joblib", "b.h5"),
        ("m2.joblib", "a.h5"),
    ]
    # simulate's OUTPUT and required --n; ingest's repeatable --column (the command line's
    # replace the file's)
    assert main(["simulate", "--config", _config(tmp_path, {"output": "s.h5", "n": 5})]) == 0
    assert (recorded[-1].output, recorded[-1].n) == ("s.h5", 5)
    columns = {"images": "c.npy", "output": "a.h5", "column": ["redshift=Z", "ra="]}
    config = _config(tmp_path, columns, "ingest.toml")
    assert main(["ingest", "--config", config]) == 0
    assert recorded[-1].column == [("redshift", "Z"), ("ra", None)]
    assert main(["ingest", "--config", config, "--column", "dec=DE"]) == 0
    assert recorded[-1].column == [("dec", "DE")]


def test_unknown_key(tmp_path, recorded, capsys):
    config = _config(tmp_path, {"archive": "a.h5", "epoch": 3})
    assert main(["pretrain", "--config", config, "--output", "e.joblib"]) == 2
    err = _error(capsys, "pretrain")
    assert f"config file {config!r}: unknown key 'epoch' (did you mean 'epochs'?)" in err
    assert "batch-size, cache, checkpoint-dir" in err  # what it takes
    assert not recorded


@pytest.mark.parametrize(
    "command, values, message",
    [
        ("pretrain", {"batch-size": "64"}, "expected an integer; got the string '64'"),
        ("pretrain", {"batch_size": 1}, "key 'batch_size': expected an integer >= 2; got 1"),
        ("pretrain", {"epochs": 2.5}, "key 'epochs': expected an integer; got the float 2.5"),
        ("pretrain", {"lr": "inf"}, "key 'lr': expected a number; got the string 'inf'"),
        ("pretrain", {"lr": float("inf")}, "key 'lr': expected a finite number > 0; got inf"),
        ("pretrain", {"deredden": "yes"}, "expected true or false; got the string 'yes'"),
        ("pretrain", {"backbone": "resnet99"}, "'backbone': expected one of 'auto', 'resnet18'"),
        ("pretrain", {"device": 0}, "key 'device': expected a string; got the integer 0"),
        ("pretrain", {"seed": True}, "key 'seed': expected an integer; got the boolean true"),
        ("fit-photoz", {"epochs": "many"}, """key 'epochs': expected an integer >= 1 or "auto";"""),
        ("fit-photoz", {"holdout": 1}, "key 'holdout': expected a fraction in [0, 1); got 1"),
        ("predict", {"quantiles": [0.5, 2]}, "key 'quantiles': quantiles must lie in [0, 1]"),
        ("ingest", {"column": "redshift"}, "key 'column': expected PUBLIC=CATALOG"),
        ("ingest", {"column": [1]}, "key 'column': expected an array of strings"),
        ("pretrain", {"epochs": 3, "n-epochs": 4}, "keys 'epochs' and 'n-epochs' name the same"),
    ],
)  # fmt: skip
def test_values_argparse_would_refuse(tmp_path, recorded, capsys, command, values, message):
    config = _config(tmp_path, values)
    assert main([command, "--config", config]) == 2
    assert message in _error(capsys, command)
    assert not recorded


def test_missing_directory_and_invalid_files(tmp_path, recorded, capsys):
    missing = str(tmp_path / "missing.toml")
    assert main(["pretrain", "a.h5", "--output", "e.joblib", "--config", missing]) == 2
    assert f"config file {missing!r} does not exist." in _error(capsys, "pretrain")
    assert main(["embed", "--config", str(tmp_path)]) == 2
    assert "is a directory, not a file" in _error(capsys, "embed")
    broken = tmp_path / "broken.toml"
    broken.write_text('archive = "a.h5"\nepochs = \n')
    assert main(["pretrain", "--config", str(broken)]) == 2
    assert "is not valid TOML: Invalid value (at line 2, column 10)" in _error(capsys, "pretrain")
    assert not recorded


def test_required_arguments_the_file_leaves_out_are_still_required(tmp_path, recorded, capsys):
    config = _config(tmp_path, {"archive": "a.h5"})
    with pytest.raises(SystemExit) as exit_info:
        main(["pretrain", "--config", config])
    assert exit_info.value.code == 2
    assert "the following arguments are required: --output" in capsys.readouterr().err


def test_the_examples_are_valid_configs():
    for command in ("pretrain", "fit-photoz"):
        parser = cli.build_parser()
        apply_config(parser, command, str(ROOT / "examples" / f"{command}.toml"))
        args = parser.parse_args([command])
        assert args.archive and args.output and args.checkpoint_dir, command
    # the TOML shown in the guide
    for page in ("cli.md", "cluster.md"):
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        blocks = re.findall(r"^```toml\n(.*?)^```", text, re.MULTILINE | re.DOTALL)
        assert blocks, page
        for block in blocks:
            path = ROOT / "docs" / page  # (only for messages: the text is parsed here)
            parser = cli.build_parser()
            with _toml_file(block) as config:
                apply_config(parser, "pretrain", config)
            assert parser.parse_args(["pretrain"]).archive, path
    script = (ROOT / "examples" / "slurm" / "pretrain.sbatch").read_text()
    assert "--config" in script and "examples/pretrain.toml" in script


def test_main_process_is_read_from_the_environment(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("RANK", raising=False)
    assert cli.main_rank()
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main_rank()
    # rank 1 of 2, as torchrun sets it (no process group is started here)
    monkeypatch.setenv("RANK", "1")
    assert not cli.main_rank()
    out = tmp_path / "s.h5"
    assert main(["simulate", str(out), "--n", "4", "--stamp-size", "8"]) == 0
    assert not out.exists()
    assert capsys.readouterr().out == ""


def test_under_torchrun_the_other_ranks_write_and_print_nothing(tmp_path, monkeypatch, capsys):
    archive = str(tmp_path / "a.h5")
    assert main(["simulate", archive, "--n", "32", "--stamp-size", "16"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(cli, "main_rank", lambda: False)
    # the commands that do not train run on rank 0 only: the others return at once
    assert main(["simulate", str(tmp_path / "b.h5"), "--n", "4"]) == 0
    assert not (tmp_path / "b.h5").exists()
    # pretrain and fit-photoz train on every rank; rank > 0 saves and prints nothing
    values = {"archive": archive, **TINY}
    embedder = tmp_path / "e.joblib"
    config = _config(tmp_path, {**values, "output": str(embedder)})
    assert main(["pretrain", "--config", config]) == 0
    model = tmp_path / "m.joblib"
    config = _config(tmp_path, {**values, "output": str(model), "min-steps": 1}, "f.toml")
    assert main(["fit-photoz", "--config", config, "--epochs", "1"]) == 0
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == ""
    assert not embedder.exists() and not model.exists()


def test_a_real_run_from_a_config_file(tmp_path, capsys):
    archive = str(tmp_path / "a.h5")
    config = _config(tmp_path, {"output": archive, "n": 32, "stamp-size": 16}, "sim.toml")
    assert main(["simulate", "--config", config]) == 0
    embedder = tmp_path / "e.joblib"
    values = {"archive": archive, "output": str(embedder), **TINY, "crop-size": 12}
    assert main(["pretrain", "--config", _config(tmp_path, values), "--batch-size", "16"]) == 0
    fitted = joblib.load(embedder)
    params = fitted.get_params()
    assert (params["n_epochs"], params["batch_size"], params["crop_size"]) == (1, 16, 12)
    assert len(fitted.history_) == 1
    assert f"saved {embedder}; final loss" in capsys.readouterr().out


def test_help_stays_light_with_a_config(tmp_path):
    """``--help`` with ``--config`` still answers without loading PyTorch or scikit-learn."""
    import subprocess

    config = _config(tmp_path, {"archive": "a.h5", "output": "e.joblib", "lr": 0.125})
    code = (
        "import sys\n"
        "from skphotoz.cli import main\n"
        f"try:\n    main(['pretrain', '--config', {config!r}, '--help'])\n"
        "except SystemExit as e:\n    assert e.code == 0\n"
        "assert 'torch' not in sys.modules and 'sklearn' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "usage: skphotoz pretrain" in done.stdout
