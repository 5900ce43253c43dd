"""Bad input and bad parameters of the network estimators: a clear error, or a finite result."""

import threading
import warnings

import numpy as np
import pytest
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.utils import Bunch

from skphotoz import MoCoEmbedder, PhotoZRegressor
from skphotoz._inputs import CheckedImages, preprocessing_of, take_rows
from skphotoz._validation import InvalidParameterError
from skphotoz.data import HDF5Images
from skphotoz.nn import AsinhScaling
from skphotoz.nn.engine import NonFiniteError, TrainConfig, Trainer, resolve_device
from skphotoz.nn.scaling import band_noise
from tests.helpers import TINY, make_features, make_images, write_h5_archive


# ------------------------------------------------------------------ nan_policy
@pytest.mark.parametrize("estimator", [MoCoEmbedder, PhotoZRegressor])
def test_nan_in_numpy_input_raises_naming_policy_rows_and_fill(estimator):
    X, y = make_features()
    X[3, 1], X[7, 0] = np.nan, np.inf
    args = (X, y) if estimator is PhotoZRegressor else (X,)
    with pytest.raises(ValueError, match=r"2 NaN or infinite.*rows \[3, 7\].*nan_policy='fill'"):
        estimator(**TINY).fit(*args)


def test_nan_in_images_at_predict_raises():
    X, y = make_images(), np.linspace(0.05, 0.3, 6)
    model = PhotoZRegressor(**TINY).fit(X, y)
    X[4, 2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"rows \[4\]\) and nan_policy='raise'"):
        model.predict(X)


def test_fill_replaces_features_by_the_training_mean():
    X, y = make_features(n=20)
    model = PhotoZRegressor(**TINY, nan_policy="fill").fit(X, y)
    holed = X.copy()
    holed[0, 1], holed[1, 2] = np.nan, -np.inf
    mean = model.model_.encoder[0].mean.numpy()[0]
    filled = X.copy()
    filled[0, 1], filled[1, 2] = mean[1], mean[2]
    np.testing.assert_allclose(model.predict(holed), model.predict(filled))
    assert np.isfinite(model.predict_pdf(holed)).all()


def test_fill_trains_on_features_with_holes():
    X, y = make_features(n=20)
    X[::3, 1] = np.nan
    out = MoCoEmbedder(**TINY, nan_policy="fill").fit(X).transform(X)
    assert out.shape == (20, 256) and np.isfinite(out).all()


def test_fill_replaces_pixels_by_the_sky_level():
    X = make_images(n=8)
    holed = X.copy()
    holed[1, :, 2:4, 2:4] = np.nan
    emb = MoCoEmbedder(**TINY, nan_policy="fill").fit(holed)
    filled = holed.copy()
    filled[1, :, 2:4, 2:4] = 0.0
    np.testing.assert_allclose(emb.transform(holed), emb.transform(filled), rtol=1e-5)
    assert np.isfinite(emb.transform(holed)).all()


def test_scaling_statistics_ignore_non_finite_pixels():
    X = make_images(n=8, size=16)
    holed = X.copy()
    holed[:, :, 0, :] = np.nan
    noise = band_noise(CheckedImages(holed, "fill"))
    assert np.isfinite(noise).all() and (noise > 0).all()
    assert band_noise(holed) == pytest.approx(noise)
    with pytest.raises(ValueError, match="nan_policy='raise'"):
        band_noise(CheckedImages(holed, "raise"))


def test_lazy_input_is_checked_batch_by_batch(tmp_path):
    X = make_images(n=10)
    X[6, 0, 1, 1] = np.nan
    lazy = HDF5Images(write_h5_archive(tmp_path, X))
    with pytest.raises(ValueError, match=r"rows \[6\]\) and nan_policy='raise'"):
        MoCoEmbedder(**TINY).fit(lazy)
    emb = MoCoEmbedder(**TINY).fit(X[:6])
    with pytest.raises(ValueError, match=r"rows \[6\]\) and nan_policy='raise'"):
        emb.transform(lazy)
    emb.set_params(nan_policy="fill")
    out = emb.transform(lazy)
    assert out.shape == (10, 512) and np.isfinite(out).all()
    filled = MoCoEmbedder(**TINY, nan_policy="fill").fit(lazy).transform(lazy)
    assert np.isfinite(filled).all()


def test_lazy_fill_in_the_regressor(tmp_path):
    X = make_images(n=8)
    X[2, 1] = np.inf
    lazy = HDF5Images(write_h5_archive(tmp_path, X))
    model = PhotoZRegressor(**TINY, nan_policy="fill").fit(lazy, np.linspace(0.05, 0.3, 8))
    z = model.predict(lazy)
    assert np.isfinite(z).all() and ((z >= 0) & (z <= 0.4)).all()


def test_nan_policy_is_part_of_the_fingerprint():
    params = MoCoEmbedder(nan_policy="fill")._run_parameters()
    assert params["parameter nan_policy"] == "'fill'"


def test_checkpoint_fingerprint_records_nan_policy():
    # The policy shapes what a fit reads: a resume with another one must be noticed.
    assert MoCoEmbedder(nan_policy="fill")._run_parameters()["parameter nan_policy"] == "'fill'"
    assert MoCoEmbedder()._run_parameters()["parameter nan_policy"] == "'raise'"


def test_nan_policy_is_validated():
    with pytest.raises(InvalidParameterError, match="nan_policy"):
        MoCoEmbedder(**TINY, nan_policy="zero").fit(make_features()[0])


# ------------------------------------------------------------ preprocessing_
def test_preprocessing_is_remembered_and_enforced(tmp_path):
    path = write_h5_archive(tmp_path, make_images(n=6, size=12))
    emb = MoCoEmbedder(**TINY).fit(HDF5Images(path, crop=8))
    assert emb.preprocessing_ == {"deredden": False, "crop": 8}
    with pytest.raises(ValueError, match=r"'deredden': True.*'deredden': False"):
        emb.transform(HDF5Images(path, crop=8, deredden=True))
    with pytest.raises(ValueError, match=r"'crop': None.*'crop': 8"):
        emb.transform(HDF5Images(path))
    assert emb.transform(HDF5Images(path, crop=8)).shape == (6, 512)
    assert MoCoEmbedder(**TINY).fit(make_images()).preprocessing_ is None


def test_regressor_remembers_preprocessing(tmp_path):
    path = write_h5_archive(tmp_path, make_images(n=6))
    model = PhotoZRegressor(**TINY).fit(HDF5Images(path, deredden=True), np.full(6, 0.1))
    assert model.preprocessing_ == {"deredden": True, "crop": None}
    with pytest.raises(ValueError, match="preprocessing"):
        model.predict_quantiles(HDF5Images(path))
    with pytest.raises(ValueError, match="preprocessing"):
        model.predict_pdf(HDF5Images(path))


def test_preprocessing_is_seen_through_row_views(tmp_path):
    # A cross-validation split (take_rows) of an archive is read as the archive is: fitting
    # on it must remember deredden/crop, not "unknown", so that predictions are checked.
    images = HDF5Images(
        write_h5_archive(tmp_path, make_images(n=8, size=10), e_bv=0.01), deredden=True, crop=8
    )
    expected = {"deredden": True, "crop": 8}
    view = take_rows(images, np.arange(6))
    assert preprocessing_of(view) == expected
    assert preprocessing_of(CheckedImages(take_rows(view, np.arange(3)), "raise")) == expected
    assert preprocessing_of(take_rows(np.zeros((4, 5, 8, 8)), np.arange(2))) is None

    model = MoCoEmbedder(**TINY).fit(view)
    assert model.preprocessing_ == expected
    with pytest.raises(ValueError, match="preprocessing_"):
        model.transform(HDF5Images(images.path, deredden=False, crop=8))


# ------------------------------------------------------------ input shapes
def test_reversed_and_strided_arrays_work():
    X, y = make_features(n=16)
    model = PhotoZRegressor(**TINY).fit(X[::-1], y[::-1])
    np.testing.assert_allclose(model.predict(X[::-1]), model.predict(X)[::-1], rtol=1e-6)
    PhotoZRegressor(**TINY).fit(X[::2], np.repeat(y, 2)[::4])
    images = make_images(n=6)
    emb = MoCoEmbedder(**TINY).fit(images[::-1, :, ::-1])
    assert np.isfinite(emb.transform(images[:, ::-1])).all()


def test_channels_last_cube_gets_a_transpose_hint():
    X = np.zeros((4, 64, 64, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"channels-last.*X\.transpose\(0, 3, 1, 2\)"):
        MoCoEmbedder(**TINY).fit(X)


def test_non_square_images():
    with pytest.raises(ValueError, match=r"square images.*8x9"):
        PhotoZRegressor(**TINY).fit(np.zeros((4, 5, 8, 9)), np.full(4, 0.1))


@pytest.mark.parametrize(
    "X, kind",
    [
        (np.array([["1", "2"], ["3", "4"]]), "string"),
        (np.array([[1, 2], [3, "4"]], dtype=object), "text"),
        (np.array([b"1", b"2"]).reshape(2, 1), "bytes"),
    ],
)
def test_non_numeric_arrays_are_refused(X, kind):
    with pytest.raises(TypeError, match=f"X must hold real numbers.*{kind}"):
        MoCoEmbedder(**TINY).fit(X)


def test_complex_and_object_arrays():
    with pytest.raises(ValueError, match="Complex data not supported: X must hold real"):
        MoCoEmbedder(**TINY).fit(np.ones((4, 3), dtype=complex))
    X, y = make_features()
    z = PhotoZRegressor(**TINY).fit(X.astype(object), y.astype(object)).predict(X)
    assert np.isfinite(z).all()


def test_a_path_or_an_archive_bunch_as_X():
    with pytest.raises(TypeError, match=r"not a path.*open_archive.*archive\.images"):
        MoCoEmbedder(**TINY).fit("galaxies.h5")
    bunch = Bunch(images=make_images(), redshift=np.zeros(6))
    with pytest.raises(TypeError, match=r"dict-like.*'images'.*pass archive\.images"):
        PhotoZRegressor(**TINY).fit(bunch, np.zeros(6))
    with pytest.raises(TypeError, match="got None"):
        MoCoEmbedder(**TINY).fit(None)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((4, 5, 0, 0), "at least one band and one pixel"),
        ((4, 0, 8, 8), "at least one band and one pixel"),
        ((4, 5, 3, 3), "at least 4x4 pixels"),
        ((4, 0), r"0 feature\(s\)"),
        ((4,), "Reshape your data"),
        ((4, 3, 2), "2-D .* or 4-D"),
    ],
)
def test_empty_or_too_small_samples(shape, match):
    with pytest.raises(ValueError, match=match):
        MoCoEmbedder(**TINY).fit(np.zeros(shape, dtype=np.float32))


def test_crop_size_larger_than_the_stamp():
    with pytest.raises(ValueError, match=r"crop_size must be between 1 and the stamp size 8"):
        MoCoEmbedder(**TINY, crop_size=9).fit(make_images())


def test_smallest_images_work():
    X = make_images(n=4, size=4)
    z = PhotoZRegressor(**TINY).fit(X, np.full(4, 0.2)).predict(X)
    assert np.isfinite(z).all()


def test_y_checks():
    X, y = make_features()
    bad = y.copy()
    bad[[2, 5]] = np.inf
    with pytest.raises(ValueError, match=r"y contains infinity.*2 rows are infinite: \[2, 5\]"):
        PhotoZRegressor(**TINY).fit(X, bad)
    with pytest.raises(
        ValueError, match=r"1-D array of 12 redshifts: .* of X \(12\); got shape \(5,\)"
    ):
        PhotoZRegressor(**TINY).fit(X, y[:5])
    with pytest.raises(ValueError, match=r"shape \(12, 2\)"):
        PhotoZRegressor(**TINY).fit(X, np.column_stack([y, y]))
    with pytest.raises(TypeError, match="y must hold real numbers"):
        PhotoZRegressor(**TINY).fit(X, y.astype(str))
    with pytest.raises(ValueError, match="requires y to be passed"):
        PhotoZRegressor(**TINY).fit(X, None)
    with pytest.raises(ValueError, match=r"within ±1e30"):
        PhotoZRegressor(**TINY).fit(X, np.full(12, 1e200))
    with pytest.raises(ValueError, match="at least 2 labelled rows"):
        PhotoZRegressor(**TINY).fit(X, np.full(12, np.nan))


def test_huge_pixels_give_finite_outputs():
    X = make_images(n=6)
    X[0, 0, 2:5, 2:5] = 3e38
    X[1, 3] = -3e38
    emb = MoCoEmbedder(**TINY).fit(X)
    assert np.isfinite(emb.transform(X)).all()
    model = PhotoZRegressor(**TINY).fit(X, np.linspace(0.05, 0.3, 6))
    assert np.isfinite(model.predict_pdf(X)).all()
    scaled = AsinhScaling([1e-12])(torch.tensor([3e38, -3e38, 1.0]).reshape(1, 1, 1, 3))
    assert torch.isfinite(scaled).all() and scaled[0, 0, 0, 0] > 100


def test_huge_float64_features_are_clipped_not_made_infinite():
    X, y = make_features(n=12)
    X64 = X.astype(np.float64)
    X64[0, 0] = 1e300
    z = PhotoZRegressor(**TINY).fit(X64, y).predict(X64)
    assert np.isfinite(z).all()


def test_float16_and_read_only_input_give_no_warning():
    X, y = make_features()
    model = PhotoZRegressor(**TINY).fit(X, y)
    read_only = X.copy()
    read_only.setflags(write=False)  # as a memory-mapped .npy opened with mmap_mode="r"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        half = model.predict(X.astype(np.float16))  # was: RuntimeWarning, overflow in cast
        same = model.predict(read_only)  # was: torch's UserWarning on non-writable arrays
    assert np.isfinite(half).all()
    np.testing.assert_allclose(same, model.predict(X))


# ------------------------------------------------------------ parameters
@pytest.mark.parametrize(
    "estimator, name, value",
    [
        (MoCoEmbedder, "queue_size", 2**20 + 1),
        (MoCoEmbedder, "projection_dim", 8193),
        (MoCoEmbedder, "temperature", np.inf),
        (MoCoEmbedder, "temperature", 0.0),
        (MoCoEmbedder, "photometry_weight", np.inf),
        (MoCoEmbedder, "contrastive_weight", -1.0),
        (MoCoEmbedder, "redshift_weight", 1e9),
        (MoCoEmbedder, "rotation", "False"),
        (MoCoEmbedder, "flip", 1),
        (MoCoEmbedder, "warm_start", "yes"),
        (MoCoEmbedder, "verbose", None),
        (PhotoZRegressor, "n_bins", 10_001),
        (PhotoZRegressor, "target_sigma", np.inf),
        (PhotoZRegressor, "batch_size", 2**16 + 1),
        (PhotoZRegressor, "batch_size", True),
        (PhotoZRegressor, "crop_size", 2**17),
        (PhotoZRegressor, "lr", np.inf),
        (PhotoZRegressor, "lr", 1e6),
        (PhotoZRegressor, "jitter", np.inf),
        (PhotoZRegressor, "dust_ebv", np.inf),
        (PhotoZRegressor, "dust_ebv", 2.0),
        (PhotoZRegressor, "brightness", 50.0),
        (PhotoZRegressor, "psf_fwhm", 1e4),
        (PhotoZRegressor, "scale", np.nan),
        (PhotoZRegressor, "weight_decay", np.inf),
        (PhotoZRegressor, "backbone_lr_ratio", np.inf),
        (PhotoZRegressor, "test_time_augmentation", "False"),
        (PhotoZRegressor, "freeze_backbone", np.float64(1.0)),
        (PhotoZRegressor, "n_epochs", 10**6),
    ],
)
def test_parameter_bounds(estimator, name, value):
    X, y = make_features()
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter"):
        estimator(**{**TINY, name: value}).fit(X, y)


def test_queue_memory_is_bounded():
    with pytest.raises(InvalidParameterError, match=r"queue_size x projection_dim.*1 GiB"):
        MoCoEmbedder(**TINY, queue_size=2**20, projection_dim=4096).fit(make_features()[0])


@pytest.mark.parametrize(
    "z_range", [(0.4, 0.0), (-0.1, 0.4), (0.0, np.inf), (0.0, np.nan), (False, True),
                ("0", "0.4"), (0.0,), (0.0, 0.2, 0.4), (0.0, 1e3), (0.1, 0.1)],
)  # fmt: skip
def test_z_range_is_two_finite_increasing_numbers(z_range):
    X, y = make_features()
    with pytest.raises(InvalidParameterError, match="z_range"):
        PhotoZRegressor(**TINY, z_range=z_range).fit(X, y)


def test_checkpoint_dir_that_is_a_file_is_named(tmp_path):
    X, _ = make_features()
    path = tmp_path / "file"
    path.write_text("")
    with pytest.raises(NotADirectoryError, match=r"checkpoint_dir must be a folder .* a file"):
        MoCoEmbedder(**TINY, checkpoint_dir=str(path)).fit(X)


# ------------------------------------------------------------ after fit
@pytest.fixture(scope="module")
def fitted_regressor():
    X, y = make_features(n=20)
    return PhotoZRegressor(**TINY).fit(X, y), X


@pytest.mark.parametrize(
    "name, value",
    [
        ("point_estimate", "foo"),
        ("test_time_augmentation", "False"),
        ("batch_size", 0),
        ("device", 3),
        ("nan_policy", "ignore"),
        ("lr", np.inf),
    ],
)
def test_parameters_changed_after_fit_are_validated(fitted_regressor, name, value):
    model, X = fitted_regressor
    old = model.get_params()[name]
    model.set_params(**{name: value})
    try:
        with pytest.raises(InvalidParameterError, match=name):
            model.predict(X)
    finally:
        model.set_params(**{name: old})
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.parametrize(
    "name, value",
    [("head", "regression"), ("n_bins", 50), ("z_range", (0.0, 1.0)), ("backbone", "resnet18"),
     ("crop_size", 3)],
)  # fmt: skip
def test_structural_parameters_changed_after_fit_need_a_refit(fitted_regressor, name, value):
    model, X = fitted_regressor
    old = model.get_params()[name]
    model.set_params(**{name: value})
    try:
        with pytest.raises(ValueError, match=f"{name}=.*was set after fitting.*fitted with.*Refit"):
            model.predict_pdf(X)
    finally:
        model.set_params(**{name: old})
    assert np.isfinite(model.predict(X)).all()


def test_head_changed_after_fit_names_the_fitted_head(fitted_regressor):
    model, X = fitted_regressor
    model.set_params(head="regression")
    try:
        with pytest.raises(ValueError, match="fitted with head='bins'"):
            model.predict(X)
    finally:
        model.set_params(head="bins")


def test_embedder_parameters_changed_after_fit():
    X, _ = make_features()
    emb = MoCoEmbedder(**TINY).fit(X)
    emb.set_params(projection_dim=64)
    with pytest.raises(ValueError, match="projection_dim=64 was set after fitting"):
        emb.transform(X)
    emb.set_params(projection_dim=128, embedding="head")
    with pytest.raises(InvalidParameterError, match="embedding"):
        emb.transform(X)
    emb.set_params(embedding="projection")
    assert emb.transform(X).shape == (12, 128)
    assert len(emb.get_feature_names_out()) == 128
    emb.set_params(backbone="resnet50", warm_start=True)
    with pytest.raises(ValueError, match="backbone='resnet50' was set after fitting"):
        emb.fit(X)


def test_score_with_text_or_unlabelled_y_names_y():
    X, y = make_features()
    model = PhotoZRegressor(**TINY).fit(X, y)
    with pytest.raises(TypeError, match=r"y must hold real numbers .* got string values"):
        model.score(X, np.array(["a"] * len(X)))
    assert np.isfinite(model.score(X, y))
    unlabelled = y.copy()
    unlabelled[[2, 5]] = np.nan  # was: scikit-learn's bare "Input contains NaN."
    with pytest.raises(
        ValueError, match=r"y holds NaN \(or masked values\) in 2 row\(s\) \[2, 5\]"
    ):
        model.score(X, unlabelled)
    masked = np.ma.masked_array(y, mask=np.isin(np.arange(len(y)), [2, 5]))
    with pytest.raises(ValueError, match=r"in 2 row\(s\) \[2, 5\]: they mark unlabelled"):
        model.score(X, masked)  # a mask is never dropped: its values are not scored
    with pytest.raises(ValueError, match=r"y must be > -1"):
        model.score(X, np.where(np.arange(len(y)) == 3, -9999.0, y))


# ------------------------------------------------------------ finite outputs
def test_a_diverged_fit_raises_naming_lr_batch_size_and_samples():
    X = make_images(n=2, size=16)
    with pytest.raises(
        ValueError, match=r"diverged.*lr \(now 0.06\).*batch_size.*samples \(now 2\)"
    ):
        MoCoEmbedder(n_epochs=1, device="cpu", random_state=0).fit(X)


def test_engine_checks_the_weights_after_each_epoch():
    class Blowup(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))

        def forward(self, x, generator=None):
            # A finite loss whose one step sends the weight to -inf.
            return (self.w * 1e30).sum() + 0 * x.sum()

    X = np.ones((4, 2), dtype=np.float32)
    config = TrainConfig(n_epochs=1, batch_size=4, lr=1e10, warmup_epochs=0, device="cpu")
    trainer = Trainer(Blowup(), (X,), config)
    with pytest.raises(NonFiniteError, match="weights became NaN or infinite") as info:
        trainer.fit()
    assert isinstance(info.value, FloatingPointError) and isinstance(info.value, ValueError)


def test_non_finite_outputs_blame_the_model_or_the_input(fitted_regressor, monkeypatch):
    model, X = fitted_regressor
    import skphotoz.regressor

    real = skphotoz.regressor.predict
    monkeypatch.setattr(
        skphotoz.regressor, "predict", lambda *a, **k: real(*a, **k) * np.float32(np.inf)
    )
    with pytest.raises(ValueError, match="predict produced NaN or infinite.*input is at fault"):
        model.predict(X)
    monkeypatch.setattr(skphotoz.regressor, "predict", real)
    broken = PhotoZRegressor(**TINY).fit(X, np.linspace(0.05, 0.3, len(X)))
    with torch.no_grad():
        broken.model_.head.mlp[0].weight[0, 0] = np.nan
    with pytest.raises(ValueError, match=r"model is at fault.*refit"):
        broken.predict(X)


# ------------------------------------------------------------ threads
def test_concurrent_predictions_do_not_interfere():
    X, y = make_features(n=40)
    model = PhotoZRegressor(**TINY).fit(X, y)
    images = make_images(n=8)
    emb = MoCoEmbedder(**TINY).fit(images)
    expected_z, expected_e = model.predict(X), emb.transform(images)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(
                    (np.array_equal(model.predict(X), expected_z),
                     np.allclose(emb.transform(images), expected_e, rtol=1e-5, atol=1e-6))
                )  # fmt: skip
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(results) == 12 and all(a and b for a, b in results)
    first = next(model.model_.parameters())
    assert first.dtype == torch.float32 and first.device.type == "cpu"
    assert not any(m.training for m in model.model_.modules())


# ------------------------------------------------------------ devices
def test_any_torch_device_string_is_accepted_and_checked():
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cpu:0").type == "cpu"
    X, y = make_features()
    PhotoZRegressor(**{**TINY, "device": torch.device("cpu")}).fit(X, y)
    for device in ("mps", "cuda:7"):
        if device in ("mps",) and torch.backends.mps.is_available():
            continue
        with pytest.raises(ValueError, match=rf"device='{device}'.*not available.*'cpu'"):
            MoCoEmbedder(**{**TINY, "device": device}).fit(X)
    with pytest.raises(ValueError, match="device must be .*'gpu0'"):
        MoCoEmbedder(**{**TINY, "device": "gpu0"}).fit(X)


def test_regressor_hands_fill_and_the_archive_to_its_embedder(tmp_path):
    X = make_images(n=8)
    X[3, 0, 0, 0] = np.nan
    lazy = HDF5Images(write_h5_archive(tmp_path, X), crop=6)
    model = PhotoZRegressor(MoCoEmbedder(**TINY), **TINY, nan_policy="fill")
    model.fit(lazy, np.linspace(0.05, 0.3, 8))
    assert model.embedder_.nan_policy == "fill"
    assert model.embedder_.preprocessing_ == {"deredden": False, "crop": 6}
    assert np.isfinite(model.predict(lazy)).all()
    refit = PhotoZRegressor(FrozenEstimator(model.embedder_), **TINY, nan_policy="fill")
    with pytest.raises(ValueError, match=r"'crop': None.*'crop': 6"):
        refit.fit(
            HDF5Images(write_h5_archive(tmp_path, make_images(n=8, size=6), "b.h5")),
            np.full(8, 0.1),
        )


def test_junk_encoder_file_and_text_quantiles(tmp_path, fitted_regressor):
    path = tmp_path / "junk.joblib"
    path.write_bytes(b"not a pickle at all")
    X, y = make_features()
    with pytest.raises(ValueError, match=r"encoder=.*junk\.joblib.*could not be loaded"):
        PhotoZRegressor(str(path), **TINY).fit(X, y)
    model, X = fitted_regressor
    with pytest.raises(TypeError, match="quantiles must be numbers"):
        model.predict_quantiles(X, ["0.5"])


def test_masked_values_are_missing_values():
    X, y = make_features()
    masked = np.ma.masked_array(X, mask=np.zeros_like(X, dtype=bool))
    masked[4, 2] = np.ma.masked
    with pytest.raises(ValueError, match=r"rows \[4\]\) and nan_policy='raise'"):
        PhotoZRegressor(**TINY).fit(masked, y)
    z = PhotoZRegressor(**TINY, nan_policy="fill").fit(masked, y).predict(masked)
    assert np.isfinite(z).all()


def test_callbacks_without_the_hooks_are_refused():
    with pytest.raises(InvalidParameterError, match=r"callbacks must be .*lacks on_train_begin"):
        MoCoEmbedder(**TINY, callbacks=[object()]).fit(make_features()[0])


def test_encoder_that_is_not_a_file():
    X, y = make_features()
    with pytest.raises(FileNotFoundError, match=r"encoder='resnet18' is not a file.*backbone="):
        PhotoZRegressor("resnet18", **TINY).fit(X, y)


def test_photometry_as_text_is_refused():
    X, _ = make_features()
    with pytest.raises(TypeError, match="photometry must hold real numbers"):
        MoCoEmbedder(**TINY).fit(X, photometry=X.astype(str))


def test_images_for_a_vector_model_and_iterators():
    X, y = make_features(n=12, d=5)
    model = PhotoZRegressor(**TINY).fit(X, y)
    with pytest.raises(ValueError, match=r"samples of shape \(5, 8, 8\).*\(5,\) \(feature"):
        model.predict(make_images())
    with pytest.raises(TypeError, match="X must be an array of samples.*got a generator"):
        model.predict(row for row in X)


class _Unreadable:
    """A lazy image array that is never to be read (shape checks only)."""

    dtype = np.dtype(np.float32)

    def __init__(self, shape):
        self.shape, self.ndim = shape, len(shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        raise AssertionError("read")


@pytest.mark.parametrize("estimator", [MoCoEmbedder, PhotoZRegressor])
def test_a_batch_must_fit_in_2_gib(estimator):
    X = _Unreadable((40_000, 5, 64, 64))
    args = (X, np.full(40_000, 0.1)) if estimator is PhotoZRegressor else (X,)
    with pytest.raises(ValueError, match=r"batch_size=30000 .*2 GiB.*batch_size <= 26214"):
        estimator(**{**TINY, "batch_size": 30_000}).fit(*args)
