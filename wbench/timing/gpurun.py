"""One command for a GPU: every method timed with the cost model, the KENN family and DWE trained briefly.

``python -m wbench.timing.gpurun --device cuda --dataset mnist`` (sized to fit about 10 minutes
on one GPU):

1. builds the dataset and its cached exact ground truth (the LP runs on the CPU cores);
2. trains each of ``--train`` (default Naive, DeepKENN, ODE-KENN, DWE) on ``--device``
   for at most ``--train-s`` seconds (the model's own default size, Adam, the budget's
   batch size);
3. builds every other method of ``--methods`` untrained (an embedding's speed does not
   depend on its weights; solvers run their ``fit``: LOT's reference, the sliced scale);
4. times each method with :func:`wbench.timing.costmodel.measure_cost_model` on ``--device``
   (per-measure embedding cost ``e``, per-pair cost ``c``, per-call overhead ``o``, and
   direct pairwise timings at ``--sizes``, each size skipped when its predicted call time
   exceeds ``--max-call-s``) and, for embedding networks, the roofline against the
   device's float32 GEMM rate measured in the same run. Solvers without a GPU path
   (``exact-lp``, POT Sinkhorn, LOT's LPs) are timed where they run, which the record says
   (``cost.cuda``);
5. writes ``<out>/<dataset>-gpu-<device name>/``: ``cost_models.jsonl`` (one flat record per
   method), ``summary.md`` (a table) and ``run.json`` (arguments, provenance, timings).

The same path runs with ``--device cpu`` (the tests do so on a tiny budget), so the first
GPU run is not the first run.
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from wbench.budget import Budget
from wbench.evaluation import is_embedding
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.timing.costmodel import measure_cost_model
from wbench.timing.roofline import GemmRate, gemm_rate, roofline_of
from wbench.timing.rounds import DEFAULT_MIN_ROUND_S, DEFAULT_ROUNDS
from wbench.util.filenames import safe_stem, slug

if TYPE_CHECKING:
    from wbench.data import PairedDataset
    from wbench.measures import MeasureBatch

__all__ = ["DEFAULT_METHODS", "DEFAULT_TRAIN", "GpuRunOptions", "main", "output_dir", "run_gpu_timing"]

DEFAULT_METHODS = ("naive", "deepkenn", "odekenn", "dwe", "dwe-matched", "deepsets", "sliced", "lot", "sinkhorn", "exact-lp")
DEFAULT_TRAIN = ("naive", "deepkenn", "odekenn", "dwe")
DEFAULT_SIZES = (16, 64, 256, 1024, 4096, 16384)
COST_MODELS_FILE = "cost_models.jsonl"
"""The GPU run's output: one flat cost-model record per method (not a run's ``records.jsonl``:
no leaderboard or site reads it as one)."""

_CPU_ONLY = {"exact-lp", "lot", "sinkhorn"}
"""Methods whose solves run on CPU cores whatever the device (POT's LP / Sinkhorn)."""


@dataclass(frozen=True)
class GpuRunOptions:
    """What :func:`run_gpu_timing` does (see the module docstring for each step).

    :param dataset: registered dataset name. :param dataset_params: its parameters.
    :param device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``.
    :param methods: registered surrogate names to time.
    :param train: the subset of ``methods`` trained first.
    :param train_s: seconds of training per trained method (wall-time limit).
    :param epochs: epochs per trained method (the time limit may stop it earlier).
    :param batch_size: training pairs per step.
    :param sizes: ``n`` of the direct ``n x n`` pairwise timings.
    :param max_call_s: skip a size whose predicted call time is longer.
    :param rounds: rounds per figure. :param min_round_s: seconds a round lasts at least.
    :param solver_batch: pairs per timed call of a solver.
    :param test_params: build methods with their registered test parameters (tiny).
    :param cache_dir: ground-truth cache (None: the default).
    :param seed: seeds training and draws.
    """

    dataset: str = "mnist"
    dataset_params: Mapping[str, Any] | None = None
    device: str = "cuda"
    methods: Sequence[str] = DEFAULT_METHODS
    train: Sequence[str] = DEFAULT_TRAIN
    train_s: float = 60.0
    epochs: int = 20
    batch_size: int = 256
    sizes: Sequence[int] = DEFAULT_SIZES
    max_call_s: float = 5.0
    rounds: int = DEFAULT_ROUNDS
    min_round_s: float = DEFAULT_MIN_ROUND_S
    solver_batch: int = 32
    test_params: bool = False
    cache_dir: str | None = None
    seed: int = 0


def output_dir(out_root: str | Path, dataset: str, device: str) -> Path:
    """``<out_root>/<dataset>-gpu-<device name>`` (e.g. ``results/mnist-gpu-nvidia-h200``;
    on the CPU ``...-gpu-cpu``, so a CPU dry run is never mistaken for a GPU run)."""
    from wbench.provenance import device_name

    name = device_name(device) if torch.device(device).type == "cuda" else "cpu"
    return Path(out_root) / f"{safe_stem(dataset)}-gpu-{slug(name, empty='device')}"


def _check(options: GpuRunOptions) -> None:
    dev = torch.device(options.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {options.device}: torch sees no CUDA device (torch {torch.__version__})")
    extra = sorted(set(options.train) - set(options.methods))
    if extra:
        raise ValueError(f"methods to train must also be timed; not in methods: {extra}")
    if any(int(n) < 1 for n in options.sizes):
        raise ValueError(f"sizes must be positive, got {list(options.sizes)}")


def _build(registry: Any, name: str, dataset: Any, options: GpuRunOptions) -> tuple[Surrogate, dict[str, Any]]:
    """Build, place and (for ``options.train`` and solvers) fit one method; returns it and fit facts."""
    from wbench.train.loop import seed_everything

    entry = registry.get("surrogate", name)
    cls = entry.load()
    params = dict(entry.test_params if options.test_params else entry.params)
    params = cls.params_for(params, dataset.measures)
    where = "cpu" if name in _CPU_ONLY else options.device
    if not isinstance(cls, type) or not issubclass(cls, TorchSurrogate):
        if "device" in inspect.signature(cls).parameters:  # a solver with a torch device (sliced)
            params.setdefault("device", where)
        elif where != "cpu":
            where = "cpu"  # no device setting: it computes on the CPU
    seed_everything(options.seed)
    surrogate = cls(**params)
    if isinstance(surrogate, TorchSurrogate):
        surrogate.to(where)
    facts: dict[str, Any] = {"trained": 0.0, "fit_s": 0.0, "epochs": 0.0, "steps": 0.0}
    if name in options.train or not cls.trainable:
        budget = Budget(
            epochs=options.epochs, batch_size=options.batch_size, seed=options.seed, device=where,
            time_limit_s=options.train_s if name in options.train else None,
        )
        began = time.perf_counter()
        report = surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
        facts = {
            "trained": float(name in options.train),
            "fit_s": time.perf_counter() - began,
            "epochs": float(report.epochs),
            "steps": float(report.steps),
        }
        if report.val_mse:
            facts["val_mse"] = float(report.val_mse[report.best_epoch] if report.best_epoch >= 0 else report.val_mse[-1])
    if isinstance(surrogate, TorchSurrogate):
        surrogate.model.eval()
    return surrogate, {**facts, "device": where}


def run_gpu_timing(options: GpuRunOptions, out_root: str | Path = "results") -> Path:
    """Run steps 1-5 of the module docstring; returns the output folder.

    :raises RuntimeError: a CUDA device was asked for and torch sees none.
    :raises ValueError: inconsistent options.
    """
    from wbench.oracle.groundtruth import attach_ground_truth
    from wbench.plugin.manager import make_plugin_manager
    from wbench.provenance import provenance, utc_now

    _check(options)
    started = time.perf_counter()
    plugins = make_plugin_manager([])
    registry = plugins.registry
    cls = registry.get("dataset", options.dataset).load()
    dataset = attach_ground_truth(
        cls(**dict(options.dataset_params or {})).build(), cache_dir=options.cache_dir, progress=False
    )
    test = dataset.split("test").measures
    out_dir = output_dir(out_root, options.dataset, options.device)
    out_dir.mkdir(parents=True, exist_ok=True)
    gemm = gemm_rate(device=options.device, rounds=options.rounds, min_round_s=options.min_round_s)
    records: list[dict[str, Any]] = []
    for name in options.methods:
        records.append(_time_method(registry, name, dataset, test, options, gemm))
        _write_records(out_dir / COST_MODELS_FILE, records)
    (out_dir / "summary.md").write_text(summary_table(records, options))
    run = {
        "finished": utc_now(),
        "wall_s": time.perf_counter() - started,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in options.__dict__.items()},
        "provenance": provenance(options.device),
        "gemm": gemm.to_record(),
    }
    (out_dir / "run.json").write_text(json.dumps(run, indent=2, sort_keys=True, default=str) + "\n")
    return out_dir


def _time_method(
    registry: Any, name: str, dataset: PairedDataset, test: MeasureBatch, options: GpuRunOptions, gemm: GemmRate
) -> dict[str, Any]:
    """Fit method ``name`` and time it on the ``test`` measures: one record of its cost model,
    direct timings at the sizes whose estimated call fits ``options.max_call_s``, roofline
    columns for a network, and ``wall_s`` (seconds for all of it). ``gemm``: the GEMM rate of
    ``options.device``, measured again when the method runs elsewhere."""
    began = time.perf_counter()
    surrogate, facts = _build(registry, name, dataset, options)
    where = facts.pop("device")
    embedding = is_embedding(surrogate)
    probe = measure_cost_model(
        surrogate, test, pair_block=256, rounds=2, min_round_s=0.0, device=where, solver_batch=options.solver_batch
    )
    sizes = [
        int(n) for n in options.sizes
        if probe.call_s + 2 * n * probe.embed_s + n * n * probe.pair_s <= options.max_call_s
    ]
    model = measure_cost_model(  # c at the largest size timed, capped at 4096 (c grows with the block)
        surrogate, test, direct_n=sizes, pair_block=min(max(sizes, default=256), 4096),
        rounds=options.rounds, min_round_s=options.min_round_s,
        device=where, solver_batch=options.solver_batch, seed=options.seed,
    )
    record: dict[str, Any] = {
        "method": name,
        "dataset": options.dataset,
        "device": where,
        "n_parameters": float(surrogate.n_parameters),
        **{f"fit.{k}": v for k, v in facts.items()},
        **model.to_record(pairwise_n=options.sizes),
        "cost.direct_sizes_skipped": float(len(options.sizes) - len(sizes)),
    }
    if embedding and isinstance(surrogate, TorchSurrogate):  # a network: FLOPs are its dense algebra
        line_gemm = gemm if torch.device(where) == torch.device(options.device) else gemm_rate(device=where, rounds=options.rounds, min_round_s=options.min_round_s)
        record.update(roofline_of(surrogate, test, model, line_gemm).to_record())
    record["wall_s"] = time.perf_counter() - began
    return record


def _write_records(path: Path, records: list[dict[str, Any]]) -> None:
    """(Re)write ``path`` with one sorted-key JSON line per record (so far: a run that stops keeps them)."""
    with path.open("w") as handle:
        for r in records:
            handle.write(json.dumps(r, sort_keys=True) + "\n")


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def summary_table(records: Sequence[Mapping[str, Any]], options: GpuRunOptions) -> str:
    """A Markdown table: independent pairs/s, pairwise pairs/s at the largest size, 1/c, roofline fraction."""
    n = max(options.sizes)
    lines = [
        f"# {options.dataset} on {options.device}: the cost model of every method",
        "",
        "independent = 1 / (2e + c); pairwise at n x n = n^2 / (o + 2ne + n^2 c); solvers: per-pair rate.",
        "",
        f"| method | device | trained | e (us/measure) | c (ns/pair) | independent pairs/s | pairwise pairs/s at n={n} | 1/c | GEMM fraction |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        e_us = r["cost.embed_s"] * 1e6 if r["cost.embedding"] else None
        lines.append(
            f"| {r['method']} | {r['device']} | {'yes' if r.get('fit.trained') else 'no'} | {_fmt(e_us)} | "
            f"{_fmt(r['cost.pair_s'] * 1e9)} | {_fmt(r['cost.independent_pairs_per_s'])} | "
            f"{_fmt(r.get(f'cost.pairwise.{n}'))}{'' if r['cost.embedding'] else ' (per pair)'} | "
            f"{_fmt(r['cost.asymptote_pairs_per_s'])} | "
            f"{'-' if 'roofline.fraction' not in r else format(r['roofline.fraction'], '.1%')} |"
        )
    return "\n".join(lines) + "\n"


def _parse(argv: Sequence[str] | None) -> tuple[GpuRunOptions, Path]:
    parser = argparse.ArgumentParser(prog="python -m wbench.timing.gpurun", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--dataset-params", default="{}", help="JSON object")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--train", default=",".join(DEFAULT_TRAIN))
    parser.add_argument("--train-s", type=float, default=60.0)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)))
    parser.add_argument("--max-call-s", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=DEFAULT_ROUNDS)
    parser.add_argument("--min-round-s", type=float, default=DEFAULT_MIN_ROUND_S)
    parser.add_argument("--test-params", action="store_true", help="tiny registered test parameters")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--out", type=Path, default=Path("results"))
    args = parser.parse_args(argv)

    def names(text: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in text.split(",") if v.strip())

    options = GpuRunOptions(
        dataset=args.dataset, dataset_params=json.loads(args.dataset_params), device=args.device,
        methods=names(args.methods), train=names(args.train), train_s=args.train_s, epochs=args.epochs,
        sizes=tuple(int(v) for v in names(args.sizes)), max_call_s=args.max_call_s, rounds=args.rounds,
        min_round_s=args.min_round_s, test_params=args.test_params, cache_dir=args.cache_dir,
    )
    return options, args.out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: run and print the summary table."""
    options, out = _parse(argv)
    folder = run_gpu_timing(options, out)
    print((folder / "summary.md").read_text())
    print(f"written to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
