"""The board's figures: speed against accuracy, learning curves, and error against the number of
exact labels (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wbench.board.main_table import pareto_front
from wbench.run.cell_plots import _pyplot, _save

ERROR_FLOOR = 1e-6
"""Relative errors below this (the exact LP's round-off) are drawn on a dotted line at it: a log axis has no 0."""

_MARKERS = "osD^vP<>Xph*"
_LEGEND_MARGIN = (0, 0, 0.84, 1)
"""The speed against accuracy panels' share of the figure; the legend takes the rest on the right."""


SPEED_AXES = ("independent pairs per second (both sides per pair)", "pairwise pairs per second (n x m block)")
"""The x-axis titles of the two speed panels unless the caller names its columns."""


def speed_accuracy_figure(
    labels: Sequence[str], independent: Sequence[float], pairwise: Sequence[float], rel_error: Sequence[float], *,
    title: str = "", x_labels: tuple[str, str] = SPEED_AXES,
) -> Any:
    """Two panels sharing the error axis: independent and pairwise pairs/s (log) against relative
    error (log), one marker per method and setting, named in one legend. Points with no finite
    positive throughput are left out; errors below :data:`ERROR_FLOOR` are drawn at it.

    :returns: the matplotlib figure, not yet laid out (the caller lays it out within
        :data:`_LEGEND_MARGIN`, saves and closes it).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10.5, 4.5), sharey=True)
    colours = plt.get_cmap("tab20")
    for i, label in enumerate(labels):
        y = rel_error[i]
        if not np.isfinite(y):
            continue
        style = {"marker": _MARKERS[i % len(_MARKERS)], "color": colours(i % 20), "s": 36}
        named = False  # one legend entry per method, from whichever panel draws it first
        for ax, speeds in zip(axes, (independent, pairwise), strict=True):
            x = speeds[i]
            if np.isfinite(x) and x > 0:
                ax.scatter([x], [max(y, ERROR_FLOOR)], label=None if named else label, **style)
                named = True
    _draw_front(axes[0], independent, rel_error)
    floored = any(np.isfinite(y) and y < ERROR_FLOOR and (np.isfinite(a) and a > 0 or np.isfinite(b) and b > 0)
                  for y, a, b in zip(rel_error, independent, pairwise, strict=True))
    for ax, mode in zip(axes, x_labels, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        if floored:  # only then: the floor line would otherwise pin the axis far below every method
            ax.axhline(ERROR_FLOOR, color="grey", linestyle=":", linewidth=0.8)
        ax.set_xlabel(mode)
    axes[0].set_ylabel("relative MAE of W2 on test pairs")
    fig.suptitle(f"{title}\nerrors below {ERROR_FLOOR:g} are drawn on the dotted line" if floored else title, fontsize=9)
    fig.legend(loc="center right", fontsize=7, frameon=False)
    return fig


def _draw_front(ax: Any, speeds: Sequence[float], rel_error: Sequence[float]) -> None:
    """The accuracy-speed Pareto front (:func:`wbench.board.main_table.pareto_front`) as a
    dashed line through its points, in order of speed."""
    positive = [x if np.isfinite(x) and x > 0 else np.nan for x in speeds]
    on = [i for i, front in enumerate(pareto_front(list(rel_error), positive)) if front]
    if len(on) < 2:
        return
    on.sort(key=lambda i: speeds[i])
    ax.plot([speeds[i] for i in on], [max(rel_error[i], ERROR_FLOOR) for i in on], linestyle="--", color="#444444",
            linewidth=1, zorder=0, label="Pareto front (lower error, faster)")


def plot_speed_accuracy(
    labels: Sequence[str], independent: Sequence[float], pairwise: Sequence[float], rel_error: Sequence[float], path: Path,
    *, title: str = "", x_labels: tuple[str, str] = SPEED_AXES,
) -> Path:
    """Write :func:`speed_accuracy_figure` to ``path`` (PNG, 120 dpi)."""
    fig = speed_accuracy_figure(labels, independent, pairwise, rel_error, title=title, x_labels=x_labels)
    return _save(_pyplot(), fig, path, rect=_LEGEND_MARGIN)


def plot_learning_curves(
    curves: dict[str, dict[str, list[float]]], references: dict[str, float], path: Path, *, metric: str, title: str = "",
    note: str = "",
) -> Path:
    """``metric`` against training steps (left) and training seconds (right), log-log.

    :param curves: method -> ``{"steps", "seconds", "mean", "min", "max"}`` per milestone
        (the mean over seeds and its min-max band).
    :param references: untrained method -> its value, drawn as a horizontal line.
    :param note: a line under the panels (e.g. the references left off the axis).
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (method, c) in enumerate(sorted(curves.items())):
        colour = colours[k % len(colours)]
        for ax, x in zip(axes, ("steps", "seconds"), strict=True):
            ax.plot(c[x], c["mean"], marker="o", color=colour, label=method)
            ax.fill_between(c[x], c["min"], c["max"], color=colour, alpha=0.2, linewidth=0)
    for k, (method, value) in enumerate(sorted(references.items())):
        for ax in axes:
            ax.axhline(value, color="0.3", linestyle=("--", ":", "-.", (0, (8, 2, 1, 2, 1, 2)))[k % 4], linewidth=1,
                       label=f"{method} (untrained)")
    axes[0].set_xlabel("training steps")
    axes[1].set_xlabel("training wall time (s)")
    axes[0].set_ylabel(metric)
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
    # beside the panels, not over them: a curve may end anywhere in either panel
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="center left", bbox_to_anchor=(0.8, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    if note:
        fig.text(0.01, 0.01, note, fontsize=8, color="0.3")
    return _save(plt, fig, path, rect=(0, 0.04 if note else 0, 0.8, 1))


def plot_label_curves(
    curves: dict[str, dict[str, list[float]]], path: Path, *, metric: str, lp_seconds_per_label: float | None,
    title: str = "",
) -> Path:
    """``metric`` (a fraction, drawn in %) against the number N of exact training pairs, log-log,
    one line per method with its min-max band over seeds; with ``lp_seconds_per_label`` a top
    axis gives the exact LP's seconds for those N labels (one core).

    :param curves: method -> ``{"N", "mean", "min", "max"}``, N increasing.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 4.6))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (method, c) in enumerate(sorted(curves.items())):
        colour = colours[k % len(colours)]
        percent = {key: [100 * v for v in c[key]] for key in ("mean", "min", "max")}
        ax.plot(c["N"], percent["mean"], marker=_MARKERS[k % len(_MARKERS)], color=colour, label=method)
        ax.fill_between(c["N"], percent["min"], percent["max"], color=colour, alpha=0.2, linewidth=0)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("exact training pairs N (labels)")
    ax.set_ylabel(f"{metric} (%)")
    ax.grid(True, which="both", alpha=0.3)
    if lp_seconds_per_label:
        top = ax.secondary_xaxis("top", functions=(lambda n: n * lp_seconds_per_label, lambda s: s / lp_seconds_per_label))
        top.set_xlabel("exact LP seconds for the N labels (one core)")
    fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="center left", bbox_to_anchor=(0.78, 0.5), frameon=False)
    if title:
        fig.suptitle(title)
    return _save(plt, fig, path, rect=(0, 0, 0.78, 1))
