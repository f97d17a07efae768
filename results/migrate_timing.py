"""One-off migration (issue 31): a published folder's ``retime.json`` (wbench 0.1's re-timing
pass over the saved models) as the ``timing.json`` that wbench now reads.

The figures are those the pass measured (one interleaved series of rounds on idle cores, the
exact LP in the same rounds, one thread), renamed to the timing file's keys; nothing is
measured again (the folders' models are not kept in git). Methods the 0.1 pass did not time
(no saved model: solvers, LOT, sliced, Wormhole) are listed as not timed: their in-run
figures, taken beside training, are no longer shown. Run once per folder:

    python results/migrate_timing.py results/mnist results/shapes ...
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from wbench.records.read import load_records
from wbench.records.timing_file import FORMAT_VERSION, TIMING_FILE, read_timing
from wbench.run.timing_pass import series_of


def migrated(run_dir: Path) -> dict:
    """The timing file of ``run_dir`` built from its ``retime.json``."""
    old = json.loads((run_dir / "retime.json").read_text())
    series = {s.record.key: s for s in series_of(load_records([run_dir]))}
    cells, timed = [], set()
    for cell in old["cells"]:
        if cell["key"] not in series:
            continue  # an earlier milestone's model (a pass over all milestones): its series' last one stands
        f, ref = cell["figures"], old["references"][cell["dataset_label"]]
        n = int(f["cost.pair_rows"])
        figures = {
            "cost.embedding": f["cost.embedding"], "cost.embed_s": f["cost.embed_s"], "cost.embed_s_iqr": f["cost.embed_s_iqr"],
            "cost.embed_batch": f["cost.embed_batch"], "cost.pair_s": f["cost.pair_s"], "cost.pair_s_iqr": f["cost.pair_s_iqr"],
            "cost.call_s": f["cost.call_s"], "cost.threads": f["cost.threads"],
            "cost.independent_pairs_per_s": f["cost.independent_pairs_per_s"],
            "cost.pairwise_pairs_per_s": f[f"cost.pairwise.{n}"], "cost.pairwise_n": float(n),
            "speedup.one_core": f["speedup.one_core"], "speedup.pairwise": f["speedup.pairwise"],
            "speedup.lp_pairs_per_s": ref["lp_pairs_per_s"], "speedup.lp_relative_iqr": ref["lp_relative_iqr"],
        }
        timed.add(cell["key"])
        cells.append({**{k: cell[k] for k in ("key", "finished_at", "dataset_label", "label", "seed", "milestone")},
                      "same_model": series[cell["key"]].same_model, "model": cell["model"], "figures": figures})
    not_timed = [{"dataset_label": s.record.dataset_label or s.record.dataset, "label": s.record.label or s.record.method,
                  "seed": s.record.seed, "why": "no saved model when the folder was timed"}
                 for key, s in series.items() if key not in timed]
    protocol = {**old["protocol"], "migrated_from": "retime.json (wbench 0.1's re-timing pass; figures unchanged)"}
    return {"format_version": FORMAT_VERSION, "finished": old["finished"], "wall_s": old["wall_s"],
            "protocol": protocol, "load_average": old.get("load_average"), "provenance": old["provenance"],
            "references": {k: {"lp_pairs_per_s": v["lp_pairs_per_s"], "lp_relative_iqr": v["lp_relative_iqr"]}
                           for k, v in old["references"].items()},
            "cells": cells, "not_timed": not_timed}


if __name__ == "__main__":
    for folder in map(Path, sys.argv[1:]):
        (folder / TIMING_FILE).write_text(json.dumps(migrated(folder), indent=1, sort_keys=True) + "\n")
        read_timing(folder / TIMING_FILE)  # checked as any timing file is
        (folder / "retime.json").unlink()
        print(f"{folder}: {TIMING_FILE} written from retime.json")
