"""The main table a person reads in one look (nine columns), and the accuracy-speed Pareto
front it marks. Every other column stays in the details table, the CSV and the site.

Numbers: three significant figures (speed-ups two), relative errors in percent, ``exact``
for the exact solver's round-off, no ``±`` for deterministic rows. A speed-up's ``±``
combines the spread over seeds with the exact LP's own spread over its timing rounds, in
relative terms: ``sqrt(rel_seeds^2 + rel_lp^2)``, the LP's as its IQR over rounds / 1.349
(the IQR of a normal spread is 1.349 standard deviations)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from wbench.board.numbers import ROUND_OFF, significant

ERROR = "test.w2.rel_mae"
UNSEEN_ERROR = "unseen.w2.rel_mae"
SPEED = "speedup.one_core"
LP_SPREAD = "speedup.lp_relative_iqr"
IQR_PER_SD = 1.349
FRONT_MARK = "★"
FRONT_LEGEND = (f"{FRONT_MARK}: on the accuracy-speed Pareto front of its dataset (no other method has both a lower "
                "rel. MAE and a higher one-core speed-up on independent pairs; among methods with a speed figure).")
DETERMINISTIC = ("untrained", "solver")


def pareto_front(errors: Sequence[float], speeds: Sequence[float]) -> list[bool]:
    """Per point: whether no other point is at least as good on both (lower ``errors``, higher
    ``speeds``) and better on one. Points with a NaN are never on the front."""
    points = list(zip(errors, speeds, strict=True))
    finite = [math.isfinite(e) and math.isfinite(s) for e, s in points]
    out = []
    for i, (error, speed) in enumerate(points):
        dominated = any(
            finite[j] and e <= error and s >= speed and (e < error or s > speed)
            for j, (e, s) in enumerate(points) if j != i
        )
        out.append(finite[i] and not dominated)
    return out


def add_front(summary: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with a boolean ``front`` column: :func:`pareto_front` of each dataset's ``ok``
    rows by mean relative MAE and mean one-core speed-up (False without either)."""
    error, speed = f"{ERROR}.mean", f"{SPEED}.mean"
    front = pd.Series(False, index=summary.index)
    if error in summary.columns and speed in summary.columns:
        for _, block in summary[summary["status"] == "ok"].groupby("dataset"):
            marks = pareto_front(list(block[error].astype(float)), list(block[speed].astype(float)))
            front.loc[block.index] = marks
    return summary.assign(front=front.astype(bool))


def _deterministic(row: pd.Series, key: str) -> bool:
    mean, std = row.get(f"{key}.mean", math.nan), row.get(f"{key}.std", math.nan)
    tiny = math.isfinite(std) and math.isfinite(mean) and std <= 1e-9 * max(abs(mean), 1e-300)
    return row.get("class") in DETERMINISTIC or int(row.get("seeds", 0) or 0) < 2 or tiny


def error_text(row: pd.Series, key: str = ERROR) -> str:
    """The relative MAE ``key`` in percent, ``± sd`` for a seeded method, ``exact`` for round-off."""
    mean, std = row.get(f"{key}.mean", math.nan), row.get(f"{key}.std", math.nan)
    if math.isfinite(mean) and 0 <= mean < ROUND_OFF:
        return "exact"
    text = significant(mean * 100)
    if text and not _deterministic(row, key) and math.isfinite(std):
        text += f" ± {significant(std * 100, 2)}"
    return text


def speedup_text(row: pd.Series, key: str) -> str:
    """A speed-up to two figures, ``± sd`` combining the seeds' and the exact LP's spread."""
    mean, std = row.get(f"{key}.mean", math.nan), row.get(f"{key}.std", math.nan)
    if not math.isfinite(mean) or mean <= 0:
        return ""
    seeds = std / mean if math.isfinite(std) and not _deterministic(row, key) else 0.0
    lp = row.get(LP_SPREAD, math.nan)
    lp = lp / IQR_PER_SD if isinstance(lp, int | float) and math.isfinite(lp) else 0.0
    spread = mean * math.hypot(seeds, lp)
    return f"{significant(mean, 2)}x" + (f" ± {significant(spread, 2)}" if spread > 0 else "")


def class_text(row: pd.Series) -> str:
    """``"learned #1"``: the class, with the rank within it for a ranked row."""
    rank = row.get("rank")
    return str(row.get("class", "")) + ("" if rank is None or pd.isna(rank) else f" #{int(rank)}")


def _recall_key(summary: pd.DataFrame) -> str | None:
    keys = sorted(k.removesuffix(".mean") for k in summary.columns if k.startswith("retrieval.recall@") and k.endswith(".mean"))
    return keys[0] if keys else None


def _pairwise_key(summary: pd.DataFrame) -> str | None:
    keys = sorted(k.removesuffix(".mean") for k in summary.columns if k.startswith("speedup.pairwise") and k.endswith(".mean"))
    return keys[0] if keys else None


def main_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The nine-column table of a :func:`wbench.board.leaderboard.summarise` table (one row per
    row of it, with ``dataset`` kept for grouping): method, class (and rank), params, rel. MAE
    (%), Pearson, recall@k, the two one-core speed-ups (``★`` on the Pareto front), flags.
    When records hold errors on unseen measures, their rel. MAE (%) stands beside the test
    error in place of Pearson (still in the every-column table)."""
    summary = summary if "front" in summary.columns else add_front(summary)
    recall, pairwise = _recall_key(summary), _pairwise_key(summary)
    unseen = UNSEEN_ERROR if summary.get(f"{UNSEEN_ERROR}.mean", pd.Series(dtype=float)).notna().any() else None
    pairwise_header = "speed-up pairwise" + (f" n={pairwise.split('@')[1]}" if pairwise and "@" in pairwise else "")
    rows = []
    for _, r in summary.iterrows():
        params = r.get("n_parameters.mean", math.nan)
        speed = speedup_text(r, SPEED)
        rows.append({
            "dataset": r["dataset"], "method": r["method"], "class": class_text(r),
            "params": f"{int(params):,}" if isinstance(params, int | float) and math.isfinite(params) else "",
            "rel. MAE (%)": error_text(r),
            **({"unseen rel. MAE (%)": error_text(r, unseen)} if unseen else
               {"Pearson": significant(r.get("test.w2.pearson.mean", math.nan))}),
            f"recall@{recall.split('@')[1]}" if recall else "recall": significant(r.get(f"{recall}.mean", math.nan)) if recall else "",
            "speed-up indep.": (speed + f" {FRONT_MARK}") if bool(r.get("front")) else speed,
            pairwise_header: speedup_text(r, pairwise) if pairwise else "",
            "flags": str(r.get("flags", "") or ("" if r["status"] == "ok" else r["status"])),
        })
    return pd.DataFrame(rows)
