"""Classes of methods (issue 32): learned and hybrid methods are ranked, each within its class,
and compared with the best of their class; untrained embeddings and solvers are reference rows."""

from __future__ import annotations

import pytest
from conftest import keyed

from wbench.board.frame import leaderboard_frame, records_frame, with_registered_classes
from wbench.board.leaderboard import render, summarise
from wbench.records.store import SCHEMA_VERSION, Record, RecordStore
from wbench.surrogate import METHOD_CLASSES, EmbeddingSurrogate, Solver

PRIMARY = "test.w2.rel_mae"


def _record(method: str, seed: int, rel: float, method_class: str | None, trainable: bool | None = None) -> dict:
    record = {
        "schema_version": SCHEMA_VERSION, "key": "", "dataset": "d", "dataset_label": "d", "method": method,
        "label": method, "seed": seed, "status": "ok", "error": None, "n_parameters": 10,
        "trainable": method_class in ("learned", "hybrid") if trainable is None else trainable,
        "metrics": {PRIMARY: rel + 0.001 * seed},
    }
    if method_class is not None:
        record["method_class"] = method_class
    return keyed(record)


@pytest.fixture
def frame(tmp_path):
    store = RecordStore(tmp_path)
    for seed in range(3):
        store.append(_record("net-a", seed, 0.20, "learned"))
        store.append(_record("net-b", seed, 0.30, "learned"))
        store.append(_record("lp-per-measure", seed, 0.05, "hybrid"))
    store.append(_record("embedding", 0, 0.10, "untrained"))
    store.append(_record("exact", 0, 0.0, "solver"))
    return records_frame(store.load())


def test_ranks_are_within_a_class_and_references_are_not_ranked(frame) -> None:
    summary = summarise(frame, primary=PRIMARY)
    assert list(summary["method"]) == ["net-a", "net-b", "lp-per-measure", "embedding", "exact"]
    ranks = dict(zip(summary["method"], summary["rank"], strict=True))
    assert (ranks["net-a"], ranks["net-b"], ranks["lp-per-measure"]) == (1, 2, 1)
    assert summary.set_index("method")["rank"][["embedding", "exact"]].isna().all()
    # the exact LP's near-zero error and the hybrid's low one never make a learned method "worse"
    labels = dict(zip(summary["method"], summary["vs_best"], strict=True))
    assert labels["net-a"] == "best" and labels["net-b"].startswith("worse")
    assert labels["lp-per-measure"] == "" and labels["exact"] == "" and labels["embedding"] == ""  # alone: no test


def test_the_class_shows_in_the_table(frame) -> None:
    text = render(summarise(frame, primary=PRIMARY), "md", primary=PRIMARY)
    header = next(line for line in text.splitlines() if line.startswith("| rank"))
    assert "| class " in header and "vs best in class" in header
    assert any("| exact " in line and "| solver " in line for line in text.splitlines())


def test_classes_are_declared_on_the_method_and_default_to_learned() -> None:
    class ThirdParty(EmbeddingSurrogate):  # a plugin written before classes existed
        def embed(self, x):
            return x.weights

    assert ThirdParty.method_class == "learned" and Solver.method_class == "solver"
    assert set(METHOD_CLASSES) == {"learned", "hybrid", "untrained", "solver"}
    from wbench.registry import make_plugin_manager

    registry = make_plugin_manager().registry
    declared = {name: registry.get("surrogate", name).load().method_class for name in ("lot", "sliced", "lot-residual",
                                                                                        "exact-lp", "naive", "rg")}
    assert declared == {"lot": "untrained", "sliced": "untrained", "lot-residual": "hybrid", "exact-lp": "solver",
                        "naive": "learned", "rg": "learned"}


def test_records_written_before_classes_take_their_registered_class(tmp_path) -> None:
    store = RecordStore(tmp_path)
    store.append(_record("lot", 0, 0.1, None))  # an older record: no method_class
    store.append(_record("naive", 0, 0.2, None, trainable=True))
    records = store.load()
    assert list(records_frame(records)["class"]) == ["solver", "learned"]  # the guess from `trainable`
    assert list(with_registered_classes(records_frame(records), records)["class"]) == ["untrained", "learned"]
    assert list(leaderboard_frame([tmp_path])["class"]) == ["untrained", "learned"]
    assert Record.from_dict(_record("x", 0, 0.1, "hybrid")).outcome.method_class == "hybrid"
