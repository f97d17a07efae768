"""The re-timing pass's speed figures in place of a cell's in-run ones, for the main table.

A cell times its method once, beside whatever the machine was doing then; ``wbench retime``
times the saved models again, all of one dataset in one interleaved series of rounds on idle
cores, with the exact LP in the same rounds (``retime.json``). Where a run folder has such a
pass, its figures are the better ones: the in-run figures of some cells were taken under
another protocol (lot-residual's on repeated measures, see the README's changelog) or under
load. So the leaderboard, its charts and the site show, for every record the pass timed
(same cell key, same ``finished_at``), the pass's cost model (``cost.*``), roofline and
one-core speed-ups, and mark the row (``timing.retimed = 1``). What the pass does not time
stays the cell's own: the all-cores speed-up, the direct timings, and every row without a
saved model (solvers, LOT, sliced). The stored records are never changed; the in-run
figures stay in ``records.jsonl``, and ``wbench leaderboard --in-run-timing`` shows them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from wbench.records.store import Record

__all__ = ["RETIMED_COLUMN", "retimed_note", "with_retimed_figures"]

RETIMED_COLUMN = "timing.retimed"
"""Frame column: 1.0 on a row whose speed figures come from the re-timing pass."""

_REPLACED_PREFIXES = ("cost.pairwise.", "cost.direct_error.", "cost.pair_s.", "cost.pair_s_iqr.",
                      "roofline.", "flops.", "gemm.")
"""In-run keys dropped before the pass's figures go in: predictions and rooflines of the
in-run cost model (the pass brings its own), which would disagree with the shown ``e`` and ``c``."""


def with_retimed_figures(records: Sequence[Record], run_dirs: Iterable[str | Path]) -> list[Record]:
    """``records`` with the speed figures of ``run_dirs``' re-timing passes where one timed them.

    A record is matched to a pass's cell by its key and ``finished_at``; a stale pass (a
    cell whose record is gone or was made again) is refused, as the leaderboard's re-timing
    section refuses it.

    :returns: new :class:`Record` objects (the inputs are not changed), in the same order.
    :raises wbench.run.retime.RetimeError: a ``retime.json`` that cannot be read or is stale.
    """
    cells = _retimed_cells(run_dirs)
    if not cells:
        return list(records)
    out = []
    for record in records:
        found = cells.get(record.key)
        if found is None or record.outcome is None or not record.ok:
            out.append(record)
            continue
        cell, reference, protocol = found
        if cell.get("finished_at") not in (None, record.finished_at):
            out.append(record)
            continue
        throughput = _overlaid(dict(record.outcome.throughput or {}), cell["figures"], reference, protocol)
        out.append(dataclasses.replace(record, outcome=dataclasses.replace(record.outcome, throughput=throughput)))
    return out


def _retimed_cells(run_dirs: Iterable[str | Path]) -> dict[str, tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]]:
    """Cell key -> (cell, its dataset's LP and GEMM reference, the pass's protocol), over the
    ``retime.json`` files of ``run_dirs`` (a run folder, or its ``records.jsonl``)."""
    from wbench.run.retime import _check_current, read_retime, retime_files

    found: dict[str, tuple[Mapping[str, Any], Mapping[str, Any], Mapping[str, Any]]] = {}
    for path in retime_files(run_dirs):
        data = read_retime(path)
        _check_current(data, path, path.parent)
        for cell in data["cells"]:
            reference = data["references"].get(cell.get("dataset_label"), {})
            found[cell["key"]] = (cell, reference, data["protocol"])
    return found


def _overlaid(
    throughput: dict[str, Any], figures: Mapping[str, float], reference: Mapping[str, Any], protocol: Mapping[str, Any]
) -> dict[str, Any]:
    """The in-run ``throughput`` with the pass's ``figures`` in: its cost model and roofline,
    the one-core speed-up over the LP of the same rounds, and the older columns derived from
    them (as a cell derives them from its own cost model)."""
    kept = {k: v for k, v in throughput.items() if not k.startswith(_REPLACED_PREFIXES)}
    kept.update(figures)
    n = int(figures.get("cost.pair_rows", throughput.get("cost.pairwise_n", 0)) or 0)
    lp_rate = reference.get("lp_pairs_per_s")
    kept.pop("speedup.one_core", None)
    kept.pop("speedup.pairwise", None)
    one_core = figures.get("speedup.one_core")
    if one_core is not None and lp_rate:
        kept.update({
            "speedup.one_core.speedup": one_core,
            "speedup.one_core.method_pairs_per_s": figures["cost.independent_pairs_per_s"],
            "speedup.one_core.lp_pairs_per_s": float(lp_rate),
            "speedup.one_core.lp_batch": float(reference.get("lp_batch", 0.0)),
            "speedup.one_core.rounds": float(protocol.get("rounds", 0)),
            "speedup.one_core.method_threads": float(protocol.get("threads", 1)),
            "speedup.one_core.lp_threads": float(protocol.get("threads", 1)),
            "speedup.one_core.lp_workers": 1.0,
            "speedup.one_core.method_batch": figures.get("cost.embed_batch", 0.0),
        })
        # spreads of the pass's own rounds (the in-run ones belong to other measurements)
        kept.pop("speedup.one_core.lp_pairs_per_s_iqr", None)
        kept.pop("speedup.one_core.method_pairs_per_s_iqr", None)
        if reference.get("lp_relative_iqr") is not None:
            kept["speedup.one_core.lp_pairs_per_s_iqr"] = float(lp_rate) * float(reference["lp_relative_iqr"])
        e, e_iqr = figures.get("cost.embed_s"), figures.get("cost.embed_s_iqr")
        if e and e_iqr is not None:  # e dominates 1 / (2 e + c): its relative IQR is the rate's
            kept["speedup.one_core.method_pairs_per_s_iqr"] = figures["cost.independent_pairs_per_s"] * float(e_iqr) / float(e)
    kept["throughput.independent_pairs_per_s"] = figures["cost.independent_pairs_per_s"]
    kept["throughput.threads"] = figures.get("cost.threads", kept.get("throughput.threads"))
    if n and f"cost.pairwise.{n}" in figures:
        kept["throughput.pairwise_pairs_per_s"] = figures[f"cost.pairwise.{n}"]
        kept["throughput.pairwise_rows"] = kept["throughput.pairwise_cols"] = float(n)
    if kept.get("speedup.side_one_core", 1.0) == 1.0 and one_core is not None and lp_rate:
        # the older columns follow the side whose threads match the cost model's (one core)
        kept["speedup.independent"] = one_core
        kept["exact.throughput.independent_pairs_per_s"] = float(lp_rate)
        if "speedup.pairwise" in figures:
            kept["speedup.pairwise"] = figures["speedup.pairwise"]
    kept[RETIMED_COLUMN] = 1.0
    return kept


def retimed_note(frame: pd.DataFrame, run_dirs: Iterable[str | Path] = ()) -> str:
    """One sentence for above a leaderboard: which rows' speed figures come from the
    re-timing pass (with each pass's commit, rounds and threads, read from ``run_dirs``'
    ``retime.json``), and what stays in-run ("" when no row's do)."""
    if RETIMED_COLUMN not in frame.columns:
        return ""
    retimed = pd.to_numeric(frame[RETIMED_COLUMN], errors="coerce") == 1
    if not retimed.any():
        return ""
    methods = sorted({str(m) for m in frame.loc[retimed, "method"].dropna()})
    others = sorted({str(m) for m in frame.loc[~retimed & (frame["status"] == "ok"), "method"].dropna()} - set(methods))
    facts = "; ".join(_pass_facts(run_dirs))
    text = (
        f"Speed columns of {', '.join(methods)}: the re-timing pass over the saved models (`retime.json`"
        + (f": {facts}" if facts else "")
        + "; its own section below: one interleaved series on idle cores, the exact LP in the same rounds), "
        "not the cells' in-run timing; their all-cores speed-up stays the in-run figure."
    )
    if others:
        text += f" {', '.join(others)}: in-run figures (no saved model to re-time)."
    return text + "\n"


def _pass_facts(run_dirs: Iterable[str | Path]) -> list[str]:
    """``"git abc1234, 21 rounds, 1 thread(s)"`` for each readable ``retime.json`` of ``run_dirs``."""
    from wbench.run.retime import RetimeError, read_retime, retime_files

    facts = []
    for path in retime_files(run_dirs):
        try:
            data = read_retime(path)
        except RetimeError:
            continue
        commit = str(data["provenance"].get("git_commit") or "?")[:7]
        protocol = data["protocol"]
        facts.append(f"git {commit}, {protocol.get('rounds')} rounds, {protocol.get('threads')} thread(s)")
    return facts
