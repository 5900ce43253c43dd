"""The demo end to end at a tiny size (the real sizes are timed in docs/results.md)."""

import re

import pytest

from skphotoz import _demo


@pytest.fixture
def tiny(monkeypatch):
    config = _demo.DemoConfig(
        n_galaxies=150, moco_epochs=2, label_counts=(20, 60), min_steps=5, test_size=0.3
    )
    monkeypatch.setitem(_demo.CONFIGS, "quick", config)
    return config


def test_demo_writes_the_report_with_every_figure_and_a_row_per_method_and_budget(
    tiny, tmp_path, capsys
):
    result = _demo.run_demo("quick", out=tmp_path, threads=1)
    out = capsys.readouterr().out
    names = {"gallery", "moco_loss", "label_efficiency", "photoz", "pit", "neighbours", "anomalies"}
    names.add("selection")
    assert set(result["figures"]) == names
    for name in result["figures"].values():
        assert (tmp_path / name).stat().st_size > 1000
    assert len(result["rows"]) == 6 * 2
    report = (tmp_path / "report.html").read_text()
    for name in result["figures"].values():
        assert f'src="{name}"' in report
    # The table printed and the table in the report hold the same numbers.
    for row in result["rows"]:
        assert f"{row['sigma_mad']:.4f}" in report and f"{row['sigma_mad']:.4f}" in out
    # Networks have PDFs (CRPS), the GPs and the forest have none.
    without_pdf = (*_demo.BASELINES, _demo.IMAGE_GP)
    assert all((r["crps"] is None) == (r["method"] in without_pdf) for r in result["rows"])
    assert re.search(r"chance level ln\(1 \+ \d+ queued keys\)", out)
    assert "Pretraining + fine-tuning matches training from scratch" in out
    # A reading per budget for k, one with all labels, one per network and budget against the
    # better photometry baseline (the GP on photometry + embedding among them).
    per_budget = [line for line in result["readings"] if line.startswith("  ")]
    assert len(per_budget) == 2 + 1 + 4 * 2
    assert sum("labels: GP photometry+embedding − " in line for line in per_budget) == 2
    assert "Against the better photometry baseline" in out
    # The selection panel: the default strategy against random labels, both metrics, each
    # budget, with the numbers of the curve it measured.
    selection = result["selection"]
    from skphotoz.selection import DEFAULT_STRATEGY

    assert selection["strategy"] == DEFAULT_STRATEGY
    assert len(selection["readings"]) == 1 + 2 * 2
    assert "6. Which galaxies to label" in out and "Which galaxies to label</h2>" in report
    assert f"{selection['sigma_mad'][0]:.4g}" in out
    # The command printed to look at the demo's galaxies in a browser works on its output: the
    # page can show a galaxy's neighbours and its PDF.
    pytest.importorskip("flask")
    import shlex

    from skphotoz.cli import main

    assert result["explore"] in out and result["explore"].startswith("skphotoz explore ")
    argv = shlex.split(result["explore"])[1:]
    assert main([*argv, "--check", "--no-cache"]) == 0
    assert "galaxy (neighbours, PDF)" in capsys.readouterr().out
    from skphotoz.cli._explore import build_explorer
    from skphotoz.cli._parser import build_parser

    args = build_parser().parse_args([*argv, "--no-cache", "--quiet"])
    galaxy = build_explorer(args).galaxy(0)
    assert len(galaxy["neighbours"]) == 8 and galaxy["pdf"] is not None
    # The simulated galaxies are cached for the next run.
    cached = list(tmp_path.glob("galaxies_150_seed0.h5"))
    assert len(cached) == 1
    _demo.load_galaxies(tmp_path, 150)
    assert "cached" in capsys.readouterr().out
