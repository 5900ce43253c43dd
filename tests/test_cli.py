import numpy as np
import pytest

from skphotoz.cli import build_parser, main, run_search_cli
from skphotoz.data import open_archive, write_archive


def test_simulate_pretrain_embed(tmp_path, capsys):
    archive = tmp_path / "sim.h5"
    assert main(["simulate", str(archive), "--n", "24", "--stamp-size", "32", "--seed", "3"]) == 0
    bunch = open_archive(archive)
    assert bunch.images.shape == (24, 5, 32, 32)
    assert np.all((bunch.redshift > 0) & (bunch.redshift < 0.5))

    model = tmp_path / "emb.joblib"
    args = ["pretrain", str(archive), "--output", str(model), "--epochs", "1", "--batch-size", "8"]
    assert main([*args, "--device", "cpu", "--deredden"]) == 0
    out = tmp_path / "emb.npy"
    assert main(["embed", str(model), str(archive), "--output", str(out), "--deredden"]) == 0
    assert np.load(out).shape == (24, 512)
    assert "saved (24, 512) embeddings" in capsys.readouterr().out

    png = tmp_path / "neighbours.png"
    assert (
        main(["search", str(archive), "5", "--embeddings", str(out), "-k", "3", "--plot", str(png)])
        == 0
    )
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("query #5  z=")
    ranks = [line.split() for line in printed[2:]]
    assert [int(r[0]) for r in ranks] == [1, 2, 3]
    assert 5 not in [int(r[1]) for r in ranks]
    similarities = [float(r[2]) for r in ranks]
    assert similarities == sorted(similarities, reverse=True)
    assert png.stat().st_size > 0


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
