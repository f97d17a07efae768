"""Accuracy against training budget: the leaderboard at one milestone, learning-curve
summaries and plots, and the "budget at which a method first beats a reference" section.

Records of a run with budget milestones carry their milestone as the length of their budget
(``budget.steps``, or ``budget.epochs`` when the budget counts epochs); methods with nothing
to fit (solvers, untrained embeddings) are evaluated once and stand at every milestone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pandas as pd

from wbench.errors import WbenchError
from wbench.sections import Section
from wbench.stats import by_dataset
from wbench.util.filenames import safe_stem

AT_MILESTONE = re.compile(r" \(at [\d,]+\)$")
"""The suffix :func:`select_milestone` gives a method shown at an earlier milestone of its own."""


def milestone_suffix(milestone: int) -> str:
    """``" (at 10,000)"``: what :func:`select_milestone` appends to such a method's name."""
    return f" (at {int(milestone):,})"


def without_milestone_suffix(name: str) -> str:
    """``name`` without a :func:`milestone_suffix` (the method's name on its learning curve)."""
    return AT_MILESTONE.sub("", name)


DEFAULT_THRESHOLDS = (0.05, 0.02)
"""Relative-error levels of the "reaches" columns (fractions: 5 % and 2 %)."""


class UnknownMilestoneError(WbenchError, ValueError):
    """A leaderboard milestone that no record of the run has."""


def milestone_values(df: pd.DataFrame) -> list[int]:
    """The distinct milestones of the records frame's learned methods, increasing."""
    if "milestone" not in df.columns or df.empty:
        return []
    staged = df[_staged(df)]
    rows = staged if len(staged) else df
    return sorted({int(v) for v in rows["milestone"].dropna()})


def _staged(df: pd.DataFrame) -> pd.Series:
    """Per row: whether its method was trained to a milestone, so that it belongs at a
    milestone only up to it.

    That is every learned method (``trainable``), also one with a single milestone (its own
    shorter budget, or a run still in progress): a 400-step record must not stand in the
    table at 20,000 steps unnamed. Records without ``trainable`` (older runs): the methods
    with records at several milestones.
    """
    if "milestone" not in df.columns:
        return pd.Series(False, index=df.index)
    if "trainable" in df.columns and df["trainable"].notna().any():
        return (df["trainable"] == True) & df["milestone"].notna()  # noqa: E712 (NaN: unknown, not learned)
    counts = df.groupby(["dataset", "method"])["milestone"].transform("nunique")
    return counts > 1


def select_milestone(df: pd.DataFrame, milestone: int | None = None) -> tuple[pd.DataFrame, int | None]:
    """The records frame at one milestone (default: the last) and that milestone.

    Methods evaluated at one milestone only (nothing to fit, or a run without milestones)
    are kept whatever the milestone; a method whose own milestones stop before it (a
    per-method budget) shows its last one up to it, named ``"<method> (at <milestone>)"``. A frame without several milestones is returned as it
    is, with None (unless ``milestone`` is asked for).

    :raises UnknownMilestoneError: ``milestone`` is not one of the records' milestones.
    """
    values = milestone_values(df)
    if milestone is None:
        if len(values) <= 1:
            return df, None
        milestone = values[-1]
    if milestone not in values:
        raise UnknownMilestoneError(
            f"no records at milestone {milestone}; the records have milestones {values or 'none'}"
        )
    staged = _staged(df)
    parts = [df[~staged]]
    for _, group in df[staged].groupby(["dataset", "method"], sort=False):
        reached = [m for m in group["milestone"].dropna().unique() if m <= milestone]
        if not reached:
            continue
        own = max(reached)
        rows = group[group["milestone"] == own]
        if own != milestone:  # a method whose own milestones stop earlier: its last one, said in its name
            rows = rows.assign(method=rows["method"] + milestone_suffix(own))
        parts.append(rows)
    return pd.concat(parts).sort_index().reset_index(drop=True), milestone


def curve_table(df: pd.DataFrame, primary: str) -> pd.DataFrame:
    """Per dataset, learned method and milestone: ``primary`` over the ``ok`` seeds (mean,
    std, min, max, count) and the mean training steps, pairs seen and training seconds.

    Only learned methods appear (see :func:`_staged`); the frame needs ``milestone``. A run
    with a single milestone has no curves (an empty frame): one point per method is no
    budget to read anything off, and its leaderboard and site stay as without milestones.
    """
    columns = ["dataset", "method", "milestone", "mean", "std", "min", "max", "seeds", "steps", "pairs_seen", "seconds"]
    if "milestone" not in df.columns or primary not in df.columns or len(milestone_values(df)) < 2:
        return pd.DataFrame(columns=columns)
    ok = df[(df["status"] == "ok") & _staged(df)]
    rows = []
    for (dataset, method, milestone), group in ok.groupby(["dataset", "method", "milestone"], sort=True):
        values = pd.to_numeric(group[primary], errors="coerce").dropna()
        rows.append({
            "dataset": dataset, "method": method, "milestone": int(milestone),
            "mean": float(values.mean()) if len(values) else math.nan,
            "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
            "min": float(values.min()) if len(values) else math.nan,
            "max": float(values.max()) if len(values) else math.nan,
            "seeds": len(values),
            "steps": _mean(group, "fit.steps"),
            "pairs_seen": _mean(group, "fit.pairs_seen"),
            "seconds": _mean(group, "fit.wall_time_s"),
        })
    return pd.DataFrame(rows, columns=columns)


def references(df: pd.DataFrame, primary: str) -> pd.DataFrame:
    """The untrained references (methods evaluated once, with nothing to fit) per dataset:
    ``dataset``, ``method``, ``value`` (mean of ``primary`` over their ``ok`` records)."""
    if primary not in df.columns or "trainable" not in df.columns:
        return pd.DataFrame(columns=["dataset", "method", "value"])
    untrained = df[(df["status"] == "ok") & (df["trainable"] == False)]  # noqa: E712 (NaN: unknown, not untrained)
    rows = [
        {"dataset": d, "method": m, "value": float(pd.to_numeric(g[primary], errors="coerce").mean())}
        for (d, m), g in untrained.groupby(["dataset", "method"], sort=True)
    ]
    return pd.DataFrame(rows, columns=["dataset", "method", "value"])


REFERENCE_DECADES = 1.0
"""How far (decades) beyond the learning curves' own range a reference line is still drawn."""


def references_on_axis(
    references: Mapping[str, float], curve_values: Iterable[float]
) -> tuple[dict[str, float], dict[str, float]]:
    """Split untrained references into those drawn as lines and those left off the axis.

    A reference (method -> its value of the primary metric) is drawn when it lies within
    :data:`REFERENCE_DECADES` decades of the range of ``curve_values`` (the learned curves' means and
    seed extremes). One far below, such as the exact LP's round-off (1e-16 rel. MAE) under
    curves at 1e-2, would stretch a log axis over 14 decades and flatten every curve; it is
    named beside the chart with its value instead.

    :returns: ``(drawn, off_axis)``, each method -> value; non-positive or non-finite
        values are in neither (no place on a log axis).
    """
    values = [v for v in curve_values if math.isfinite(v) and v > 0]
    drawn: dict[str, float] = {}
    off_axis: dict[str, float] = {}
    margin = 10**REFERENCE_DECADES
    for method, value in references.items():
        if not (math.isfinite(value) and value > 0):
            continue
        inside = not values or min(values) / margin <= value <= max(values) * margin
        (drawn if inside else off_axis)[method] = value
    return drawn, off_axis


def off_axis_note(off_axis: Mapping[str, float]) -> str:
    """``"Off the axis (more than 1 decade from the curves): exact-lp 1.28e-16."``, or ""."""
    if not off_axis:
        return ""
    names = ", ".join(f"{method} {value:.3g}" for method, value in sorted(off_axis.items()))
    return f"Off the axis (more than {REFERENCE_DECADES:g} decade from the curves): {names}."


def _mean(group: pd.DataFrame, column: str) -> float:
    if column not in group.columns:
        return math.nan
    values = pd.to_numeric(group[column], errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan


def _budget_text(row: pd.Series, unit: str) -> str:
    text = f"{row['milestone']:,} {unit}"
    details = []
    if not math.isnan(row["pairs_seen"]):
        details.append(f"{row['pairs_seen']:,.0f} pairs")
    if not math.isnan(row["seconds"]):
        details.append(f"{row['seconds']:,.0f} s")
    return text + (f" ({', '.join(details)})" if details else "")


def budget_section(
    df: pd.DataFrame, primary: str, *, thresholds: Sequence[float] = DEFAULT_THRESHOLDS, unit: str = "steps"
) -> list[Section]:
    """"Budget at which each method first beats each untrained reference / reaches X %":
    one section per dataset with learning curves.

    A learned method beats a reference at the first milestone whose mean ``primary`` over
    seeds is below the reference's; it reaches X at the first milestone whose mean is at or
    below X (the "reaches" columns only for a relative-error primary, X a fraction).
    """
    curves = curve_table(df, primary)
    if curves.empty:
        return []
    refs = references(df, primary)
    relative = primary.endswith("rel_mae")
    sections = []
    for dataset, block in by_dataset(curves):
        ref_block = refs[refs["dataset"] == dataset]
        rows = []
        for method, points in block.groupby("method", sort=True):
            points = points.sort_values("milestone")
            last = int(points["milestone"].max())
            # one column for every method, whose runs may stop at different milestones
            row = {"method": method, f"{primary} at its last milestone": f"{points['mean'].iloc[-1]:.4g} ({last:,} {unit})"}
            for _, ref in ref_block.iterrows():
                hit = points[points["mean"] < ref["value"]]
                row[f"beats {ref['method']} ({ref['value']:.3g})"] = (
                    _budget_text(hit.iloc[0], unit) if len(hit) else f"not by {last:,} {unit}"
                )
            if relative:
                for level in thresholds:
                    hit = points[points["mean"] <= level]
                    row[f"reaches {level:.0%}"] = _budget_text(hit.iloc[0], unit) if len(hit) else f"not by {last:,} {unit}"
            rows.append(row)
        title = f"{dataset}: training budget at which each learned method first beats a reference (mean over seeds)"
        sections.append(Section(title, pd.DataFrame(rows)))
    return sections


def curve_section(df: pd.DataFrame, primary: str, *, unit: str = "steps") -> list[Section]:
    """The learning curves as a table, one section per dataset: per learned method and
    milestone, the mean ``primary`` over seeds and the mean training wall time to reach
    that milestone (seconds, from the fit reports), and how many seeds each mean pools.

    Empty for a run without several milestones (as :func:`curve_table`).
    """
    curves = curve_table(df, primary)
    sections = []
    for dataset, block in by_dataset(curves):
        milestones = sorted(int(m) for m in block["milestone"].unique())
        rows = []
        for method, points in block.groupby("method", sort=True):
            by_milestone = {int(r["milestone"]): r for _, r in points.iterrows()}
            seeds = sorted({int(r["seeds"]) for r in by_milestone.values()})
            row = {"method": method, "seeds": str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}"}
            for milestone in milestones:
                point = by_milestone.get(milestone)
                if point is None:
                    row[f"{milestone:,} {unit}"] = "-"
                    continue
                seconds = "" if math.isnan(point["seconds"]) else f" ({point['seconds']:,.0f} s)"
                row[f"{milestone:,} {unit}"] = f"{point['mean']:.4g}{seconds}"
            rows.append(row)
        title = f"{dataset}: {primary} at each milestone, with the training wall time to reach it (mean over seeds)"
        sections.append(Section(title, pd.DataFrame(rows)))
    return sections


def write_learning_curve_plots(df: pd.DataFrame, out_dir: Path, *, primary: str, unit: str = "steps") -> list[Path]:
    """One figure per dataset with learning curves: ``primary`` against training steps and
    against training seconds, mean over seeds with the min-max band, the untrained
    references as horizontal lines (those far off the curves' range named in a note:
    :func:`references_on_axis`).

    :returns: the PNG paths written, ``out_dir/learning-curves-<dataset>.png``.
    """
    from wbench.board.plots import plot_learning_curves

    curves = curve_table(df, primary)
    refs = references(df, primary)
    paths = []
    for dataset, block in by_dataset(curves):
        per_method = {
            method: {k: list(points.sort_values("milestone")[k]) for k in ("steps", "seconds", "mean", "min", "max")}
            for method, points in block.groupby("method", sort=True)
        }
        values = [v for c in per_method.values() for k in ("mean", "min", "max") for v in c[k]]
        lines, off_axis = references_on_axis(
            {r["method"]: r["value"] for _, r in refs[refs["dataset"] == dataset].iterrows()}, values
        )
        name = safe_stem(str(dataset))
        paths.append(plot_learning_curves(per_method, lines, out_dir / f"learning-curves-{name}.png",
                                          metric=primary, title=f"{dataset}: {primary} against training budget",
                                          note=off_axis_note(off_axis)))
    return paths
