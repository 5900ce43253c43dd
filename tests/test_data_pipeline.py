"""How the engine reads training data: reading ahead in a thread, workers that persist across
epochs, block-shuffled epochs, the in-memory cache of an archive, and the one-pass check of
an archive's chunk index. Each changes how the data are read, never what is learned (except
the block shuffle, which is a different order by design)."""

import functools
import os
import threading
import time

import h5py
import numpy as np
import pytest
import torch

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz.data import HDF5Images, open_archive, write_archive
from skphotoz.data._checksum import sound_chunks, unchecked_chunks
from skphotoz.datasets import make_sdss_galaxies
from skphotoz.exceptions import DamagedDataError
from skphotoz.nn.engine import TrainConfig, Trainer
from skphotoz.nn.loading import (
    ReadAhead,
    epoch_batches,
    epoch_order,
    rank_batches,
    read_groups,
    shuffle_block_rows,
)
from tests.helpers import TINY


class _Task(torch.nn.Module):
    """The smallest training task: one weight; ``on_step(step)`` runs at each step."""

    def __init__(self, on_step=None):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.on_step, self.steps = on_step, 0

    def forward(self, x, generator=None):
        self.steps += 1
        if self.on_step is not None:
            self.on_step(self.steps)
        return (self.w * x.mean()).sum()


@pytest.fixture(scope="module")
def sample():
    return make_sdss_galaxies(96, random_state=0, stamp_size=16)


@pytest.fixture(scope="module")
def archive(sample, tmp_path_factory):
    path = tmp_path_factory.mktemp("pipeline") / "a.h5"
    write_archive(path, sample.images)
    return str(path)


# ----------------------------------------------------------------------- ReadAhead
def test_read_ahead_yields_every_batch_in_order():
    groups = [(np.arange(i, i + 3),) for i in range(0, 30, 3)]
    read = lambda group: [(torch.as_tensor(group[0]),)]  # noqa: E731
    with ReadAhead(read, groups, depth=2) as ahead:
        got = [batch[0].tolist() for batch in ahead]
    assert got == [g[0].tolist() for g in groups]


def test_read_ahead_stays_at_most_depth_batches_ahead():
    reads = []

    def read(i):
        reads.append(i)
        return [(torch.tensor([i]),)]

    with ReadAhead(read, range(50), depth=3) as ahead:
        stream = iter(ahead)
        next(stream)
        time.sleep(0.3)  # the reader has all the time it needs to run ahead
        # 1 handed out, 3 queued, 1 read and waiting for room in the queue.
        assert len(reads) <= 1 + 3 + 1
        assert [int(b[0]) for b in stream] == list(range(1, 50))


def test_a_reader_error_is_raised_in_order_with_its_type():
    def read(i):
        if i == 4:
            raise DamagedDataError("row 4 is damaged")
        return [(torch.tensor([i]),)]

    seen = []
    with pytest.raises(DamagedDataError, match="row 4 is damaged"):
        with ReadAhead(read, range(10), depth=2) as ahead:
            for (batch,) in ahead:
                seen.append(int(batch))
    assert seen == [0, 1, 2, 3]


def test_a_read_ahead_is_iterated_once():
    ahead = ReadAhead(lambda i: [(torch.tensor([i]),)], range(3), depth=2)
    assert len(list(ahead)) == 3
    assert list(ahead) == []  # ended: no wait for a reader that has stopped
    ahead.close()
    closed = ReadAhead(lambda i: [(torch.tensor([i]),)], range(3), depth=2)
    closed.close()
    assert list(closed) == []


def test_closing_in_the_middle_stops_the_reader():
    before = {t.ident for t in threading.enumerate()}
    ahead = ReadAhead(lambda i: [(torch.tensor([i]),)], range(10_000), depth=2)
    stream = iter(ahead)
    next(stream)
    ahead.close()
    assert not ahead._thread.is_alive()
    assert {t.ident for t in threading.enumerate()} <= before | {None}


def test_an_interrupted_epoch_leaves_no_reader_behind(archive, sample):
    class Stop(Exception):
        pass

    def stop_at_two(step):
        if step == 2:
            raise Stop

    config = TrainConfig(n_epochs=1, batch_size=8, device="cpu")
    trainer = Trainer(_Task(stop_at_two), [HDF5Images(archive)], config)
    with pytest.raises(Stop):
        trainer.fit()
    time.sleep(0.1)
    assert not [t for t in threading.enumerate() if t.name == "skphotoz-read-ahead"]


# --------------------------------------------------------- the same model, however read
def _fit(X, z, **params):
    return PhotoZRegressor(**{**TINY, "n_epochs": 2, "batch_size": 16, **params}).fit(X, z)


@pytest.mark.parametrize("prefetch, workers", [(0, 0), (2, 0), (1, 2)])
def test_reading_ahead_and_persistent_workers_learn_the_same_model(
    archive, sample, monkeypatch, prefetch, workers
):
    z = sample.redshift
    reference = _fit(sample.images, z)
    monkeypatch.setattr(
        "skphotoz._base.TrainConfig", functools.partial(TrainConfig, prefetch=prefetch)
    )
    model = _fit(HDF5Images(archive), z, num_workers=workers)
    np.testing.assert_array_equal(
        model.predict(HDF5Images(archive)), reference.predict(sample.images)
    )
    assert [h["loss"] for h in model.history_] == [h["loss"] for h in reference.history_]


class _PidLog:
    """An array-like that notes, in a file, which process read each batch."""

    def __init__(self, X, log):
        self.X, self.log = X, log

    def __len__(self):
        return len(self.X)

    @property
    def shape(self):
        return self.X.shape

    def __getitem__(self, rows):
        with open(self.log, "a") as f:
            f.write(f"{os.getpid()}\n")
        return self.X[rows]


def test_workers_persist_across_epochs(sample, tmp_path):
    log = tmp_path / "pids.txt"
    epochs = []

    config = TrainConfig(n_epochs=3, batch_size=16, device="cpu", num_workers=2)
    trainer = Trainer(_Task(), [_PidLog(sample.images, log)], config)
    original = trainer.run_epoch

    def run_epoch(epoch):
        entry = original(epoch)
        epochs.append(trainer._loader)
        return entry

    trainer.run_epoch = run_epoch
    trainer.fit()
    pids = {int(p) for p in log.read_text().split()}
    assert len(pids) == 2 and os.getpid() not in pids  # the same two workers, 3 epochs
    assert epochs[0] is epochs[1] is epochs[2] is not None
    assert trainer._loader is None  # stopped when fit ends


def test_workers_stop_when_a_fit_fails(sample):
    import multiprocessing

    def fail_in_the_second_epoch(step):
        if step == 8:
            raise RuntimeError("a step failed")

    config = TrainConfig(n_epochs=3, batch_size=16, device="cpu", num_workers=2)
    trainer = Trainer(_Task(fail_in_the_second_epoch), [sample.images], config)
    before = set(multiprocessing.active_children())  # e.g. joblib's, from other tests
    with pytest.raises(RuntimeError, match="a step failed") as caught:
        trainer.fit()
    # The traceback (kept here, as an interactive session keeps it) holds the loader's
    # frames; the workers must be gone all the same.
    assert caught.value.__traceback__ is not None
    assert set(multiprocessing.active_children()) - before == set()


def test_the_block_size_is_part_of_the_run(archive, tmp_path):
    path = tmp_path / "chunky.h5"
    images = np.asarray(HDF5Images(archive))
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images, chunks=(96, *images.shape[1:]))
    config = TrainConfig(batch_size=16, device="cpu", shuffle_buffer=64)
    a = Trainer(_Task(), [HDF5Images(archive)], config).fingerprint()
    b = Trainer(_Task(), [HDF5Images(path)], config).fingerprint()
    assert a["data (array 0)"] == b["data (array 0)"]  # the same values ...
    assert a["rows per shuffled block"] == "64" and b["rows per shuffled block"] == "96"
    plain = TrainConfig(batch_size=16, device="cpu")
    assert "rows per shuffled block" not in Trainer(_Task(), [images], plain).fingerprint()


def test_reading_ahead_in_predict_gives_the_same_outputs(archive, sample):
    model = PhotoZRegressor(**{**TINY, "batch_size": 16}).fit(sample.images, sample.redshift)
    lazy = model.predict(HDF5Images(archive))
    np.testing.assert_array_equal(lazy, model.predict(sample.images))


# --------------------------------------------------------------------- block shuffle
def test_a_full_shuffle_is_the_order_it_always_was():
    np.testing.assert_array_equal(
        epoch_order(1000, seed=3, epoch=2), np.random.default_rng([3, 2]).permutation(1000)
    )


@pytest.mark.parametrize("n", [1000, 1001, 64, 5])
def test_a_block_shuffle_reads_whole_blocks_one_buffer_at_a_time(n):
    block, buffer = 64, 256
    order = epoch_order(n, seed=0, epoch=1, shuffle_buffer=buffer, block=block)
    assert sorted(order.tolist()) == list(range(n))
    # The order falls into buffers of at most buffer // block whole blocks: cut it wherever
    # the rows so far make whole blocks; no piece may span more blocks than a buffer holds.
    sizes = np.bincount(np.arange(n) // block)
    seen = np.zeros_like(sizes)
    cuts, open_blocks = [0], 0
    for position, row in enumerate(order, start=1):
        b = row // block
        open_blocks += seen[b] == 0
        seen[b] += 1
        open_blocks -= seen[b] == sizes[b]
        if open_blocks == 0:
            cuts.append(position)
    assert cuts[-1] == n
    pieces = [np.unique(order[a:b] // block) for a, b in zip(cuts, cuts[1:], strict=False)]
    assert max(len(p) for p in pieces) <= buffer // block
    assert len(pieces) >= -(-len(sizes) // (buffer // block))
    again = epoch_order(n, seed=0, epoch=1, shuffle_buffer=buffer, block=block)
    np.testing.assert_array_equal(order, again)
    if n > block:
        other = epoch_order(n, seed=0, epoch=2, shuffle_buffer=buffer, block=block)
        assert not np.array_equal(order, other)
        # Shuffled within the buffer, not read in block order.
        assert not np.array_equal(np.sort(order[:buffer]), order[:buffer])


def test_block_shuffled_batches_are_shared_by_ranks_like_full_ones():
    single = epoch_batches(1000, 100, 0, 0, 256, 64)
    shares = [rank_batches(1000, 100, 0, 0, r, 2, 256, 64) for r in range(2)]
    for batch, a, b in zip(single, *shares, strict=True):
        np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), batch)


def test_read_groups_cover_a_buffer():
    batches = epoch_batches(1000, 100, 0, 0, 400, 64)
    groups = read_groups(batches, 100, 400)
    assert [len(g) for g in groups] == [4, 4, 2]
    assert [len(g) for g in read_groups(batches, 100, None)] == [1] * 10


def test_block_rows_keep_an_archives_chunks_whole(tmp_path):
    assert shuffle_block_rows(np.zeros((10, 1))) == 64
    path = tmp_path / "chunky.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.zeros((300, 1, 4, 4), np.float32), chunks=(50, 1, 4, 4))
    images = HDF5Images(path)
    assert images.chunk_rows == 50 and shuffle_block_rows(images) == 100
    # as the estimators see it: checked as read, or a subset of the rows
    from skphotoz._inputs import CheckedImages, RowSubset

    assert shuffle_block_rows(CheckedImages(images, "raise")) == 100
    assert shuffle_block_rows(RowSubset(images, np.arange(10, 200))) == 100


class _Reads:
    """Wraps an h5py dataset, counting the reads (HDF5 calls) made of it."""

    def __init__(self, dataset, counter):
        self.dataset, self.counter = dataset, counter

    def __getitem__(self, selection):
        self.counter.append(selection)
        return self.dataset[selection]

    def __getattr__(self, name):
        return getattr(self.dataset, name)


def _reads_of_an_epoch(archive, monkeypatch, shuffle_buffer):
    images = HDF5Images(archive)
    counter = []
    real = images._dataset
    monkeypatch.setattr(images, "_dataset", lambda: _Reads(real(), counter))
    config = TrainConfig(n_epochs=1, batch_size=16, device="cpu", shuffle_buffer=shuffle_buffer)

    Trainer(_Task(), [images], config).fit()
    return counter


def test_a_block_shuffled_epoch_reads_the_archive_in_blocks(archive, monkeypatch):
    full = _reads_of_an_epoch(archive, monkeypatch, None)
    blocks = _reads_of_an_epoch(archive, monkeypatch, 64)
    # 96 galaxies of one chunk each: a full shuffle reads nearly one run per galaxy; a block
    # shuffle reads the 2 blocks of 64 and 32 galaxies, one contiguous slice each.
    assert len(full) > 50
    assert len(blocks) == 2
    assert sorted((s[0].stop - s[0].start) for s in blocks) == [32, 64]


def test_shuffle_buffer_is_a_parameter_that_changes_the_run(sample):
    base = dict(TINY, batch_size=16)
    a = PhotoZRegressor(**base).fit(sample.images, sample.redshift)
    b = PhotoZRegressor(**base, shuffle_buffer=64).fit(sample.images, sample.redshift)
    assert b.get_params()["shuffle_buffer"] == 64
    assert not np.array_equal(a.predict(sample.images), b.predict(sample.images))
    assert b._run_parameters()["parameter shuffle_buffer"] == "64"
    with pytest.raises(ValueError, match="shuffle_buffer"):
        PhotoZRegressor(shuffle_buffer=0).fit(sample.images, sample.redshift)
    emb = MoCoEmbedder(**TINY, shuffle_buffer=32)
    assert emb.get_params()["shuffle_buffer"] == 32


# ------------------------------------------------------------------ in-memory cache
def test_an_exact_cache_returns_what_the_file_holds_and_reads_it_once(archive, monkeypatch):
    plain = HDF5Images(archive, crop=12)
    cached = HDF5Images(archive, crop=12, cache="exact")
    reads = []
    real = cached._read_sorted
    monkeypatch.setattr(cached, "_read_sorted", lambda rows: reads.append(rows) or real(rows))
    rows = np.array([5, 1, 5, 40, 7])
    np.testing.assert_array_equal(cached[rows], plain[rows])
    np.testing.assert_array_equal(cached[[1, 7, 2]], plain[[1, 7, 2]])
    assert [r.tolist() for r in reads] == [[1, 5, 7, 40], [2]]
    np.testing.assert_array_equal(np.asarray(cached), np.asarray(plain))
    np.testing.assert_array_equal(cached[:], plain[:])
    assert "cache='exact'" in repr(cached)


def test_a_float16_cache_rounds_to_float16_and_leaves_out_what_it_cannot_hold(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.normal(0, 3, size=(6, 2, 4, 4)).astype(np.float32)
    images[4, 1, 2, 2] = 1e6  # beyond float16's range
    path = tmp_path / "a.h5"
    write_archive(path, images)
    cached = HDF5Images(path, cache="float16")
    first = cached[[0, 4]]
    again = cached[:]
    held = np.arange(6) != 4
    np.testing.assert_array_equal(again[held], images[held].astype(np.float16).astype(np.float32))
    np.testing.assert_array_equal(again[4], images[4])  # read from the file again, exact
    # A read never depends on what was read before: the first read of a cached stamp is
    # already the float16 one.
    np.testing.assert_array_equal(first, again[[0, 4]])
    np.testing.assert_array_equal(HDF5Images(path, cache="float16")[[2, 1]], again[[2, 1]])
    assert again.dtype == np.float32
    error = np.abs(again[held] - images[held])
    normal = np.abs(images[held]) >= np.finfo(np.float16).tiny
    assert (error[normal] / np.abs(images[held][normal])).max() <= 2.0**-11
    assert error[~normal].max(initial=0) <= 3e-8


def test_a_cache_with_workers_is_warned_about(archive, sample):
    X = HDF5Images(archive, cache="float16")
    with pytest.warns(UserWarning, match="num_workers=2 each worker reads the file"):
        _fit(X, sample.redshift, num_workers=2, n_epochs=1)


def test_the_cache_stays_in_its_process(archive):
    import pickle

    cached = HDF5Images(archive, cache="exact")
    cached[:10]
    copy = pickle.loads(pickle.dumps(cached))
    assert copy._cached is None and copy.cache == "exact"
    np.testing.assert_array_equal(copy[:10], cached[:10])


def test_a_cache_larger_than_free_memory_is_warned_about(archive, monkeypatch):
    from skphotoz.data import _lazy

    free = _lazy.available_memory()
    assert free is None or free > 0
    monkeypatch.setattr(_lazy, "available_memory", lambda: 1000)
    with pytest.warns(UserWarning, match=r"cache='exact': the stamps of all 96 galaxies .* "
                      r"use cache='float16'"):  # fmt: skip
        HDF5Images(archive, cache="exact")
    with pytest.warns(UserWarning, match="cache='float16'"):
        open_archive(archive, cache="float16")
    with pytest.raises(ValueError, match="cache"):
        HDF5Images(archive, cache="float32")


def test_training_from_the_exact_cache_learns_the_same_model(archive, sample):
    z = sample.redshift
    a = _fit(HDF5Images(archive), z)
    X = HDF5Images(archive, cache="exact")
    b = _fit(X, z)
    np.testing.assert_array_equal(a.predict(sample.images), b.predict(sample.images))
    assert X._cached[1].all()  # every galaxy was read into memory


# --------------------------------------------------------------- the chunk index
@pytest.fixture
def holey(tmp_path):
    """An archive of 200 checksummed one-galaxy chunks, of which chunk 5 was never written
    (HDF5 would read it as zeros, which pass Fletcher-32)."""
    path = tmp_path / "holey.h5"
    data = np.arange(200 * 2 * 3 * 3, dtype=np.float32).reshape(200, 2, 3, 3) + 1
    with h5py.File(path, "w") as f:
        d = f.create_dataset("images", shape=data.shape, dtype="f4", chunks=(1, 2, 3, 3),
                             fletcher32=True)  # fmt: skip
        for row in range(200):
            if row != 5:
                d[row] = data[row]
    return path, data


def test_the_index_pass_agrees_with_looking_up_each_chunk(holey):
    path, _ = holey
    with h5py.File(path, "r") as f:
        d = f["images"]
        sound = sound_chunks(d)
        bad = unchecked_chunks(d, range(200), allocated=True)
    assert bad == [5]
    if sound is None:
        pytest.skip(f"HDF5 {h5py.version.hdf5_version} cannot iterate over chunks (< 1.12.3)")
    np.testing.assert_array_equal(np.flatnonzero(~sound), bad)


def test_a_missing_chunk_is_refused_before_and_after_the_index_pass(holey):
    path, data = holey
    images = HDF5Images(path)
    np.testing.assert_array_equal(images[[0, 1]], data[[0, 1]])  # 2 lookups: no pass yet
    assert not images._index_passed
    with pytest.raises(DamagedDataError, match="5"):
        images[[4, 5]]
    images = HDF5Images(path)
    np.testing.assert_array_equal(images[20:200], data[20:200])  # 180 lookups: one pass
    assert images._index_passed
    np.testing.assert_array_equal(images[[0, 4, 6]], data[[0, 4, 6]])
    with pytest.raises(DamagedDataError, match="5"):
        images[[5]]


# ------------------------------------------------------------------------ command line
def test_the_training_commands_take_the_reading_options(tmp_path, monkeypatch):
    import joblib

    from skphotoz.cli import main

    archive = tmp_path / "sim.h5"
    assert main(["simulate", str(archive), "--n", "24", "--stamp-size", "16", "--seed", "1"]) == 0
    opened = []
    real = HDF5Images.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        opened.append(self.cache)

    monkeypatch.setattr(HDF5Images, "__init__", spy)
    model = tmp_path / "emb.joblib"
    common = ["--epochs", "1", "--batch-size", "8", "--shuffle-buffer", "16", "--cache"]
    assert main(["pretrain", str(archive), "--output", str(model), *common, "float16"]) == 0
    assert joblib.load(model).shuffle_buffer == 16 and opened[-1] == "float16"
    photoz = tmp_path / "z.joblib"
    argv = ["fit-photoz", str(archive), "--output", str(photoz), *common, "exact"]
    assert main(argv) == 0
    assert joblib.load(photoz).shuffle_buffer == 16 and opened[-1] == "exact"
    with pytest.raises(SystemExit) as usage:
        main(["pretrain", str(archive), "--output", str(model), "--cache", "float64"])
    assert usage.value.code == 2
