"""Out-of-core input is read a batch at a time, never whole (issue #16).

The estimators take a lazy :class:`~skphotoz.data.HDF5Images` so that archives larger than
memory can be used; one full read anywhere (a validation split, the photometry targets, the
scaling statistics, an IVF training sample) would defeat that. Here the archive is wrapped
in :class:`ReadCounter`, which records every read and fails at once on a read of more rows
than :data:`LIMIT` or on a conversion of the whole array (``np.asarray``, iteration). The
tiny archives have more rows than the limit, and each split of them does too, so a full read
of X or of any of its splits is caught. The peak memory at scale is measured by
``benchmarks/fit_memory.py``.
"""

import os

import numpy as np
import pytest
import torch

import skphotoz.regressor
import skphotoz.search._estimator as search_module
from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz._inputs import CheckedImages
from skphotoz.data import HDF5Images, write_archive
from skphotoz.nn.loading import batch_loader, epoch_batches
from skphotoz.search import SimilaritySearch
from tests import helpers

N = 1200
SIZE = 16
BATCH = 64
# The largest read allowed: the predictions' batches (max(batch_size, 256)) and the
# photometry term's blocks (512) stay below it; every split used here (600 rows) is above.
LIMIT = 512
TINY = dict(helpers.TINY, backbone="resnet18", batch_size=BATCH)


class Materialised(AssertionError):
    """A read of more rows than the limit, or a conversion of the whole array."""


class ReadCounter:
    """An HDF5Images seen through a recorder of its reads.

    Looks like the archive to skphotoz (shape, dtype, crop, deredden), records the number of
    rows and the order of every ``__getitem__``, and raises :class:`Materialised` for a read
    of more than ``limit`` rows, for ``np.asarray`` of the whole array and for iteration.
    """

    def __init__(self, images: HDF5Images, limit: int = LIMIT):
        self.images = images
        self.limit = limit
        self.reads: list[int] = []
        self.unsorted = 0

    shape = property(lambda self: self.images.shape)
    dtype = property(lambda self: self.images.dtype)
    ndim = property(lambda self: self.images.ndim)
    crop = property(lambda self: self.images.crop)
    deredden = property(lambda self: self.images.deredden)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, item):
        index = item[0] if isinstance(item, tuple) else item
        if isinstance(index, slice):
            rows = np.arange(len(self))[index]
        else:
            rows = np.atleast_1d(np.asarray(index))
            if rows.dtype == bool:
                rows = np.flatnonzero(rows)
        self.reads.append(len(rows))
        self.unsorted += bool(np.any(np.diff(rows) < 0))
        if len(rows) > self.limit:
            raise Materialised(f"read {len(rows)} rows at once (limit {self.limit})")
        return self.images[item]

    def __array__(self, dtype=None, copy=None):
        raise Materialised(f"np.asarray of all {len(self)} rows")

    def __iter__(self):
        raise Materialised(f"iteration over all {len(self)} rows")


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    rng = np.random.default_rng(0)
    z = rng.uniform(0.02, 0.35, N)
    # Faint noisy blobs whose colour follows z, so that the fits have something to learn.
    yy, xx = np.mgrid[:SIZE, :SIZE] - SIZE / 2
    blob = np.exp(-(yy**2 + xx**2) / 8.0)
    colour = np.stack([np.linspace(1, 1 + 3 * zi, 5) for zi in z])
    images = colour[:, :, None, None] * blob + 0.1 * rng.normal(size=(N, 5, SIZE, SIZE))
    path = tmp_path_factory.mktemp("ooc") / "archive.h5"
    write_archive(path, images.astype(np.float32), z.astype(np.float32))
    return path, z


def _check(counter: ReadCounter, at_least: int) -> None:
    assert counter.reads, "nothing was read through the counter"
    assert max(counter.reads) <= LIMIT
    # The whole archive went through, batch by batch.
    assert sum(counter.reads) >= at_least


def test_embedder_fit_and_transform_read_batches(archive):
    path, z = archive
    X = ReadCounter(HDF5Images(path))
    model = MoCoEmbedder(**TINY, redshift_weight=1.0).fit(X, z)  # photometry + redshift terms
    assert set(model.heads_) == {"photometry", "redshift"}
    _check(X, at_least=2 * N)  # the photometry targets, then the epoch
    assert X.unsorted == 0

    X.reads.clear()
    embeddings = model.transform(X)
    assert embeddings.shape == (N, 512)
    _check(X, at_least=N)


def test_regressor_fit_with_early_stopping_and_predict_read_batches(archive):
    path, z = archive
    X = ReadCounter(HDF5Images(path))
    model = PhotoZRegressor(
        **{**TINY, "n_epochs": 2}, early_stopping=True, validation_fraction=0.5
    ).fit(X, z)
    assert all("validation_loss" in entry for entry in model.history_)
    _check(X, at_least=2 * N)  # two epochs of the 600 training rows, validation of 600
    assert X.unsorted == 0

    X.reads.clear()
    z_phot, pdf = model.predict(X, return_pdf=True)
    assert z_phot.shape == (N,) and pdf.shape == (N, 180)
    _check(X, at_least=N)


def test_regressor_pretraining_its_embedder_reads_batches(archive):
    path, z = archive
    X = ReadCounter(HDF5Images(path))
    y = z.copy()
    y[::2] = np.nan  # unlabelled rows: pretrained on, not fine-tuned on
    embedder = MoCoEmbedder(**TINY)
    model = PhotoZRegressor(embedder, **TINY, early_stopping=True, validation_fraction=0.5)
    model.fit(X, y)
    assert model.embedder_ is not None
    _check(X, at_least=2 * N)


@pytest.mark.parametrize("index", ["flat", "ivf"])
def test_similarity_search_embeds_an_archive_in_blocks(archive, index, monkeypatch):
    path, _ = archive
    embedder = MoCoEmbedder(**TINY, photometry_weight=0.0).fit(HDF5Images(path))
    # Reads of ~100 stamps here stand for the 64 MiB (819 stamps of 64 px) of a real archive.
    monkeypatch.setattr(search_module, "_READ_BYTES", 100 * 5 * SIZE * SIZE * 4)
    X = ReadCounter(HDF5Images(path), limit=100)
    backend = {"flat": "torch", "ivf": "faiss"}[index]
    if backend == "faiss":
        pytest.importorskip("faiss")
    search = SimilaritySearch(
        n_neighbors=3, embedder=embedder, backend=backend, index=index, device="cpu"
    ).fit(X)
    # (the IVF lists are trained on up to every row: read a block at a time too)
    _check(X, at_least=N)
    X.reads.clear()
    _, neighbours = search.kneighbors(X)
    assert neighbours.shape == (N, 3)
    _check(X, at_least=N)


def test_the_counter_catches_a_full_read(archive, monkeypatch):
    """The instrument fails where a code path materialises: here the validation split read
    whole (as ``X[rows]`` instead of the lazy view of ``take_rows``)."""
    path, z = archive
    X = ReadCounter(HDF5Images(path))
    with pytest.raises(Materialised, match="asarray"):
        np.asarray(X)
    with pytest.raises(Materialised, match="iteration"):
        np.stack(list(X))
    monkeypatch.setattr(skphotoz.regressor, "take_rows", lambda data, rows: data[rows])
    with pytest.raises(Materialised, match="read 600 rows"):
        PhotoZRegressor(**TINY, early_stopping=True, validation_fraction=0.5).fit(X, z)


class _Probe(torch.utils.data.Dataset):
    """What a DataLoader worker reads, and which process opened the archive it read from."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, rows):
        return self.images[rows], os.getpid(), self.images._file_pid


def test_forked_workers_open_the_archive_themselves(archive):
    path, _ = archive
    images = HDF5Images(path)
    first = images[:4]  # the parent opens the file before the workers are forked
    assert images._file_pid == os.getpid()
    batches = epoch_batches(len(images), 128, seed=0, epoch=0)[:4]
    loader = torch.utils.data.DataLoader(
        _Probe(images), sampler=batches, batch_size=None, num_workers=2,
        multiprocessing_context="fork",
    )  # fmt: skip
    pids = set()
    for rows, (batch, pid, opened_by) in zip(batches, loader, strict=True):
        np.testing.assert_array_equal(batch.numpy(), HDF5Images(path)[rows])
        assert int(pid) != os.getpid() and int(opened_by) == int(pid)
        pids.add(int(pid))
    assert len(pids) == 2
    # The parent's handle is still its own, and open.
    assert images._file_pid == os.getpid() and images._file.id.valid
    np.testing.assert_array_equal(images[:4], first)


def test_worker_reads_give_the_fit_of_the_main_process(archive):
    """num_workers changes how batches are read, not what is learned."""
    path, z = archive
    params = dict(TINY, n_epochs=1, early_stopping=True, validation_fraction=0.5)
    a = PhotoZRegressor(**params, num_workers=0).fit(HDF5Images(path), z)
    b = PhotoZRegressor(**params, num_workers=2).fit(HDF5Images(path), z)
    np.testing.assert_array_equal(a.predict(HDF5Images(path)), b.predict(HDF5Images(path)))


class _SliceRecorder:
    """An h5py dataset that records the selections read from it."""

    def __init__(self, dataset, selections):
        self.dataset, self.selections = dataset, selections

    def __getitem__(self, selection):
        self.selections.append(selection)
        return self.dataset[selection]


def test_training_batches_reach_hdf5_as_sorted_slices(archive, monkeypatch):
    """Every read of the archive is a contiguous slice of rows (neighbours up to 8 rows
    apart merged), in increasing order: no point selections, which h5py reads slowly."""
    path, z = archive
    selections = []
    original = HDF5Images._dataset
    monkeypatch.setattr(
        HDF5Images, "_dataset", lambda self: _SliceRecorder(original(self), selections)
    )
    X = CheckedImages(HDF5Images(path), "raise")
    batches = epoch_batches(len(X), BATCH, seed=0, epoch=0)
    for batch in batch_loader([X], batches, "cpu"):
        assert batch[0].shape[0] in (len(b) for b in batches)
    assert len(selections) >= len(batches)
    for selection in selections:
        rows = selection[0]
        assert isinstance(rows, slice) and rows.step is None and rows.start < rows.stop
    # Merging neighbours reads at most 8 unwanted rows per wanted one.
    assert sum(s[0].stop - s[0].start for s in selections) <= 9 * N
