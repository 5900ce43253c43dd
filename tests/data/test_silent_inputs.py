"""Hostile inputs of the data layer: each gets a clear error, never a silent NaN, inf or
wrong result (extinction, magnitudes, colour composites, catalogues, cubes)."""

import io
import warnings
import zipfile

import numpy as np
import pytest

from skphotoz.data import (
    SFD98_EXTINCTION_COEFFICIENTS,
    deredden,
    extinction_from_ebv,
    mag_to_nanomaggies,
    nanomaggies_to_mag,
    read_catalog,
    read_cube,
    redden,
    to_rgb,
)
from tests.helpers import make_images

IMAGES = np.ones((2, 5, 4, 4), dtype=np.float32)


@pytest.fixture
def no_complex_warning():
    """Any ComplexWarning (a silent cast of complex input to real) fails the test."""
    with warnings.catch_warnings():
        # (numpy.exceptions from numpy 1.25; the oldest numpy allowed has it at the top)
        warnings.simplefilter("error", getattr(np, "exceptions", np).ComplexWarning)
        yield


# ----------------------------------------------------------------------------- extinction


@pytest.mark.parametrize("value", [-9999.0, -0.3, 60.5, 100.0, 1e300])
def test_deredden_refuses_extinction_out_of_range(value):
    # -9999 used to zero every pixel; 100 mag overflowed float32 to inf.
    with pytest.raises(
        ValueError, match=r"extinction must be within \[-0.25, 60\] mag; 5 value\(s\) are not"
    ):
        deredden(IMAGES, np.full(5, value))


def test_extinction_bounds_are_inclusive_and_consistent_with_ebv():
    np.testing.assert_allclose(deredden(IMAGES, np.full(5, -0.25))[0, 0, 0, 0], 10**-0.1)
    # The largest E(B-V) accepted gives an extinction that deredden accepts.
    ext = extinction_from_ebv(10.0, SFD98_EXTINCTION_COEFFICIENTS)
    out = deredden(IMAGES, ext)
    assert np.isfinite(out).all() and out.dtype == np.float32
    np.testing.assert_allclose(redden(out, 10.0, SFD98_EXTINCTION_COEFFICIENTS), IMAGES, rtol=1e-5)


@pytest.mark.parametrize("ebv", [-1000.0, -0.06, 10.5, 1e300, [0.1, -9999.0]])
def test_ebv_out_of_range_is_refused(ebv):
    match = r"ebv \(E\(B-V\)\) must be within \[-0.05, 10\] mag"
    with pytest.raises(ValueError, match=match):
        extinction_from_ebv(ebv)
    with pytest.raises(ValueError, match=match):
        redden(IMAGES, ebv)  # redden(images, -1000) gave inf


def test_ebv_coefficients_must_be_physical():
    with pytest.raises(ValueError, match=r"coefficients \(R_b = A_b / E\(B-V\)\) must be >= 0"):
        extinction_from_ebv(0.1, [-1.0, 3.3, 2.3, 1.7, 1.3])
    with pytest.raises(ValueError, match=r"extinction up to 1000 mag, beyond 60 mag"):
        extinction_from_ebv(1.0, [1000.0, 3.3, 2.3, 1.7, 1.3])


@pytest.mark.parametrize(
    ("images", "extinction", "dtype"),
    [
        (np.full((1, 5, 2, 2), 1e37, np.float32), np.full(5, 10.0), "float32"),
        (np.full((1, 5, 2, 2), 1e308), np.full(5, 1.0), "float64"),
    ],
)
def test_deredden_overflow_is_an_error(images, extinction, dtype):
    with pytest.raises(ValueError, match=rf"images hold fluxes too large for {dtype}: .* \(rows"):
        deredden(images, extinction)


def test_redden_overflow_is_an_error():
    images = np.full((1, 5, 2, 2), np.finfo(np.float64).max)
    with pytest.raises(ValueError, match=r"images hold fluxes too large for float64"):
        redden(images, -0.05)  # (a negative E(B-V) brightens)


def test_non_finite_pixels_raise_naming_the_rows_or_propagate():
    images = make_images(n=4, size=4)
    images[1, 0, 0, 0] = np.nan
    images[3, 2, 1, 1] = np.inf
    for apply, second in ((deredden, np.zeros(5)), (redden, 0.0)):
        with pytest.raises(
            ValueError,
            match=r"images hold 2 NaN or infinite pixel\(s\) in 2 of 4 galaxies \(rows \[1, 3\]\) "
            r"and nan_policy='raise'",
        ):
            apply(images, second)
        out = apply(images, second, nan_policy="propagate")
        assert np.isnan(out[1, 0, 0, 0]) and np.isinf(out[3, 2, 1, 1])
        np.testing.assert_array_equal(np.isfinite(out), np.isfinite(images))
    with pytest.raises(ValueError, match=r"'nan_policy' parameter of deredden must be a str"):
        deredden(images, np.zeros(5), nan_policy="omit")


def test_masked_pixels_are_missing_and_masked_extinction_is_refused():
    images = np.ma.masked_array(np.ones((2, 5, 2, 2)), mask=False)
    images[1, 2, 0, 0] = np.ma.masked
    with pytest.raises(ValueError, match=r"masked, NaN or infinite pixel\(s\) in 1 of 2 .*\[1\]"):
        deredden(images, np.zeros(5))
    out = deredden(images, np.zeros(5), nan_policy="propagate")
    assert np.isnan(out[1, 2, 0, 0]) and np.count_nonzero(np.isnan(out)) == 1
    extinction = np.ma.masked_array(np.full((2, 5), 0.1), mask=False)
    extinction[1, 0] = np.ma.masked  # a missing value (-9999 under the mask)
    extinction.data[1, 0] = -9999
    with pytest.raises(ValueError, match=r"extinction has 1 masked value\(s\) \(rows \[1\]\)"):
        deredden(np.ones((2, 5, 2, 2)), extinction)
    with pytest.raises(ValueError, match=r"ebv has 1 masked value\(s\)"):
        redden(np.ones((2, 5, 2, 2)), np.ma.masked_array([0.1, 0.2], mask=[False, True]))


@pytest.mark.usefixtures("no_complex_warning")
def test_complex_input_is_refused_by_the_extinction_functions():
    match = r"Complex data not supported: {} must hold real numbers"
    with pytest.raises(ValueError, match=match.format("images")):
        deredden(IMAGES + 1j, np.zeros(5))
    with pytest.raises(ValueError, match=match.format("extinction")):
        deredden(IMAGES, np.zeros(5) + 0j)
    with pytest.raises(ValueError, match=match.format("ebv")):
        redden(IMAGES, 0.1 + 0j)


@pytest.mark.parametrize("value", [None, "0.1", [True] * 5])
def test_non_numbers_are_type_errors(value):
    with pytest.raises(TypeError, match=r"extinction must be extinctions in magnitudes"):
        deredden(IMAGES, value)


# ----------------------------------------------------------------------------- magnitudes


@pytest.mark.parametrize("flux", [[np.nan, 1.0], [np.inf], -np.inf])
def test_non_finite_flux_has_no_magnitude(flux):
    # [nan, inf] gave [inf, -inf]: a missing value passed off as a (bright) measurement.
    with pytest.raises(ValueError, match=r"flux must be finite; got \d NaN or infinite"):
        nanomaggies_to_mag(flux)


def test_magnitude_conversions_refuse_non_numbers_and_masked_values():
    with pytest.raises(TypeError, match=r"flux must be fluxes in nanomaggies \(numbers\); got "):
        nanomaggies_to_mag(None)  # gave inf
    with pytest.raises(TypeError, match=r"mag must be AB magnitudes \(numbers\)"):
        mag_to_nanomaggies("20")
    with pytest.raises(ValueError, match=r"flux has 1 masked value\(s\): masked entries are"):
        nanomaggies_to_mag(np.ma.masked_array([1.0, -9999.0], mask=[False, True]))


@pytest.mark.parametrize("mag", [-9999.0, 99.0, -99.0, [20.0, 51.0], -31.0])
def test_magnitude_missing_value_codes_are_refused(mag):
    # -9999 gave inf (overflow); 99 a spurious flux of 1e-30.
    with pytest.raises(ValueError, match=r"mag \(AB magnitude\) must be within \[-30, 50\] mag"):
        mag_to_nanomaggies(mag)


def test_non_detections_round_trip_and_nan_is_refused():
    mags = nanomaggies_to_mag([0.0, -1.0, 10.0])
    np.testing.assert_allclose(mag_to_nanomaggies(mags), [0.0, 0.0, 10.0])
    with pytest.raises(ValueError, match=r"mag must be finite \(or inf: a non-detection\)"):
        mag_to_nanomaggies([20.0, np.nan])
    with pytest.raises(ValueError, match=r"mag must be finite"):
        mag_to_nanomaggies(-np.inf)
    assert mag_to_nanomaggies(-30.0) == pytest.approx(10**21)


# ----------------------------------------------------------------------------- to_rgb


def test_to_rgb_shows_non_finite_pixels_black_with_a_warning():
    images = np.abs(make_images(n=2, size=4)).astype(np.float64)
    expected = to_rgb(images)
    images[0, 3, 1, 1] = np.nan  # i: shown as red
    images[1, 1, 2, 3] = -np.inf  # g: shown as blue
    images[1, 0, 0, 0] = np.nan  # u: not shown
    with pytest.warns(UserWarning, match=r"2 pixel\(s\) that are NaN or infinite .* black"):
        rgb = to_rgb(images)
    assert np.isfinite(rgb).all() and (rgb >= 0).all() and (rgb <= 1).all()
    np.testing.assert_array_equal(rgb[0, 1, 1], 0.0)
    np.testing.assert_array_equal(rgb[1, 2, 3], 0.0)
    keep = np.ones(rgb.shape[:3], dtype=bool)
    keep[0, 1, 1] = keep[1, 2, 3] = False
    np.testing.assert_array_equal(rgb[keep], expected[keep])


def test_to_rgb_masked_pixels_are_black_without_a_warning():
    images = np.ma.masked_array(np.ones((5, 2, 2)), mask=False)
    images[3, 0, 0] = np.ma.masked
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rgb = to_rgb(images, minimum=-0.5)  # (a minimum below 0 would show 0 as grey)
    np.testing.assert_array_equal(rgb[0, 0], 0.0)
    assert (rgb[1, 1] > 0).all()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"minimum": -1e308}, r"'minimum' .* range \[-1e\+30, 1e\+30\]\. Got -1e\+308"),
        ({"stretch": 1e-300}, r"'stretch' .* range \[1e-30, 1e\+30\]\. Got 1e-300"),
        ({"Q": 1e300}, r"'Q' .* range \[1e-30, 1e\+30\]\. Got 1e\+300"),
        ({"scales": (1.0, 1e300, 1.0)}, r"'scales\[1\]' .* range \[1e-30, 1e\+30\]"),
    ],
)
def test_to_rgb_parameters_beyond_sensible_ranges_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        to_rgb(np.ones((5, 2, 2)), **kwargs)


def test_to_rgb_extreme_but_allowed_values_stay_in_range():
    pixels = np.array([0.0, 5e-324, 1e-300, 1.0, -1.0, 1e30, 1e300, np.finfo(float).max])
    images = np.broadcast_to(pixels[None, None, :, None], (1, 5, len(pixels), 1))
    for kwargs in (
        {"minimum": -1e30, "scales": (1e30,) * 3, "Q": 1e30, "stretch": 1e-30},
        {"minimum": 1e30, "scales": (1e-30,) * 3, "Q": 1e-30, "stretch": 1e30},
        {"Q": 1e-30, "stretch": 1.0},
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow, no invalid value
            rgb = to_rgb(images, **kwargs)
        assert np.isfinite(rgb).all() and (rgb >= 0).all() and (rgb <= 1).all(), kwargs


@pytest.mark.usefixtures("no_complex_warning")
def test_to_rgb_refuses_complex_images():
    with pytest.raises(ValueError, match=r"Complex data not supported: images must hold real"):
        to_rgb(np.ones((5, 2, 2)) + 1j)


# ----------------------------------------------------------------------------- read_catalog


@pytest.mark.parametrize(
    ("header", "value", "match"),
    [
        ("ebv", "1e300", r"column 'ebv' \(ebv\) must be <= 10; 1 row\(s\) are not, e.g. row 1 is"),
        ("ebv", "10.5", r"column 'ebv' \(ebv\) must be <= 10; .* row 1 is 10.5"),
        ("a_u", "75", r"column \['a_u', .*\] \(extinction\) must be <= 60; .* row 1 is 75"),
    ],
)
def test_catalogue_extinction_beyond_any_sight_line_is_refused(tmp_path, header, value, match):
    if header == "ebv":
        rows = ["z,ebv", "0.1,0.02", f"0.2,{value}", "0.3,"]
    else:
        rows = ["z,a_u,a_g,a_r,a_i,a_z", "0.1,1,1,1,1,1", f"0.2,{value},1,1,1,1"]
    path = tmp_path / "cat.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=match):
        read_catalog(path)


def test_catalogue_extinction_at_the_bounds_and_unknown_values_pass(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("z,ebv\n0.1,10\n0.2,-0.05\n0.3,\n")
    extinction = read_catalog(path)["extinction"]
    np.testing.assert_allclose(extinction[0], 10 * SFD98_EXTINCTION_COEFFICIENTS)
    assert np.isnan(extinction[2]).all()


@pytest.mark.parametrize(
    "coefficients",
    [
        [-5.155, -3.793, -2.751, -2.086, -1.479],
        [0.0, 3.8, 2.8, 2.1, 1.5],
        [7.0, 3.8, 2.8, 2.1, 1.5],
    ],
)
def test_catalogue_ebv_coefficients_must_be_physical(tmp_path, coefficients):
    path = tmp_path / "cat.csv"
    path.write_text("z,ebv\n0.1,0.05\n")
    with pytest.raises(ValueError, match=r"ebv_coefficients must hold 5 finite values .* \(0, 6\]"):
        read_catalog(path, ebv_coefficients=coefficients)


def test_catalogue_with_a_huge_field_names_the_file_and_line(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("# a comment\nz,ebv\n0.1,0.02\n0.2," + "1" * 140_000 + "\n")
    with pytest.raises(
        ValueError,
        match=r"catalogue '.*huge.csv' could not be read as delimited text at line 4: field "
        r"larger than field limit",
    ):
        read_catalog(path)


# ----------------------------------------------------------------------------- read_cube


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _zip_with(name, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


CUBE = np.ones((2, 6, 6, 5), dtype=np.float32)
GOOD_NPZ = _npz_bytes(cube=CUBE)


def _flipped(data, at):
    data = bytearray(data)
    data[at] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("trunc.npz", GOOD_NPZ[: len(GOOD_NPZ) // 2], r"is not a .npz cube: it is not a zip"),
        ("flip.npz", _flipped(GOOD_NPZ, len(GOOD_NPZ) // 2), r"could not be read as a .npz cube"),
        ("empty.npz", b"", r"is not a .npz cube: the file is empty"),
        ("empty.npy", b"", r"is not a numeric .npy cube: the file is empty"),
        ("text.npz", _zip_with("cube.txt", "hello"), r"member 'cube.txt' is not a .npy array"),
        ("random.npz", bytes(range(7, 256)) * 4, r"is not a .npz cube: it is not a zip"),
        ("random.npy", bytes(range(7, 256)) * 4, r"does not start with the .npy signature"),
        ("zip.npy", GOOD_NPZ, r"is not a numeric .npy cube: it is a zip archive"),
        ("object.npz", _npz_bytes(cube=np.array([None, 1])), r"member 'cube' holds arrays of Py"),
    ],
)
def test_malformed_cube_files_are_value_errors_naming_the_file(tmp_path, name, content, match):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=match) as error:
        read_cube(tmp_path / name)
    message = str(error.value)
    assert repr(str(tmp_path / name)) in message
    assert "allow_pickle" not in message and "pickle.load" not in message  # never advised


def test_object_and_truncated_npy_cubes(tmp_path):
    np.save(tmp_path / "object.npy", np.array([None, 1], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"object.npy' is not a numeric .npy cube: it holds arr"):
        read_cube(tmp_path / "object.npy")
    np.save(tmp_path / "full.npy", CUBE)
    data = (tmp_path / "full.npy").read_bytes()
    (tmp_path / "short.npy").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"short.npy' .* shorter than its header says"):
        read_cube(tmp_path / "short.npy")
    (tmp_path / "header.npy").write_bytes(data[:20])
    with pytest.raises(ValueError, match=r"header.npy' is not a numeric .npy cube"):
        read_cube(tmp_path / "header.npy")


@pytest.mark.usefixtures("no_complex_warning")
@pytest.mark.parametrize("name", ["c.npy", "c.npz"])
def test_complex_cube_is_refused(tmp_path, name):
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, CUBE + 1j)
    else:
        np.savez(path, cube=CUBE + 1j)
    with pytest.raises(ValueError, match=r"Complex data not supported: the cube in .*complex"):
        read_cube(path)
