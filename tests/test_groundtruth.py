"""Ground truth attached to datasets, the cached exact block, and ``wbench prepare``."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import numpy as np
import pytest

import wbench.oracle.lp as lp
from wbench.cli.prepare import (
    AssignmentError,
    DatasetParamsError,
    add_prepare_parser,
    parse_assignments,
    run_prepare,
)
from wbench.data import PairedDataset, PairSet
from wbench.errors import InvalidMeasureError, UnknownNameError
from wbench.measures import MeasureBatch
from wbench.oracle.groundtruth import (
    SPOT_CHECKS,
    attach_ground_truth,
    compute_ground_truth,
    exact_pairwise_w2sq,
)
from wbench.oracle.solve import exact_w2sq, exact_w2sq_block
from wbench.plugin.manager import make_plugin_manager


def toy_dataset(n: int = 12, seed: int = 0) -> PairedDataset:
    rng = np.random.default_rng(seed)
    imgs = rng.random((n, 7, 7))
    imgs[imgs < 0.6] = 0.0
    pairs = {
        name: PairSet(rng.integers(0, n, size), rng.integers(0, n, size))
        for name, size in (("train", 25), ("val", 6), ("test", 7), ("extra", 0))
    }
    return PairedDataset("toy", {"n": n, "seed": seed}, MeasureBatch.from_images(imgs), pairs, unit="pixel")


def test_attach_fills_every_split(tmp_path: Path) -> None:
    ds = toy_dataset()
    assert not ds.has_ground_truth
    out = attach_ground_truth(ds, cache_dir=tmp_path, n_jobs=1)
    assert out.has_ground_truth and list(out.pairs) == list(ds.pairs)
    for name, pairs in ds.pairs.items():
        np.testing.assert_array_equal(out.pairs[name].left, pairs.left)
        np.testing.assert_array_equal(out.pairs[name].w2sq, exact_w2sq(ds.measures, pairs.left, pairs.right, n_jobs=1))
    assert out.name == ds.name and out.measures is ds.measures
    files = list((tmp_path / "w2sq").rglob("*.npz"))
    assert len(files) == 1  # one entry for all splits


def test_compute_reports_hit_path_and_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    first = compute_ground_truth(toy_dataset(), cache_dir=tmp_path, n_jobs=1)
    assert not first.cache.hit and first.n_pairs == 38 and first.cache.seconds > 0
    solves: list[int] = []
    real = lp._lp_solve
    monkeypatch.setattr(lp, "_lp_solve", lambda *a: solves.append(1) or real(*a))
    second = compute_ground_truth(toy_dataset(), cache_dir=tmp_path, n_jobs=1)
    assert second.cache.hit and second.cache.path == first.cache.path and second.cache.seconds == 0.0
    assert len(solves) == SPOT_CHECKS  # a hit solves its spot check only


def test_default_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WBENCH_CACHE_DIR", str(tmp_path / "env-cache"))
    gt = compute_ground_truth(toy_dataset(), n_jobs=1)
    assert gt.cache.path is not None and tmp_path / "env-cache" in gt.cache.path.parents


def test_exact_pairwise_block_is_cached(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ds = toy_dataset()
    rows, cols = np.array([0, 3, 5]), np.array([1, 3, 7, 11])
    block = exact_pairwise_w2sq(ds, rows, cols, cache_dir=tmp_path, n_jobs=1)
    assert block.shape == (3, 4) and block[1, 1] == 0.0
    np.testing.assert_array_equal(block, exact_w2sq_block(ds.measures, rows, cols, n_jobs=1))
    monkeypatch.setattr(lp, "_lp_solve", lambda *a: pytest.fail("solver ran on a cache hit"))
    np.testing.assert_array_equal(exact_pairwise_w2sq(ds, rows, cols, cache_dir=tmp_path, n_jobs=1), block)
    monkeypatch.undo()
    transposed = exact_pairwise_w2sq(ds, cols, rows, cache_dir=tmp_path, n_jobs=1)  # another key
    np.testing.assert_allclose(transposed, block.T, atol=1e-12)


def test_invalid_measure_in_a_pair_is_named(tmp_path: Path) -> None:
    ds = toy_dataset()
    weights = ds.measures.weights.clone()
    weights[4] = 0.0
    bad = PairedDataset("bad", {}, MeasureBatch(weights, ds.measures.support, ds.measures.grid_shape),
                        {"train": PairSet([1, 4], [2, 3])})
    with pytest.raises(InvalidMeasureError, match="measure 4 has zero total mass"):
        attach_ground_truth(bad, cache_dir=tmp_path, n_jobs=1)
    assert not list(tmp_path.rglob("*.npz"))


# ------------------------------------------------------------------ wbench prepare


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["n=5"], {"n": 5}),
        (["blur=0.05", "flag=true", "none=null"], {"blur": 0.05, "flag": True, "none": None}),
        (["sizes=[1, 2]", 'opts={"a": 1}'], {"sizes": [1, 2], "opts": {"a": 1}}),
        (["family=1d", "name=mnist"], {"family": "1d", "name": "mnist"}),
        (['code="007"', "path=/tmp/x=y"], {"code": "007", "path": "/tmp/x=y"}),
        (["n=1", "n=2"], {"n": 2}),
        ([" k = 3 "], {"k": 3}),
        ([], {}),
        (None, {}),
    ],
)
def test_parse_assignments(items, expected) -> None:
    assert parse_assignments(items) == expected


@pytest.mark.parametrize("bad", ["novalue", "=5", ""])
def test_parse_assignments_rejects(bad: str) -> None:
    with pytest.raises(AssignmentError, match="KEY=VALUE"):
        parse_assignments([bad])


PLUGIN = textwrap.dedent(
    """
    import numpy as np
    from wbench import hookimpl
    from wbench.data import DatasetPlugin, PairedDataset, PairSet
    from wbench.measures import MeasureBatch

    class Tiny(DatasetPlugin):
        def __init__(self, n=8, seed=0):
            super().__init__(n=n, seed=seed)

        def build(self):
            n, seed = self.params.get("n", 8), self.params.get("seed", 0)
            rng = np.random.default_rng(seed)
            imgs = rng.random((n, 5, 5))
            imgs[imgs < 0.5] = 0.0
            pairs = {s: PairSet(rng.integers(0, n, 6), rng.integers(0, n, 6)) for s in ("train", "val", "test")}
            return PairedDataset("tiny", dict(self.params), MeasureBatch.from_images(imgs), pairs)

    @hookimpl
    def wbench_register_datasets(registry):
        registry.add_dataset("tiny", __name__ + ":Tiny")  # defaults n=8, seed=0: read from __init__
    """
)


def _prepare_args(tmp_path: Path, *argv: str) -> argparse.Namespace:
    plugin = tmp_path / "tiny_dataset_plugin.py"
    plugin.write_text(PLUGIN)
    parser = argparse.ArgumentParser(prog="wbench")
    parser.add_argument("--plugin", action="append", default=[])
    add_prepare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--plugin", str(plugin), "prepare", *argv])
    args.plugins = make_plugin_manager(args.plugin, use_entry_points=False)
    return args


def test_prepare_prints_a_summary_then_hits_the_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _prepare_args(tmp_path, "--dataset", "tiny", "--param", "n=10", "--param", "seed=3",
                         "--cache-dir", str(tmp_path / "cache"), "--jobs", "1")
    assert args.handler is run_prepare
    assert run_prepare(args) == 0
    out = capsys.readouterr().out
    assert '"n": 10' in out and '"seed": 3' in out
    for line in ("train", "val", "test", "all", "W2 min", "median", "max", "pixel", "pairs/s", "(miss)"):
        assert line in out
    assert str(tmp_path / "cache") in out
    assert run_prepare(args) == 0
    out = capsys.readouterr().out
    assert "cache hit" in out and "(hit)" in out


def test_prepare_unknown_dataset_lists_the_known(tmp_path: Path) -> None:
    args = _prepare_args(tmp_path, "--dataset", "nope", "--cache-dir", str(tmp_path))
    with pytest.raises(UnknownNameError, match="known datasets: tiny"):
        run_prepare(args)


def test_prepare_rejected_params_are_a_clear_error(tmp_path: Path) -> None:
    args = _prepare_args(tmp_path, "--dataset", "tiny", "--param", "colour=red", "--cache-dir", str(tmp_path))
    with pytest.raises(DatasetParamsError, match="dataset 'tiny' rejected its parameters .*colour"):
        run_prepare(args)


def test_prepare_needs_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        _prepare_args(tmp_path)
