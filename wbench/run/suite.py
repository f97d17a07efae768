"""Suite files (TOML): which datasets, which methods, which seeds, under which budget.

Example::

    [suite]
    name = "quick"
    seeds = [0, 1, 2]
    primary_metric = "test.w2.rel_mae"

    [budget]            # every learned method gets exactly this
    epochs = 5          # or milestones of one run: steps = [400, 2000] (epochs = [1, 5])
    param_target = 20000

    [evaluation]
    throughput = true

    [[datasets]]
    name = "digits"
    params = { pairs_per_combination = 20 }

    [[surrogates]]
    name = "sinkhorn"
    eval = [{ reg = 1.0 }, { reg = 0.1 }]   # one leaderboard row per setting

Unknown keys and wrong types are errors that name the key; TOML syntax errors name the line.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from wbench.budget import Budget
from wbench.errors import SuiteError

DEFAULT_SUITE = "quick"
"""Seeds are integers in ``[0, SEED_LIMIT)`` (what every random generator wbench seeds accepts)."""
DEFAULT_PRIMARY_METRIC = "test.w2.rel_mae"
"""The metric that ranks leaderboards when a suite or command names none (lower is better)."""


@dataclass(frozen=True)
class TransferSpec:
    """A dataset that models fitted on another dataset are evaluated on (test pairs)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset in a suite: plugin name, build params, and datasets to evaluate transfer on."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    transfer_to: tuple[TransferSpec, ...] = ()
    label: str = ""


@dataclass(frozen=True)
class SurrogateSpec:
    """A method in a suite: fit-time params, a list of evaluation settings, and budget matching."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    eval: tuple[Mapping[str, Any], ...] = ({},)
    match_budget: bool = True
    label: str = ""
    seeds: tuple[int, ...] | None = None
    datasets: tuple[str, ...] | None = None
    """Labels (or names) of the suite's datasets this method runs on; None: all of them."""
    budget: Mapping[str, Any] = field(default_factory=dict)
    """This method's own training length: ``steps`` or ``epochs`` (a number or milestones),
    replacing the suite's; every other budget setting stays the suite's. Empty: the suite's."""

    def runs_on(self, dataset: DatasetSpec) -> bool:
        """Whether this method has cells on ``dataset``."""
        return self.datasets is None or (dataset.label or dataset.name) in self.datasets


@dataclass(frozen=True)
class EvaluationSpec:
    """How cells are evaluated (sizes are numbers of pairs or measures)."""

    metrics: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    throughput: bool = True
    independent_pairs: int = 4096
    pairwise_size: int = 1024
    exact_independent_pairs: int = 256
    exact_pairwise_size: int = 16
    timing_rounds: int = 5
    timing_max_s: float = 60.0
    solver_eval_pairs: int | None = 500
    save_models: bool = True
    plots: bool = True
    speedup_reference: str = "exact-lp"
    """The registered surrogate whose throughput divides every speed-up (timed in each cell)."""
    direct_n: tuple[int, ...] = (16, 256, 4096)
    """Sizes ``n`` at which an embedding method's real ``pairwise`` of an ``n x n`` block is
    timed directly, next to the cost model's prediction (sizes whose predicted timing would
    exceed the time budget are skipped and say so)."""
    min_round_s: float = 0.2
    """Seconds every timing round lasts at least (the call is repeated inside it)."""
    cost_threads: int = 1
    """Torch / BLAS threads of the cost model on the CPU (1: one core, like the papers'
    1-CPU figures; 0: as set, all cores by default)."""
    speedup_sides: tuple[str, ...] = ("one_core", "all_cores")
    """Which fair speed-ups to time: ``one_core`` (in-process LP) and ``all_cores`` (the LP
    through the oracle's process pool, whose start-up costs seconds once per process)."""


@dataclass(frozen=True)
class Suite:
    """A parsed suite file."""

    name: str
    datasets: tuple[DatasetSpec, ...]
    surrogates: tuple[SurrogateSpec, ...]
    budget: Budget
    seeds: tuple[int, ...] = (0, 1, 2)
    device: str = "cpu"
    primary_metric: str = DEFAULT_PRIMARY_METRIC
    description: str = ""
    evaluation: EvaluationSpec = field(default_factory=EvaluationSpec)
    source: str = ""
    cell_time_limit_s: float | None = None
    """Seconds one cell (fit and evaluation) may run before it is stopped and recorded as
    failed (``[suite] cell_time_limit_s``; None: no limit)."""


_TOP_KEYS = {"suite", "budget", "evaluation", "datasets", "surrogates"}
_SUITE_KEYS = {"name", "description", "seeds", "device", "primary_metric", "cell_time_limit_s"}


def _check_keys(table: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SuiteError(f"{where}: unknown key {unknown[0]!r}; allowed keys: {', '.join(sorted(allowed))}")


def _expect(value: Any, kind: type | tuple[type, ...], where: str) -> Any:
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise SuiteError(f"{where}: expected a number, got {value!r}")
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise SuiteError(f"{where}: expected {names}, got {type(value).__name__} {value!r}")
    return value


from wbench.run.suite_fields import SEED_LIMIT, check_run_name, check_seed, check_time_limit  # noqa: E402,F401


def _table_list(doc: Mapping[str, Any], key: str, source: str) -> list[Mapping[str, Any]]:
    items = doc.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise SuiteError(f"{source}: [[{key}]] must be an array of tables")
    if not items:
        raise SuiteError(f"{source}: the suite lists no {key} (add a [[{key}]] table)")
    return items


def _dataset_spec(table: Mapping[str, Any], where: str) -> DatasetSpec:
    _check_keys(table, {"name", "params", "transfer_to", "label"}, where)
    if "name" not in table:
        raise SuiteError(f"{where}: missing key 'name'")
    transfer = _expect(table.get("transfer_to", []), list, f"{where}.transfer_to")
    return DatasetSpec(
        name=_expect(table["name"], str, f"{where}.name"),
        params=dict(_expect(table.get("params", {}), dict, f"{where}.params")),
        transfer_to=tuple(_transfer_spec(t, f"{where}.transfer_to[{k}]") for k, t in enumerate(transfer)),
        label=_expect(table.get("label", ""), str, f"{where}.label"),
    )


def _transfer_spec(item: Any, where: str) -> TransferSpec:
    if isinstance(item, str):
        return TransferSpec(name=item)
    _expect(item, dict, where)
    _check_keys(item, {"name", "params", "label"}, where)
    if "name" not in item:
        raise SuiteError(f"{where}: missing key 'name'")
    return TransferSpec(
        name=_expect(item["name"], str, f"{where}.name"),
        params=dict(_expect(item.get("params", {}), dict, f"{where}.params")),
        label=_expect(item.get("label", ""), str, f"{where}.label"),
    )


def _surrogate_spec(table: Mapping[str, Any], where: str) -> SurrogateSpec:
    _check_keys(table, {"name", "params", "eval", "match_budget", "label", "seeds", "datasets", "budget"}, where)
    own_budget = dict(_expect(table.get("budget", {}), dict, f"{where}.budget"))
    _check_keys(own_budget, {"steps", "epochs", "lr"}, f"{where}.budget")
    if "name" not in table:
        raise SuiteError(f"{where}: missing key 'name'")
    evals = table.get("eval", [{}])
    if isinstance(evals, dict):
        evals = [evals]
    _expect(evals, list, f"{where}.eval")
    if not evals:
        raise SuiteError(f"{where}.eval: give at least one setting ({{}} for the defaults)")
    for k, setting in enumerate(evals):
        _expect(setting, dict, f"{where}.eval[{k}]")
    return SurrogateSpec(
        name=_expect(table["name"], str, f"{where}.name"),
        params=dict(_expect(table.get("params", {}), dict, f"{where}.params")),
        eval=tuple(dict(e) for e in evals),
        match_budget=_expect(table.get("match_budget", True), bool, f"{where}.match_budget"),
        label=_expect(table.get("label", ""), str, f"{where}.label"),
        seeds=_optional_seeds(table, where),
        datasets=_optional_names(table, "datasets", where),
        budget=own_budget,
    )


def _optional_names(table: Mapping[str, Any], key: str, where: str) -> tuple[str, ...] | None:
    """A non-empty list of strings under ``key``, or None when absent."""
    if key not in table:
        return None
    names = _expect(table[key], list, f"{where}.{key}")
    if not names:
        raise SuiteError(f"{where}.{key} is empty")
    return tuple(_expect(n, str, f"{where}.{key}") for n in names)


def _optional_seeds(table: Mapping[str, Any], where: str) -> tuple[int, ...] | None:
    """A method's own seeds (a subset it can afford), or None for the suite's seeds."""
    if "seeds" not in table:
        return None
    seeds = _expect(table["seeds"], list, f"{where}.seeds")
    if not seeds:
        raise SuiteError(f"{where}.seeds is empty")
    return tuple(check_seed(s, f"{where}.seeds") for s in seeds)


def _budget(table: Mapping[str, Any], source: str) -> Budget:
    """The suite's budget; ``steps = [400, 2000]`` (or ``epochs = [...]``) states milestones:
    one run per (method, seed), evaluated at each (the last is the budget's length)."""
    allowed = {f.name for f in fields(Budget)} - {"seed", "device", "milestones"}
    _check_keys(table, allowed, f"{source}: [budget]")
    try:
        return Budget(**_with_milestones(dict(table), source))
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{source}: [budget]: {exc}") from exc


def budget_for(suite: Suite, spec: SurrogateSpec) -> Budget:
    """The budget of ``spec``'s cells: the suite's, with the method's own ``steps`` or
    ``epochs`` (and milestones) and learning rate ``lr`` when it states them
    (``[[surrogates]] budget = {...}``)."""
    if not spec.budget:
        return suite.budget
    values = suite.budget.as_dict()
    if "steps" in spec.budget or "epochs" in spec.budget:
        values.pop("milestones", None)
        values.pop("steps", None)
    if "epochs" in spec.budget:
        values["steps"] = None
    values.update(spec.budget)
    where = f"{suite.source}: surrogate {spec.label or spec.name}: budget"
    try:
        return Budget(**_with_milestones(values, where))
    except (TypeError, ValueError) as exc:
        raise SuiteError(f"{where}: {exc}") from exc


def _with_milestones(values: dict[str, Any], source: str) -> dict[str, Any]:
    """Budget keywords with a list under ``steps`` or ``epochs`` read as milestones."""
    listed = [name for name in ("steps", "epochs") if isinstance(values.get(name), list)]
    if len(listed) > 1:
        raise SuiteError(f"{source}: [budget]: milestones go in steps or in epochs, not both")
    if listed == ["epochs"] and values.get("steps") is not None:
        raise SuiteError(f"{source}: [budget]: epochs milestones count epochs; leave steps out")
    if listed:
        name = listed[0]
        milestones = values[name]
        if not milestones:
            raise SuiteError(f"{source}: [budget].{name} is an empty list of milestones")
        values[name] = milestones[-1]
        values["milestones"] = tuple(milestones)
        if name == "epochs":
            values.setdefault("steps", None)
    return values


def _evaluation(table: Mapping[str, Any], source: str) -> EvaluationSpec:
    allowed = {f.name for f in fields(EvaluationSpec)}
    _check_keys(table, allowed, f"{source}: [evaluation]")
    values = dict(table)
    if "metrics" in values:
        values["metrics"] = tuple(_expect(values["metrics"], list, f"{source}: [evaluation].metrics"))
    if "direct_n" in values:
        sizes = _expect(values["direct_n"], list, f"{source}: [evaluation].direct_n")
        for n in sizes:
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise SuiteError(f"{source}: [evaluation].direct_n must list positive integers, got {n!r}")
        values["direct_n"] = tuple(sizes)
    if "speedup_sides" in values:
        sides = _expect(values["speedup_sides"], list, f"{source}: [evaluation].speedup_sides")
        unknown = [side for side in sides if side not in ("one_core", "all_cores")]
        if unknown or not sides:
            raise SuiteError(
                f"{source}: [evaluation].speedup_sides lists 'one_core' and/or 'all_cores', got {sides!r}"
            )
        values["speedup_sides"] = tuple(sides)
    if isinstance(values.get("min_round_s"), int) and not isinstance(values["min_round_s"], bool):
        values["min_round_s"] = float(values["min_round_s"])
    defaults = EvaluationSpec()
    for key, value in values.items():
        if key in ("metrics", "options", "direct_n", "speedup_sides"):
            continue
        default = getattr(defaults, key)
        expected = type(default) if default is not None else (int, type(None))
        _expect(value, expected, f"{source}: [evaluation].{key}")
        if key in _EVALUATION_MINIMUM and value is not None and not value >= _EVALUATION_MINIMUM[key]:
            raise SuiteError(f"{source}: [evaluation].{key} must be at least {_EVALUATION_MINIMUM[key]}, got {value!r}")
    if "timing_max_s" in values and not values["timing_max_s"] > 0:
        raise SuiteError(f"{source}: [evaluation].timing_max_s must be positive, got {values['timing_max_s']!r}")
    return EvaluationSpec(**values)


_EVALUATION_MINIMUM = {
    "independent_pairs": 1, "pairwise_size": 1, "exact_independent_pairs": 1, "exact_pairwise_size": 1,
    "timing_rounds": 1, "solver_eval_pairs": 1, "min_round_s": 0.0, "cost_threads": 0,
}
"""The smallest value each size of ``[evaluation]`` accepts (a count of pairs, measures or rounds)."""


def parse_suite(text: str, *, source: str = "<suite>") -> Suite:
    """Parse suite TOML text; raise :class:`SuiteError` naming the line or key on any problem."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{source}: invalid TOML: {exc}") from exc
    _check_keys(doc, _TOP_KEYS, source)
    head = _expect(doc.get("suite", {}), dict, f"{source}: [suite]")
    _check_keys(head, _SUITE_KEYS, f"{source}: [suite]")
    seeds = _expect(head.get("seeds", [0, 1, 2]), list, f"{source}: [suite].seeds")
    if not seeds:
        raise SuiteError(f"{source}: [suite].seeds is empty")
    suite = Suite(
        name=check_run_name(
            head.get("name", Path(source).stem),
            f"{source}: [suite].name" + ("" if "name" in head else " (not given: the file's name)"),
        ),
        description=_expect(head.get("description", ""), str, f"{source}: [suite].description"),
        seeds=tuple(check_seed(s, f"{source}: [suite].seeds") for s in seeds),
        device=_expect(head.get("device", "cpu"), str, f"{source}: [suite].device"),
        cell_time_limit_s=check_time_limit(head.get("cell_time_limit_s"), f"{source}: [suite].cell_time_limit_s"),
        primary_metric=_expect(head.get("primary_metric", DEFAULT_PRIMARY_METRIC), str, f"{source}: [suite].primary_metric"),
        budget=_budget(_expect(doc.get("budget", {}), dict, f"{source}: [budget]"), source),
        evaluation=_evaluation(_expect(doc.get("evaluation", {}), dict, f"{source}: [evaluation]"), source),
        datasets=tuple(
            _dataset_spec(t, f"{source}: datasets[{i}]") for i, t in enumerate(_table_list(doc, "datasets", source))
        ),
        surrogates=tuple(
            _surrogate_spec(t, f"{source}: surrogates[{i}]") for i, t in enumerate(_table_list(doc, "surrogates", source))
        ),
        source=source,
    )
    known = {d.label or d.name for d in suite.datasets}
    for spec in suite.surrogates:
        budget_for(suite, spec)  # a bad per-method budget stops the parse, naming the method
    for i, spec in enumerate(suite.surrogates):
        unknown = sorted(set(spec.datasets or ()) - known)
        if unknown:
            raise SuiteError(
                f"{source}: surrogates[{i}].datasets names {unknown[0]!r}, not a dataset of this suite "
                f"(its datasets: {', '.join(sorted(known))})"
            )
    return suite


def load_suite(path_or_name: str | Path | None = None) -> Suite:
    """Load a suite file by path, or a built-in suite by name (``quick``, ``paper`` ...)."""
    if path_or_name is None:
        path_or_name = DEFAULT_SUITE
    path = Path(path_or_name)
    # A directory named like a built-in suite (the run directory `mnist/` beside `wbench run
    # mnist`) does not hide it.
    if path.suffix == ".toml" or (path.exists() and not path.is_dir()):
        if not path.is_file():
            raise SuiteError(f"suite file not found: {path}")
        return parse_suite(path.read_text(), source=str(path))
    builtin = resources.files("wbench") / "suites" / f"{path_or_name}.toml"
    if not builtin.is_file():
        what = f"{path} is a directory, not a suite file (.toml)," if path.is_dir() else f"no suite file {path_or_name!r}"
        raise SuiteError(f"{what} and no built-in suite of that name; built-in: {', '.join(builtin_suites())}")
    return parse_suite(builtin.read_text(), source=f"built-in:{path_or_name}")


def builtin_suites() -> list[str]:
    """Names of the suites shipped with wbench."""
    return sorted(p.name.removesuffix(".toml") for p in (resources.files("wbench") / "suites").iterdir() if p.name.endswith(".toml"))
