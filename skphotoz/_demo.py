"""``skphotoz demo``: the case for self-supervised photo-z, computed here and now.

One set of simulated SDSS galaxies (cached after the first run) is used for everything:

1. MoCo v2 pretraining on all the images, labels unused;
2. label-efficiency curves over the same test galaxies and label subsets of five models — the
   two photometry baselines on aperture photometry measured on the same images (a Gaussian
   process and a random forest), a network trained from scratch, the pretrained network
   fine-tuned, and the pretrained network fine-tuned with the photometry joined to its image
   features (the hybrid) — at a few label budgets;
3. paired readings of the published claims (the label-efficiency factor k, and who wins with
   all labels) and of each network against the better photometry baseline, each with its
   bootstrap interval;
4. redshift PDFs of the best network (z_phot vs z_spec, PIT), similarity search and the most
   unusual galaxies under the pretrained embedding;
5. which galaxies to label: the GP with labels chosen by the default selection strategy against
   random labels, on the same test galaxies, and a map of where each choice spends its labels;
6. a report (HTML with the figures and the table) in the output folder.

Every number printed or written is measured in the run; nothing is stored in advance.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEED = 0
#: The photometry-only models, measured on the same stamps as the networks.
BASELINES = ("GP (aperture photometry)", "forest (aperture photometry)")
#: The same GP with the images: photometry joined to the pretrained embedding's first principal
#: components (:func:`skphotoz.hybrid_gp`).
IMAGE_GP = "GP (photometry + embedding)"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of one demo run."""

    n_galaxies: int
    moco_epochs: int
    label_counts: tuple
    min_steps: int
    test_size: float = 0.3
    batch_size: int = 64


CONFIGS = {
    "quick": DemoConfig(600, 8, (50, 150, 300), 60),
    "default": DemoConfig(1600, 10, (100, 300, 600), 150),
    "full": DemoConfig(6000, 30, (100, 300, 1000, 3000), 1000),
}


def _say(message: str = "") -> None:
    print(message, flush=True)


def archive_path(folder: Path, n: int) -> Path:
    """The demo's archive of ``n`` simulated galaxies in ``folder``."""
    return Path(folder) / f"galaxies_{n}_seed{SEED}.h5"


def _save_for_explore(out: Path, archive: Path, embeddings, model) -> str:
    """Write the embeddings and the best network beside the archive, for ``skphotoz
    explore``; returns the command that opens them."""
    from .io import dump

    np.save(out / "embeddings.npy", np.asarray(embeddings, dtype=np.float32))
    dump(model, out / "photoz.skops")
    return (
        f"skphotoz explore {archive} --embeddings {out / 'embeddings.npy'} "
        f"--model {out / 'photoz.skops'} --deredden"
    )


def load_galaxies(folder: Path, n: int):
    """Simulated galaxies, written to an HDF5 archive on the first run and read back after;
    dereddened with their recorded E(B-V), as a survey's catalogue allows."""
    from .data import open_archive
    from .datasets import write_sdss_galaxies

    path = archive_path(folder, n)
    if path.exists():
        try:
            archive = open_archive(path, deredden=True)
            if len(archive.redshift) == n:
                _say(f"  cached {path}")
                return archive
        except (OSError, KeyError, ValueError):
            pass
        path.unlink()
    tick = time.perf_counter()
    write_sdss_galaxies(path, n, random_state=SEED, stamp_size=64)
    _say(f"  simulated {n} galaxies -> {path} ({time.perf_counter() - tick:.0f} s)")
    return open_archive(path, deredden=True)


def twin_accuracy(embedder, X, n: int = 512, seed: int = SEED) -> float:
    """Share of galaxies whose other augmented view is their most similar among ``n``
    galaxies' views, in the projection space MoCo trains: what InfoNCE rewards, in a number a
    reader can judge (chance is 1/n)."""
    import torch
    import torch.nn.functional as F

    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=min(n, len(X)), replace=False))
    images = torch.as_tensor(np.asarray(X[rows], dtype=np.float32))
    augment = embedder._build_augment(images.numpy(), embedder.encoder_, embedder.crop_size_)
    generator = torch.Generator().manual_seed(seed)
    encoder = embedder.moco_.query_encoder.eval()
    with torch.no_grad():
        first = F.normalize(encoder(augment(images, generator)), dim=1)
        second = F.normalize(encoder(augment(images, generator)), dim=1)
    nearest = (first @ second.T).argmax(dim=1)
    return float((nearest == torch.arange(len(rows))).float().mean())


def _verdict_k(factor, b: int) -> str:
    k, low, high = factor.factor[b], factor.low[b], factor.high[b]
    n = factor.label_counts[b]
    censored = int(factor.censored[b])
    if censored == 1:
        text = f"from scratch never reaches it within the budgets (k >= {k:.1f})"
    elif censored == -1:
        text = f"from scratch reaches it already at its smallest budget (k <= {k:.1f})"
    else:
        text = f"from scratch needs k = {k:.1f} [{low:.1f}, {high:.1f}] times the labels"
    if low >= 2:
        reading = "supports the published 2-4x"
    elif high < 2:
        reading = "short of the published 2-4x"
    else:
        reading = "inconclusive at this size"
    return f"{n} labels: fine-tuned σ_MAD {factor.sigma_mad_a[b]:.4f}; {text} -> {reading}"


def _verdict_difference(diff, i: int, a: str, b: str) -> str:
    d, low, high = diff.difference[i], diff.low[i], diff.high[i]
    if high < 0:
        who = f"{a} better"
    elif low > 0:
        who = f"{b} better"
    else:
        who = "no significant difference"
    return f"{diff.label_counts[i]} labels: {a} − {b} = {d:+.4f} [{low:+.4f}, {high:+.4f}] -> {who}"


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path.name


def run_demo(mode: str = "default", out="demo_output", threads: int = 2) -> dict:
    """Run the demo; returns the table rows and readings (also printed and written)."""
    import matplotlib
    import torch

    matplotlib.use("Agg")
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import ShuffleSplit, cross_val_predict
    from sklearn.neighbors import KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from . import MoCoEmbedder, PhotoZRegressor, SimilaritySearch
    from .baselines import photometry_baseline
    from .data import to_rgb
    from .hybrid import hybrid_gp
    from .metrics import bias, crps, outlier_fraction, sigma_mad
    from .model_selection import label_efficiency_curve, label_efficiency_factor, paired_difference
    from .plotting import (
        LabelEfficiencyDisplay,
        PhotoZDisplay,
        PITDisplay,
        TrainingHistoryDisplay,
        plot_gallery,
        plot_neighbors,
    )

    config = CONFIGS[mode]
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    timings = {}

    _say(f"skphotoz demo ({mode}): {config.n_galaxies} simulated SDSS galaxies, {threads} threads")
    _say("\n1. Data")
    archive = load_galaxies(out, config.n_galaxies)
    X = np.asarray(archive.images[np.arange(config.n_galaxies)], dtype=np.float32)
    z = np.asarray(archive.redshift, dtype=np.float64)
    picks = np.argsort(z)[np.linspace(0, len(z) - 1, 8).astype(int)]
    figures = {"gallery": _save(plot_gallery(to_rgb(X[picks]), z[picks]), out / "gallery.png")}
    _say(f"  median z {np.median(z):.3f}; images (n, ugriz, 64, 64), dereddened")

    _say(
        f"\n2. MoCo v2 pretraining on all {len(X)} images ({config.moco_epochs} epochs, no labels)"
    )
    tick = time.perf_counter()
    embedder = MoCoEmbedder(n_epochs=config.moco_epochs, random_state=SEED, verbose=True).fit(X)
    timings["pretraining"] = time.perf_counter() - tick
    queue = embedder.moco_.queue.shape[0]
    losses = [h["loss"] for h in embedder.history_]
    chance = float(np.log(1 + queue))
    _say(
        f"  InfoNCE loss {losses[0]:.2f} (epoch 1) -> {losses[-1]:.2f} (epoch {len(losses)}); "
        f"chance level ln(1 + {queue} queued keys) = {chance:.2f}."
    )
    second = losses[min(1, len(losses) - 1)]
    trend = "fell" if losses[-1] < second else "did not fall"
    _say(
        "  Epoch 1 contrasts each view with a queue of random keys, easy to tell apart, so its "
        "loss starts low.\n  From epoch 2 the queue holds real galaxies; since then the loss "
        f"{trend} ({second:.2f} -> {losses[-1]:.2f}). What the encoder learned shows below."
    )
    untrained = MoCoEmbedder(n_epochs=0, random_state=SEED).fit(X)
    n_twins = min(512, len(X))
    trained_twins, untrained_twins = twin_accuracy(embedder, X), twin_accuracy(untrained, X)
    _say(
        f"  Twin test on {n_twins} galaxies (is a galaxy's other view its most similar?): "
        f"pretrained {100 * trained_twins:.1f}%, untrained {100 * untrained_twins:.1f}%, "
        f"chance {100 / n_twins:.1f}%."
    )
    probe = make_pipeline(StandardScaler(), KNeighborsRegressor(10, weights="distance"))
    knn = {
        name: sigma_mad(z, cross_val_predict(probe, model.transform(X), z, cv=5))
        for name, model in (("pretrained", embedder), ("untrained", untrained))
    }
    _say(
        f"  kNN photo-z on the embeddings (labels used by the probe only, 5-fold CV): σ_MAD "
        f"pretrained {knn['pretrained']:.4f}, untrained {knn['untrained']:.4f}."
    )
    figures["moco_loss"] = _save(
        TrainingHistoryDisplay.from_estimator(embedder).figure_, out / "moco_loss.png"
    )

    _say(f"\n3. Label-efficiency curves: {list(config.label_counts)} labels, same test galaxies")
    network = dict(batch_size=config.batch_size, min_steps=config.min_steps, random_state=SEED)
    models = {
        BASELINES[0]: photometry_baseline("gp", random_state=SEED),
        BASELINES[1]: photometry_baseline("forest", n_jobs=threads, random_state=SEED),
        IMAGE_GP: hybrid_gp(embedder, random_state=SEED),
        "network from scratch": PhotoZRegressor(**network),
        "network fine-tuned": PhotoZRegressor(FrozenEstimator(embedder), **network),
        "hybrid fine-tuned": PhotoZRegressor(FrozenEstimator(embedder), photometry=True, **network),
    }
    cv = ShuffleSplit(n_splits=1, test_size=config.test_size, random_state=SEED)
    curves = {}
    for name, model in models.items():
        tick = time.perf_counter()
        curves[name] = label_efficiency_curve(
            model,
            X,
            z,
            label_counts=list(config.label_counts),
            cv=cv,
            random_state=SEED,
            return_estimators=True,
            verbose=1,
        )
        curves[name].name = name
        timings[name] = time.perf_counter() - tick
    test = curves["network fine-tuned"].test_indices[0]
    z_test = z[test]

    rows = []
    for name, curve in curves.items():
        for b, n in enumerate(curve.label_counts):
            z_phot = curve.predictions[0][b]
            fitted = curve.estimators[0][b]
            value = None
            if hasattr(fitted, "predict_pdf"):
                value = crps(z_test, fitted.predict_pdf(X[test]), fitted.redshift_bins_)
            rows.append(
                {
                    "method": name,
                    "labels": int(n),
                    "sigma_mad": sigma_mad(z_test, z_phot),
                    "bias": bias(z_test, z_phot),
                    "outlier_fraction": outlier_fraction(z_test, z_phot),
                    "crps": value,
                }
            )
    _say(f"\n  {len(test)} test galaxies")
    _say(f"  {'method':<30} {'labels':>6} {'σ_MAD':>8} {'bias':>8} {'η':>7} {'CRPS':>8}")
    for row in rows:
        crps_text = "-" if row["crps"] is None else f"{row['crps']:.4f}"
        _say(
            f"  {row['method']:<30} {row['labels']:>6} {row['sigma_mad']:>8.4f} "
            f"{row['bias']:>+8.4f} {100 * row['outlier_fraction']:>6.1f}% {crps_text:>8}"
        )
    figures["label_efficiency"] = _save(
        LabelEfficiencyDisplay.from_curves(list(curves.values())).figure_,
        out / "label_efficiency.png",
    )

    _say("\n4. The claims, read with paired bootstrap intervals over the test galaxies")
    tuned, scratch = curves["network fine-tuned"], curves["network from scratch"]
    factor = label_efficiency_factor(tuned, scratch, n_bootstrap=1000, random_state=SEED)
    readings = ["Pretraining + fine-tuning matches training from scratch with 2-4x the labels:"]
    readings += ["  " + _verdict_k(factor, b) for b in range(len(factor.label_counts))]
    last = len(config.label_counts) - 1
    readings.append("With all labels, the fine-tuned network beats the one from scratch:")
    diff = paired_difference(tuned, scratch, n_bootstrap=1000, random_state=SEED)
    readings.append("  " + _verdict_difference(diff, last, "fine-tuned", "from scratch"))
    # The better of the two photometry baselines at each budget, on these test galaxies.
    baseline_sigma = {name: curves[name].sigma_mad()[:, 0] for name in BASELINES}
    readings.append("Against the better photometry baseline on the same galaxies:")
    image_models = ((IMAGE_GP, "GP photometry+embedding"), ("hybrid fine-tuned", "hybrid"),
                    ("network fine-tuned", "fine-tuned"),
                    ("network from scratch", "from scratch"))  # fmt: skip
    for name, short in image_models:
        for i in range(len(config.label_counts)):
            best = min(BASELINES, key=lambda b: baseline_sigma[b][i])
            diff = paired_difference(
                curves[name], curves[best], n_bootstrap=1000, random_state=SEED
            )
            readings.append("  " + _verdict_difference(diff, i, short, best.split(" ")[0]))
    for line in readings:
        _say("  " + line)

    _say("\n5. The best network's redshift PDFs and the pretrained embedding")
    # The networks give PDFs (and so a CRPS); the GPs give a mean and a width only.
    best = min((r for r in rows if r["crps"] is not None), key=lambda r: r["sigma_mad"])
    best_model = curves[best["method"]].estimators[0][
        list(config.label_counts).index(best["labels"])
    ]
    best_name = f"{best['method']}, {best['labels']} labels"
    figures["photoz"] = _save(
        PhotoZDisplay.from_estimator(best_model, X[test], z_test, name=best_name).figure_,
        out / "photoz.png",
    )
    figures["pit"] = _save(
        PITDisplay.from_estimator(best_model, X[test], z_test, name=best_name).figure_,
        out / "pit.png",
    )
    _say(f"  z_phot vs z_spec and PIT of {best_name}")

    tick = time.perf_counter()
    embeddings = embedder.transform(X)
    search = SimilaritySearch(n_neighbors=8).fit(embeddings)
    similarities, neighbours = search.kneighbors()
    near = np.median(np.abs(z[neighbours] - z[:, None]) / (1 + z[:, None]))
    rng = np.random.default_rng(SEED)
    random_pairs = rng.integers(0, len(z), size=neighbours.shape)
    far = np.median(np.abs(z[random_pairs] - z[:, None]) / (1 + z[:, None]))
    query = int(test[0])
    figures["neighbours"] = _save(
        plot_neighbors(X, query, neighbours[query], similarities[query], redshift=z),
        out / "neighbours.png",
    )
    rarest = np.argsort(search.score_samples())[:8]
    figures["anomalies"] = _save(plot_gallery(to_rgb(X[rarest]), z[rarest]), out / "anomalies.png")
    timings["search"] = time.perf_counter() - tick
    _say(
        f"  8 nearest neighbours of every galaxy: median |Δz|/(1+z) to its neighbours {near:.4f}, "
        f"to random galaxies {far:.4f}"
    )
    _say(f"  most unusual galaxies (lowest mean similarity to their neighbours): {rarest.tolist()}")

    _say("\n6. Which galaxies to label: the default selection strategy against random labels")
    tick = time.perf_counter()
    selection = _selection_panel(X, z, embeddings, curves[BASELINES[0]], config, cv, out)
    figures["selection"] = selection.pop("figure")
    timings["selection"] = time.perf_counter() - tick
    for line in selection["readings"]:
        _say("  " + line)

    total = time.perf_counter() - started
    timings["total"] = total
    twins = (trained_twins, untrained_twins, n_twins, knn)
    report = _write_report(
        out, mode, config, rows, readings, figures, timings, near, far, len(test), twins,
        selection,
    )  # fmt: skip
    explore = _save_for_explore(out, archive_path(out, config.n_galaxies), embeddings, best_model)
    _say(f"\nReport: {report}\nDone in {total:.0f} s.")
    _say(
        f"\nLook at these galaxies, their look-alikes and redshift PDFs in a browser:\n  {explore}"
    )
    return {
        "rows": rows,
        "readings": readings,
        "figures": figures,
        "timings": timings,
        "selection": selection,
        "explore": explore,
    }


def _selection_panel(X, z, embeddings, random_curve, config, cv, out: Path) -> dict:
    """The GP on photometry with labels chosen by the default strategy (on the standardised
    aperture photometry of the training galaxies) against the same GP with random labels, on
    the same test galaxies; and a map of the pool with both choices at the smallest budget."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    from .baselines import photometry_baseline
    from .model_selection import label_efficiency_curve, paired_difference
    from .plotting import plot_selection
    from .preprocessing import AperturePhotometry
    from .selection import DEFAULT_STRATEGY, make_selection

    features = StandardScaler().fit_transform(AperturePhotometry().fit_transform(X))
    chosen = label_efficiency_curve(
        photometry_baseline("gp", random_state=SEED),
        X,
        z,
        label_counts=list(config.label_counts),
        cv=cv,
        random_state=SEED,
        selection=make_selection(DEFAULT_STRATEGY, random_state=SEED),
        selection_features=features,
    )
    readings = [
        f"GP on photometry, labels chosen by '{DEFAULT_STRATEGY}' minus random labels "
        f"(negative: the strategy is better):"
    ]
    for metric, name, scale, unit in (
        ("sigma_mad", "σ_MAD", 1, ""), ("outlier_fraction", "η", 100, " points")
    ):  # fmt: skip
        diff = paired_difference(chosen, random_curve, random_state=SEED, metric=metric)
        for i, n in enumerate(diff.label_counts):
            readings.append(
                f"  {n} labels: {name} {scale * diff.sigma_mad_a[i]:.4g} vs "
                f"{scale * diff.sigma_mad_b[i]:.4g}, difference "
                f"{scale * diff.difference[i]:+.4f}{unit} [{scale * diff.low[i]:+.4f}, "
                f"{scale * diff.high[i]:+.4f}]"
            )
    train = chosen.train_indices[0]
    pool = train[np.isfinite(z[train])]
    points = PCA(2, random_state=SEED).fit_transform(embeddings[pool])
    position = {row: i for i, row in enumerate(pool)}
    picks = {
        f"{DEFAULT_STRATEGY} labels": [position[r] for r in chosen.labelled_indices[0][0]],
        "random labels": [position[r] for r in random_curve.labelled_indices[0][0]],
    }
    figure = _save(plot_selection(points, picks, colour=z[pool]), out / "selection.png")
    return {
        "readings": readings,
        "figure": figure,
        "strategy": DEFAULT_STRATEGY,
        "budget": int(config.label_counts[0]),
        "sigma_mad": chosen.sigma_mad()[:, 0].tolist(),
    }


def _write_report(
    out, mode, config, rows, readings, figures, timings, near, far, n_test, twins, selection
) -> Path:
    def cell(value, fmt):
        return "–" if value is None else format(value, fmt)

    table = "\n".join(
        f"<tr><td>{html.escape(r['method'])}</td><td>{r['labels']}</td>"
        f"<td>{cell(r['sigma_mad'], '.4f')}</td><td>{cell(r['bias'], '+.4f')}</td>"
        f"<td>{cell(100 * r['outlier_fraction'], '.1f')}%</td>"
        f"<td>{cell(r['crps'], '.4f')}</td></tr>"
        for r in rows
    )
    reading_html = "\n".join(f"<li>{html.escape(line.strip())}</li>" for line in readings)
    selection_html = "\n".join(
        f"<li>{html.escape(line.strip())}</li>" for line in selection["readings"]
    )
    timing_html = ", ".join(f"{html.escape(k)} {v:.0f} s" for k, v in timings.items())

    def img(key, caption):
        return (
            f'<figure><img src="{figures[key]}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )

    selection_figure = img(
        "selection",
        f"The training galaxies on the first two principal components of their embeddings "
        f"(colour: redshift), with the {selection['budget']} galaxies each choice labels at "
        f"the smallest budget",
    )

    page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>skphotoz demo report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;}}
table{{border-collapse:collapse}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}
td:first-child{{text-align:left}}img{{max-width:100%}}figure{{margin:1em 0}}</style></head><body>
<h1>skphotoz demo report ({mode})</h1>
<p>{config.n_galaxies} simulated SDSS galaxies (dereddened ugriz 64×64 stamps); MoCo v2 pretrained
on all images for {config.moco_epochs} epochs without labels; {n_test} test galaxies shared by
every model and budget. Networks: ResNet18, batch {config.batch_size}, at least
{config.min_steps} optimizer steps; the hybrid joins the stamps' aperture photometry to a
bottleneck of the fine-tuned image features. GP and forest: aperture photometry measured on the
same images (colours and magnitudes in 1.5, 3 and 6 arcsec apertures). GP (photometry +
embedding): the same GP on that photometry joined to the first 4 principal components of the
pretrained embedding (<code>skphotoz.hybrid_gp</code>).</p>
<h2>Photo-z accuracy by method and label budget</h2>
<table><tr><th>method</th><th>labels</th><th>σ<sub>MAD</sub></th><th>bias</th><th>η</th>
<th>CRPS</th></tr>
{table}
</table>
<h2>Readings (95% paired bootstrap intervals over the test galaxies)</h2>
<ul>
{reading_html}
</ul>
{img("label_efficiency", "Label-efficiency curves")}
{img("photoz", "z_phot against z_spec of the best network")}
{img("pit", "PIT histogram of the best network's PDFs")}
<h2>Pretraining</h2>
<p>InfoNCE asks the encoder to pick, among the queued keys, the other view of the same galaxy.
The first epoch contrasts against a queue of random keys, which are easy to tell apart, so its
loss starts low; once the queue holds real galaxies the task is hard and the loss sits near its
chance level ln(1 + K) on data sets this small. What the encoder learned shows in the twin test:
of {twins[2]} galaxies, each with two augmented views, the share whose other view is the most
similar of all: pretrained {100 * twins[0]:.1f}%, untrained {100 * twins[1]:.1f}%, chance
{100 / twins[2]:.1f}%. A kNN photo-z on the embeddings (labels used by the probe only, 5-fold
CV) gives σ<sub>MAD</sub> {twins[3]["pretrained"]:.4f} pretrained and
{twins[3]["untrained"]:.4f} untrained.</p>
{img("moco_loss", "MoCo InfoNCE loss per epoch against its chance level")}
<h2>Similarity search and anomalies</h2>
<p>Median |Δz|/(1+z) between a galaxy and its 8 nearest neighbours in the pretrained embedding:
{near:.4f}; between random pairs: {far:.4f}.</p>
{img("neighbours", "A test galaxy and its nearest neighbours")}
{img("anomalies", "The most unusual galaxies")}
{img("gallery", "The simulated galaxies, by redshift")}
<h2>Which galaxies to label</h2>
<p>The same Gaussian process on aperture photometry, its labels chosen by the default
strategy ({html.escape(selection["strategy"])}, on the standardised photometry of the training
galaxies; <code>skphotoz select</code>) instead of at random, on the same test galaxies
(95% paired bootstrap intervals):</p>
<ul>
{selection_html}
</ul>
{selection_figure}
<p>Timings: {timing_html}.</p>
</body></html>
"""
    path = out / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
