"""What a board says about its speed figures: the note above the table (which pass, which
methods it did not time) and a section of the pass's spread over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.records.timing_file import timing_passes
from wbench.sections import Section


def timing_note(frame: pd.DataFrame, run_dirs: Iterable[str | Path]) -> str:
    """One line above a table: where its speed columns come from, or that nothing was timed.

    ``""`` when the frame has no record at all."""
    if frame.empty:
        return ""
    passes = timing_passes(run_dirs)
    if not passes:
        return "Speed: not timed (no timing.json: `wbench retime RUN_DIR` times a run folder).\n"
    facts = []
    for data in passes:
        protocol, prov = data["protocol"], data["provenance"]
        facts.append(f"git {str(prov.get('git_commit') or '?')[:7]}, {protocol['rounds']} rounds, "
                     f"{protocol['threads']} thread(s), on {prov.get('device_name') or '?'}")
    shown = set(frame["method"]) if "method" in frame.columns else set()
    not_timed = sorted({(e["label"], e["why"]) for data in passes for e in data.get("not_timed", [])
                        if e["label"] in shown})
    line = ("Speed: one timing pass over every model of the run, the exact LP in the same rounds ("
            + "; ".join(facts) + ").")
    for why in sorted({w for _, w in not_timed}):
        line += f" Not timed ({why}): {', '.join(label for label, w in not_timed if w == why)}."
    return line + "\n"


def timing_sections(run_dirs: Iterable[str | Path]) -> list[Section]:
    """Per timing pass and dataset, a row per method (its seeds pooled): seeds timed,
    independent pairs/s (mean over seeds) and its coefficient of variation over seeds, the
    largest relative IQR of ``e`` among them, and the one-core speed-up over the exact LP."""
    sections = []
    for data in timing_passes(run_dirs):
        for label in sorted({c["dataset_label"] for c in data["cells"]}):
            own = [c for c in data["cells"] if c["dataset_label"] == label]
            rows = [_row(method, [c["figures"] for c in own if c["label"] == method])
                    for method in sorted({c["label"] for c in own})]
            lp = data["references"].get(label, {})
            title = (f"{label}: the timing pass's spread over seeds (exact LP "
                     f"{_fmt(lp.get('lp_pairs_per_s'))} pairs/s in the same rounds, "
                     f"IQR {lp.get('lp_relative_iqr', math.nan):.1%} of its median)")
            sections.append(Section(title, pd.DataFrame(rows)))
    return sections


def _row(method: str, figures: Sequence[Mapping[str, float]]) -> dict[str, Any]:
    rates = [f["cost.independent_pairs_per_s"] for f in figures]
    cv = statistics.stdev(rates) / statistics.mean(rates) if len(rates) > 1 else None
    iqrs = [f["cost.embed_s_iqr"] / f["cost.embed_s"] for f in figures if f.get("cost.embed_s", 0) > 0]
    return {
        "method": method,
        "seeds": str(len(figures)),
        "independent pairs/s": _fmt(statistics.mean(rates)),
        "CV over seeds": "-" if cv is None else f"{cv:.1%}",
        "largest IQR of e": f"{max(iqrs):.1%}" if iqrs else "-",
        "speed-up over exact LP (1 core)": _fmt(statistics.mean(f["speedup.one_core"] for f in figures)),
    }


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.{digits}g}"
