"""A small run folder for the site tests: ok, partial and failed rows, throughput, fit
reports, learned weights, a prediction plot, and a second run recorded at milestones."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path
from typing import Any

from conftest import keyed

from wbench.records.store import SCHEMA_VERSION, RecordStore

REL_MAE = {"good": [0.10, 0.12, 0.11], "worse": [0.30, 0.28, 0.32]}
"""test.w2.rel_mae per seed: the site must show their means (0.11, 0.3)."""

INDEPENDENT = {"good": 950.0, "worse": 10200.0, "exact-lp": 100.0, "flaky": 5.5}
"""Independent pairs/s: sorted as text they would come out 100, 10200, 5.5, 950."""


def tiny_png() -> bytes:
    """A valid 2x2 grey PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + b"\x80\x80" for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def record(method: str, seed: int, *, rel: float | None, status: str = "ok", error: str | None = None,
           trainable: bool = True, milestone: int | None = None, dataset: str = "toy") -> dict[str, Any]:
    """One record in the run-record schema (the fields the site reads)."""
    r: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "key": f"{dataset}-{method}-{seed}-{milestone}", "dataset": dataset,
        "dataset_label": dataset, "method": method, "label": method, "seed": seed, "status": status,
        "error": error, "n_parameters": 100 if trainable else 0, "trainable": trainable, "unit": "pixel",
        "suite": "site-fixture", "finished_at": "2026-01-02T03:04:05+00:00",
        "budget": {"steps": 40, "batch_size": 8, "param_target": 100},
        "provenance": {"git_commit": "0123456789abcdef", "git_dirty": False, "device_name": "Test CPU",
                       "torch_threads": 1},
        "method_params": {"width": 3}, "describe": {"embedding_dim": 4}, "artifacts": [],
        "metrics": {}, "throughput": {},
    }
    if milestone is not None:  # as the harness writes a milestone: the budget of a run stopped there
        r["budget"] = {**r["budget"], "steps": milestone}
    if status == "ok":
        r["metrics"] = {"test.w2.rel_mae": rel, "test.w2.mse": 2 * (rel or 0.0), "test.w2.pearson": 1 - (rel or 0.0)}
        if trainable:
            seconds = 1.5 + seed if milestone is None else milestone / 50 + seed  # a longer run took longer
            r["fit"] = {"steps": r["budget"]["steps"], "wall_time_s": seconds, "stopped_by": "budget",
                        "train_loss": [1.0, 0.5, 0.25], "val_mse": [1.2, 0.6, 0.3 + 0.01 * seed],
                        "extra": {"layer_weights": {"layers": ["conv1", "fc"], "start": [1.0, 1.0],
                                                    "final": [0.5 + seed, 2.0]}}}
            if milestone is not None:
                r["fit"]["milestone"] = {"index": (100, 200).index(milestone), "value": milestone, "unit": "steps",
                                         "of": [100, 200], "throughput_timed": "at the last milestone only"}
            r["artifacts"] = [f"plots/{dataset}-{method}-seed{seed}-pred.png"]
    return keyed(r)


LP_PAIRS_PER_S = 100.0
"""The exact LP's rate in the fixtures' timing passes."""


def timing_figures(method: str, seed: int) -> dict[str, float]:
    """A timing pass's figures for a fixture record: independent pairs/s ``INDEPENDENT[method]``
    (+1 % a seed), pairwise 10x that at n = 64, over an exact LP of ``LP_PAIRS_PER_S``."""
    ips = INDEPENDENT.get(method, 1000.0) * (1 + 0.01 * seed)
    return {
        "cost.embedding": 1.0, "cost.embed_s": 0.5 / ips, "cost.embed_s_iqr": 0.05 / ips, "cost.embed_batch": 64.0,
        "cost.pair_s": 0.0, "cost.pair_s_iqr": 0.0, "cost.call_s": 0.0, "cost.memoised": 0.0, "cost.threads": 1.0,
        "cost.independent_pairs_per_s": ips, "cost.pairwise_pairs_per_s": 10 * ips, "cost.pairwise_n": 64.0,
        "speedup.one_core": ips / LP_PAIRS_PER_S, "speedup.pairwise": 10 * ips / LP_PAIRS_PER_S,
        "speedup.lp_pairs_per_s": LP_PAIRS_PER_S, "speedup.lp_relative_iqr": 0.1,
    }


def write_timing(folder: Path) -> Path:
    """A ``timing.json`` for every ok record of ``folder`` (:func:`timing_figures`), as the
    timing pass writes one."""
    from wbench.records.timing_file import FORMAT_VERSION, TIMING_FILE

    records = [r for r in RecordStore(folder).load() if r.ok]
    cells = [{"key": r.key, "finished_at": r.finished_at, "same_model": [], "dataset_label": r.dataset_label,
              "label": r.label or r.method, "seed": r.seed, "milestone": (r.budget or {}).get("steps"),
              "model": "fixture", "figures": timing_figures(r.method, r.seed)} for r in records]
    references = {r.dataset_label: {"lp_pairs_per_s": LP_PAIRS_PER_S, "lp_relative_iqr": 0.1} for r in records}
    data = {"format_version": FORMAT_VERSION, "finished": "2026-01-02T03:04:06+00:00", "wall_s": 1.0,
            "protocol": {"rounds": 7, "min_round_s": 0.2, "threads": 1, "pairwise_n": 64},
            "provenance": {"git_commit": "0123456789abcdef", "device_name": "Test CPU"},
            "references": references, "cells": cells, "not_timed": []}
    (folder / TIMING_FILE).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    return folder / TIMING_FILE


def make_run(root: Path) -> Path:
    """Write ``root/toy`` (the main fixture run) and ``root/steps`` (milestones); return ``root``."""
    run = root / "toy"
    store = RecordStore(run)
    for seed in range(3):
        for method in ("good", "worse"):
            store.append(record(method, seed, rel=REL_MAE[method][seed]))
    store.append(record("exact-lp", 0, rel=1e-16, trainable=False))
    store.append(record("lot", 0, rel=0.05, trainable=False))  # for the baseline claim
    store.append(record("broken", 0, rel=None, status="failed", error="RuntimeError: boom\ntrace"))
    store.append(record("flaky", 0, rel=0.2))
    store.append(record("flaky", 1, rel=None, status="failed", error="ValueError: diverged"))
    (run / "plots").mkdir(exist_ok=True)
    for method in ("good", "worse", "flaky"):
        for seed in range(3):
            (run / "plots" / f"toy-{method}-seed{seed}-pred.png").write_bytes(tiny_png())
    steps = RecordStore(root / "steps")
    for seed in range(2):
        for method, values in (("fast", (0.5, 0.2)), ("slow", (0.8, 0.4))):
            for milestone, value in zip((100, 200), values, strict=True):
                steps.append(record(method, seed, rel=value + 0.01 * seed, milestone=milestone, dataset="toy2"))
    steps.append(record("lot", 0, rel=0.3, trainable=False, milestone=200, dataset="toy2"))  # an untrained reference
    write_timing(run)
    write_timing(root / "steps")
    return root


def copy_run(source: Path, dest: Path) -> Path:
    """Copy a published run's records, suite and prediction plots (not its models) to ``dest``."""
    dest.mkdir(parents=True)
    for name in ("records.jsonl", "suite.json", "timing.json"):
        if (source / name).exists():
            shutil.copyfile(source / name, dest / name)
    if (source / "plots").is_dir():
        (dest / "plots").mkdir()
        for png in sorted((source / "plots").glob("*-pred.png")):
            shutil.copyfile(png, dest / "plots" / png.name)
    return dest
