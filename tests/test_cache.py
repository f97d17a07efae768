"""The verified ground-truth cache: keys, hits, misses, corruption, concurrent writers."""

from __future__ import annotations

import json
import multiprocessing as mp
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

import wbench.oracle.lp as lp
from wbench.data import PairedDataset, PairSet
from wbench.errors import CacheError
from wbench.measures import MeasureBatch
from wbench.oracle.cache import (
    FORMAT_NAME,
    CacheWarning,
    content_key,
    default_cache_dir,
    entry_path,
    load_or_compute,
    read_entry,
    write_entry,
)
from wbench.oracle.groundtruth import SPOT_CHECKS, compute_ground_truth
from wbench.oracle.solve import exact_w2sq


def toy_dataset(n: int = 10, n_pairs: int = 30, seed: int = 0) -> PairedDataset:
    rng = np.random.default_rng(seed)
    imgs = rng.random((n, 6, 6))
    imgs[imgs < 0.5] = 0.0
    left, right = rng.integers(0, n, n_pairs), rng.integers(0, n, n_pairs)
    pairs = {"train": PairSet(left[:20], right[:20]), "val": PairSet(left[20:25], right[20:25]), "test": PairSet(left[25:], right[25:])}
    return PairedDataset("toy", {"n": n, "seed": seed}, MeasureBatch.from_images(imgs), pairs)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WBENCH_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("WBENCH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "wbench"


def test_roundtrip_and_open_format(tmp_path: Path) -> None:
    values = np.array([[0.0, 1.5], [2.25, 3.0]])
    key = content_key({"kind": "test"}, [values])
    path = write_entry(key, values, cache_dir=tmp_path, meta={"note": "hello"})
    assert path == entry_path(key, tmp_path) and path.suffix == ".npz"
    np.testing.assert_array_equal(read_entry(key, cache_dir=tmp_path, shape=(2, 2)), values)
    # readable without wbench: numpy's npz reader and any zip tool
    with np.load(path, allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["w2sq"], values)
    with zipfile.ZipFile(path) as zf:
        header = json.loads(zf.read("header.json"))
    assert header["format"] == FORMAT_NAME and header["key"] == key and header["count"] == 4
    assert header["shape"] == [2, 2] and header["meta"] == {"note": "hello"}
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert read_entry(content_key({"kind": "other"}), cache_dir=tmp_path) is None


def test_content_key_depends_on_every_input() -> None:
    a = np.arange(6, dtype=np.float64)
    base = content_key({"kind": "pairs"}, [a])
    assert base == content_key({"kind": "pairs"}, [a.copy()])
    assert base != content_key({"kind": "block"}, [a])
    assert base != content_key({"kind": "pairs"}, [a.reshape(2, 3)])
    assert base != content_key({"kind": "pairs"}, [a.astype(np.float32)])
    b = a.copy()
    b[3] = np.nextafter(b[3], 10)
    assert base != content_key({"kind": "pairs"}, [b])
    assert base != content_key({"kind": "pairs"}, [a[:3], a[3:]])


def _count_solves(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the LP solves from here on (each still solved: a cache hit's spot check needs them)."""
    solves: list[int] = []
    real = lp._lp_solve

    def counted(*args: object) -> object:
        solves.append(1)
        return real(*args)

    monkeypatch.setattr(lp, "_lp_solve", counted)
    return solves


def test_hit_does_not_recompute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ds = toy_dataset()
    first = compute_ground_truth(ds, cache_dir=tmp_path, n_jobs=1)
    assert not first.cache.hit and first.cache.path is not None and first.cache.path.exists()
    solves = _count_solves(monkeypatch)
    second = compute_ground_truth(toy_dataset(), cache_dir=tmp_path, n_jobs=1)  # rebuilt: same content
    assert second.cache.hit and second.cache.path == first.cache.path
    assert len(solves) == SPOT_CHECKS  # only the read's spot check solves, not the entry
    for name in ds.pairs:
        np.testing.assert_array_equal(second.dataset.pairs[name].w2sq, first.dataset.pairs[name].w2sq)


def test_measures_at_other_indices_share_the_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ds = toy_dataset()
    first = compute_ground_truth(ds, cache_dir=tmp_path, n_jobs=1)
    # the same images behind two unused extra measures: indices shift, content does not
    extra = torch.full((2, ds.measures.n_points), 1.0 / ds.measures.n_points, dtype=ds.measures.weights.dtype)
    measures = MeasureBatch(torch.cat([extra, ds.measures.weights]), ds.measures.support, ds.measures.grid_shape)
    pairs = {k: PairSet(p.left + 2, p.right + 2) for k, p in ds.pairs.items()}
    solves = _count_solves(monkeypatch)
    shifted = compute_ground_truth(PairedDataset("toy", {}, measures, pairs), cache_dir=tmp_path, n_jobs=1)
    assert shifted.cache.hit and shifted.cache.path == first.cache.path and len(solves) == SPOT_CHECKS


def test_other_pairs_or_measures_miss(tmp_path: Path) -> None:
    ds = toy_dataset()
    base = compute_ground_truth(ds, cache_dir=tmp_path, n_jobs=1).cache
    other_pairs = toy_dataset(seed=0)
    other_pairs = other_pairs.with_pairs({**other_pairs.pairs, "test": PairSet([0, 1], [2, 3])})
    miss1 = compute_ground_truth(other_pairs, cache_dir=tmp_path, n_jobs=1).cache
    weights = ds.measures.weights.clone()
    nz = int(torch.nonzero(weights[int(ds.pairs["train"].left[0])])[0])
    weights[int(ds.pairs["train"].left[0]), nz] *= 1.5
    other_measures = PairedDataset("toy", {}, MeasureBatch(weights, ds.measures.support, ds.measures.grid_shape), ds.pairs)
    miss2 = compute_ground_truth(other_measures, cache_dir=tmp_path, n_jobs=1).cache
    assert not miss1.hit and not miss2.hit
    assert len({base.key, miss1.key, miss2.key}) == 3
    assert len({base.path, miss1.path, miss2.path}) == 3


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_value_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    start = data.index(b"w2sq.npy") + len("w2sq.npy") + 128 + 3  # inside the array's bytes
    data[start] ^= 0x40
    path.write_bytes(bytes(data))


def _rewrite_member(member: str, transform) -> callable:
    def corrupt(path: Path) -> None:
        with zipfile.ZipFile(path) as zf:
            members = {name: zf.read(name) for name in zf.namelist()}
        members[member] = transform(members[member])
        with zipfile.ZipFile(path, "w") as zf:  # a valid zip with a consistent CRC
            for name, data in members.items():
                zf.writestr(name, data)

    return corrupt


def _tamper_values(raw: bytes) -> bytes:
    return raw[:-8] + np.float64(123.0).tobytes()


def _tamper_header(raw: bytes) -> bytes:
    header = json.loads(raw)
    header["shape"] = [header["count"] + 1]
    return json.dumps(header).encode()


@pytest.mark.parametrize(
    "corrupt",
    [
        _truncate,
        _flip_value_byte,
        _rewrite_member("w2sq.npy", _tamper_values),  # CRC fine, SHA-256 wrong
        _rewrite_member("header.json", _tamper_header),
        _rewrite_member("header.json", lambda raw: b"{not json"),
        lambda path: path.write_bytes(b""),
        lambda path: path.write_bytes(b"garbage" * 100),
    ],
    ids=["truncated", "flipped-byte", "values-changed", "header-shape", "header-garbage", "empty", "not-a-zip"],
)
def test_corrupt_entry_is_detected_and_recomputed(corrupt, tmp_path: Path) -> None:
    ds = toy_dataset()
    good = compute_ground_truth(ds, cache_dir=tmp_path, n_jobs=1)
    path = good.cache.path
    corrupt(path)
    with pytest.raises(CacheError):
        read_entry(good.cache.key, cache_dir=tmp_path, shape=(30,))
    with pytest.warns(CacheWarning, match="corrupt"):
        again = compute_ground_truth(ds, cache_dir=tmp_path, n_jobs=1)
    assert not again.cache.hit
    for name in ds.pairs:
        np.testing.assert_array_equal(again.dataset.pairs[name].w2sq, good.dataset.pairs[name].w2sq)
    np.testing.assert_array_equal(read_entry(good.cache.key, cache_dir=tmp_path), good.cache.values)  # rewritten


def test_wrong_expected_shape_is_corrupt(tmp_path: Path) -> None:
    key = content_key({"kind": "test"})
    write_entry(key, np.ones(3), cache_dir=tmp_path)
    with pytest.raises(CacheError, match="expected"):
        read_entry(key, cache_dir=tmp_path, shape=(4,))
    with pytest.warns(CacheWarning):
        result = load_or_compute(key, lambda: np.zeros(4), cache_dir=tmp_path, shape=(4,))
    assert not result.hit and result.values.shape == (4,)


def test_unwritable_cache_warns_and_returns_values(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.warns(CacheWarning, match="could not write"):
        result = load_or_compute(content_key({"kind": "x"}), lambda: np.arange(3.0), cache_dir=blocker)
    np.testing.assert_array_equal(result.values, [0, 1, 2])
    assert result.path is None and not result.hit


# ------------------------------------------------------------------ concurrency


def _fork_context() -> mp.context.BaseContext:
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs the fork start method")
    return mp.get_context("fork")


def _writer(key: str, cache_dir: str, values: np.ndarray, barrier, rounds: int) -> None:
    barrier.wait()
    for _ in range(rounds):
        write_entry(key, values, cache_dir=cache_dir, meta={"writer": mp.current_process().name})


def test_concurrent_writers_leave_a_valid_file(tmp_path: Path) -> None:
    ctx = _fork_context()
    values = np.linspace(0.0, 9.0, 50_000)
    key = content_key({"kind": "concurrent"}, [values])
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_writer, args=(key, str(tmp_path), values, barrier, 15)) for _ in range(2)]
    for p in procs:
        p.start()
    barrier.wait()
    seen = 0
    while any(p.is_alive() for p in procs):
        got = read_entry(key, cache_dir=tmp_path, shape=values.shape)  # never partial: CacheError fails the test
        if got is not None:
            np.testing.assert_array_equal(got, values)
            seen += 1
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    np.testing.assert_array_equal(read_entry(key, cache_dir=tmp_path, shape=values.shape), values)
    assert [p.name for p in entry_path(key, tmp_path).parent.iterdir()] == [f"{key}.npz"]  # no temp files left


def _prepare(cache_dir: str, barrier, queue) -> None:
    barrier.wait()
    gt = compute_ground_truth(toy_dataset(n=12, n_pairs=30, seed=3), cache_dir=cache_dir, n_jobs=1, progress=False)
    queue.put(np.concatenate([gt.dataset.pairs[k].w2sq for k in ("train", "val", "test")]))


def test_two_processes_computing_the_same_entry(tmp_path: Path) -> None:
    ctx = _fork_context()
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_prepare, args=(str(tmp_path), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    ds = toy_dataset(n=12, n_pairs=30, seed=3)
    expected = exact_w2sq(ds.measures, np.concatenate([p.left for p in ds.pairs.values()]),
                          np.concatenate([p.right for p in ds.pairs.values()]), n_jobs=1)
    for got in results:
        np.testing.assert_array_equal(got, expected)
    hit = compute_ground_truth(ds, cache_dir=tmp_path, n_jobs=1)
    assert hit.cache.hit
    np.testing.assert_array_equal(hit.cache.values, expected)
