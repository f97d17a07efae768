"""The GPU run, exercised on the CPU with a tiny budget (the same code path as ``--device cuda``)."""

from __future__ import annotations

import json

import pytest
import torch

from wbench.timing.gpurun import GpuRunOptions, _parse, output_dir, run_gpu_timing


@pytest.mark.slow
def test_cpu_dry_run_writes_records_for_every_method(tmp_path, one_torch_thread):
    options = GpuRunOptions(
        dataset="digits", dataset_params={"pairs_per_combination": 4}, device="cpu",
        methods=("naive", "dwe-matched", "sliced", "exact-lp"), train=("naive",), train_s=2.0, epochs=1,
        batch_size=32, sizes=(4, 16), max_call_s=2.0, rounds=2, min_round_s=0.0, test_params=True,
        cache_dir=str(tmp_path / "cache"),
    )
    folder = run_gpu_timing(options, tmp_path / "results")
    assert folder == tmp_path / "results" / "digits-gpu-cpu"
    records = [json.loads(line) for line in (folder / "cost_models.jsonl").read_text().splitlines()]
    assert [r["method"] for r in records] == ["naive", "dwe-matched", "sliced", "exact-lp"]
    by_name = {r["method"]: r for r in records}
    naive = by_name["naive"]
    assert naive["fit.trained"] == 1.0 and naive["fit.steps"] >= 1 and naive["device"] == "cpu"
    assert naive["cost.embedding"] == 1.0 and naive["cost.embed_s"] > 0 and naive["cost.cuda"] == 0.0
    assert naive["flops.per_item"] > 0 and naive["roofline.fraction"] > 0
    assert by_name["dwe-matched"]["fit.trained"] == 0.0
    assert by_name["sliced"]["cost.embedding"] == 1.0  # an embedding solver: e and c
    assert "roofline.fraction" not in by_name["sliced"]  # no network: no FLOP roofline
    lp = by_name["exact-lp"]
    assert lp["cost.embedding"] == 0.0 and lp["cost.pairwise_is_per_pair"] == 1.0
    assert lp["cost.pairwise.16"] == pytest.approx(1 / lp["cost.pair_s"])
    for r in records:  # every size ran or was counted as skipped
        ran = sum(f"cost.direct.{n}" in r for n in (4, 16))
        assert ran + r["cost.direct_sizes_skipped"] == 2
    summary = (folder / "summary.md").read_text()
    assert "| naive | cpu | yes |" in summary and "(per pair)" in summary
    run = json.loads((folder / "run.json").read_text())
    assert run["gemm"]["gemm.gflops"] > 0 and run["options"]["device"] == "cpu"


def test_options_are_checked_and_parsed(tmp_path):
    with pytest.raises(ValueError, match="must also be timed"):
        run_gpu_timing(GpuRunOptions(device="cpu", methods=("naive",), train=("dwe",)), tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            run_gpu_timing(GpuRunOptions(device="cuda"), tmp_path)
    options, out = _parse(["--device", "cpu", "--methods", "naive,exact-lp", "--train", "naive", "--sizes", "8,32", "--out", str(tmp_path)])
    assert options.methods == ("naive", "exact-lp") and options.train == ("naive",) and options.sizes == (8, 32)
    assert out == tmp_path
    assert output_dir("results", "mnist", "cpu").as_posix() == "results/mnist-gpu-cpu"
