"""Validate the SDSS galaxy simulator against the real SDSS catalogue.

Prints tables and writes ``simulator_validation.csv``, ``simulator_distributions.csv`` and
PNG figures (distributions, size-luminosity, gallery) to ``--out`` (default ``docs/experiments/``):

1. speed: simulated galaxies per second on one core;
2. distributions of redshift, r magnitude, g-r, u-r and half-light radius beside the real
   catalogue (two-sample Kolmogorov-Smirnov statistics);
3. photometry-only photo-z: a random forest on aperture photometry measured from the simulated
   images, beside the same forest on the real catalogue's photometry (5-fold CV);
4. a small CNN trained on the simulated images, beside the forest on the same split.

Run ``python benchmarks/validate_simulator.py`` (about 10 minutes on 2 CPU cores) or with
``--quick`` for a smoke run.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import ks_2samp
from sklearn.ensemble import RandomForestRegressor
from sklearn.model_selection import KFold, cross_val_predict

from skphotoz.data import deredden, to_rgb
from skphotoz.datasets import load_sdss_catalog, make_sdss_galaxies
from skphotoz.datasets._simulator import SHEN_EARLY, SHEN_LATE, SKY_SIGMA
from skphotoz.metrics import outlier_fraction, sigma_mad
from skphotoz.preprocessing import AperturePhotometry

#: SDSS-to-AB offsets added to SDSS magnitudes, ugriz (kcorrect's sdss_ab_correct).
SDSS_TO_AB = np.array([-0.036, 0.012, 0.010, 0.028, 0.040])
#: Aperture radii in arcsec for the photometry-only baseline.
APERTURES_ARCSEC = (1.5, 3.0, 6.0)
#: Redshift bins of the CNN's classification head (180 bins over [0, 0.4), Pasquet et al. 2019).
N_BINS, Z_TOP = 180, 0.4

SPEED_SNIPPET = """
import time
from skphotoz.datasets import make_sdss_galaxies
make_sdss_galaxies(256, random_state=1)
n = {n}
t, w = time.process_time(), time.perf_counter()
make_sdss_galaxies(n, random_state=0)
print(n / (time.process_time() - t), n / (time.perf_counter() - w))
"""


def measure_speed(n: int) -> tuple[float, float]:
    """Galaxies per second (per CPU second, and per wall second) with one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", SPEED_SNIPPET.format(n=n)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    cpu, wall = (float(v) for v in out.stdout.split()[-2:])
    return cpu, wall


def real_magnitudes(cat) -> np.ndarray:
    """Dereddened AB model magnitudes of the real catalogue."""
    flux = np.clip(cat.modelflux, 1e-3, None)
    return 22.5 - 2.5 * np.log10(flux) - cat.extinction + SDSS_TO_AB


def catalogue_like_magnitudes(sim, cat, rng) -> np.ndarray:
    """Simulated true magnitudes with the photometric errors of the real source galaxies.

    Each simulated galaxy carries the model-flux errors of the real galaxy it was drawn from,
    so its colours can be compared with the (noisy) real catalogue colours.
    """
    sigma = 1.0 / np.sqrt(np.clip(cat.modelflux_ivar[sim.truth.source_index], 1e-12, None))
    flux = 10 ** (-0.4 * (sim.truth.mag - 22.5))
    noisy = flux + sigma * rng.standard_normal(flux.shape)
    return 22.5 - 2.5 * np.log10(np.clip(noisy, 1e-3, None))


def aperture_features(images, extinction) -> np.ndarray:
    """Dereddened aperture magnitudes: colours in the 3" aperture, r in every aperture, and
    colours in the 1.5" aperture (skphotoz.preprocessing.AperturePhotometry)."""
    return AperturePhotometry(APERTURES_ARCSEC).fit_transform(deredden(images, extinction))


def random_forest() -> RandomForestRegressor:
    return RandomForestRegressor(
        n_estimators=200, min_samples_leaf=3, max_features=0.5, n_jobs=2, random_state=0
    )


def cv_photoz(X, z) -> np.ndarray:
    return cross_val_predict(random_forest(), X, z, cv=KFold(5, shuffle=True, random_state=0))


def cnn_inputs(images, extinction) -> np.ndarray:
    """Dereddened central 48x48 crops binned 2x2 to 24x24 (binning costs little: the PSF FWHM
    is ~3.5 pixels), asinh-scaled in units of twice each band's sky noise."""
    img = deredden(images, extinction)
    lo = img.shape[-1] // 2 - 24
    crop = img[..., lo : lo + 48, lo : lo + 48]
    binned = crop.reshape(*crop.shape[:2], 24, 2, 24, 2).sum(axis=(3, 5))
    scale = 2 * SKY_SIGMA.astype(np.float32)[None, :, None, None]
    return np.arcsinh(binned / scale).astype(np.float32)


def build_cnn():
    """A small CNN: three convolution stages, global average pooling, 180-bin softmax head."""
    from torch import nn

    def conv(c_in, c_out):
        return [
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        ]

    return nn.Sequential(
        *conv(5, 32),
        *conv(32, 32),
        nn.AvgPool2d(2),
        *conv(32, 64),
        nn.AvgPool2d(2),
        *conv(64, 128),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, N_BINS),
    )


def train_cnn(x_train, z_train, x_test, epochs: int, seed: int = 0) -> np.ndarray:
    """Train the CNN with cross-entropy on redshift bins; return test predictions (the mean
    of the softmax PDF averaged over the 8 right-angle rotations and flips)."""
    import torch
    from torch import nn

    torch.set_num_threads(2)
    torch.manual_seed(seed)
    model = build_cnn()
    centres = torch.linspace(0, Z_TOP, N_BINS + 1)[:-1] + Z_TOP / N_BINS / 2
    # Soft labels: a Gaussian of 1.5 bins around the true redshift smooths the 180-bin PDF,
    # which helps with a few tens of thousands of training galaxies.
    position = torch.from_numpy(np.clip(z_train / Z_TOP * N_BINS - 0.5, 0, N_BINS - 1)).float()
    labels = torch.exp(-0.5 * ((torch.arange(N_BINS)[None] - position[:, None]) / 1.5) ** 2)
    labels /= labels.sum(dim=1, keepdim=True)
    x_train = torch.from_numpy(x_train)
    batch = 64
    steps = epochs * (len(x_train) // batch)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    start = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(len(x_train) // batch):
            idx = order[i * batch : (i + 1) * batch]
            xb = x_train[idx]
            # Random right-angle rotation and flip of the whole batch: exact symmetries.
            xb = torch.rot90(xb, int(torch.randint(4, (1,), generator=gen)), dims=(2, 3))
            if torch.rand(1, generator=gen) < 0.5:
                xb = torch.flip(xb, dims=(3,))
            loss = nn.functional.cross_entropy(model(xb.contiguous()), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        elapsed = time.perf_counter() - start
        print(f"  CNN epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, {elapsed:.0f} s")
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, len(x_test), 512):
            xb = torch.from_numpy(x_test[i : i + 512])
            prob = 0
            for k in range(4):
                for flip in (False, True):
                    xr = torch.rot90(xb, k, dims=(2, 3))
                    xr = torch.flip(xr, dims=(3,)) if flip else xr
                    prob = prob + model(xr.contiguous()).softmax(1)
            preds.append((prob / 8) @ centres)
    return torch.cat(preds).numpy()


def shen_median_kpc(abs_mag, early) -> np.ndarray:
    m = abs_mag
    lt = SHEN_LATE
    late = (
        -0.4 * lt["alpha"] * m
        + (lt["beta"] - lt["alpha"]) * np.log10(1 + 10 ** (-0.4 * (m - lt["m0"])))
        + lt["gamma"]
    )
    return 10 ** np.where(early, -0.4 * SHEN_EARLY["a"] * m + SHEN_EARLY["b"], late)


def plot_distributions(sim_vals, real_vals, sim, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(11, 6.5))
    ranges = {"z": (0, 0.35), "r": (13, 18.2), "g-r": (0.2, 1.4), "u-r": (0.8, 3.8)}
    for ax, (name, lim) in zip(axes.flat, ranges.items(), strict=False):
        bins = np.linspace(*lim, 50)
        ax.hist(real_vals[name], bins, density=True, histtype="step", lw=1.5, label="real SDSS")
        ax.hist(sim_vals[name], bins, density=True, histtype="step", lw=1.5, label="simulated")
        ax.set_xlabel(name)
    axes[0, 0].legend()
    ax = axes[1, 1]
    ax.hist(
        sim.truth.half_light_radius, np.linspace(0, 10, 50), histtype="step", lw=1.5, color="C1"
    )
    ax.set_xlabel('r-band half-light radius (")  [simulated only]')
    ax = axes[1, 2]
    m = sim.truth.abs_mag_r
    early = sim.truth.bulge_fraction > 0.5
    ax.scatter(m, sim.truth.half_light_radius_kpc, s=1, alpha=0.2, c=np.where(early, "C3", "C0"))
    grid = np.linspace(-23.5, -17, 50)
    ax.plot(grid, shen_median_kpc(grid, False), "b-", label="Shen+03 late")
    ax.plot(grid, shen_median_kpc(grid, True), "r-", label="Shen+03 early")
    ax.set_yscale("log")
    ax.set_xlim(-17, -23.5)
    ax.set_ylim(0.3, 40)
    ax.set_xlabel("M_r (H0 = 70)")
    ax.set_ylabel("R50 (kpc)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "img" / "simulator_distributions.png", dpi=70)
    plt.close(fig)


def plot_gallery(random_state: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = make_sdss_galaxies(400, random_state=random_state)
    order = np.argsort(data.redshift)
    pick = order[np.linspace(0, len(order) - 1, 24).astype(int)]
    rgb = to_rgb(data.images[pick])
    fig, axes = plt.subplots(3, 8, figsize=(8, 3.4))
    for ax, image, i in zip(axes.flat, rgb, pick, strict=True):
        ax.imshow(image, origin="lower")
        ax.set_title(f"z={data.redshift[i]:.3f}", fontsize=7, pad=2)
        ax.axis("off")
    fig.tight_layout(pad=0.3, h_pad=0.6, w_pad=0.2)
    fig.savefig(out / "img" / "simulator_gallery.png", dpi=60)
    plt.close(fig)


def plot_photoz(z_test, z_rf, z_cnn, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 4), sharey=True)
    for ax, zp, name in ((axes[0], z_rf, "RF, aperture photometry"), (axes[1], z_cnn, "CNN")):
        ax.scatter(z_test, zp, s=1, alpha=0.3)
        ax.plot([0, 0.35], [0, 0.35], "k-", lw=0.5)
        ax.set_xlim(0, 0.35)
        ax.set_ylim(0, 0.35)
        ax.set_xlabel("z_spec")
        ax.set_title(f"{name}: sigma_MAD={sigma_mad(z_test, zp):.4f}", fontsize=9)
    axes[0].set_ylabel("z_phot")
    fig.tight_layout()
    fig.savefig(out / "img" / "simulator_photoz.png", dpi=70)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-sim", type=int, default=20000, help="galaxies for distributions/RF")
    parser.add_argument("--n-cnn", type=int, default=40000, help="galaxies for the CNN")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("docs/experiments"))
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.n_sim, args.n_cnn, args.epochs = 3000, 3000, 1
    (args.out / "img").mkdir(parents=True, exist_ok=True)
    results: list[tuple[str, str, float]] = []

    cpu_rate, wall_rate = measure_speed(2048 if args.quick else 8192)
    print(
        f"speed: {cpu_rate:.0f} galaxies per CPU second on one core ({wall_rate:.0f} per "
        "wall second on this machine)"
    )
    results += [
        ("speed", "galaxies/s, one core (CPU time)", cpu_rate),
        ("speed", "galaxies/s, one core (wall time)", wall_rate),
    ]

    cat = load_sdss_catalog()
    start = time.perf_counter()
    sim = make_sdss_galaxies(args.n_sim, random_state=0)
    print(f"simulated {args.n_sim} galaxies in {time.perf_counter() - start:.1f} s")
    rng = np.random.default_rng(1)
    real_mag = real_magnitudes(cat)
    sim_mag = sim.truth.mag
    noisy_mag = catalogue_like_magnitudes(sim, cat, rng)
    real_vals = {
        "z": cat.redshift,
        "r": real_mag[:, 2],
        "g-r": real_mag[:, 1] - real_mag[:, 2],
        "u-r": real_mag[:, 0] - real_mag[:, 2],
    }
    sim_vals = {
        "z": sim.redshift,
        "r": sim_mag[:, 2],
        "g-r": sim_mag[:, 1] - sim_mag[:, 2],
        "u-r": sim_mag[:, 0] - sim_mag[:, 2],
    }
    noisy_vals = {
        "g-r": noisy_mag[:, 1] - noisy_mag[:, 2],
        "u-r": noisy_mag[:, 0] - noisy_mag[:, 2],
    }
    print("\n| quantity | real median | sim median | KS (true sim) | KS (sim + SDSS errors) |")
    print("|---|---|---|---|---|")
    dist_rows = []
    for name in ("z", "r", "g-r", "u-r"):
        ks = ks_2samp(sim_vals[name], real_vals[name]).statistic
        ks_noisy = (
            ks_2samp(noisy_vals[name], real_vals[name]).statistic
            if name in noisy_vals
            else float("nan")
        )
        print(
            f"| {name} | {np.median(real_vals[name]):.3f} | {np.median(sim_vals[name]):.3f} | "
            f"{ks:.3f} | {ks_noisy:.3f} |"
        )
        dist_rows.append(
            (name, np.median(real_vals[name]), np.median(sim_vals[name]), ks, ks_noisy)
        )
        results.append(("distributions", f"KS {name}", ks))
    passing = np.mean((sim.redshift < 0.4) & (sim_mag[:, 2] < 17.8))
    print(
        f"median z {np.median(sim.redshift):.4f}; fraction with z < 0.4 and r < 17.8: "
        f'{passing:.4f}; median half-light radius {np.median(sim.truth.half_light_radius):.2f}"'
    )
    # The first 5,000 galaxies are exactly make_sdss_galaxies(5000, random_state=0).
    first = slice(0, min(5000, args.n_sim))
    ks_z5 = ks_2samp(sim.redshift[first], cat.redshift).statistic
    ks_gr5 = ks_2samp(sim_vals["g-r"][first], real_vals["g-r"]).statistic
    passing5 = np.mean((sim.redshift[first] < 0.4) & (sim_mag[first, 2] < 17.8))
    print(
        f"first 5,000: median z {np.median(sim.redshift[first]):.4f}, KS z {ks_z5:.3f}, "
        f"KS g-r {ks_gr5:.3f}, fraction z < 0.4 and r < 17.8: {passing5:.4f}"
    )
    results += [
        ("distributions", "first 5000: median z", float(np.median(sim.redshift[first]))),
        ("distributions", "first 5000: KS z", ks_z5),
        ("distributions", "first 5000: KS g-r", ks_gr5),
        ("distributions", "first 5000: fraction z<0.4 and r<17.8", float(passing5)),
    ]
    results += [
        ("distributions", "median z", float(np.median(sim.redshift))),
        ("distributions", "fraction z<0.4 and r<17.8", float(passing)),
        (
            "distributions",
            "median half-light radius (arcsec)",
            float(np.median(sim.truth.half_light_radius)),
        ),
    ]
    with open(args.out / "simulator_distributions.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["quantity", "real_median", "sim_median", "ks_true", "ks_with_errors"])
        writer.writerows(dist_rows)
    plot_distributions(sim_vals, real_vals, sim, args.out)

    print("\nphotometry-only random forest (5-fold CV):")
    X_sim = aperture_features(sim.images, sim.extinction)
    z_rf = cv_photoz(X_sim, sim.redshift)
    X_real = np.column_stack([-np.diff(real_mag, axis=1), real_mag[:, 2]])
    z_real = cv_photoz(X_real, cat.redshift)
    rows = [
        ("RF, real catalogue model photometry", cat.redshift, z_real),
        ("RF, simulated aperture photometry from images", sim.redshift, z_rf),
    ]
    for name, zs, zp in rows:
        print(f"  {name}: sigma_MAD {sigma_mad(zs, zp):.4f}, eta {outlier_fraction(zs, zp):.4f}")
        results += [
            ("photo-z", f"{name}: sigma_MAD", sigma_mad(zs, zp)),
            ("photo-z", f"{name}: outlier fraction", outlier_fraction(zs, zp)),
        ]

    del sim, X_sim
    print(f"\nCNN on images vs RF on the same split ({args.n_cnn} galaxies, 80/20):")
    cnn_data = make_sdss_galaxies(args.n_cnn, random_state=1)
    n_train = int(0.8 * args.n_cnn)
    X_ap = aperture_features(cnn_data.images, cnn_data.extinction)
    z = cnn_data.redshift
    rf = random_forest().fit(X_ap[:n_train], z[:n_train])
    z_rf_test = rf.predict(X_ap[n_train:])
    x = cnn_inputs(cnn_data.images, cnn_data.extinction)
    del cnn_data
    start = time.perf_counter()
    z_cnn = train_cnn(x[:n_train], z[:n_train], x[n_train:], args.epochs)
    print(f"  CNN trained in {time.perf_counter() - start:.0f} s")
    z_test = z[n_train:]
    for name, zp in (("RF, aperture photometry (same split)", z_rf_test), ("CNN on images", z_cnn)):
        print(
            f"  {name}: sigma_MAD {sigma_mad(z_test, zp):.4f}, "
            f"eta {outlier_fraction(z_test, zp):.4f}"
        )
        results += [
            ("photo-z", f"{name}: sigma_MAD", sigma_mad(z_test, zp)),
            ("photo-z", f"{name}: outlier fraction", outlier_fraction(z_test, zp)),
        ]
    plot_photoz(z_test, z_rf_test, z_cnn, args.out)
    plot_gallery(2, args.out)

    with open(args.out / "simulator_validation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["section", "measure", "value"])
        writer.writerows((s, m, f"{v:.5g}") for s, m, v in results)
    print(f"\nwrote {args.out / 'simulator_validation.csv'} and figures in {args.out / 'img'}")


if __name__ == "__main__":
    main()
