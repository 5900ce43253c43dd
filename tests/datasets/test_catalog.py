import warnings

import numpy as np

from skphotoz.datasets import load_sdss_catalog


def test_catalog_shapes_and_redshifts():
    cat = load_sdss_catalog()
    n = 10000
    for key in ("ra", "dec", "redshift", "ebv"):
        assert cat[key].shape == (n,)
    for key in ("modelflux", "modelflux_ivar", "petroflux", "petroflux_ivar", "extinction"):
        assert cat[key].shape == (n, 5)
    assert cat.band_names == ("u", "g", "r", "i", "z")
    assert abs(np.median(cat.redshift) - 0.099) < 0.001
    assert "kcorrect" in cat.DESCR


def test_catalog_physical_values():
    cat = load_sdss_catalog()
    # Extinction follows the SFD98 coefficients of the archive: A_b / A_r = R_b / R_r.
    ratio = cat.extinction[:, 0] / cat.extinction[:, 2]
    np.testing.assert_allclose(np.median(ratio), 5.155 / 2.751, rtol=1e-2)
    # Every band's extinction is R_b E(B-V) of one E(B-V) per galaxy, up to the catalogue's
    # rounding (ebv is derived from the r band alone).
    sfd98 = np.array([5.155, 3.793, 2.751, 2.086, 1.479])
    np.testing.assert_allclose(cat.extinction, cat.ebv[:, None] * sfd98, rtol=0, atol=2e-4)
    assert np.all(cat.ebv > 0)
    # Main Galaxy Sample: dereddened Petrosian r mostly brighter than 17.77.
    petro_r = 22.5 - 2.5 * np.log10(cat.petroflux[:, 2]) - cat.extinction[:, 2]
    assert np.mean(petro_r < 17.8) > 0.97
    assert np.all(cat.modelflux_ivar >= 0)


def test_catalog_returns_copies():
    cat = load_sdss_catalog()
    cat.redshift[:] = -1
    assert np.all(load_sdss_catalog().redshift > 0)


def test_shipped_tables_are_read_without_leaving_a_file_open():
    from skphotoz.datasets._catalog import _read_csv_gz

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # was: ResourceWarning, unclosed file (CLI simulate)
        table = _read_csv_gz("sdss_template_fluxes.csv.gz")
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []
    assert len(table) > 1 and all(np.isfinite(v).all() for v in table.values())
