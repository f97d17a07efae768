"""Findings of the output-safety review: what `wbench site`, `run`, `leaderboard` and `retime`
may write or delete, and the input checks that must stop a run before any work."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FIXTURES

import wbench.run.runner as runner_module
from wbench.board.site.build import MARKER
from wbench.cli.main import main
from wbench.errors import SuiteError
from wbench.plugin.manager import make_plugin_manager
from wbench.run.options import RunOptions
from wbench.run.runner import Runner
from wbench.run.suite import load_suite, parse_suite

TINY = FIXTURES / "tiny_suite.toml"
LOCAL = str(FIXTURES / "local_plugin.py")
QUICK_RUN = ["run", str(TINY), "--plugin", LOCAL, "--surrogate", "local-centroid", "--seeds", "0"]
RUN_FILES = ("records.jsonl", "suite.json", "leaderboard.md")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[int]]]:
    """The whole tiny suite run once (3 cells: the solver at seed 0, the failing model at seeds
    0 and 1), with the lengths of the iterables its progress bars were given."""
    out = tmp_path_factory.mktemp("results") / "run"
    counts: list[int] = []
    real = runner_module.progress

    def spy(iterable=None, **kwargs):
        items = list(iterable) if iterable is not None else None
        counts.append(len(items) if items is not None else kwargs.get("total"))
        return real(items, **kwargs)

    runner_module.progress = spy
    try:
        assert main(["run", str(TINY), "--plugin", LOCAL, "--out", str(out)]) == 1  # the failing model fails
    finally:
        runner_module.progress = real
    yield out, counts


def _copy_run(tiny_run: tuple[Path, list[int]], dest: Path) -> Path:
    shutil.copytree(tiny_run[0], dest)
    return dest


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _suite(tmp_path: Path, text: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- 1: site never deletes a run


@pytest.mark.parametrize("where", ["is", "contains", "lies inside"])
def test_site_refuses_an_out_that_is_holds_or_lies_inside_a_run_folder(tmp_path, capsys, tiny_run, where) -> None:
    results = tmp_path / "results"
    run = _copy_run(tiny_run, results / "run")
    out = {"is": run, "contains": results, "lies inside": run / "site"}[where]
    before = _snapshot(results)
    assert main(["site", str(run), "--out", str(out), "--force"]) == 2  # --force does not override this
    err = capsys.readouterr().err
    assert f"site output {out} {where} the run folder {run.resolve()}" in err and "nothing was written or deleted" in err
    assert _snapshot(results) == before and not (run / "site").exists()


def test_site_refuses_a_previous_site_folder_that_now_holds_a_run(tmp_path, capsys, tiny_run) -> None:
    """A folder with the site's marker is cleaned on rebuild: a run folder put in it must survive."""
    site = tmp_path / "site"
    assert main(["site", str(tiny_run[0]), "--out", str(site)]) == 0
    assert (site / MARKER).is_file()
    run = _copy_run(tiny_run, site / "my-run")
    assert main(["site", str(tiny_run[0]), "--out", str(site)]) == 2
    assert "contains the run folder" in capsys.readouterr().err
    assert all((run / name).is_file() for name in RUN_FILES)


def test_site_refuses_a_foreign_non_empty_folder_unless_force(tmp_path, capsys, tiny_run) -> None:
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["site", str(tiny_run[0]), "--out", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert f"site output {foreign} is a non-empty folder not built by `wbench site`" in err and "--force" in err
    assert (foreign / "notes.txt").read_text() == "mine" and not (foreign / "index.html").exists()
    assert main(["site", str(tiny_run[0]), "--out", str(foreign), "--force"]) == 0
    assert (foreign / "index.html").is_file() and (foreign / MARKER).is_file()


# --------------------------------------------------------------------------- 2: run folder names and --out


@pytest.mark.parametrize("name", ["../../x", "/tmp/abs", "a/b", ".hidden", "a\\b", ".."])
def test_a_suite_name_that_is_a_path_is_refused_naming_the_key(name) -> None:
    text = TINY.read_text().replace('name = "tiny"', f"name = {name!r}")
    with pytest.raises(SuiteError, match=r"s\.toml: \[suite\]\.name: the suite name must be a plain name"):
        parse_suite(text, source="s.toml")


def test_a_suite_name_with_dots_leaves_runs_untouched(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    suite = _suite(tmp_path, TINY.read_text().replace('name = "tiny"', 'name = "../escaped"'))
    assert main(["run", str(suite), "--plugin", LOCAL]) == 2
    assert "[suite].name" in capsys.readouterr().err
    assert not (tmp_path.parent / "escaped").exists() and not (tmp_path / "runs").exists()


def test_run_refuses_a_non_empty_folder_that_is_not_a_run_unless_force(tmp_path, capsys) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "leaderboard.md").write_text("my own notes")
    assert main([*QUICK_RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"the output directory {out} is a non-empty folder that is not a wbench run folder" in err
    assert "--force" in err and "nothing was written" in err
    assert sorted(p.name for p in out.iterdir()) == ["leaderboard.md"]
    assert (out / "leaderboard.md").read_text() == "my own notes"
    assert main([*QUICK_RUN, "--out", str(out), "--force"]) == 0
    assert (out / "records.jsonl").is_file()


# --------------------------------------------------------------------------- 3: input checks before any work


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("seeds = [0, 1]", "seeds = [0, 100000000000000000000]"), r"\[suite\]\.seeds: a seed must be a non-negative integer below 2\*\*32"),
        (("seeds = [0, 1]", "seeds = [0, 1e20]"), r"\[suite\]\.seeds: a seed must be an integer, got float"),
        (("seeds = [0, 1]", "seeds = [-3]"), r"\[suite\]\.seeds: a seed must be a non-negative integer"),
        (("batch_size = 16", "batch_size = 16\nlr = inf"), r"\[budget\]: budget lr must be a finite positive number, got float inf"),
        (("batch_size = 16", 'batch_size = 16\nlr = "fast"'), r"\[budget\]: budget lr must be a finite positive number, got str 'fast'"),
        (('name = "failing"', 'name = "failing"\nseeds = [4294967296]'), r"surrogates\[1\]\.seeds: a seed must be"),
    ],
)
def test_bad_seeds_and_learning_rates_are_refused_naming_the_key(edit, message) -> None:
    with pytest.raises(SuiteError, match=message):
        parse_suite(TINY.read_text().replace(*edit), source="s.toml")


def test_negative_seed_option_is_refused_before_any_work(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", str(TINY), "--plugin", LOCAL, "--seeds", "-1", "--out", str(out)]) == 2
    assert "--seeds: a seed must be a non-negative integer below 2**32, got -1" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("width", ["-5", "0", "2.5", '"wide"'])
def test_a_non_positive_width_is_refused_before_any_work(tmp_path, capsys, width) -> None:
    text = TINY.read_text().replace('name = "local-centroid"', f'name = "naive"\nparams = {{ width = {width} }}')
    out = tmp_path / "run"
    assert main(["run", str(_suite(tmp_path, text)), "--plugin", LOCAL, "--out", str(out)]) == 2
    assert "surrogates[0] (naive).params.width: a width must be a positive integer" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("root", ["missing", None])
def test_mnist_without_its_folder_stops_before_writing_a_run_folder(tmp_path, capsys, monkeypatch, root) -> None:
    monkeypatch.delenv("WBENCH_MNIST_ROOT", raising=False)
    params = f'params = {{ root = "{tmp_path / root}" }}' if root else ""
    text = TINY.read_text().replace('name = "toy-blobs"\nparams = { n = 20, n_pairs = 60 }', f'name = "mnist"\n{params}')
    out = tmp_path / "run"
    assert main(["run", str(_suite(tmp_path, text)), "--plugin", LOCAL, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "datasets[0] (mnist).params: dataset 'mnist' cannot be built:" in err and "WBENCH_MNIST_ROOT" in err
    assert not out.exists()


# --------------------------------------------------------------------------- 4: the progress bar's count


def test_progress_counts_only_the_cells_that_run(tiny_run) -> None:
    run, counts = tiny_run
    assert counts == [3]  # 4 (dataset, method, seed) cells; the solver runs at the first seed only
    plugins = make_plugin_manager([LOCAL])
    suite = load_suite(TINY)
    assert len(Runner(suite, plugins, RunOptions(out_dir=run)).cells()) == 4
    assert len(Runner(suite, plugins, RunOptions(out_dir=run)).planned_cells()) == 3
    assert Runner(suite, plugins, RunOptions(out_dir=run, resume=True, surrogates=("local-centroid",))).planned_cells() == []


# --------------------------------------------------------------------------- 5: unwritable outputs


@pytest.fixture
def blocker(tmp_path: Path) -> Path:
    """A file where a folder would have to be: nothing can be written below it (even as root)."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def test_leaderboard_out_and_plots_unwritable_are_clear_errors(tiny_run, blocker, capsys) -> None:
    assert main(["leaderboard", str(tiny_run[0]), "--out", str(blocker / "board.md")]) == 2
    err = capsys.readouterr().err
    assert f"--out {blocker / 'board.md'}: its folder cannot be written" in err and "Traceback" not in err
    assert main(["leaderboard", str(tiny_run[0]), "--plots", str(blocker / "plots")]) == 2
    assert f"--plots {blocker / 'plots'}: cannot write there" in capsys.readouterr().err
    assert main(["leaderboard", str(tiny_run[0]), "--out", str(blocker.parent)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err


def test_site_out_unwritable_is_a_clear_error(tiny_run, blocker, capsys) -> None:
    assert main(["site", str(tiny_run[0]), "--out", str(blocker / "site")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write to the output directory {blocker / 'site'}" in err
    assert main(["site", str(tiny_run[0]), "--out", str(blocker)]) == 2
    assert f"site output {blocker} exists and is not a folder" in capsys.readouterr().err


def test_retime_checks_its_output_before_any_timing(tiny_run, blocker, capsys, monkeypatch) -> None:
    import wbench.run.timing_pass as timing_pass

    monkeypatch.setattr(timing_pass, "series_of", lambda *a, **k: pytest.fail("reached the models before the output check"))
    assert main(["retime", str(tiny_run[0]), "--out", str(blocker / "timing.json")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the timing output {blocker / 'timing.json'}" in err and "Traceback" not in err
