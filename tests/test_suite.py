"""Suite files: parsing, defaults, and errors that name the key or line."""

from __future__ import annotations

import pytest
from conftest import FIXTURES

from wbench.errors import SuiteError
from wbench.run.suite import builtin_suites, load_suite, parse_suite

MINIMAL = """
[[datasets]]
name = "digits"
[[surrogates]]
name = "naive"
"""


def test_tiny_suite_parses() -> None:
    suite = load_suite(FIXTURES / "tiny_suite.toml")
    assert suite.name == "tiny" and suite.seeds == (0, 1)
    assert suite.budget.steps == 4 and suite.budget.batch_size == 16
    assert [s.name for s in suite.surrogates] == ["local-centroid", "failing"]
    assert suite.evaluation.options["k"] == 3


def test_defaults() -> None:
    suite = parse_suite(MINIMAL, source="minimal.toml")
    assert suite.name == "minimal" and suite.seeds == (0, 1, 2) and suite.device == "cpu"
    assert suite.surrogates[0].eval == ({},)


def test_a_method_can_run_a_subset_of_the_seeds() -> None:
    suite = parse_suite(MINIMAL + "seeds = [0]\n", source="m.toml")
    assert suite.surrogates[0].seeds == (0,)
    with pytest.raises(SuiteError, match=r"surrogates\[0\].seeds is empty"):
        parse_suite(MINIMAL + "seeds = []\n", source="m.toml")


def test_a_method_can_run_on_a_subset_of_the_datasets() -> None:
    two = MINIMAL.replace('[[surrogates]]', '[[datasets]]\nname = "shapes"\nlabel = "disks"\n[[surrogates]]', 1)
    suite = parse_suite(two + 'datasets = ["disks"]\n', source="m.toml")
    spec = suite.surrogates[0]
    assert spec.datasets == ("disks",)
    assert [spec.runs_on(d) for d in suite.datasets] == [False, True]
    with pytest.raises(SuiteError, match=r"surrogates\[0\].datasets names 'mnist', not a dataset of this suite \(its datasets: digits, disks\)"):
        parse_suite(two + 'datasets = ["mnist"]\n', source="m.toml")


def test_builtin_suites_parse() -> None:
    names = builtin_suites()
    assert "quick" in names
    for name in names:
        assert load_suite(name).datasets


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[suite]\nname = \n", r"invalid TOML.*line 2"),
        (MINIMAL + "[budget]\nepocs = 3\n", r"\[budget\]: unknown key 'epocs'"),
        (MINIMAL + "[budget]\nepochs = -1\n", r"epochs must be a positive integer"),
        (MINIMAL + "[suite]\nseeds = 3\n", r"\[suite\].seeds: expected list"),
        ("[[surrogates]]\nname = 'naive'\n", r"lists no datasets"),
        (MINIMAL.replace('name = "naive"', 'nmae = "naive"'), r"surrogates\[0\]: unknown key 'nmae'"),
        (MINIMAL + "[evaluation]\nthroughput = 'yes'\n", r"\[evaluation\].throughput: expected bool"),
        (MINIMAL + "[colours]\nx = 1\n", r"unknown key 'colours'"),
    ],
)
def test_malformed_suites_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        parse_suite(text, source="bad.toml")


def test_unknown_builtin_suite_lists_the_builtin_ones() -> None:
    with pytest.raises(SuiteError, match="built-in: .*quick"):
        load_suite("no-such-suite")


def test_cells_are_seed_major_across_datasets_and_respect_method_subsets(tmp_path) -> None:
    """An interrupted run has every method on every dataset at seed 0 before any at seed 1."""
    from wbench.plugin.manager import make_plugin_manager
    from wbench.run.runner import Runner, RunOptions

    text = MINIMAL.replace("[[surrogates]]", '[[datasets]]\nname = "shapes"\n[[surrogates]]', 1)
    text += '[[surrogates]]\nname = "lot"\nseeds = [0]\n[[surrogates]]\nname = "dwe"\ndatasets = ["digits"]\n'
    suite = parse_suite('[suite]\nseeds = [0, 1]\n' + text, source="m.toml")
    cells = Runner(suite, make_plugin_manager(), RunOptions(out_dir=tmp_path)).cells()
    assert [(d.name, s.name, seed) for d, s, seed in cells] == [
        ("digits", "naive", 0), ("digits", "lot", 0), ("digits", "dwe", 0),
        ("shapes", "naive", 0), ("shapes", "lot", 0),
        ("digits", "naive", 1), ("digits", "dwe", 1),
        ("shapes", "naive", 1),
    ]


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("[budget]\nparam_target = 0\n", r"\[budget\]: budget param_target must be a positive integer .*got 0"),
        ("[budget]\nparam_target = -5\n", r"\[budget\]: budget param_target must be a positive integer .*got -5"),
        ("[evaluation]\ntiming_rounds = 0\n", r"\[evaluation\].timing_rounds must be at least 1, got 0"),
        ("[evaluation]\nindependent_pairs = 0\n", r"\[evaluation\].independent_pairs must be at least 1, got 0"),
        ("[evaluation]\npairwise_size = -1\n", r"\[evaluation\].pairwise_size must be at least 1, got -1"),
        ("[evaluation]\ntiming_max_s = 0.0\n", r"\[evaluation\].timing_max_s must be positive, got 0.0"),
        ("[evaluation]\ndirect_n = [16, 0]\n", r"\[evaluation\].direct_n must list positive integers, got 0"),
        ("[evaluation]\ndirect_n = 16\n", r"\[evaluation\].direct_n: expected list"),
        ("[evaluation]\nmin_round_s = -0.1\n", r"\[evaluation\].min_round_s must be at least 0.0, got -0.1"),
        ("[evaluation]\ncost_threads = -1\n", r"\[evaluation\].cost_threads must be at least 0, got -1"),
        ("[evaluation]\nspeedup_sides = ['one']\n", r"\[evaluation\].speedup_sides lists 'one_core' and/or"),
    ],
)
def test_sizes_that_cannot_work_are_errors_at_load_naming_the_key(table: str, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        parse_suite(table + MINIMAL, source="s.toml")


def test_builtin_suites_pass_the_checks_against_the_installed_plugins() -> None:
    from wbench.errors import SuiteError
    from wbench.plugin.manager import make_plugin_manager
    from wbench.run.suite_check import check_primary, check_suite, known_metric_columns
    from wbench_plugins.datasets.mnist import MnistNotFoundError

    registry = make_plugin_manager().registry
    missing = []
    for name in builtin_suites():
        suite = load_suite(name)
        check_primary(suite.primary_metric, known_metric_columns(), where=name)
        try:
            check_suite(suite, registry)  # raises naming the key of any undeclared parameter
        except SuiteError as exc:
            if not isinstance(exc.__cause__, MnistNotFoundError):
                raise
            missing.append(f"{name}: {exc}")  # MNIST files absent here (mnist-labels needs the training file)
    if missing:
        pytest.skip("; ".join(missing))


def test_known_metrics_include_every_pair_statistic_of_each_split() -> None:
    from wbench.run.suite_check import known_metric_columns, pair_metric_columns

    columns = pair_metric_columns()
    assert {"test.w2.mae", "train.w2sq.pearson", "val.w2.rel_mae", "test.n_failed"} <= columns
    assert "test.w2.rel_mae" in known_metric_columns() and "bogus.metric" not in known_metric_columns()


def test_timing_options_parse_with_their_defaults() -> None:
    default = parse_suite(MINIMAL, source="s.toml").evaluation
    assert (default.direct_n, default.min_round_s, default.cost_threads) == ((16, 256, 4096), 0.2, 1)
    ev = parse_suite("[evaluation]\ndirect_n = [8, 64]\nmin_round_s = 1\ncost_threads = 0\n" + MINIMAL, source="s.toml").evaluation
    assert (ev.direct_n, ev.min_round_s, ev.cost_threads) == ((8, 64), 1.0, 0)


def test_a_run_directory_named_like_a_builtin_suite_does_not_hide_it(tmp_path, monkeypatch) -> None:
    """`wbench run mnist` from a folder that holds the run directory `mnist/` loads the built-in
    suite; a directory that is no suite's name says it is a directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mnist").mkdir()
    assert load_suite("mnist").name == "mnist"
    (tmp_path / "my-run").mkdir()
    with pytest.raises(SuiteError, match="my-run is a directory, not a suite file"):
        load_suite("my-run")
    with pytest.raises(SuiteError, match="suite file not found: absent.toml"):
        load_suite("absent.toml")


def test_a_method_may_state_its_own_learning_rate_and_keeps_the_suites_steps() -> None:
    from wbench.run.suite import budget_for, parse_suite

    suite = parse_suite('[suite]\nname = "x"\n[budget]\nsteps = [100, 200]\nlr = 0.001\n[[datasets]]\nname = "d"\n'
                        '[[surrogates]]\nname = "a"\nbudget = { lr = 0.0001 }\n[[surrogates]]\nname = "b"\n')
    own, shared = (budget_for(suite, s) for s in suite.surrogates)
    assert own.lr == 0.0001 and shared.lr == 0.001
    assert own.milestone_list == shared.milestone_list == (100, 200)


def test_the_command_line_selects_datasets_by_name_or_by_label() -> None:
    from pathlib import Path

    from wbench.run.options import RunOptions, resolve_suite

    suite = load_suite("mnist-labels")

    def chosen(*names: str) -> list[str]:
        return [d.label for d in resolve_suite(suite, RunOptions(out_dir=Path("x"), datasets=names)).datasets]

    assert chosen("mnist-n500") == ["mnist-n500"]
    assert chosen("mnist-n2000", "mnist-n500", "mnist-n500") == ["mnist-n2000", "mnist-n500"]
    assert chosen("mnist") == ["mnist-n500", "mnist-n2000", "mnist-n10000", "mnist-n49500"]
