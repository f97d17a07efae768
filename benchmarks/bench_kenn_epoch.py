"""Time one training epoch of Naive, DeepKENN and ODE-KENN at the paper's configuration.

One epoch = ``--pairs`` pairs at batch 256 through the shared training loop
(:func:`wbench.train.loop.train_on_pairs`: Adam, MSE on W2, one validation pass over a small
set of 256 pairs at the end), on CPU, with ``--threads`` torch threads. Targets are random
(timing does not depend on them); images are blob images (``--images synthetic``, the
default, no data needed) or MNIST test images (``--images mnist``, from
``$WBENCH_MNIST_ROOT``). A short warm-up fit runs first and is not timed.

Example::

    python benchmarks/bench_kenn_epoch.py --pairs 49500 --threads 2 --out runs/bench_kenn_epoch.json

Writes a JSON file with every figure (wall time, and the process's CPU time, which other
processes on a busy machine disturb less), ODE-KENN's and DeepKENN's cost relative to
Naive, and the provenance (git commit, versions, CPU, threads, and the load average
before and after, since other processes on the machine slow every figure down).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs, PairSet
from wbench.measures import MeasureBatch
from wbench.provenance import provenance, utc_now
from wbench.testing import toy_images
from wbench.train.loop import seed_everything, train_on_pairs
from wbench_plugins.kenn.models import ODEKENN, DeepKENN, NaiveKENN

MODELS = {"naive": NaiveKENN, "deepkenn": DeepKENN, "odekenn": ODEKENN}


def load_images(kind: str, n: int) -> np.ndarray:
    """``(n, 28, 28)`` non-negative images: seeded blobs or the first ``n`` MNIST test images."""
    if kind == "synthetic":
        return toy_images(n, 28, seed=0).numpy()
    from wbench_plugins.datasets.mnist import load_part, resolve_root

    return load_part(resolve_root(None), "test")[0][:n].astype(np.float32)


def random_pairs(n_images: int, n_pairs: int, seed: int) -> PairSet:
    rng = np.random.default_rng(seed)
    left = rng.integers(0, n_images, size=n_pairs)
    right = (left + rng.integers(1, n_images, size=n_pairs)) % n_images
    return PairSet(left, right, rng.uniform(1.0, 36.0, size=n_pairs))  # W2^2 in px^2, random


def time_epoch(name: str, measures: MeasureBatch, train: PairSet, val: PairSet, *, batch_size: int, channels_last: bool) -> dict:
    cls = MODELS[name]
    cls.channels_last_on_cpu = channels_last
    seed_everything(0)
    model = cls()
    warm = LabelledPairs(measures, train.subset(slice(0, 4 * batch_size)))
    train_on_pairs(model, warm, LabelledPairs(measures, val), Budget(epochs=None, steps=3, batch_size=batch_size))
    seed_everything(0)
    model = cls()
    budget = Budget(epochs=1, batch_size=batch_size, seed=0)
    started, cpu_started = time.perf_counter(), time.process_time()
    report = model.fit(LabelledPairs(measures, train), LabelledPairs(measures, val), budget)
    epoch_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    return {
        "model": name,
        "n_parameters": model.n_parameters,
        "memory_format": "channels_last" if channels_last else "contiguous",
        "epoch_s": epoch_s,
        "cpu_s": cpu_s,
        "steps": report.steps,
        "ms_per_step": 1e3 * epoch_s / report.steps,
        "pairs_per_s": len(train) / epoch_s,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=49_500, help="training pairs in the epoch (paper: 49,500)")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--images", choices=("synthetic", "mnist"), default="synthetic")
    parser.add_argument("--n-images", type=int, default=2000)
    parser.add_argument("--models", default="naive,deepkenn,odekenn", help="comma-separated subset of naive,deepkenn,odekenn")
    parser.add_argument(
        "--memory-format", choices=("channels_last", "contiguous", "both"), default="channels_last",
        help="convolution memory format on CPU (the models use channels_last); 'both' times each",
    )
    parser.add_argument("--repeats", type=int, default=1, help="epochs timed per model, interleaved across models; the median is reported")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_kenn_epoch.json"))
    args = parser.parse_args(argv)

    os.environ.setdefault("WBENCH_PROGRESS", "0")
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = set(names) - set(MODELS)
    if unknown:
        parser.error(f"unknown model(s) {sorted(unknown)}; choose from {sorted(MODELS)}")
    formats = {"both": (True, False), "channels_last": (True,), "contiguous": (False,)}[args.memory_format]

    measures = MeasureBatch.from_images(load_images(args.images, args.n_images))
    train = random_pairs(len(measures), args.pairs, seed=0)
    val = random_pairs(len(measures), 256, seed=1)
    load_before = os.getloadavg()
    # Repeats are the outer loop, so every model meets the same spells of load from other
    # processes; each row reports the median over its repeats.
    configs = [(name, channels_last) for name in names for channels_last in formats]
    runs: dict[tuple[str, bool], list[dict]] = {config: [] for config in configs}
    for repeat in range(args.repeats):
        for name, channels_last in configs:
            run = time_epoch(name, measures, train, val, batch_size=args.batch_size, channels_last=channels_last)
            runs[(name, channels_last)].append(run)
            print(
                f"[{repeat + 1}/{args.repeats}] {name:9s} {run['memory_format']:13s} {run['n_parameters']:6d} params  "
                f"epoch {run['epoch_s']:7.2f} s  {run['ms_per_step']:7.1f} ms/step  {run['pairs_per_s']:8.0f} pairs/s  "
                f"(process CPU {run['cpu_s']:7.2f} s)",
                flush=True,
            )
    rows = []
    for config in configs:
        row = dict(runs[config][0])
        for key in ("epoch_s", "cpu_s", "ms_per_step", "pairs_per_s"):
            row[key] = statistics.median(r[key] for r in runs[config])
        row["epoch_s_all"] = [r["epoch_s"] for r in runs[config]]
        rows.append(row)
    load_after = os.getloadavg()

    relative = {}
    for fmt in {r["memory_format"] for r in rows}:
        by_name = {r["model"]: r for r in rows if r["memory_format"] == fmt}
        if "naive" in by_name:
            relative[fmt] = {
                key: {n: by_name[n][key] / by_name["naive"][key] for n in by_name} for key in ("epoch_s", "cpu_s")
            }
    for fmt, ratios in relative.items():
        for key, label in (("epoch_s", "wall"), ("cpu_s", "process CPU")):
            print(f"epoch {label} time relative to Naive ({fmt}): " + ", ".join(f"{n} {r:.2f}x" for n, r in ratios[key].items()))

    result = {
        "benchmark": "kenn_epoch",
        "created": utc_now(),
        "command": [sys.executable, *sys.argv],
        "config": {
            "pairs": args.pairs, "batch_size": args.batch_size, "threads": args.threads, "images": args.images,
            "n_images": len(measures), "repeats": args.repeats, "targets": "random W2^2 in [1, 36] px^2",
            "validation_pairs": 256, "timed": "wbench.train.loop.train_on_pairs, one epoch, after a 3-step warm-up",
        },
        "results": rows,
        "epoch_time_relative_to_naive": relative,
        "load_average": {"before": load_before, "after": load_after, "cpu_count": os.cpu_count()},
        "provenance": provenance("cpu"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
