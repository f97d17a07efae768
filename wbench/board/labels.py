"""The board's chart of a label-efficiency run (one dataset entry per number N of distinct exact
training pairs, ``budget.train_pairs``): error against N. The records side (:func:`label_curves`,
:func:`lp_seconds_per_pair`) is public in :mod:`wbench.sections`, where the built-in claims
plugin's table reads it too.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wbench.sections import LABEL_METRICS, label_curves, lp_seconds_per_pair


def write_label_curve_plot(frame: pd.DataFrame, out_dir: Path, *, metric: str = LABEL_METRICS[0]) -> list[Path]:
    """``out_dir/error-vs-labels.png`` (:func:`wbench.board.plots.plot_label_curves`) when the
    records hold a label-efficiency run (at least two N), else nothing.

    :returns: the PNG paths written (none or one).
    """
    from wbench.board.plots import plot_label_curves

    curves = label_curves(frame, metric)
    if curves.empty:
        return []
    per_method = {method: {k: list(points[k]) for k in ("N", "mean", "min", "max")}
                  for method, points in curves.groupby("method", sort=True)}
    return [plot_label_curves(per_method, out_dir / "error-vs-labels.png", metric=metric,
                              lp_seconds_per_label=lp_seconds_per_pair(frame),
                              title=f"{metric} against the number of exact labels (mean over seeds, min-max band)")]
