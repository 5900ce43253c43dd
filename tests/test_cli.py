import numpy as np
import pytest

from skphotoz.cli import build_parser, main
from skphotoz.data import open_archive


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


def test_search_needs_embeddings_or_model(tmp_path):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", str(tmp_path / "a.h5"), "0"])


def test_parser_rejects_unknown_command():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train"])
