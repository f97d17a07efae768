"""Plots in the style of the KENN paper's Figure 1 (matplotlib, Agg, imported lazily).

* :func:`plot_layer_weights` -- DeepKENN's weight per layer (bottom left).
* :func:`plot_time_weights` -- ODE-KENN's weight per time point (bottom right).

The generic panels (loss curves, predicted against exact W2) are
:mod:`wbench.board.plots`'s, written by the runner for every surrogate.

Each function writes one PNG and returns its path. They use matplotlib's object API
(``matplotlib.figure.Figure``), so no global backend is switched and no window opens.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def _figure(width: float = 5.0, height: float = 3.6) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def plot_layer_weights(
    layers: Sequence[str], start: Sequence[float], final: Sequence[float], path: str | Path, *, title: str = "DeepKENN layer weights"
) -> Path:
    """Bars of the starting and final softplus weight of each layer, on a log scale."""
    fig = _figure()
    ax = fig.add_subplot()
    x = np.arange(len(layers))
    ax.bar(x - 0.2, start, width=0.4, label="start", color="0.7")
    ax.bar(x + 0.2, final, width=0.4, label="final", color="C0")
    ax.set_xticks(x, list(layers))
    ax.set_yscale("log")
    ax.set_ylabel("w = softplus(u)")
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)


def plot_time_weights(
    t: Sequence[float], start: Sequence[float], final: Sequence[float], path: str | Path, *, title: str = "ODE-KENN time weights"
) -> Path:
    """The starting and final softplus weight at each time point of the trajectory."""
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(t, start, "o--", color="0.6", label="start")
    ax.plot(t, final, "o-", color="C0", label="final")
    ax.set_xlabel("t")
    ax.set_ylabel("w(t) = softplus(u)")
    ax.set_ylim(0, 1.15 * max(max(start), max(final)))
    ax.set_title(title)
    ax.legend()
    return _save(fig, path)
