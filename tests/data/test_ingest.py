import sys

import h5py
import numpy as np
import pytest
from sklearn.utils import Bunch

from skphotoz.data import (
    EXTINCTION_COEFFICIENTS,
    SFD98_EXTINCTION_COEFFICIENTS,
    FITSCutouts,
    ingest,
    open_archive,
    read_catalog,
    read_cube,
    read_fits_cutouts,
    save_npz_cube,
)
from tests.helpers import make_images

BIG_OBJID = 1237648720693755918  # more digits than a float64 holds


def _write_csv(path, text):
    path.write_text(text)
    return path


# ----------------------------------------------------------------------------- read_catalog


def test_csv_catalogue_recognises_common_names(tmp_path):
    path = _write_csv(
        tmp_path / "cat.csv",
        "# from CasJobs\n"
        "objID,specObjID,RA,Dec,Z,zErr,E(B-V),petroMag_r\n"
        f"{BIG_OBJID},7,10.5,-1.25,0.1,1e-4,0.02,17.1\n"
        "2,,11.0,2.0,,nan,0.05,18.0\n",
    )
    cat = read_catalog(path)
    assert set(cat) == {"objid", "specobjid", "ra", "dec", "redshift", "redshift_err", "extinction"}
    assert cat["objid"].dtype == np.int64 and cat["objid"][0] == BIG_OBJID
    np.testing.assert_array_equal(cat["specobjid"], [7, -1])
    np.testing.assert_array_equal(cat["ra"], [10.5, 11.0])
    np.testing.assert_array_equal(cat["redshift"], [0.1, np.nan])
    assert np.isnan(cat["redshift_err"][1])
    # E(B-V) to per-band magnitudes with the SFD98 coefficients of SDSS's extinction columns.
    np.testing.assert_allclose(
        cat["extinction"], np.outer([0.02, 0.05], SFD98_EXTINCTION_COEFFICIENTS)
    )
    sf11 = read_catalog(path, ebv_coefficients="sf11")["extinction"]
    np.testing.assert_allclose(sf11[1], 0.05 * EXTINCTION_COEFFICIENTS)


def test_csv_per_band_extinction_semicolons_and_overrides(tmp_path):
    path = _write_csv(
        tmp_path / "cat.txt",
        "my_z;A_u;A_g;A_r;A_i;A_z;ebv;extra\n0.3;0.5;0.4;0.3;0.2;0.1;9;x\n",
    )
    cat = read_catalog(path, columns={"redshift": "my_z"})
    np.testing.assert_array_equal(cat["redshift"], [0.3])
    # The survey's per-band columns win over E(B-V).
    np.testing.assert_array_equal(cat["extinction"], [[0.5, 0.4, 0.3, 0.2, 0.1]])
    assert set(cat) == {"redshift", "extinction"}
    # Skipping a quantity; naming E(B-V) explicitly.
    assert "extinction" not in read_catalog(path, columns={"extinction": None})
    explicit = read_catalog(path, columns={"ebv": "ebv", "extinction": None})
    np.testing.assert_allclose(explicit["extinction"][0], 9 * SFD98_EXTINCTION_COEFFICIENTS)


@pytest.mark.parametrize(
    ("text", "kwargs", "error", "match"),
    [
        ("z,u,g,r,i\n0.1,1,2,3,4\n", {}, ValueError, r"'z' could be the redshift or the z-band"),
        ("z,redshift\n0.1,0.2\n", {}, ValueError, r"several columns that could be redshift: \["),
        ("z\n0.1\n", {"columns": {"zz": "z"}}, ValueError, r"unknown keys \['zz'\]"),
        ("z\n0.1\n", {"columns": {"redshift": "zbest"}}, ValueError, r"names \['zbest'\], not in"),
        ("z\n0.1\nabc\n", {}, ValueError, r"'z' \(redshift\) must hold numbers; row 1 is 'abc'"),
        ("objid\n1.237e18\n", {}, ValueError, r"integer identifiers; row 0 is '1.237e18'"),
        ("z,ra\n0.1,1\n0.2\n", {}, ValueError, r"data row 2 has 1 fields but the header has 2"),
        ("a_u,a_g\n1,2\n", {}, ValueError, r"lacks \['a_r', 'a_i', 'a_z'\]"),
        ("", {}, ValueError, r"is empty: expected a header row"),
        ("z\n0.1\n", {"columns": ["z"]}, ValueError, r"'columns' parameter of read_catalog"),
        ("ebv\n0.1\n", {"ebv_coefficients": "sfd"}, ValueError, r"ebv_coefficients must be one"),
        ("ebv\n0.1\n", {"ebv_coefficients": [1, 2]}, ValueError, r"5 finite values"),
        ("z\n0.1\n", {"columns": {"objid": 3}}, TypeError, r"columns\['objid'\] must be a"),
        (
            "ebv,a\n0.1,1\n",
            {"columns": {"extinction": ["a"]}},
            ValueError,
            r"one vector column or 5 per-band columns",
        ),
    ],
)
def test_catalogue_errors(tmp_path, text, kwargs, error, match):
    path = _write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(error, match=match):
        read_catalog(path, **kwargs)


def test_catalogue_z_next_to_magnitudes_can_be_named(tmp_path):
    path = _write_csv(tmp_path / "mags.csv", "z,u,g,r,i\n0.1,1,2,3,4\n")
    np.testing.assert_array_equal(read_catalog(path, {"redshift": "z"})["redshift"], [0.1])
    assert read_catalog(path, {"redshift": None}) == {}
    with pytest.raises(FileNotFoundError, match="no catalogue file at"):
        read_catalog(tmp_path / "missing.csv")


def test_fits_catalogue(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    ext = np.arange(10, dtype=np.float32).reshape(2, 5) / 10
    table = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="OBJID", format="K", array=np.array([BIG_OBJID, 3])),
            fits.Column(name="Z_SPEC", format="E", array=np.array([0.1, 0.2])),
            fits.Column(name="E_BV", format="5E", array=ext),
            fits.Column(name="FILENAME", format="10A", array=np.array(["a.fits", "b.fits"])),
            fits.Column(name="FLAG", format="J", array=np.array([0, 1])),
        ]
    )
    path = tmp_path / "cat.fits"
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    cat = read_catalog(path)
    assert set(cat) == {"objid", "redshift", "extinction", "filename"}
    assert cat["objid"][0] == BIG_OBJID
    np.testing.assert_allclose(cat["redshift"], [0.1, 0.2], rtol=1e-6)
    # A 5-vector e_bv is per-band extinction, as in the published archive.
    np.testing.assert_allclose(cat["extinction"], ext, rtol=1e-6)
    np.testing.assert_array_equal(cat["filename"], ["a.fits", "b.fits"])
    # Scalar E(B-V) in a FITS table.
    scalar = fits.BinTableHDU.from_columns(
        [fits.Column(name="EBV", format="D", array=np.array([0.1]))]
    )
    fits.HDUList([fits.PrimaryHDU(), scalar]).writeto(tmp_path / "ebv.fit")
    np.testing.assert_allclose(
        read_catalog(tmp_path / "ebv.fit")["extinction"][0], 0.1 * SFD98_EXTINCTION_COEFFICIENTS
    )


def test_fits_needs_astropy_with_a_clear_message(tmp_path, monkeypatch):
    (tmp_path / "a.fits").write_bytes(b"SIMPLE  =                    T")
    monkeypatch.setitem(sys.modules, "astropy.io", None)
    with pytest.raises(ImportError, match=r"pip install skphotoz\[fits\]"):
        read_catalog(tmp_path / "a.fits")
    with pytest.raises(ImportError, match=r"pip install skphotoz\[fits\]"):
        read_fits_cutouts(tmp_path)


def test_catalogue_without_a_recognised_column_is_refused(tmp_path):
    path = tmp_path / "noheader.csv"
    path.write_text("100,150.0,2.0,0.05\n101,150.1,2.0,0.08\n")  # the header row is missing
    with pytest.raises(ValueError, match=r"none of the recognised columns .* header row is "):
        read_catalog(path)
    assert read_catalog(path, {"redshift": None}) == {}  # naming nothing stays allowed


def test_catalogue_not_in_utf8_names_the_encoding(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_text("objid,z,name\n1,0.1,Ångström\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"the byte b'\\xc5', which is not UTF-8"):
        read_catalog(path)


@pytest.mark.parametrize(
    "column, value, match",
    [
        ("z", "-9999", r"column 'z' \(redshift\) must be > -1 .*; 1 row\(s\) are not, e.g. row 1"),
        ("ebv", "-9999", r"column 'ebv' \(ebv\) must be >= -0.05; .* row 1 is -9999: a missing"),
        ("extinction_u", "-99", r"\(extinction\) must be >= -0.25; .* row 1 is -99"),
    ],
)
def test_catalogue_missing_value_codes_are_refused(tmp_path, column, value, match):
    header = ["objid", "z", "ebv"] if column != "extinction_u" else ["objid", "z"]
    if column == "extinction_u":
        header += [f"extinction_{b}" for b in "ugriz"]
    rows = [[str(i + 1)] + ["0.1"] + ["0.02"] * (len(header) - 2) for i in range(3)]
    rows[1][header.index(column)] = value  # SDSS writes -9999 where a value is missing
    path = tmp_path / "cat.csv"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    with pytest.raises(ValueError, match=match):
        read_catalog(path)
    rows[1][header.index(column)] = ""  # an empty cell is the way to say "unknown"
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    table = read_catalog(path)
    assert np.isnan(table["redshift" if column == "z" else "extinction"][1]).any()


def test_catalogue_with_a_repeated_column_name_is_refused(tmp_path):
    path = tmp_path / "cat.csv"
    path.write_text("objid,z,z,ra,\n1,0.1,0.2,3,\n")  # (an empty name is not a repeat)
    with pytest.raises(ValueError, match=r"has several columns named \['z'\]; rename them"):
        read_catalog(path)  # was: "say which with columns={'redshift': 'z'}", which cannot


# ----------------------------------------------------------------------------- read_cube


def test_npy_channels_last_cube_is_a_memory_mapped_view(tmp_path):
    images = make_images(size=6)
    path = tmp_path / "cube.npy"
    np.save(path, images.transpose(0, 2, 3, 1))
    out = read_cube(path)
    assert out.shape == images.shape
    assert isinstance(out, np.memmap)  # a view of the file, not a copy in memory
    np.testing.assert_array_equal(out[2:4], images[2:4])
    np.testing.assert_array_equal(read_cube(path, layout="channels_last"), images)


def test_channels_first_and_npz_cubes(tmp_path):
    images = make_images(size=6)
    np.save(tmp_path / "first.npy", images)
    np.testing.assert_array_equal(read_cube(tmp_path / "first.npy"), images)
    np.savez(tmp_path / "single.npz", anything=images)
    np.testing.assert_array_equal(read_cube(tmp_path / "single.npz"), images)
    save_npz_cube(tmp_path / "pasquet.npz", images, np.zeros(6))
    np.testing.assert_array_equal(read_cube(tmp_path / "pasquet.npz"), images)


@pytest.mark.parametrize(
    ("shape", "kwargs", "match"),
    [
        ((2, 5, 5, 5), {}, r"cannot tell the band axis .* both of"),
        ((2, 4, 6, 5), {}, r"neither of .* pass layout='channels_last'"),
        ((2, 6, 6, 5), {"layout": "channels_first"}, r"read as channels_first gives stamps of 6x5"),
        ((2, 6, 6), {}, r"must be 4-D, \(n, H, W, bands\) or \(n, bands, H, W\); got shape"),
        ((0, 6, 6, 5), {}, r"is empty: shape \(0, 6, 6, 5\)"),
        ((2, 6, 6, 5), {"layout": "nhwc"}, r"'layout' parameter of read_cube must be a str among"),
    ],
)
def test_cube_errors(tmp_path, shape, kwargs, match):
    np.save(tmp_path / "c.npy", np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=match):
        read_cube(tmp_path / "c.npy", **kwargs)


def test_cube_file_errors(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 5, 4, 4)), b=np.zeros(2))
    with pytest.raises(ValueError, match=r"holds \['a', 'b'\]; expected the key 'cube'"):
        read_cube(tmp_path / "two.npz")
    np.save(tmp_path / "s.npy", np.full((2, 4, 4, 5), "x"))
    with pytest.raises(TypeError, match=r"must hold real-valued fluxes; got dtype <U1"):
        read_cube(tmp_path / "s.npy")
    with pytest.raises(FileNotFoundError, match="no cube file at"):
        read_cube(tmp_path / "none.npy")
    (tmp_path / "c.h5").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"a cube must be a .npy or .npz file"):
        read_cube(tmp_path / "c.h5")


# ----------------------------------------------------------------------------- FITS cutouts


def _write_cutout(fits, path, stamp, form="cube", shuffle=False):
    if form == "cube":
        fits.PrimaryHDU(stamp).writeto(path)
        return
    order = [3, 0, 4, 1, 2] if shuffle else range(5)
    hdus = [fits.PrimaryHDU()]
    for b in order:
        hdu = fits.ImageHDU(stamp[b])
        if shuffle:
            hdu.header["FILTER"] = "ugriz"[b]
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)


def test_fits_cutouts_both_forms_sorted_by_name(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    images = make_images(n=3, size=6)
    _write_cutout(fits, tmp_path / "b.fits", images[1], "bands", shuffle=True)
    _write_cutout(fits, tmp_path / "a.fits", images[0])
    _write_cutout(fits, tmp_path / "c.fit", images[2], "bands")
    (tmp_path / "notes.txt").write_text("not a cutout")
    X = read_fits_cutouts(tmp_path)
    assert isinstance(X, FITSCutouts) and X.shape == (3, 5, 6, 6) and X.dtype == np.float32
    assert [p.name for p in X.paths] == ["a.fits", "b.fits", "c.fit"]
    np.testing.assert_array_equal(np.asarray(X), images)  # FILTER keywords put b in ugriz order
    np.testing.assert_array_equal(X[[2, 0]], images[[2, 0]])
    np.testing.assert_array_equal(X[-1], images[2])
    # Chosen and ordered by name, with or without the suffix.
    Y = read_fits_cutouts(tmp_path, filenames=["c", "a.fits"])
    np.testing.assert_array_equal(Y[:], images[[2, 0]])


def test_fits_cutouts_errors(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    _write_cutout(fits, tmp_path / "a.fits", np.zeros((5, 6, 6), np.float32))
    _write_cutout(fits, tmp_path / "b.fits", np.zeros((5, 8, 8), np.float32))
    with pytest.raises(
        ValueError, match=r"one pixel grid: '.*b.fits' has shape \(5, 8, 8\) .* '.*a.fits' has"
    ):
        read_fits_cutouts(tmp_path)
    with pytest.raises(ValueError, match=r"1 of 2 cutouts named by the catalogue are not in"):
        read_fits_cutouts(tmp_path, filenames=["a", "zzz"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match=r"no FITS cutouts in"):
        read_fits_cutouts(empty)
    with pytest.raises(NotADirectoryError, match=r"no folder of FITS cutouts"):
        read_fits_cutouts(tmp_path / "a.fits")
    odd = tmp_path / "odd"
    odd.mkdir()
    fits.HDUList([fits.PrimaryHDU(np.zeros((2, 5, 4, 4)))]).writeto(odd / "x.fits")
    with pytest.raises(ValueError, match=r"not a cutout .* found images of shapes \[\(2, 5, 4, 4"):
        read_fits_cutouts(odd)
    rect = tmp_path / "rect"
    rect.mkdir()
    _write_cutout(fits, rect / "r.fits", np.zeros((5, 6, 7), np.float32))
    with pytest.raises(ValueError, match=r"must be square; .* is 6x7 pixels"):
        read_fits_cutouts(rect)
    ragged = tmp_path / "ragged"
    ragged.mkdir()
    hdus = [fits.PrimaryHDU(np.zeros((6, 6)))] + [fits.ImageHDU(np.zeros((5, 5)))] * 4
    fits.HDUList(hdus).writeto(ragged / "x.fits")
    with pytest.raises(ValueError, match=r"band images of .* differ in shape"):
        read_fits_cutouts(ragged)


# ----------------------------------------------------------------------------- ingest


def test_cube_and_csv_round_trip(tmp_path):
    images = make_images(n=7, size=6)
    images[2, 1, 3, 3] = np.nan
    images[5, 0, 0, 0] = np.inf
    np.save(tmp_path / "cube.npy", images.transpose(0, 2, 3, 1))
    rows = "\n".join(f"{BIG_OBJID + i},{0.05 * i},{0.01 * i},{i}.5,-{i}" for i in range(7))
    _write_csv(tmp_path / "cat.csv", "objid,z,ebv,ra,dec\n" + rows + "\n")
    summary = ingest(
        tmp_path / "cube.npy", tmp_path / "a.h5", catalog=tmp_path / "cat.csv", chunk_size=3
    )
    assert summary.n_samples == 7 and summary.n_bands == 5 and summary.stamp_size == 6
    assert summary.columns == ["redshift", "extinction", "ra", "dec", "objid"]
    assert summary.layout == "channels_last" and summary.matched_by == "order"
    assert summary.n_nonfinite == 2
    np.testing.assert_array_equal(summary.nonfinite_rows, [2, 5])
    assert summary.missing == dict.fromkeys(summary.columns, 0)
    archive = open_archive(summary.path)
    np.testing.assert_array_equal(np.asarray(archive.images), images)  # NaN written as it is
    np.testing.assert_allclose(archive.redshift, 0.05 * np.arange(7), rtol=1e-6)
    np.testing.assert_array_equal(archive.objid, BIG_OBJID + np.arange(7))
    np.testing.assert_allclose(
        archive.extinction, np.outer(0.01 * np.arange(7), SFD98_EXTINCTION_COEFFICIENTS), rtol=1e-6
    )
    np.testing.assert_array_equal(archive.dec, -np.arange(7))
    assert np.isnan(archive.redshift_err).all()
    with h5py.File(summary.path) as f:
        assert "specz_redshift" in f and "ObjID" in f  # the published keys


def test_ingest_refuses_overwriting_and_mismatched_catalogues(tmp_path):
    images = make_images(n=4, size=6)
    np.save(tmp_path / "cube.npy", images)
    out = tmp_path / "a.h5"
    ingest(tmp_path / "cube.npy", out)
    with pytest.raises(FileExistsError, match=r"exists; pass overwrite=True"):
        ingest(tmp_path / "cube.npy", out)
    _write_csv(tmp_path / "short.csv", "z\n0.1\n0.2\n0.3\n")
    with pytest.raises(ValueError, match=r"catalogue has 3 rows \('redshift'\) but there are 4"):
        ingest(tmp_path / "cube.npy", out, catalog=tmp_path / "short.csv", overwrite=True)
    # The failed run left the earlier archive as it was, and no partial file.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "cube.npy", "short.csv"]
    np.testing.assert_array_equal(open_archive(out).images[:], images)
    summary = ingest(tmp_path / "cube.npy", out, catalog={"redshift": np.ones(4)}, overwrite=True)
    assert summary.columns == ["redshift"] and summary.n_nonfinite == 0
    with pytest.raises(ValueError, match=r"is the images file itself"):
        ingest(tmp_path / "cube.npy", tmp_path / "cube.npy", overwrite=True)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            {"chunk_size": 0},
            ValueError,
            r"'chunk_size' parameter of ingest must be an int in the range \[1, 65536\]",
        ),
        ({"chunk_size": 70000}, ValueError, r"'chunk_size' .* Got 70000 instead"),
        ({"chunk_size": True}, ValueError, r"'chunk_size' .* Got True instead"),
        ({"overwrite": "no"}, ValueError, r"'overwrite' parameter of ingest"),
        ({"layout": "NHWC"}, ValueError, r"'layout' parameter of ingest must be a str among"),
        ({"catalog": 3}, ValueError, r"'catalog' parameter of ingest"),
        ({"catalog": {"z": [1]}}, ValueError, r"catalog has unknown keys \['z'\]"),
        ({"catalog": {"redshift": 0.1}}, ValueError, r"catalog\['redshift'\] must have one row"),
        ({"catalog": {"objid": np.ones(4)}}, TypeError, r"objid must be integer identifiers"),
        ({"catalog": {"extinction": np.ones((4, 3))}}, ValueError, r"extinction has \(3,\) values"),
        ({"columns": {"redshift": "z"}}, ValueError, r"columns names catalogue columns, but no"),
    ],
)
def test_ingest_argument_errors(tmp_path, kwargs, error, match):
    np.save(tmp_path / "cube.npy", make_images(n=4, size=6))
    with pytest.raises(error, match=match):
        ingest(tmp_path / "cube.npy", tmp_path / "a.h5", **kwargs)
    assert not (tmp_path / "a.h5").exists()


def test_ingest_path_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"images '.*nope.npy' does not exist"):
        ingest(tmp_path / "nope.npy", tmp_path / "a.h5")
    np.save(tmp_path / "cube.npy", make_images(n=2, size=6))
    with pytest.raises(ValueError, match=r"is a folder; give the archive's file name"):
        ingest(tmp_path / "cube.npy", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"the folder of output .* does not exist"):
        ingest(tmp_path / "cube.npy", tmp_path / "no" / "a.h5")


def test_ingest_npz_cube_with_its_labels_and_arrays(tmp_path):
    images = make_images(n=3, size=6)
    save_npz_cube(tmp_path / "p.npz", images, [0.1, 0.2, 0.3], ebv=np.array([0.0, 0.1, 0.2]))
    summary = ingest(tmp_path / "p.npz", tmp_path / "p.h5")
    assert summary.columns == ["redshift", "extinction"]
    archive = open_archive(summary.path, deredden=True)
    np.testing.assert_allclose(
        archive.extinction[2], 0.2 * SFD98_EXTINCTION_COEFFICIENTS, rtol=1e-6
    )
    summary = ingest(images.transpose(0, 2, 3, 1), tmp_path / "arr.h5", chunk_size=1)
    assert summary.layout == "channels_last" and summary.columns == []
    np.testing.assert_array_equal(open_archive(summary.path).images[:], images)


def test_ingest_fits_folder_matched_by_filename_objid_or_order(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    images = make_images(n=3, size=6)
    folder = tmp_path / "cutouts"
    folder.mkdir()
    ids = [BIG_OBJID + 2, BIG_OBJID, BIG_OBJID + 1]
    for objid, stamp in zip(ids, images, strict=True):
        _write_cutout(fits, folder / f"{objid}.fits", stamp)
    # By objid: catalogue order, whatever the file order.
    _write_csv(
        tmp_path / "cat.csv", "objid,z\n" + "".join(f"{o},{i / 10}\n" for i, o in enumerate(ids))
    )
    summary = ingest(folder, tmp_path / "o.h5", catalog=tmp_path / "cat.csv")
    assert summary.matched_by == "objid" and summary.layout == "fits"
    archive = open_archive(summary.path)
    np.testing.assert_array_equal(archive.images[:], images)
    np.testing.assert_array_equal(archive.objid, ids)
    # By a filename column.
    _write_csv(tmp_path / "f.csv", f"file,z\n{ids[1]}.fits,0.5\n{ids[0]}.fits,0.6\n")
    summary = ingest(folder, tmp_path / "f.h5", catalog=tmp_path / "f.csv")
    assert summary.matched_by == "filename" and summary.n_samples == 2
    np.testing.assert_array_equal(open_archive(summary.path).images[:], images[[1, 0]])
    # No identifiers: files sorted by name, one row each.
    summary = ingest(folder, tmp_path / "n.h5", catalog={"redshift": [0.1, 0.2, 0.3]})
    assert summary.matched_by == "order"
    np.testing.assert_array_equal(open_archive(summary.path).images[:], images[[1, 2, 0]])
    with pytest.raises(ValueError, match=r"catalogue has 2 rows .* but there are 3 images"):
        ingest(folder, tmp_path / "x.h5", catalog={"redshift": [0.1, 0.2]})


def test_unreadable_files_get_errors_in_words(tmp_path):
    (tmp_path / "bin.csv").write_bytes(bytes(range(256)))
    with pytest.raises(ValueError, match=r"is neither UTF-8 text \(CSV\) nor a FITS table"):
        read_catalog(tmp_path / "bin.csv")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ValueError, match=r"'.*junk.npy' is not a numeric .npy cube"):
        read_cube(tmp_path / "junk.npy")
    (tmp_path / "a.h5").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"a cube must be a .npy or .npz file; .*already an archive"
    ):
        ingest(tmp_path / "a.h5", tmp_path / "b.h5")
    with pytest.raises(
        TypeError, match=r"takes the archive's path \(str or path-like\); got Bunch"
    ):
        open_archive(Bunch(images=np.zeros((1, 5, 4, 4))))


def test_broken_fits_files_are_named(tmp_path):
    pytest.importorskip("astropy.io.fits")
    (tmp_path / "x.fits").write_bytes(b"SIMPLE  = garbage")
    with pytest.raises(ValueError, match=r"could not read the FITS file '.*x.fits'"):
        read_fits_cutouts(tmp_path)
    with pytest.raises(ValueError, match=r"could not read the catalogue '.*x.fits'"):
        read_catalog(tmp_path / "x.fits")
