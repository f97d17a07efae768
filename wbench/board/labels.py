"""Error against the number of exact labels: the records of a label-efficiency run (one dataset
entry per number N of distinct exact training pairs, ``budget.train_pairs``) as curves per
method, and the exact LP's seconds per label that price N labels.

The board's chart of it (:func:`wbench.board.plots.plot_label_curves`, the site's run page)
and the built-in claims plugin's table (``wbench_plugins.claims.labels``) read these.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

LP_RATE_COLUMNS = ("speedup.lp_pairs_per_s",)
"""Where a run's records hold the exact LP's pairs/s on one core, in order of preference: the
LP timed in the same interleaved rounds as each method."""

LABEL_METRICS = ("unseen.w2.rel_mae", "test.w2.rel_mae")
"""The errors drawn against N: on unseen images first (what a user meets), then on test pairs."""


def label_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``ok`` records of trained methods that state ``budget.train_pairs`` and have unseen
    and test errors, at the last milestone of their (dataset, method); empty otherwise.

    :param frame: :func:`wbench.board.leaderboard.records_frame` rows, one per record.
    """
    needed = {"budget.train_pairs", *LABEL_METRICS}
    if not needed <= set(frame.columns):
        return frame.iloc[0:0]
    rows = frame[(frame["status"] == "ok") & frame["budget.train_pairs"].notna() & frame["unseen.w2.rel_mae"].notna()]
    if "trainable" in rows:  # a solver's error does not depend on the labels
        rows = rows[rows["trainable"].fillna(False).astype(bool)]
    if "milestone" in rows and rows["milestone"].notna().any():
        last = rows.groupby(["dataset", "method"])["milestone"].transform("max")
        rows = rows[rows["milestone"] == last]
    return rows


def lp_seconds_per_pair(frame: pd.DataFrame) -> float | None:
    """Seconds per pair of the exact LP on one core: 1 / the median of the first of
    :data:`LP_RATE_COLUMNS` that some ``ok`` record holds (None: no record timed it)."""
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    for column in LP_RATE_COLUMNS:
        if column in ok:
            rates = pd.to_numeric(ok[column], errors="coerce").dropna()
            rates = rates[rates > 0]
            if len(rates):
                return 1.0 / float(np.median(rates))
    return None


def label_curves(frame: pd.DataFrame, metric: str = LABEL_METRICS[0]) -> pd.DataFrame:
    """One row per (method, N) of a label-efficiency run: ``metric`` (a fraction) as mean, min
    and max over seeds, and the number of seeds; empty unless the records hold at least two N.

    :returns: columns method, N, mean, min, max, seeds; sorted by method and N.
    """
    rows = label_rows(frame)
    if rows.empty or rows["budget.train_pairs"].nunique() < 2:
        return pd.DataFrame(columns=["method", "N", "mean", "min", "max", "seeds"])
    values = rows.assign(value=pd.to_numeric(rows[metric], errors="coerce"), N=rows["budget.train_pairs"].astype(int))
    out = values.groupby(["method", "N"])["value"].agg(["mean", "min", "max"])
    out["seeds"] = values.groupby(["method", "N"])["seed"].nunique()
    return out.reset_index().sort_values(["method", "N"], ignore_index=True)


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
