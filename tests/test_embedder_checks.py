"""scikit-learn's estimator checks on a tiny MoCoEmbedder (2-D input -> MLP backbone)."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skphotoz import MoCoEmbedder


def _tiny():
    return MoCoEmbedder(n_epochs=1, batch_size=8, queue_size=16, random_state=0, device="cpu")


@parametrize_with_checks([_tiny()], expected_failed_checks=lambda est: {})
def test_sklearn_compatible(estimator, check):
    check(estimator)
