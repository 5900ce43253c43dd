"""How precise must learned colours be? kNN photo-z on aperture colours with added noise.

The go/no-go figure of the photometry term (``benchmarks/moco_quality.py``) is the residual of
the colours an encoder reads from pixels, in units of each colour's spread. This script gives
its scale: the 5-fold σ_MAD of a k-nearest-neighbour regressor (k = 10, distance-weighted, on
standardised features) on the 8 aperture colours of
:class:`skphotoz.preprocessing.AperturePhotometry` (1.5" and 3"), each perturbed by Gaussian
noise of ``level`` times its spread (1.4826 x MAD), and on all 11 features with the noise on
the colours only.

    python benchmarks/colour_precision.py [--n 4000] [--seed 0] [--contaminated]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from moco_quality import knn_scores, robust_spread  # noqa: E402

from skphotoz.data import deredden  # noqa: E402
from skphotoz.datasets import make_sdss_galaxies  # noqa: E402
from skphotoz.preprocessing import AperturePhotometry  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3])
    parser.add_argument(
        "--contaminated", action="store_true",
        help="stamps with neighbours and stars (neighbour_fraction=0.3, star_fraction=0.1)",
    )  # fmt: skip
    args = parser.parse_args()
    contamination = {"neighbour_fraction": 0.3, "star_fraction": 0.1} if args.contaminated else {}
    sample = make_sdss_galaxies(args.n, random_state=args.seed, **contamination)
    X = deredden(sample.images, sample.extinction).astype(np.float32)
    photometry = AperturePhotometry().fit(X)
    features = photometry.transform(X)
    names = photometry.get_feature_names_out()
    colour = np.array(["-" in name for name in names])
    spread = robust_spread(features)
    rng = np.random.default_rng(args.seed)
    print(f"{args.n} galaxies, seed {args.seed}{', contaminated' if args.contaminated else ''}")
    print(f"{'noise / spread':>15} {'colours only':>13} {'all 11 features':>16}")
    for level in args.levels:
        noisy = features + rng.normal(size=features.shape) * level * spread * colour
        sigma_colours, _ = knn_scores(noisy[:, colour], sample.redshift, args.seed)
        sigma_all, _ = knn_scores(noisy, sample.redshift, args.seed)
        print(f"{level:>15.2f} {sigma_colours:>13.4f} {sigma_all:>16.4f}")


if __name__ == "__main__":
    main()
