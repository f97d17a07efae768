"""Run a suite: every (dataset, method configuration, seed) cell, one record each.

Data flows one way: dataset -> oracle (cached) -> surrogate fit under the suite's budget ->
metrics and throughput -> one record per cell (and evaluation setting). A cell that
fails is recorded as failed with its error and the other cells still run; ``resume``
skips cells whose record is already ``ok``.
"""

from __future__ import annotations

import dataclasses
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from wbench.budget import Budget
from wbench.data import PairedDataset
from wbench.errors import PluginError, WbenchError
from wbench.plugins import Plugins
from wbench.progress import progress
from wbench.records import (
    SCHEMA_VERSION,
    RecordStore,
    canonical_json,
    cell_key,
    provenance,
    utc_now,
)
from wbench.suite import DatasetSpec, Suite, SurrogateSpec
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.training import predict_pairs, seed_everything

EXACT_REFERENCE = "exact-lp"
SUBSET_SEED = 12345  # the solver evaluation subset is the same for every method and seed


class ResultsExistError(WbenchError):
    """The output directory already holds records and ``--resume`` was not given."""


@dataclass(frozen=True)
class RunOptions:
    """Command-line overrides of a suite run.

    :param out_dir: where ``records.jsonl``, plots and models go.
    :param resume: continue a run in ``out_dir``, skipping cells already ``ok``.
    :param device: override the suite's device.
    :param seeds: override the suite's seeds.
    :param surrogates: run only these methods (names not in the suite run at their defaults).
    :param datasets: run only these datasets (likewise).
    :param cache_dir: ground-truth cache directory (default ``$WBENCH_CACHE_DIR``).
    :param n_jobs: oracle worker processes (-1: all cores).
    """

    out_dir: Path
    resume: bool = False
    device: str | None = None
    seeds: tuple[int, ...] | None = None
    surrogates: tuple[str, ...] | None = None
    datasets: tuple[str, ...] | None = None
    cache_dir: Path | None = None
    n_jobs: int = -1


def select_specs(specs: Sequence[Any], names: Sequence[str] | None, make: Callable[[str], Any]) -> tuple[Any, ...]:
    """The specs named in ``names`` (all when None); a name absent from the suite gets ``make(name)``."""
    if names is None:
        return tuple(specs)
    chosen = []
    for name in names:
        matches = [s for s in specs if s.name == name]
        chosen.extend(matches or [make(name)])
    return tuple(chosen)


def resolve_suite(suite: Suite, options: RunOptions) -> Suite:
    """Apply the command-line overrides to a suite."""
    return replace(
        suite,
        datasets=select_specs(suite.datasets, options.datasets, lambda n: DatasetSpec(name=n)),
        surrogates=select_specs(suite.surrogates, options.surrogates, lambda n: SurrogateSpec(name=n)),
        seeds=options.seeds or suite.seeds,
        device=options.device or suite.device,
    )


def method_label(spec: SurrogateSpec, eval_params: Mapping[str, Any]) -> str:
    """Display name of a method row: its label or name, then its non-default settings."""
    base = spec.label or spec.name
    if spec.params and not spec.label:
        base += "(" + ",".join(f"{k}={v}" for k, v in sorted(spec.params.items())) + ")"
    if eval_params:
        base += "[" + ",".join(f"{k}={v}" for k, v in sorted(eval_params.items())) + "]"
    return base


def dataset_label(spec: DatasetSpec) -> str:
    """Display name of a dataset configuration."""
    return spec.label or spec.name


class Runner:
    """Runs one resolved suite into one output directory."""

    def __init__(self, suite: Suite, plugins: Plugins, options: RunOptions):
        self.suite = resolve_suite(suite, options)
        self.plugins = plugins
        self.options = options
        self.store = RecordStore(options.out_dir)
        self._datasets: dict[str, PairedDataset] = {}

    # ----------------------------------------------------------------- checks
    def check(self) -> None:
        """Fail early, before any work: unknown names, existing results without resume."""
        registry = self.plugins.registry
        for spec in self.suite.datasets:
            registry.get("dataset", spec.name)
            for target in spec.transfer_to:
                registry.get("dataset", target.name)
        for spec in self.suite.surrogates:
            registry.get("surrogate", spec.name)
        if self.suite.evaluation.metrics is not None:
            for name in self.suite.evaluation.metrics:
                registry.get("metric", name)
        if self.store.exists() and not self.options.resume:
            raise ResultsExistError(
                f"{self.store.path} already holds records; pass --resume to continue that run "
                f"or --out to write a new one (nothing was overwritten)"
            )
        self.store.load()  # a corrupt records file stops the run before anything is written

    # ----------------------------------------------------------------- data
    def dataset(self, name: str, params: Mapping[str, Any]) -> PairedDataset:
        """Build a dataset and attach its (cached) ground truth; memoised per run."""
        from wbench.groundtruth import attach_ground_truth

        memo = canonical_json([name, dict(params)])
        if memo not in self._datasets:
            cls = self.plugins.registry.get("dataset", name).load()
            built = cls(**params).build()
            self._datasets[memo] = attach_ground_truth(
                built, cache_dir=self.options.cache_dir, n_jobs=self.options.n_jobs
            )
        return self._datasets[memo]

    def exact_block(self, dataset: PairedDataset) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """The cached exact W2^2 block function the retrieval metric uses."""
        from wbench.groundtruth import exact_pairwise_w2sq

        def block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
            return exact_pairwise_w2sq(dataset, rows, cols, cache_dir=self.options.cache_dir, n_jobs=self.options.n_jobs)

        return block

    # ----------------------------------------------------------------- run
    def cells(self) -> list[tuple[DatasetSpec, SurrogateSpec, int]]:
        """Every (dataset, method, seed) cell in run order: seed-major, so that an interrupted
        run has every method on every dataset at its first seed before any at its second."""
        return [
            (d, s, seed)
            for seed in self.suite.seeds
            for d in self.suite.datasets
            for s in self.suite.surrogates
            if (s.seeds is None or seed in s.seeds) and s.runs_on(d)
        ]

    def run(self) -> list[dict[str, Any]]:
        """Run every cell not yet finished; return the records written by this call."""
        self.check()
        self.options.out_dir.mkdir(parents=True, exist_ok=True)
        (self.options.out_dir / "suite.json").write_text(
            canonical_json({"suite": dataclasses.asdict(self.suite)}) + "\n"
        )
        written: list[dict[str, Any]] = []
        cells = self.cells()
        bar = progress(cells, desc=f"suite {self.suite.name}", unit="cell")
        for dataset_spec, surrogate_spec, seed in bar:
            bar.set_postfix_str(f"{dataset_label(dataset_spec)} / {surrogate_spec.name} / seed {seed}")
            written.extend(self.run_cell(dataset_spec, surrogate_spec, seed))
        return written

    def _identity(self, d: DatasetSpec, s: SurrogateSpec, seed: int, eval_params: Mapping[str, Any], budget: Budget) -> dict[str, Any]:
        return {
            "dataset": d.name,
            "dataset_params": dict(d.params),
            "dataset_label": dataset_label(d),
            "method": s.name,
            "method_params": dict(s.params),
            "eval_params": dict(eval_params),
            "match_budget": s.match_budget,
            "seed": seed,
            "budget": budget.as_dict(),
        }

    def run_cell(self, d: DatasetSpec, s: SurrogateSpec, seed: int) -> list[dict[str, Any]]:
        """Fit one method once for a seed and write one record per evaluation setting."""
        budget = replace(self.suite.budget, seed=seed, device=self.suite.device)
        identities = [self._identity(d, s, seed, e, budget) for e in s.eval]
        done = self.store.finished_keys() if self.options.resume else set()
        todo = [(e, ident) for e, ident in zip(s.eval, identities, strict=True) if cell_key(**ident) not in done]
        if not todo:
            return []
        started = utc_now()

        def finish(ident: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
            record = {
                "schema_version": SCHEMA_VERSION,
                "key": cell_key(**ident),
                "suite": self.suite.name,
                **ident,
                "label": method_label(s, ident["eval_params"]),
                "status": status,
                "error": fields.pop("error", None),
                "started_at": started,
                "finished_at": utc_now(),
                "provenance": provenance(self.suite.device),
                **fields,
            }
            stored = self.store.append(record)
            self.plugins.manager.hook.wbench_record_finished(record=dict(stored))
            return stored

        try:
            cls = self.plugins.registry.get("surrogate", s.name).load()
        except PluginError as exc:
            return [finish(ident, "unavailable", error=str(exc)) for _, ident in todo]
        if not cls.trainable and seed != self.suite.seeds[0]:
            return []  # solvers have no seed-dependent training: evaluated once, at the first seed
        try:
            dataset = self.dataset(d.name, d.params)
            surrogate, fit_report = self._build_and_fit(cls, s, dataset, budget)
        except Exception as exc:
            return [finish(ident, "failed", error=_describe_error(exc)) for _, ident in todo]

        written = []
        for eval_params, ident in todo:
            try:
                fields = self._evaluate(surrogate, cls, s, d, dataset, eval_params, seed, fit_report, ident)
                written.append(finish(ident, "ok", **fields))
            except Exception as exc:
                written.append(finish(ident, "failed", error=_describe_error(exc)))
        return written

    def _build_and_fit(self, cls: type[Surrogate], s: SurrogateSpec, dataset: PairedDataset, budget: Budget) -> tuple[Surrogate, Any]:
        from wbench.matching import build_at_parameter_target

        check_compatible(cls, s.name, dataset)
        params = cls.params_for(s.params, dataset.measures)
        seed_everything(budget.seed)
        if cls.trainable and budget.param_target is not None and s.match_budget:
            surrogate = build_at_parameter_target(cls, params, budget.param_target, tolerance=budget.param_tolerance)
        else:
            surrogate = cls(**params)
        if isinstance(surrogate, TorchSurrogate):
            surrogate.to(budget.device)
        fit_report = surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
        return surrogate, fit_report

    def _evaluation_dataset(self, cls: type[Surrogate], dataset: PairedDataset) -> PairedDataset:
        """Solvers are slow: they are evaluated on a fixed seeded subset of the test pairs only
        (learned methods and embeddings that set ``evaluate_on_all_pairs``: on every test pair)."""
        limit = self.suite.evaluation.solver_eval_pairs
        if cls.trainable or getattr(cls, "evaluate_on_all_pairs", False):
            return dataset
        test = dataset.pairs["test"]
        if limit is not None and len(test) > limit:
            chosen = np.sort(np.random.default_rng(SUBSET_SEED).permutation(len(test))[:limit])
            test = test.subset(chosen)
        return dataset.with_pairs({"test": test})

    def _evaluate(
        self,
        surrogate: Surrogate,
        cls: type[Surrogate],
        s: SurrogateSpec,
        d: DatasetSpec,
        dataset: PairedDataset,
        eval_params: Mapping[str, Any],
        seed: int,
        fit_report: Any,
        ident: Mapping[str, Any],
    ) -> dict[str, Any]:
        from wbench.evaluation import EvaluationContext, run_metrics

        surrogate.configure(**{**cls.default_eval_params, **eval_params})  # settings never carry over
        evaluated = self._evaluation_dataset(cls, dataset)
        predictions = {
            split: predict_pairs(surrogate, evaluated.split(split)) for split in evaluated.pairs
        }
        metric_fns = self._metric_functions()
        ctx = EvaluationContext(
            surrogate=surrogate,
            dataset=evaluated,
            predictions=predictions,
            exact_block=self.exact_block(dataset),
            seed=seed,
            options=dict(self.suite.evaluation.options),
        )
        metrics, metric_errors = run_metrics(ctx, metric_fns)
        fields: dict[str, Any] = {
            "n_parameters": surrogate.n_parameters,
            "trainable": cls.trainable,
            "fit": fit_report.as_dict(),
            "describe": surrogate.describe(),
            "metrics": metrics,
            "metric_errors": metric_errors,
            "throughput": self._throughput(surrogate, d, dataset) if self.suite.evaluation.throughput else {},
            "transfer": self._transfer(surrogate, cls, d),
            "unit": dataset.unit,
        }
        fields["artifacts"] = self._artifacts(surrogate, fields, predictions, evaluated, ident)
        return fields

    def _metric_functions(self) -> dict[str, Callable[..., Mapping[str, float]]]:
        registry = self.plugins.registry
        names = self.suite.evaluation.metrics or registry.names("metric")
        functions = {}
        for name in names:
            try:
                functions[name] = registry.get("metric", name).load()
            except PluginError:
                continue  # listed as unavailable by `wbench list`; the record names the metrics it has
        return functions

    def _throughput(self, surrogate: Surrogate, d: DatasetSpec, dataset: PairedDataset) -> dict[str, Any]:
        from wbench.throughput import measure_throughput, speedup_columns

        ev = self.suite.evaluation
        figures = dict(
            measure_throughput(
                surrogate, dataset.measures, n_independent=ev.independent_pairs, n_pairwise=ev.pairwise_size,
                rounds=ev.timing_rounds, device=self.suite.device, max_time_s=ev.timing_max_s,
            )
        )
        exact = self._exact_reference_throughput(d, dataset)
        if exact:
            figures.update({f"exact.{k}": v for k, v in exact.items()})
            figures.update(speedup_columns(figures, exact))
        return figures

    def _exact_reference_throughput(self, d: DatasetSpec, dataset: PairedDataset) -> dict[str, float]:
        """The exact LP timed on this dataset right after the method: the denominator of its speed-ups.

        Timed again for every cell (a second or two), so that each speed-up is a ratio of two
        figures taken within seconds of each other under the same load, not against one
        figure taken at another time of the run.
        """
        from wbench.throughput import measure_throughput

        ev = self.suite.evaluation
        try:
            exact = self.plugins.registry.get("surrogate", EXACT_REFERENCE).load()()
            return dict(
                measure_throughput(
                    exact, dataset.measures, n_independent=ev.exact_independent_pairs,
                    n_pairwise=ev.exact_pairwise_size, rounds=max(1, ev.timing_rounds // 2), device="cpu",
                    max_time_s=ev.timing_max_s,
                )
            )
        except (PluginError, WbenchError):
            return {}

    def _transfer(self, surrogate: Surrogate, cls: type[Surrogate], d: DatasetSpec) -> dict[str, Any]:
        """Metrics of the fitted model on the test pairs of each ``transfer_to`` dataset."""
        from wbench.metrics import pair_metrics

        out: dict[str, Any] = {}
        for spec in d.transfer_to:
            label = spec.label or spec.name
            target = self.dataset(spec.name, spec.params)
            try:
                check_compatible(cls, surrogate.__class__.__name__, target, model=surrogate)
            except WbenchError as exc:
                out[f"{label}.error"] = str(exc)
                continue
            test = self._evaluation_dataset(cls, target).split("test")
            predicted = predict_pairs(surrogate, test)
            out.update(pair_metrics(predicted, test.pairs.w2sq, prefix=label))
        return out

    def _artifacts(
        self, surrogate: Surrogate, fields: Mapping[str, Any], predictions: Mapping[str, np.ndarray],
        dataset: PairedDataset, ident: Mapping[str, Any],
    ) -> list[str]:
        from wbench.plots import plot_loss_curves, plot_predicted_vs_true

        ev = self.suite.evaluation
        out_dir = self.options.out_dir
        stem = f"{ident['dataset_label']}-{method_label(SurrogateSpec(name=ident['method'], params=ident['method_params']), ident['eval_params'])}-seed{ident['seed']}"
        stem = "".join(c if c.isalnum() or c in "-_.=" else "_" for c in stem)
        paths: list[Path] = []
        if ev.plots:
            title = f"{ident['method']} on {ident['dataset_label']}, seed {ident['seed']}"
            fit = fields["fit"]
            if fit["train_loss"]:
                paths.append(plot_loss_curves(fit["train_loss"], fit["val_mse"], out_dir / "plots" / f"{stem}-loss.png", title=title))
            true_w2 = dataset.pairs["test"].w2
            paths.append(
                plot_predicted_vs_true(predictions["test"], true_w2, out_dir / "plots" / f"{stem}-pred.png", unit=dataset.unit, title=title)
            )
            writer = getattr(surrogate, "write_artifacts", None)
            if callable(writer):
                paths.extend(Path(p) for p in writer(out_dir / "plots" / stem))
        if ev.save_models and isinstance(surrogate, TorchSurrogate) and type(surrogate).trainable:
            model_path = out_dir / "models" / f"{stem}.pt"
            surrogate.save(model_path)
            paths.append(model_path)
        return [str(p.relative_to(out_dir)) for p in paths]


def check_compatible(cls: type[Surrogate], name: str, dataset: PairedDataset, *, model: Surrogate | None = None) -> None:
    """Raise when a grid model meets point clouds, or a fitted model meets another grid."""
    if cls.input_kind == "grid" and not dataset.measures.is_grid:
        raise WbenchError(f"{name} needs images on a grid, but dataset {dataset.name!r} holds point clouds")
    if model is not None and cls.input_kind == "grid":
        fitted = getattr(model, "params", {}).get("grid_shape")
        if fitted is not None and tuple(fitted) != tuple(dataset.measures.grid_shape or ()):
            raise WbenchError(
                f"model was fitted on {tuple(fitted)} images; dataset {dataset.name!r} has {dataset.measures.grid_shape}"
            )


def _describe_error(exc: BaseException) -> str:
    tail = traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:]
    return f"{type(exc).__name__}: {exc}\n" + "".join(tail).strip()


def run_suite(suite: Suite, plugins: Plugins, options: RunOptions) -> list[dict[str, Any]]:
    """Run a suite into ``options.out_dir``; see :class:`Runner`."""
    return Runner(suite, plugins, options).run()
