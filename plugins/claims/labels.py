"""Error against the number of exact labels: the table behind the leaderboard's label-efficiency
section (the ``mnist-labels`` suite: one dataset entry per number N of training pairs).

Rows are method x N (``budget.train_pairs`` of the records), with the test and unseen relative
MAE of W2 (mean ± sample sd over seeds, in %), the seconds the N exact labels took (N times the
exact LP's seconds per pair measured in the same run), and the cost to reach
:data:`TARGET_REL_MAE`: labels plus mean training seconds at the smallest N whose mean unseen
relative MAE is below it.
"""

from __future__ import annotations

import math

import pandas as pd

from wbench.sections import label_rows, lp_seconds_per_pair
from wbench.stats import natural_key
from wbench_plugins.claims.table import missing_row

__all__ = ["RG_CLAIM", "TARGET_REL_MAE", "TITLE", "label_rows", "labels_table", "lp_seconds_per_pair", "rg_claim"]

TITLE = "Error against the number of exact labels"

TARGET_REL_MAE = 0.05
"""X of the "cost to reach X %" column: a mean unseen relative MAE of W2 below 5 % (the
matched-budget MNIST run's DeepSets reaches 6.6 % at 2,000 steps and 3.3 % at 10,000; the
KENN models 2-3 %: the threshold separates the label counts that do and do not get there)."""

NOT_REACHED = "not reached"


def _mean_sd(values: pd.Series) -> str:
    """``12.34 ± 0.56`` (values as %, sample sd), or the mean alone for one seed; ``n/a`` for none."""
    values = pd.to_numeric(values, errors="coerce").dropna() * 100
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{values.iloc[0]:.2f}"
    return f"{values.mean():.2f} ± {values.std(ddof=1):.2f}"


def labels_table(frame: pd.DataFrame, target: float = TARGET_REL_MAE) -> pd.DataFrame:
    """The section's table from a records frame (one row per record); empty unless the records
    hold at least two numbers of training pairs.

    :param frame: :func:`wbench.board.leaderboard.records_frame` rows; uses ``method``,
        ``seed``, ``status``, ``milestone``, ``budget.train_pairs``, ``test.w2.rel_mae``,
        ``unseen.w2.rel_mae``, ``fit.wall_time_s`` (s) and the LP rate (pairs/s).
    :param target: the unseen relative MAE (a fraction) of the cost column.
    :returns: columns method, N, test rel. MAE (%), unseen rel. MAE (%), seeds, label LP
        seconds, training seconds and the cost to reach ``target`` (s).
    """
    rows = label_rows(frame)
    if rows.empty or rows["budget.train_pairs"].nunique() < 2:
        return pd.DataFrame()
    per_pair = lp_seconds_per_pair(frame)
    cost_header = f"cost to reach {target:.0%} unseen (s)"
    out = []
    for method, group in rows.groupby("method", sort=True):
        by_n = sorted(group.groupby("budget.train_pairs"), key=lambda item: int(item[0]))
        reached = None
        for n, cell in by_n:
            fit = pd.to_numeric(cell.get("fit.wall_time_s", pd.Series(dtype=float)), errors="coerce").mean()
            mean_unseen = float(pd.to_numeric(cell["unseen.w2.rel_mae"]).mean())
            labels_s = None if per_pair is None else int(n) * per_pair
            out.append({"method": method, "N": f"{int(n):,}", "test rel. MAE (%)": _mean_sd(cell["test.w2.rel_mae"]),
                        "unseen rel. MAE (%)": _mean_sd(cell["unseen.w2.rel_mae"]), "seeds": str(cell["seed"].nunique()),
                        "labels LP (s)": "n/a" if labels_s is None else f"{labels_s:,.1f}",
                        "training (s)": "n/a" if math.isnan(fit) else f"{fit:,.1f}", cost_header: ""})
            if reached is None and mean_unseen < target:
                reached = len(out) - 1
                both = None if labels_s is None or math.isnan(fit) else labels_s + fit
                out[reached][cost_header] = "n/a" if both is None else f"{both:,.1f}"
        if reached is None:
            out[len(out) - len(by_n)][cost_header] = NOT_REACHED
    return pd.DataFrame(out)


RG_CLAIM = "RG is more accurate than Wasserstein Wormhole with few exact labels"
RG_PAPER = "Nguyen, Nguyen & Ho (ICLR 2026): RG more accurate than Wormhole in low-data regimes"
ALPHA = 0.05
"""The board's significance rule: p < 0.05 (one comparison here, so no correction)."""


def rg_claim(frame: pd.DataFrame, metric: str = "unseen.w2.rel_mae") -> dict[str, str] | None:
    """The claims row of the RG paper, decided at the smallest N (``budget.train_pairs``) at
    which both ``rg`` and ``wormhole`` have records: a paired t-test over matched seeds of
    ``metric`` (two-sided p, the board's rule p < 0.05), "holds" when RG's mean is lower and
    significant, "does not hold" when higher and significant, else "not significant"; marked
    :data:`~wbench_plugins.claims.table.MISSING` when no N has both; None when the records hold
    no label-efficiency run (fewer than two N)."""
    from scipy import stats

    rows = label_rows(frame)
    if rows.empty or rows["budget.train_pairs"].nunique() < 2:
        return None
    names = rows["method_name"] if "method_name" in rows else rows["method"]
    rg, wormhole = rows[names == "rg"], rows[names == "wormhole"]
    base = {"claim": RG_CLAIM, "dataset": ", ".join(sorted(set(rows["dataset"]), key=natural_key)), "method": "rg",
            "paper_value": RG_PAPER, "budget": "", "note": ""}
    common = sorted(set(rg["budget.train_pairs"]) & set(wormhole["budget.train_pairs"]), key=int)
    if not common:
        return missing_row(base, "no rg and wormhole records at a common number of exact labels N")
    n = common[0]
    a = rg[rg["budget.train_pairs"] == n].groupby("seed")[metric].mean()
    b = wormhole[wormhole["budget.train_pairs"] == n].groupby("seed")[metric].mean()
    seeds = sorted(set(a.index) & set(b.index))
    ours = f"rg {a.mean():.2%}, wormhole {b.mean():.2%} ({metric}, N = {int(n):,})"
    decided_on = sorted(set(rg.loc[rg["budget.train_pairs"] == n, "dataset"]), key=natural_key)
    base = {**base, "dataset": ", ".join(decided_on), "our_value": ours,
            "budget": f"{int(n):,} exact training pairs, the smallest N both reach"}
    if len(seeds) < 2:
        return {**base, "verdict": "not measured", "note": f"{len(seeds)} matched seed(s): a test needs 2"}
    p = float(stats.ttest_rel(a[seeds], b[seeds]).pvalue)
    lower = a[seeds].mean() < b[seeds].mean()
    verdict = ("holds" if lower else "does not hold") if p < ALPHA else "not significant"
    note = f"paired t-test over {len(seeds)} seeds, two-sided p={p:.3g} (significant when p < {ALPHA})"
    return {**base, "verdict": verdict, "note": note}
