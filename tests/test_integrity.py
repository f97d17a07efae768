"""Integrity of what wbench reads back: hand-edited records and timing files, damaged
checkpoints, malformed saved models and cache entries that are not files (security review)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from wbench.errors import CacheError, WbenchError
from wbench.oracle import cache
from wbench.oracle.cache import content_key, load_or_compute, read_entry, write_entry
from wbench.records.read import RecordCheckError, check_record, load_records
from wbench.records.store import SCHEMA_VERSION, Record, RecordFileError, cell_key
from wbench.records.timing_file import TIMING_FILE, TimingError, read_timing
from wbench.surrogate import SavedModelError, TorchSurrogate
from wbench.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

REPO = Path(__file__).resolve().parent.parent


# ----------------------------------------------------------------------------- 1: records


def _record(method: str = "naive", seed: int = 0, **outcome: Any) -> dict[str, Any]:
    """A valid ok record (its key computed from its identity fields) with ``outcome`` keys."""
    identity = {"dataset": "toy", "dataset_params": {"n": 4}, "dataset_label": "toy", "method": method,
                "method_params": {}, "eval_params": {}, "match_budget": None, "seed": seed,
                "budget": {"steps": 10, "batch_size": 8}}
    metrics = {"test.w2.rel_mae": 0.1, "test.w2.mse": 0.02, "test.w2.pearson": 0.9, "test.w2.spearman": 0.8,
               "gap.w2.mse_diff": -0.3, "retrieval.recall@5": 0.6}
    throughput = {"throughput.independent_pairs_per_s": 1000.0, "speedup.independent": 10.0,
                  "speedup.one_core.speedup": 10.0, "speedup.one_core.method_pairs_per_s": 1000.0,
                  "speedup.one_core.lp_pairs_per_s": 100.0, "cost.direct_error.64": -0.2}
    return {"schema_version": SCHEMA_VERSION, "key": cell_key(**identity), "status": "ok", "label": method,
            "metrics": metrics, "throughput": throughput, **identity, **outcome}


def _write(run_dir: Path, *records: dict[str, Any]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "records.jsonl").write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return run_dir


def test_a_valid_record_passes_and_loads(tmp_path: Path) -> None:
    record = _record()
    assert check_record(Record.from_dict(record)) == []
    (loaded,) = load_records([_write(tmp_path, record)])
    assert loaded.key == record["key"]


def _edited(section: str, name: str, value: Any) -> dict[str, Any]:
    record = _record()
    record[section] = {**record.get(section, {}), name: value}
    return record


@pytest.mark.parametrize(("record", "field"), [
    (_edited("metrics", "test.w2.rel_mae", -0.5), "test.w2.rel_mae"),  # would rank first
    (_edited("metrics", "test.w2.mse", -1e-3), "test.w2.mse"),
    (_edited("metrics", "test.w2.max_abs", -1.0), "test.w2.max_abs"),
    (_edited("metrics", "test.w2.pearson", 1.5), "test.w2.pearson"),
    (_edited("metrics", "test.w2.spearman", -1.01), "test.w2.spearman"),
    (_edited("metrics", "retrieval.recall@5", 1.2), "retrieval.recall@5"),
    (_edited("metrics", "test.w2.mae", "small"), "test.w2.mae"),
    (_edited("transfer", "shapes.w2.rel_mae", -0.1), "shapes.w2.rel_mae"),
    (_edited("throughput", "speedup.independent", 0.0), "speedup.independent"),
    (_edited("throughput", "speedup.pairwise", -3.0), "speedup.pairwise"),
    (_edited("throughput", "throughput.independent_pairs_per_s", -1.0), "throughput.independent_pairs_per_s"),
    (_edited("throughput", "cost.pairwise.64", 0.0), "cost.pairwise.64"),
    (_edited("throughput", "speedup.one_core.speedup", 99_999.0), "speedup.one_core.speedup"),  # not 1000 / 100
    ({**_record(), "coverage": 1.5}, "coverage"),
])
def test_a_record_out_of_range_is_refused_naming_file_line_key_and_field(tmp_path: Path, record: dict, field: str) -> None:
    good = _record("other")
    run = _write(tmp_path, good, record)
    with pytest.raises(RecordCheckError) as caught:
        load_records([run])
    message = str(caught.value)
    assert f"{run / 'records.jsonl'}:2:" in message and record["key"] in message and repr(field) in message
    assert isinstance(caught.value, RecordFileError) and isinstance(caught.value, WbenchError)


def test_a_record_whose_identity_was_edited_is_refused(tmp_path: Path) -> None:
    record = _record(seed=0)
    record["seed"] = 7  # moved to another cell by hand, its key left as it was
    with pytest.raises(RecordCheckError, match=rf"records\.jsonl:1: record {record['key']} .*key .* is not the key of"):
        load_records([_write(tmp_path, record)])


def test_the_leaderboard_refuses_a_hand_edited_record(tmp_path: Path) -> None:
    from wbench.board.frame import leaderboard_frame

    run = _write(tmp_path, _edited("metrics", "test.w2.rel_mae", -0.5))
    with pytest.raises(RecordCheckError, match="'test.w2.rel_mae' = -0.5 is out of range"):
        leaderboard_frame([run])


def test_none_values_and_signed_figures_are_accepted() -> None:
    record = _edited("metrics", "test.w2.pearson", None)  # not finite when measured: stored as None
    assert check_record(Record.from_dict(record)) == []


def _published_record_files() -> list[Path]:
    """Every published wbench records file (``results/*-gpu-*`` hold gpurun rows: another format)."""
    found = []
    for path in sorted((REPO / "results").glob("*/records.jsonl")):
        with path.open() as handle:
            if "schema_version" in json.loads(handle.readline() or "{}"):
                found.append(path)
    return found


def test_every_published_record_passes_the_checks() -> None:
    paths = _published_record_files()
    assert len(paths) >= 4
    for path in paths:
        records = load_records([path])
        assert records and all(check_record(r) == [] for r in records), path


# ----------------------------------------------------------------------------- 2: timing.json


def _timing(path: Path, **figures: Any) -> Path:
    figs = {"cost.embedding": 1.0, "cost.embed_s": 1e-4, "cost.embed_s_iqr": 1e-5, "cost.pair_s": 0.0,
            "cost.call_s": 0.0, "cost.independent_pairs_per_s": 5000.0, "cost.pairwise_pairs_per_s": 1e5,
            "speedup.one_core": 50.0, "speedup.pairwise": 1000.0, **figures}
    data = {"format_version": 2, "protocol": {"threads": 1, "rounds": 7}, "provenance": {}, "wall_s": 3.0,
            "references": {"d": {"lp_pairs_per_s": 100.0, "lp_relative_iqr": 0.1}},
            "cells": [{"key": "abc123", "dataset_label": "d", "label": "m", "seed": 0, "milestone": 1, "figures": figs}]}
    path.mkdir(parents=True, exist_ok=True)
    (path / TIMING_FILE).write_text(json.dumps(data))  # json writes NaN as NaN
    return path / TIMING_FILE


def test_the_published_timing_files_read() -> None:
    for path in sorted((REPO / "results").glob("*/timing.json")):
        assert read_timing(path)["cells"]


@pytest.mark.parametrize(("figure", "value", "says"), [
    ("cost.embed_s", float("nan"), "is not finite"),
    ("cost.independent_pairs_per_s", float("inf"), "is not finite"),
    ("cost.embed_s", 0.0, "must be positive"),
    ("cost.embed_s", -1e-4, "must be positive"),
    ("cost.pair_s", -1e-9, "is a negative time"),
    ("cost.call_s", -0.5, "is a negative time"),
    ("speedup.one_core", 0.0, "must be positive"),
    ("cost.pairwise_pairs_per_s", -5.0, "must be positive"),
    ("cost.embed_s_iqr", "fast", "is not a number"),
])
def test_a_timing_file_with_a_bad_figure_is_refused_naming_file_and_key(tmp_path: Path, figure: str, value: Any,
                                                                       says: str) -> None:
    path = _timing(tmp_path, **{figure: value})
    with pytest.raises(TimingError) as caught:
        read_timing(path)
    message = str(caught.value)
    assert str(path) in message and "abc123" in message and repr(figure) in message and says in message


def test_a_bad_reference_is_refused(tmp_path: Path) -> None:
    path = _timing(tmp_path)
    data = json.loads(path.read_text())
    data["references"]["d"]["lp_pairs_per_s"] = float("nan")
    path.write_text(json.dumps(data))
    with pytest.raises(TimingError, match=r"references\['d'\] 'lp_pairs_per_s' = nan is not finite"):
        read_timing(path)


def test_a_non_embedding_model_may_have_no_embedding_time(tmp_path: Path) -> None:
    assert read_timing(_timing(tmp_path, **{"cost.embedding": 0.0, "cost.embed_s": 0.0, "cost.pair_s": 1e-3}))


# ----------------------------------------------------------------------------- 3: checkpoints


def _flip_a_bit_in(path: Path, data: bytes) -> None:
    """Flip one bit inside the first copy of ``data`` in the file at ``path``."""
    raw = bytearray(path.read_bytes())
    where = raw.find(data)
    assert where >= 0, "the tensor's bytes are not in the file"
    raw[where + len(data) // 2] ^= 0x10
    path.write_bytes(bytes(raw))


def test_a_checkpoint_with_one_flipped_bit_is_refused(tmp_path: Path) -> None:
    weights = torch.full((256,), 7.0)
    path = save_checkpoint(tmp_path / "m-step000000003.pt", {"weights": weights, "report": {"steps": 3}}, identity="run")
    assert torch.equal(load_checkpoint(path, identity="run")["weights"], weights)
    _flip_a_bit_in(path, weights[:64].numpy().tobytes())
    with pytest.raises(CheckpointError, match=r"m-step000000003\.pt is corrupt: the SHA-256 of its state"):
        load_checkpoint(path, identity="run")


def test_a_checkpoint_without_a_digest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.pt"
    torch.save({"format": 1, "identity": "run", "state": {"report": {"steps": 1}}}, path)  # the format before digests
    with pytest.raises(CheckpointError, match=r"old\.pt is not a wbench checkpoint of format 2 .*without a digest"):
        load_checkpoint(path, identity="run")


def test_a_checkpoint_whose_digest_was_replaced_is_refused(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "c.pt", {"report": {"steps": 1}}, identity="run")
    data = torch.load(path, weights_only=True)
    torch.save({**data, "sha256": "0" * 64}, path)
    with pytest.raises(CheckpointError, match=r"c\.pt is corrupt"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- 4: saved models


def _saved_model(tmp_path: Path) -> Path:
    from wbench_plugins.dwe.models import DWEMatched

    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    DWEMatched(grid_shape=[8, 8], width=30).save(path, name="dwe-matched")
    return path


def test_a_saved_model_header_that_is_not_json_names_the_file(tmp_path: Path) -> None:
    path = _saved_model(tmp_path)
    Path(f"{path}.json").write_text("{not json")
    with pytest.raises(SavedModelError, match=r"m\.pt\.json: the saved model's header is not a readable JSON file"):
        TorchSurrogate.load(path)


def test_a_pickled_tensor_file_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _saved_model(tmp_path)
    marker = tmp_path / "PWNED"
    torch.save({"x": _Pickled(str(marker))}, path)  # a full pickle: needs weights_only=False
    with pytest.raises(SavedModelError, match=r"m\.pt: not a tensor file torch can load with weights_only=True"):
        TorchSurrogate.load(path)
    assert not marker.exists()
    path.write_bytes(b"not a zip")
    with pytest.raises(SavedModelError, match=r"m\.pt: not a tensor file"):
        TorchSurrogate.load(path)


class _Pickled:
    """An object a weights-only load refuses (unpickling it would create a file)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))


def test_a_saved_model_with_foreign_tensors_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = _saved_model(tmp_path)
    torch.save({"not.a.layer": torch.zeros(2)}, path)
    with pytest.raises(SavedModelError, match=r"m\.pt: its tensors are not those of the model"):
        TorchSurrogate.load(path)


# ----------------------------------------------------------------------------- 5: cache entries


@pytest.fixture
def no_zip_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail at once (not after filling memory) when the cache would parse the file."""
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the entry was read before it was checked")

    monkeypatch.setattr(cache.zipfile, "ZipFile", refuse)


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="needs /dev/zero")
def test_a_cache_entry_linked_to_dev_zero_is_refused_before_reading(tmp_path: Path, no_zip_reading: None) -> None:
    key = content_key({"kind": "integrity"})
    path = cache.entry_path(key, tmp_path)
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    with pytest.raises(CacheError, match=r"not a regular file \(a device, FIFO or socket, through a symlink\)"):
        read_entry(key, cache_dir=tmp_path, shape=(3,))
    with pytest.raises(CacheError, match="not a regular file"):
        read_entry(key, cache_dir=tmp_path)  # no shape: refused all the same


def test_a_fifo_or_folder_entry_is_refused(tmp_path: Path, no_zip_reading: None) -> None:
    key = content_key({"kind": "fifo"})
    path = cache.entry_path(key, tmp_path)
    path.parent.mkdir(parents=True)
    os.mkfifo(path)  # opening it for reading would block until a writer came
    with pytest.raises(CacheError, match="not a regular file"):
        read_entry(key, cache_dir=tmp_path)
    path.unlink()
    path.mkdir()
    with pytest.raises(CacheError, match=r"not a regular file \(a directory\)"):
        read_entry(key, cache_dir=tmp_path)


def test_an_entry_larger_than_its_shape_allows_is_refused(tmp_path: Path, no_zip_reading: None) -> None:
    key = content_key({"kind": "big"})
    path = cache.entry_path(key, tmp_path)
    path.parent.mkdir(parents=True)
    with path.open("wb") as handle:
        handle.truncate(cache.ENTRY_OVERHEAD_BYTES + 8 * 3 + 1)  # sparse: no disk, no memory
    with pytest.raises(CacheError, match="bytes, more than the .* an entry of this shape can take"):
        read_entry(key, cache_dir=tmp_path, shape=(3,))


def test_a_values_member_larger_than_the_header_count_is_refused(tmp_path: Path) -> None:
    key = content_key({"kind": "count"})
    path = write_entry(key, np.ones(3), cache_dir=tmp_path)
    with zipfile.ZipFile(path) as zf:
        header = zf.read("header.json")
    big = np.ones(cache.ENTRY_OVERHEAD_BYTES // 8 + 10)
    npy = io.BytesIO()
    np.save(npy, big)
    with zipfile.ZipFile(path, "w") as zf:  # the header still says 3 values
        zf.writestr("w2sq.npy", npy.getvalue())
        zf.writestr("header.json", header)
    with pytest.raises(CacheError, match=r"member w2sq\.npy is .* bytes the header's count implies"):
        read_entry(key, cache_dir=tmp_path)


def test_a_refused_entry_is_recomputed_and_replaced(tmp_path: Path) -> None:
    key = content_key({"kind": "replace"})
    path = cache.entry_path(key, tmp_path)
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    with pytest.warns(cache.CacheWarning, match="not a regular file"):
        result = load_or_compute(key, lambda: np.arange(3.0), cache_dir=tmp_path, shape=(3,))
    assert not result.hit and path.is_file() and not path.is_symlink()
    np.testing.assert_array_equal(read_entry(key, cache_dir=tmp_path, shape=(3,)), [0.0, 1.0, 2.0])


# ----------------------------------------------------------------------------- 6: forged cache, scored truth


def test_a_cache_entry_forged_with_a_recomputed_checksum_is_caught_and_solved_again(tmp_path: Path) -> None:
    from wbench.oracle.groundtruth import compute_ground_truth
    from wbench.testing import toy_dataset

    dataset = toy_dataset(n=10, n_pairs=24)
    first = compute_ground_truth(dataset, cache_dir=tmp_path, n_jobs=1, progress=False)
    truth = np.concatenate([first.dataset.split(s).pairs.w2sq for s in ("train", "val", "test")])
    # a valid entry (checksum and all) whose values are not the oracle's
    write_entry(first.cache.key, first.cache.values * 1.5, cache_dir=tmp_path)
    assert read_entry(first.cache.key, cache_dir=tmp_path) is not None  # the checksum alone accepts it
    with pytest.warns(cache.CacheWarning, match="are not the oracle's"):
        again = compute_ground_truth(dataset, cache_dir=tmp_path, n_jobs=1, progress=False)
    assert not again.cache.hit
    np.testing.assert_array_equal(np.concatenate([again.dataset.split(s).pairs.w2sq for s in ("train", "val", "test")]),
                                  truth)
    assert compute_ground_truth(dataset, cache_dir=tmp_path, n_jobs=1, progress=False).cache.hit  # repaired


def test_records_carry_the_digest_of_the_test_distances_they_were_scored_on(tmp_path: Path) -> None:
    from conftest import FIXTURES

    from wbench.cli.main import main
    from wbench.oracle.groundtruth import attach_ground_truth
    from wbench.plugin.manager import make_plugin_manager
    from wbench.records.store import RecordStore, truth_digest

    out = tmp_path / "run"
    main(["run", str(FIXTURES / "tiny_suite.toml"), "--plugin", str(FIXTURES / "local_plugin.py"),
          "--out", str(out), "--no-timing", "--seeds", "0"])
    (record,) = [r for r in RecordStore(out).load() if r.ok]
    registry = make_plugin_manager([str(FIXTURES / "local_plugin.py")]).registry
    dataset = attach_ground_truth(registry.get("dataset", "toy-blobs").load()(n=20, n_pairs=60).build(), n_jobs=1,
                                  progress=False)
    assert record.outcome.truth_digest == truth_digest(dataset.split("test").pairs.w2sq)
    assert record.outcome.truth_digest != truth_digest(dataset.split("test").pairs.w2sq * (1 + 1e-12))
