"""Figures a cell writes beside its records: loss curves, and predicted against true W2.

matplotlib is imported lazily with the Agg backend (no screen needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt: Any, fig: Any, path: Path, *, rect: tuple[float, float, float, float] = (0, 0, 1, 1)) -> Path:
    """Lay out within ``rect`` (figure fractions: left, bottom, right, top), write ``path``
    (creating its folder) at 120 dpi, and free the figure."""
    fig.tight_layout(rect=rect)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_loss_curves(train_loss: Sequence[float], val_mse: Sequence[float], path: Path, *, title: str = "",
                     epochs: Sequence[int] | None = None) -> Path:
    """Training loss and validation MSE (W2, ground-cost units squared) per validation, log
    scale, against ``epochs`` (the epochs at each validation; None: 1, 2, 3 ...)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(epochs or np.arange(1, len(train_loss) + 1), train_loss, label="train loss")
    ax.plot(epochs or np.arange(1, len(val_mse) + 1), val_mse, label="validation MSE (W2)")
    ax.set_xlabel("epoch")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.legend()
    return _save(plt, fig, path)


def plot_predicted_vs_true(predicted_w2: np.ndarray, true_w2: np.ndarray, path: Path, *, unit: str = "pixel", title: str = "") -> Path:
    """Scatter of predicted against exact W2 ``(P,)`` on the test pairs, with the identity line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    keep = np.isfinite(predicted_w2)
    ax.scatter(true_w2[keep], predicted_w2[keep], s=3, alpha=0.4)
    hi = float(max(np.max(true_w2, initial=0.0), np.max(predicted_w2[keep], initial=0.0)))
    ax.plot([0, hi], [0, hi], color="black", linewidth=0.8)
    ax.set_xlabel(f"exact W2 ({unit})")
    ax.set_ylabel(f"predicted W2 ({unit})")
    ax.set_title(title, fontsize=9)
    return _save(plt, fig, path)
