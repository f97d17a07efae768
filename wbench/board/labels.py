"""Error against the number of exact labels: the records of a label-efficiency run (one dataset
entry per number N of distinct exact training pairs, ``budget.train_pairs``) as curves per
method, and the exact LP's seconds per label that price N labels.

The records-side functions live in :mod:`wbench.sections` (public: the built-in claims plugin's
table reads them too); this module draws the board's chart of it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from wbench.sections import LABEL_METRICS, label_curves, label_rows, lp_seconds_per_pair

__all__ = ["LABEL_METRICS", "label_curves", "label_rows", "lp_seconds_per_pair", "write_label_curve_plot"]

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
