"""Archives that detect damage: Fletcher-32 checksums on every dataset skphotoz writes, damaged
rows named on read and by `skphotoz verify`, never returned as numbers."""

import h5py
import numpy as np
import pytest

from skphotoz import MoCoEmbedder
from skphotoz.cli import main
from skphotoz.data import open_archive, verify_archive, write_archive
from skphotoz.data._checksum import row_ranges
from skphotoz.datasets import write_sdss_galaxies
from skphotoz.exceptions import DamagedDataError
from tests.helpers import TINY


def _overwrite_chunk(path, key, chunk_index=0):
    """Overwrite 16 bytes in the middle of one stored chunk of ``key`` (as a bad disk would)."""
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(chunk_index)
    with open(path, "r+b") as handle:
        handle.seek(info.byte_offset + info.size // 2)
        handle.write(b"\xff" * 16)
    return info.chunk_offset[0]


@pytest.fixture
def archive(tmp_path):
    path = tmp_path / "a.h5"
    write_sdss_galaxies(path, 24, random_state=0, stamp_size=16)
    return path


def test_every_dataset_written_carries_checksums(archive, tmp_path):
    with h5py.File(archive, "r") as f:
        assert all(f[key].fletcher32 for key in f), {key: f[key].fletcher32 for key in f}
    write_archive(tmp_path / "b.h5", np.ones((3, 5, 8, 8), np.float32), [0.1, 0.2, 0.3])
    with h5py.File(tmp_path / "b.h5", "r") as f:
        assert all(f[key].fletcher32 for key in f)
    report = verify_archive(archive)
    assert report.damaged == {} and all(report.checksummed.values())


def test_overwritten_image_bytes_are_refused_with_their_rows(archive, tmp_path, capsys):
    clean = open_archive(archive).images[:]
    # One galaxy per chunk: overwriting two chunks damages two rows.
    assert [_overwrite_chunk(archive, "images", i) for i in (8, 9)] == [8, 9]
    images = open_archive(archive).images
    np.testing.assert_array_equal(images[:8], clean[:8])  # other chunks still read
    np.testing.assert_array_equal(images[10:], clean[10:])
    with pytest.raises(DamagedDataError, match=r"row 9 is damaged: its Fletcher-32"):
        images[9]
    with pytest.raises(DamagedDataError, match=r"row 8 is damaged"):
        images[[2, 8, 20]]
    for read in (lambda: images[4:12], lambda: np.asarray(images)):
        with pytest.raises(DamagedDataError, match=r"rows 8-9 are damaged: their Fletcher-32"):
            read()
    # Verification names them; the command exits with status 1 and one line.
    assert verify_archive(archive).damaged["images"].tolist() == [8, 9]
    assert main(["verify", str(archive), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "images: rows 8-9" in err and len(err.strip().splitlines()) == 1
    # Training and inference stop on it too, naming the rows.
    with pytest.raises(DamagedDataError, match="rows 8-9"):
        MoCoEmbedder(**TINY).fit(images)
    embedder = MoCoEmbedder(**TINY).fit(clean)
    with pytest.raises(DamagedDataError, match="rows 8-9"):
        embedder.transform(images)
    np.testing.assert_array_equal(embedder.transform(images[:8]), embedder.transform(clean[:8]))
    assert main(["pretrain", str(archive), "--output", str(tmp_path / "m.skops")]) == 1
    assert "rows 8-9 are damaged" in capsys.readouterr().err
    assert not (tmp_path / "m.skops").exists()


def test_overwritten_catalogue_bytes_are_refused(archive):
    _overwrite_chunk(archive, "specz_redshift", 0)
    with pytest.raises(DamagedDataError, match=r"column 'redshift'.*rows 0-23 are damaged"):
        open_archive(archive)
    assert verify_archive(archive).damaged["specz_redshift"].tolist() == list(range(24))


def test_archives_without_checksums_still_open_and_verify_says_so(tmp_path, capsys):
    path = tmp_path / "old.h5"
    images = np.ones((4, 5, 8, 8), np.float32)
    images[2, 0, 3, 3] = np.nan
    with h5py.File(path, "w") as f:  # as skphotoz wrote archives before the checksums
        f["images"] = images
        f["specz_redshift"] = np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    bunch = open_archive(path)
    assert bunch.images.shape == (4, 5, 8, 8)
    report = verify_archive(path)
    assert report.damaged == {} and not any(report.checksummed.values())
    assert report.nonfinite_rows.tolist() == [2]
    assert main(["verify", str(path)]) == 0
    out = capsys.readouterr().out
    assert "carry no checksums" in out and "row 2 of images holds NaN" in out


def test_outputs_of_the_commands_are_checksummed(tmp_path):
    archive = tmp_path / "sim.h5"
    assert main(["simulate", str(archive), "--n", "16", "--stamp-size", "16", "-q"]) == 0
    common = ["--epochs", "1", "--batch-size", "8", "--device", "cpu", "--crop-size", "8"]
    model = str(tmp_path / "e.skops")
    assert main(["pretrain", str(archive), "--output", model, *common, "-q"]) == 0
    assert main(["embed", model, str(archive), "--output", str(tmp_path / "e.h5"), "-q"]) == 0
    with h5py.File(tmp_path / "e.h5", "r") as f:
        assert f["embeddings"].fletcher32 and f["objid"].fletcher32
    _overwrite_chunk(tmp_path / "e.h5", "embeddings", 0)
    argv = ["search", str(archive), "0", "--embeddings", str(tmp_path / "e.h5"), "-q"]
    assert main(argv) == 1


def test_row_ranges_text():
    assert row_ranges(np.array([3, 4, 5, 9])) == "3-5, 9"
    assert row_ranges(np.array([], dtype=int)) == "none"
    many = np.arange(0, 40, 2)
    assert row_ranges(many).endswith("and 14 more rows")


def test_random_damage_is_never_returned_as_numbers(tmp_path):
    """Bytes overwritten anywhere (chunks, chunk index, object headers, links): opening and
    reading either returns exactly what was written or raises DamagedDataError (a ValueError)
    naming the file; never other numbers, a missing column, or a raw h5py error."""
    base = tmp_path / "base.h5"
    write_sdss_galaxies(base, 24, random_state=0, stamp_size=16)
    clean = open_archive(base)
    images = np.asarray(clean.images)
    clean.images.close()
    data = base.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = {"same": 0, "refused": 0}
    for trial in range(150):
        path = tmp_path / f"c{trial}.h5"  # a new file each time: HDF5 shares open files
        damaged = bytearray(data)
        # Half the hits in the first 20 kB, where the metadata lies.
        offset = int(rng.integers(0, min(len(data), 20_000) if trial % 2 else len(data)))
        damaged[offset : offset + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
        path.write_bytes(bytes(damaged[: len(data)]))
        try:
            bunch = open_archive(path)
            read = np.asarray(bunch.images)
            bunch.images.close()
        except DamagedDataError as error:
            assert str(path) in str(error)
            outcomes["refused"] += 1
            continue
        np.testing.assert_array_equal(read, images, err_msg=f"offset {offset}")
        assert set(bunch) == set(clean), offset
        for key in clean:
            if key != "images":
                np.testing.assert_array_equal(bunch[key], clean[key], err_msg=f"{key} {offset}")
        outcomes["same"] += 1
    assert outcomes["refused"] > 50 and outcomes["same"] > 10, outcomes


@pytest.mark.parametrize("fill", [0x00, 0xFF])
@pytest.mark.parametrize("key", ["images", "specz_redshift", "e_bv", "ObjID", "images_crc32"])
def test_a_chunk_overwritten_with_one_byte_is_found(archive, tmp_path, key, fill):
    """Fletcher-32 sums a chunk of 0x00 (or 0xFF: 0 modulo 65535) bytes to a matching 0: such
    a chunk, checksum included, used to read back as zeros (or NaN, -1: "unknown") and pass
    verify. The per-stamp and per-column CRC-32s catch it."""
    clean = open_archive(archive)
    images = np.asarray(clean.images)
    clean.images.close()
    with h5py.File(archive, "r") as f:
        info = f[key].id.get_chunk_info(3 if key == "images" else 0)
    damaged = tmp_path / f"{key}-{fill}.h5"  # a new name: HDF5 shares open files
    data = bytearray(archive.read_bytes())
    data[info.byte_offset : info.byte_offset + info.size] = bytes([fill]) * info.size
    damaged.write_bytes(bytes(data))
    assert key in verify_archive(damaged).damaged
    if key == "images_crc32":  # the images themselves are intact and read as written
        np.testing.assert_array_equal(np.asarray(open_archive(damaged).images), images)
        return
    with pytest.raises(DamagedDataError, match="damaged"):
        bunch = open_archive(damaged, deredden=key == "e_bv")
        np.asarray(bunch.images)
