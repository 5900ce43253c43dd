"""TrainingHistoryDisplay: loss per epoch of a fitted network."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .._validation import StrOptions, finite, validated
from ._common import axes, pyplot, style


def _parse_history(history):
    """Epochs (1-based), losses and validation losses (NaN where missing; None if none is)."""
    if isinstance(history, Mapping | str | bytes) or not hasattr(history, "__iter__"):
        raise ValueError(
            f"history must be a list of per-epoch dicts (an estimator's history_); got a "
            f"{type(history).__name__}."
        )
    history = list(history)
    if not history:
        raise ValueError("history must hold at least one epoch; got an empty list.")
    for i, entry in enumerate(history):
        if not isinstance(entry, Mapping):
            raise ValueError(
                f"history must be a list of per-epoch dicts; entry {i} is a {type(entry).__name__}."
            )
        if "loss" not in entry:
            raise ValueError(
                f"history entries must have a 'loss' key; entry {i} has keys {sorted(entry)}."
            )
    epochs = np.array([int(entry.get("epoch", i)) + 1 for i, entry in enumerate(history)])
    loss = np.array([float(entry["loss"]) for entry in history])
    validation_loss = None
    if any("validation_loss" in entry for entry in history):
        validation_loss = np.array(
            [float(entry.get("validation_loss", np.nan)) for entry in history]
        )
    return epochs, loss, validation_loss


class TrainingHistoryDisplay:
    """Training loss per epoch of a fitted network, with the validation loss when there is one.

    Create it with :meth:`from_estimator` (a fitted :class:`~skphotoz.PhotoZRegressor` or
    :class:`~skphotoz.MoCoEmbedder`) or :meth:`from_history` (its ``history_``). For
    :class:`~skphotoz.MoCoEmbedder`, :meth:`from_estimator` also draws the chance level of the
    InfoNCE loss, ``ln(1 + queue_size)``: the loss of an encoder that cannot tell a galaxy's
    own key from the queue's.

    Parameters
    ----------
    epochs : ndarray of shape (n_epochs,)
        Epoch numbers, from 1.
    loss : ndarray of shape (n_epochs,)
        Training loss of each epoch.
    validation_loss : ndarray of shape (n_epochs,), optional
        Validation loss of each epoch (NaN where none was computed).
    chance_level : float, optional
        Height of a horizontal reference line.
    chance_label : str, optional
        Legend label of that line; by default ``"chance level = <value>"``.
    name : str, optional
        Prefix of the legend labels of the losses.

    Attributes
    ----------
    loss_line_ : matplotlib.lines.Line2D
    validation_line_ : matplotlib.lines.Line2D or None
    chance_line_ : matplotlib.lines.Line2D or None
    ax_ : matplotlib.axes.Axes
    figure_ : matplotlib.figure.Figure

    Examples
    --------
    >>> from skphotoz.plotting import TrainingHistoryDisplay
    >>> history = [{"epoch": 0, "loss": 2.1}, {"epoch": 1, "loss": 1.7}]
    >>> display = TrainingHistoryDisplay.from_history(history, chance_level=2.5)
    >>> display.epochs.tolist(), display.validation_loss is None
    ([1, 2], True)
    """

    def __init__(
        self, *, epochs, loss, validation_loss=None, chance_level=None, chance_label=None, name=None
    ):
        self.epochs = epochs
        self.loss = loss
        self.validation_loss = validation_loss
        self.chance_level = chance_level
        self.chance_label = chance_label
        self.name = name

    def plot(self, ax=None, *, name=None, loss_kw=None, validation_kw=None, chance_kw=None):
        """Draw the stored losses.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Axes to draw on; by default those of a new figure.
        name : str, optional
            Replaces ``self.name`` in the legend.
        loss_kw, validation_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.plot` for the training and validation
            losses.
        chance_kw : dict, optional
            Passed to :meth:`~matplotlib.axes.Axes.axhline` for the chance level.

        Returns
        -------
        TrainingHistoryDisplay
        """
        from matplotlib.lines import Line2D
        from matplotlib.ticker import MaxNLocator

        ax = axes(ax, f"{type(self).__name__}.plot")
        name = self.name if name is None else name
        prefix = f"{name}: " if name else ""
        loss_kw = style(
            {"marker": "o", "markersize": 3, "label": f"{prefix}training loss"}, loss_kw, Line2D
        )
        (self.loss_line_,) = ax.plot(self.epochs, self.loss, **loss_kw)
        self.validation_line_ = None
        if self.validation_loss is not None:
            validation_kw = style(
                {
                    "marker": "s",
                    "markersize": 3,
                    "linestyle": "--",
                    "label": f"{prefix}validation loss",
                },
                validation_kw,
                Line2D,
            )
            (self.validation_line_,) = ax.plot(self.epochs, self.validation_loss, **validation_kw)
        self.chance_line_ = None
        if self.chance_level is not None:
            label = self.chance_label
            if label is None:
                label = f"chance level = {self.chance_level:.3f}"
            chance_kw = style(
                {"color": "0.4", "linestyle": ":", "linewidth": 1.2, "label": label},
                chance_kw,
                Line2D,
            )
            self.chance_line_ = ax.axhline(self.chance_level, **chance_kw)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="epoch", ylabel="loss")
        ax.legend(fontsize="small")
        self.ax_ = ax
        self.figure_ = ax.figure
        return self

    @classmethod
    @validated({"chance_level": [None, finite(None)], "chance_label": [None, str]})
    def from_history(
        cls,
        history,
        *,
        chance_level=None,
        chance_label=None,
        name=None,
        ax=None,
        loss_kw=None,
        validation_kw=None,
        chance_kw=None,
    ):
        """Draw a network's ``history_``.

        Parameters
        ----------
        history : list of dict
            One dict per epoch with a ``"loss"``, and optionally ``"epoch"`` (0-based; the
            position in the list otherwise) and ``"validation_loss"``; other keys are ignored.
        chance_level : float, optional
            Draw a horizontal line at this loss.
        chance_label : str, optional
            Legend label of that line.
        name : str, optional
            Prefix of the legend labels of the losses.
        ax, loss_kw, validation_kw, chance_kw
            See :meth:`plot`.

        Returns
        -------
        TrainingHistoryDisplay
        """
        pyplot(f"{cls.__name__}.from_history")
        epochs, loss, validation_loss = _parse_history(history)
        display = cls(
            epochs=epochs,
            loss=loss,
            validation_loss=validation_loss,
            chance_level=None if chance_level is None else float(chance_level),
            chance_label=chance_label,
            name=name,
        )
        return display.plot(ax, loss_kw=loss_kw, validation_kw=validation_kw, chance_kw=chance_kw)

    @classmethod
    @validated({"chance_level": [StrOptions({"auto"}), None, finite(None)]})
    def from_estimator(
        cls,
        estimator,
        *,
        chance_level="auto",
        name=None,
        ax=None,
        loss_kw=None,
        validation_kw=None,
        chance_kw=None,
    ):
        """Draw the ``history_`` of a fitted network.

        Parameters
        ----------
        estimator : fitted estimator with ``history_``
            E.g. a fitted :class:`~skphotoz.PhotoZRegressor` or :class:`~skphotoz.MoCoEmbedder`.
        chance_level : "auto", float or None, default="auto"
            "auto" draws the InfoNCE chance level ``ln(1 + queue_size)`` for a
            :class:`~skphotoz.MoCoEmbedder` (read from ``moco_.queue``) and no line for other
            estimators; a float draws a line there; None draws none. The first epoch of MoCo
            contrasts each galaxy against a queue of random keys, which are easy to tell
            from its own, so its loss starts below the chance level.
        name : str, optional
            Prefix of the legend labels; by default the estimator's class name.
        ax, loss_kw, validation_kw, chance_kw
            See :meth:`plot`.

        Returns
        -------
        TrainingHistoryDisplay
        """
        pyplot(f"{cls.__name__}.from_estimator")
        check_is_fitted(estimator, "history_")
        chance_label = None
        if isinstance(chance_level, str):
            chance_level = None
            queue = getattr(getattr(estimator, "moco_", None), "queue", None)
            if queue is not None:
                size = int(queue.shape[0])
                chance_level = float(np.log1p(size))
                chance_label = (
                    f"chance level ln(1 + {size}) = {chance_level:.3f}\n"
                    "(epoch 1 contrasts against a queue of\n"
                    "random keys, so its loss starts low)"
                )
        return cls.from_history(
            estimator.history_,
            chance_level=chance_level,
            chance_label=chance_label,
            name=type(estimator).__name__ if name is None else name,
            ax=ax,
            loss_kw=loss_kw,
            validation_kw=validation_kw,
            chance_kw=chance_kw,
        )
