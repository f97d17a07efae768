"""The ``unseen`` pair set, ``budget.train_pairs``, the ``train_pairs`` parameter and the
label-efficiency section (issue 34). Real builds, real oracle values, no stubs."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wbench.oracle.groundtruth import compute_ground_truth
from wbench.records.store import cell_key
from wbench_plugins.claims.labels import labels_table, lp_seconds_per_pair
from wbench_plugins.datasets.digits import DigitsDataset

FIXTURES = Path(__file__).parent / "fixtures"
BASELINE = json.loads((FIXTURES / "split_baseline.json").read_text())
"""Pairs and the oracle key of the default splits, computed with wbench at ce02b14 (before the option)."""


def _sources(ds, split: str) -> np.ndarray:
    """Source image numbers of the measures of ``split``'s pairs (base measures, then appended ones)."""
    index = np.concatenate([ds.metadata["source_index"], ds.metadata.get("unseen_source_index", [])]).astype(int)
    p = ds.pairs[split]
    return np.unique(index[np.concatenate([p.left, p.right])])


def _digest(pairs) -> str:
    return hashlib.sha256(np.stack([pairs.left, pairs.right]).astype("<i8").tobytes()).hexdigest()


def test_unseen_images_occur_in_no_train_or_val_pair_and_match_the_test_set() -> None:
    ds = DigitsDataset(unseen=True).build()
    unseen, test = ds.pairs["unseen"], ds.pairs["test"]
    assert len(unseen) == len(test) == 110
    seen = np.union1d(_sources(ds, "train"), _sources(ds, "val"))
    assert np.intersect1d(_sources(ds, "unseen"), seen).size == 0
    assert ds.metadata["unseen_pool_size"] == 179  # of 1,797 images, 179 are in no train/val pair
    assert len(ds.measures) == 1797 + len(ds.metadata["unseen_source_index"])
    # the test set's class combinations, pair by pair count
    combos = {split: sorted(zip(ds.labels[p.left].tolist(), ds.labels[p.right].tolist(), strict=True))
              for split, p in (("test", test), ("unseen", unseen))}
    assert combos["unseen"] == combos["test"]
    keys = {tuple(sorted(pair)) for pair in zip(unseen.left.tolist(), unseen.right.tolist(), strict=True)}
    assert len(keys) == len(unseen) and all(a != b for a, b in keys)


def test_unseen_is_seeded() -> None:
    a, b = DigitsDataset(unseen=True).build(), DigitsDataset(unseen=True).build()
    assert _digest(a.pairs["unseen"]) == _digest(b.pairs["unseen"])
    assert np.array_equal(a.metadata["unseen_source_index"], b.metadata["unseen_source_index"])
    c = DigitsDataset(unseen=True, seed=1).build()
    assert not np.array_equal(a.metadata["unseen_source_index"], c.metadata["unseen_source_index"])


def test_existing_splits_and_their_oracle_entry_are_unchanged(tmp_path: Path) -> None:
    for params in ({}, {"unseen": True}):
        ds = DigitsDataset(**params).build()
        for split in ("train", "val", "test"):
            assert {"n": len(ds.pairs[split]), "sha256": _digest(ds.pairs[split])} == BASELINE["digits"][split]
    published = [json.loads(line) for line in (Path(__file__).parent.parent / "results" / "mnist" / "records.jsonl")
                 .read_text().splitlines()]
    assert {r["metrics"]["test.n_pairs"] for r in published if r["dataset"] == "mnist" and r["trainable"]} == {2750.0}
    assert BASELINE["mnist"]["test"]["n"] == 2750
    small = DigitsDataset(pairs_per_combination=2, unseen=True).build()
    gt = compute_ground_truth(small, cache_dir=tmp_path, progress=False, n_jobs=1)
    assert gt.cache.key == BASELINE["digits_ppc2_oracle_key"]  # train/val/test: the key of before
    w2sq = np.concatenate([gt.dataset.pairs[s].w2sq for s in ("train", "val", "test")])
    assert hashlib.sha256(w2sq.astype("<f8").tobytes()).hexdigest() == BASELINE["digits_ppc2_w2sq_sha256"]
    (extra,) = gt.extra_caches
    assert extra.key != gt.cache.key and len(gt.dataset.pairs["unseen"].w2sq) == len(small.pairs["test"]) == 6
    assert np.all(gt.dataset.pairs["unseen"].w2sq > 0)


def test_train_pairs_keeps_n_distinct_training_pairs_and_the_other_sets(tmp_path: Path) -> None:
    full = DigitsDataset(pairs_per_combination=4, unseen=True).build()
    sub = DigitsDataset(pairs_per_combination=4, unseen=True, train_pairs=50).build()
    train, whole = sub.pairs["train"], full.pairs["train"]
    assert len({tuple(sorted(p)) for p in zip(train.left.tolist(), train.right.tolist(), strict=True)}) == 50
    as_set = set(zip(whole.left.tolist(), whole.right.tolist(), strict=True))
    assert set(zip(train.left.tolist(), train.right.tolist(), strict=True)) <= as_set
    for split in ("val", "test", "unseen"):
        assert _digest(sub.pairs[split]) == _digest(full.pairs[split])
    gt_full = compute_ground_truth(full, cache_dir=tmp_path, progress=False, n_jobs=1)
    gt_sub = compute_ground_truth(sub, cache_dir=tmp_path, progress=False, n_jobs=1)
    assert gt_sub.cache.hit and gt_sub.cache.key == gt_full.cache.key  # one entry for every N
    np.testing.assert_array_equal(gt_sub.dataset.pairs["train"].w2sq,
                                  gt_full.dataset.pairs["train"].w2sq[sub.metadata["train_subset"]])
    with pytest.raises(ValueError, match="train_pairs=5000"):
        DigitsDataset(pairs_per_combination=4, train_pairs=5000).build()


def test_datasets_without_a_pool_say_why() -> None:
    from wbench_plugins.datasets.distributions import DistributionsDataset
    from wbench_plugins.datasets.shapes import ShapesDataset

    for cls in (ShapesDataset, DistributionsDataset):
        assert cls.no_unseen_reason
        with pytest.raises(ValueError, match=f"{cls.name}: unseen: .*no held-out measures"):
            cls(unseen=True)
    assert DigitsDataset.no_unseen_reason is None


@pytest.mark.skipif(not os.environ.get("WBENCH_MNIST_ROOT"), reason="WBENCH_MNIST_ROOT is unset (MNIST files)")
def test_mnist_draws_unseen_images_from_the_file_subset_leaves_out(tmp_path: Path) -> None:
    from wbench_plugins.datasets.mnist import MnistDataset, MnistNotFoundError, find_file

    root = Path(os.environ["WBENCH_MNIST_ROOT"])
    test_only = tmp_path / "test-only" / "MNIST" / "raw"
    test_only.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (test_only / f"{name}.gz").symlink_to(find_file(root, name))
    with pytest.raises(MnistNotFoundError, match="unseen = true draws its images from the MNIST train file"):
        MnistDataset(root=str(tmp_path / "test-only"), unseen=True).preflight()
    # a training file (here the test file's bytes under the training name): its images are the pool
    for name, train in (("t10k-images-idx3-ubyte", "train-images-idx3-ubyte"),
                        ("t10k-labels-idx1-ubyte", "train-labels-idx1-ubyte")):
        (test_only / f"{train}.gz").symlink_to(find_file(root, name))
    ds = MnistDataset(root=str(tmp_path / "test-only"), unseen=True, pairs_per_combination=20).build()
    assert len(ds.pairs["unseen"]) == len(ds.pairs["test"]) == 55
    used = np.union1d(_sources(ds, "train"), _sources(ds, "val"))
    # the pool: the images of subset "test" no train/val pair uses, then the 60,000 (here 10,000) of the other file
    assert ds.metadata["unseen_pool_size"] == 10_000 - len(used) + 10_000
    assert ds.metadata["unseen_source_index"].max() >= 10_000
    seen = np.union1d(_sources(ds, "train"), _sources(ds, "val"))
    assert np.intersect1d(_sources(ds, "unseen"), seen).size == 0


def test_cell_keys_leave_train_pairs_out() -> None:
    ident = {"dataset": "digits", "budget": {"steps": 4, "batch_size": 16}, "seed": 0}
    stated = {**ident, "budget": {**ident["budget"], "train_pairs": 1980}}
    assert cell_key(**stated) == cell_key(**ident)


TINY = """
[suite]
name = "tiny-unseen"
seeds = [0]

[budget]
steps = 4
batch_size = 16

[evaluation]
independent_pairs = 64
pairwise_size = 16
exact_independent_pairs = 16
exact_pairwise_size = 4
timing_rounds = 2
min_round_s = 0.01
direct_n = [4, 16]
speedup_sides = ["one_core"]
plots = false
solver_eval_pairs = 4
options = { n_queries = 5, n_database = 15, k = 3, n_triplets = 50 }

[[datasets]]
name = "digits"
label = "digits-n40"
params = { pairs_per_combination = 2, unseen = true, train_pairs = 40 }

[[datasets]]
name = "digits"
label = "digits-n99"
params = { pairs_per_combination = 2, unseen = true, train_pairs = 99 }

[[surrogates]]
name = "deepsets"

[[surrogates]]
name = "exact-lp"
"""


def test_tiny_run_writes_unseen_metrics_and_train_pairs(tmp_path: Path) -> None:
    from wbench.board.frame import records_frame
    from wbench.plugin.manager import make_plugin_manager
    from wbench.records.read import check_record
    from wbench.run.runner import Runner, RunOptions
    from wbench.run.suite import load_suite

    (tmp_path / "tiny.toml").write_text(TINY)
    options = RunOptions(out_dir=tmp_path / "run", cache_dir=tmp_path / "cache", n_jobs=1)
    records = Runner(load_suite(str(tmp_path / "tiny.toml")), make_plugin_manager(), options).run()
    assert [(r.dataset_label, r.method, r.status) for r in records] == [
        (d, m, "ok") for d in ("digits-n40", "digits-n99") for m in ("deepsets", "exact-lp")]
    for r in records:
        assert r.budget["train_pairs"] == (40 if r.dataset_label == "digits-n40" else 99)
        assert check_record(r) == []  # the key is still that of the identity
        metrics = r.outcome.metrics
        assert metrics["unseen.n_pairs"] == (6 if r.method == "deepsets" else 4)  # solvers: a subset, as on test
        assert metrics["test.n_pairs"] == metrics["unseen.n_pairs"]
        for stat in ("rel_mae", "mse", "pearson"):
            assert np.isfinite(metrics[f"unseen.w2.{stat}"])
        if r.method == "exact-lp":
            assert metrics["unseen.w2.rel_mae"] < 1e-9
        else:
            assert metrics["unseen.w2.rel_mae"] > 1e-3
    stored = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    assert {r["budget"]["train_pairs"] for r in stored} == {40, 99}
    table = labels_table(records_frame(records))
    assert list(table["method"]) == ["deepsets", "deepsets"] and list(table["N"]) == ["40", "99"]


def _record(method: str, n: int, seed: int, test: float, unseen: float, fit_s: float, lp_rate: float) -> dict:
    return {
        "key": f"{method}-{n}-{seed}", "status": "ok", "dataset": "mnist", "dataset_label": f"mnist-n{n}",
        "method": method, "seed": seed, "budget": {"steps": 4000, "batch_size": 256, "train_pairs": n},
        "trainable": True, "metrics": {"test.w2.rel_mae": test, "unseen.w2.rel_mae": unseen},
        "fit": {"wall_time_s": fit_s, "steps": 4000}, "lp_rate": lp_rate,  # the timing pass's LP, joined below
    }


def _frame(records: list[dict]) -> pd.DataFrame:
    """The records' frame with the LP rate of their timing pass joined, as the board does."""
    from wbench.board.frame import records_frame

    frame = records_frame([{k: v for k, v in r.items() if k != "lp_rate"} for r in records])
    return frame.assign(**{"speedup.lp_pairs_per_s": [r["lp_rate"] for r in records]})


def test_labels_section_numbers_on_constructed_records() -> None:
    records = [
        _record("deepkenn", 500, 0, 0.10, 0.12, 100.0, 400.0), _record("deepkenn", 500, 1, 0.12, 0.14, 110.0, 400.0),
        _record("deepkenn", 2000, 0, 0.04, 0.045, 120.0, 500.0), _record("deepkenn", 2000, 1, 0.05, 0.047, 130.0, 250.0),
        _record("deepsets", 500, 0, 0.20, 0.30, 40.0, 400.0), _record("deepsets", 2000, 0, 0.09, 0.08, 50.0, 400.0),
    ]
    frame = _frame(records)
    assert lp_seconds_per_pair(frame) == pytest.approx(1 / 400.0)  # the median LP rate
    table = labels_table(frame)
    cost = "cost to reach 5% unseen (s)"
    assert table.to_dict("records") == [
        {"method": "deepkenn", "N": "500", "test rel. MAE (%)": "11.00 ± 1.41", "unseen rel. MAE (%)": "13.00 ± 1.41",
         "seeds": "2", "labels LP (s)": "1.2", "training (s)": "105.0", cost: ""},
        # the smallest N whose mean unseen rel. MAE (4.6 %) is below 5 %: 2,000 x 1/400 s + 125 s
        {"method": "deepkenn", "N": "2,000", "test rel. MAE (%)": "4.50 ± 0.71", "unseen rel. MAE (%)": "4.60 ± 0.14",
         "seeds": "2", "labels LP (s)": "5.0", "training (s)": "125.0", cost: "130.0"},
        {"method": "deepsets", "N": "500", "test rel. MAE (%)": "20.00", "unseen rel. MAE (%)": "30.00",
         "seeds": "1", "labels LP (s)": "1.2", "training (s)": "40.0", cost: "not reached"},
        {"method": "deepsets", "N": "2,000", "test rel. MAE (%)": "9.00", "unseen rel. MAE (%)": "8.00",
         "seeds": "1", "labels LP (s)": "5.0", "training (s)": "50.0", cost: ""},
    ]
    assert labels_table(_frame([r for r in records if r["budget"]["train_pairs"] == 500])).empty  # one N: no section
    from wbench.sections import SectionContext
    from wbench_plugins.claims import wbench_leaderboard_sections

    (section,) = [s for s in wbench_leaderboard_sections(frame, SectionContext("test.w2.rel_mae"))
                  if s.title == "Error against the number of exact labels"]
    assert section.table.equals(table)


def _rg_frame(rg: list[float], wormhole: list[float], n_wormhole: int = 500) -> pd.DataFrame:
    records = []
    for seed, (a, b) in enumerate(zip(rg, wormhole, strict=True)):
        records.append(_record("rg", 500, seed, a, a, 1.0, 400.0))
        records.append(_record("rg", 2000, seed, a / 2, a / 2, 1.0, 400.0))
        records.append(_record("wormhole", n_wormhole, seed, b, b, 100.0, 400.0))
    frame = _frame(records)
    return frame.assign(method_name=frame["method"])


def test_the_rg_claim_is_decided_at_the_smallest_n_both_reach() -> None:
    from wbench_plugins.claims.labels import rg_claim

    row = rg_claim(_rg_frame([0.05, 0.06, 0.055], [0.20, 0.22, 0.21]))
    assert row["verdict"] == "holds" and "N = 500" in row["our_value"] and "p=" in row["note"]
    assert rg_claim(_rg_frame([0.30, 0.31, 0.32], [0.20, 0.22, 0.21]))["verdict"] == "does not hold"
    assert rg_claim(_rg_frame([0.20, 0.25, 0.18], [0.22, 0.19, 0.24]))["verdict"] == "not significant"
    # Wormhole only at 2,000 labels: decided there, RG's 2,000-label records against it
    assert "N = 2,000" in rg_claim(_rg_frame([0.05, 0.06, 0.055], [0.20, 0.22, 0.21], n_wormhole=2000))["our_value"]
    without = _frame([_record("rg", n, s, 0.1, 0.1, 1.0, 400.0) for n in (500, 2000) for s in range(2)])
    assert rg_claim(without.assign(method_name=without["method"]))["verdict"] == "not measured"


@pytest.mark.skipif(not os.environ.get("WBENCH_MNIST_ROOT"), reason="WBENCH_MNIST_ROOT is unset (MNIST files)")
def test_mnist_n_images_holds_test_images_out_for_the_unseen_pool(tmp_path: Path) -> None:
    """The published protocol: pairs from a seeded 8,000 of the 10,000 test images, the other
    2,000 (and any image no train/val pair uses) form the pool; no training file needed."""
    from wbench_plugins.datasets.mnist import MnistDataset, find_file

    root = Path(os.environ["WBENCH_MNIST_ROOT"])
    test_only = tmp_path / "MNIST" / "raw"
    test_only.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (test_only / f"{name}.gz").symlink_to(find_file(root, name))
    dataset = MnistDataset(root=str(tmp_path), unseen=True, n_images=8000, pairs_per_combination=1000)
    dataset.preflight()  # the training file is not asked for
    ds = dataset.build()
    assert [len(ds.pairs[s]) for s in ("train", "val", "test", "unseen")] == [49_500, 2_750, 2_750, 2_750]
    held_out = np.setdiff1d(np.arange(10_000), ds.metadata["source_index"])
    assert held_out.size == 2_000
    used = np.union1d(_sources(ds, "train"), _sources(ds, "val"))
    assert ds.metadata["unseen_pool_size"] == 10_000 - len(used)
    assert ds.metadata["unseen_source_index"].max() < 10_000
    assert np.intersect1d(_sources(ds, "unseen"), used).size == 0
    assert np.isin(_sources(ds, "unseen"), held_out).mean() > 0.99  # nearly every image seen is paired
    labels = np.concatenate([ds.labels[ds.pairs["test"].left], ds.labels[ds.pairs["test"].right]])
    unseen = np.concatenate([ds.labels[ds.pairs["unseen"].left], ds.labels[ds.pairs["unseen"].right]])
    assert np.array_equal(np.sort(labels), np.sort(unseen))  # the test set's class combinations


def test_the_front_page_labels_block_is_the_mean_unseen_error_per_method_and_n() -> None:
    import runpy

    front_page = runpy.run_path(str(Path(__file__).resolve().parent.parent / "results" / "front_page.py"))
    frame = _rg_frame([0.05, 0.06, 0.055], [0.20, 0.22, 0.21])
    block = front_page["labels_block"](frame)
    lines = block.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| method"))
    assert [c.strip() for c in lines[header].strip("|").split("|")] == ["method", "seeds", "N = 500", "N = 2,000"]
    # rg: 5.50 % at 500 and 2.75 % at 2,000 (the mean of 5, 6 and 5.5 %, halved); wormhole at 500 only
    assert [c.strip() for c in lines[header + 2].strip("|").split("|")] == ["rg", "3", "5.50", "2.75"]
    assert [c.strip() for c in lines[header + 3].strip("|").split("|")] == ["wormhole", "3", "21.00", ""]
    assert "RG is more accurate than Wasserstein Wormhole with few exact labels**: holds" in block.replace("\n", " ")
    assert front_page["labels_block"](frame.iloc[0:0]) == ""


def test_label_curves_plot_and_site_chart_on_constructed_records(tmp_path: Path) -> None:
    """Mean, min and max over seeds per (method, N); the PNG and the site chart only for a run
    of at least two N; the chart's hover prices N labels at the run's LP seconds per pair."""
    from types import SimpleNamespace

    from wbench.board.labels import write_label_curve_plot
    from wbench.board.site.label_chart import label_chart
    from wbench.sections import label_curves

    records = [
        _record("deepkenn", 500, 0, 0.10, 0.12, 100.0, 400.0), _record("deepkenn", 500, 1, 0.12, 0.14, 110.0, 400.0),
        _record("deepkenn", 2000, 0, 0.04, 0.045, 120.0, 400.0), _record("deepsets", 2000, 0, 0.09, 0.08, 50.0, 400.0),
    ]
    frame = _frame(records)
    curves = label_curves(frame)
    assert curves[["method", "N", "seeds"]].values.tolist() == [["deepkenn", 500, 2], ["deepkenn", 2000, 1], ["deepsets", 2000, 1]]
    assert curves["mean"].tolist() == pytest.approx([0.13, 0.045, 0.08])
    assert curves["min"].tolist() == pytest.approx([0.12, 0.045, 0.08]) and curves["max"].iloc[0] == pytest.approx(0.14)

    (png,) = write_label_curve_plot(frame, tmp_path)
    assert png.name == "error-vs-labels.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    one_n = _frame([r for r in records if r["budget"]["train_pairs"] == 2000])
    assert write_label_curve_plot(one_n, tmp_path / "none") == [] and label_curves(one_n).empty

    run = SimpleNamespace(frame=frame, summary=pd.DataFrame({"method": ["deepkenn", "deepsets"]}), curves=pd.DataFrame())
    html = label_chart(run, "chart-labels")
    xs = [json.loads(x) for x in re.findall(r'"x":(\[[^\]]*\])', html)]
    assert xs == [[500, 2000], [2000]]
    assert "N = 2,000: 4.5 %" in html and "labels: 5 s of exact LP" in html  # 2,000 x 1/400 s
    assert label_chart(SimpleNamespace(frame=one_n, summary=run.summary, curves=run.curves), "c") == ""


def test_a_labels_run_reads_in_order_of_n_and_gets_paper_verdicts_only_at_the_papers_n() -> None:
    """String order would put mnist-n10000 first; the paper's protocol has 49,500 exact training
    pairs, so the DeepKENN paper's claims get a verdict there and are extensions at smaller N; the
    claims none of whose methods ran (DWE, Naive) are left out of the board."""
    from wbench.board.leaderboard import render, summarise
    from wbench.sections import SectionContext
    from wbench_plugins.claims import EXTENSIONS_TITLE, TITLE, wbench_leaderboard_sections

    sizes = (10000, 500, 49500, 2000)
    frame = _frame([_record(m, n, s, 0.02 + 1 / n + s / 1000, 0.03 + 1 / n, 100.0, 400.0)
                    for m in ("deepkenn", "odekenn") for n in sizes for s in range(3)])
    frame = frame.assign(method_name=frame["method"])
    markdown = render(summarise(frame, primary="test.w2.rel_mae"), "md", primary="test.w2.rel_mae")
    headings = [line for line in markdown.splitlines() if line.startswith("### ") and "every column" not in line]
    assert [h.split()[1] for h in headings] == ["mnist-n500", "mnist-n2000", "mnist-n10000", "mnist-n49500"]

    sections = {s.title: s.table for s in wbench_leaderboard_sections(frame, SectionContext("test.w2.rel_mae"))}
    checked, extensions = sections[TITLE], sections[EXTENSIONS_TITLE]
    assert set(checked["dataset"]) == {"mnist-n49500"} and set(checked["method"]) == {"deepkenn", "odekenn"}
    assert set(checked["verdict"]) == {"does not hold at 1 % of the paper's training"}  # 2.1 % against the paper's 1.52 % and 1.37 %
    assert list(extensions["dataset"]) == ["mnist-n500"] * 2 + ["mnist-n2000"] * 2 + ["mnist-n10000"] * 2
    shown = pd.concat([checked, extensions])
    assert not shown["claim"].str.contains("DWE|below DeepKENN's and Naive's").any()  # no dwe, no naive records


def test_natural_key_orders_the_numbers_in_labels_by_value() -> None:
    from wbench.stats import natural_key

    labels = ["mnist-n10000", "mnist-n2000", "shapes", "mnist-n49500", "mnist-n500", "mnist"]
    assert sorted(labels, key=natural_key) == ["mnist", "mnist-n500", "mnist-n2000", "mnist-n10000",
                                               "mnist-n49500", "shapes"]
