"""Built-in metrics on the predictions of the evaluated splits: pair errors, errors by range of
the exact W2, and the generalisation gap (pure array work in :mod:`wbench.metrics`)."""

from __future__ import annotations

import numpy as np

from wbench import metrics as M
from wbench.evaluation import EvaluationContext, split_prediction


def errors(ctx: EvaluationContext) -> dict[str, float]:
    """Per split with predictions: :func:`wbench.metrics.pair_metrics` with the split as prefix.

    Columns ``<split>.n_pairs``, ``<split>.n_failed``, ``<split>.w2.<stat>`` and
    ``<split>.w2sq.<stat>`` for stat in mse, rmse, mae, rel_mae, max_abs, pearson, spearman.
    """
    out: dict[str, float] = {}
    for split in ctx.predictions:
        pred = split_prediction(ctx, split)
        out.update(M.pair_metrics(pred, ctx.dataset.pairs[split].w2sq, prefix=split))
    return out


def error_by_range(ctx: EvaluationContext) -> dict[str, float]:
    """Test W2 errors by range of the exact W2: :func:`wbench.metrics.error_by_range`.

    Quartiles of the test pairs' exact W2 by default (``test.w2.q1.mse`` .. ``q4``, with
    ``.lo``/``.hi`` edges and ``.n`` counts); option ``range_edges`` gives fixed bins named
    in the column (``test.w2.range_0_2p5.mse``), ``range_bins`` another number of quantiles.
    """
    if "test" not in ctx.predictions:
        return {}
    pred = split_prediction(ctx, "test")
    edges = ctx.options.get("range_edges")
    return M.error_by_range(
        pred, ctx.dataset.pairs["test"].w2sq, "test.w2",
        edges=None if edges is None else [float(e) for e in edges], n_bins=int(ctx.option("range_bins", 4)),
    )


def generalisation_gap(ctx: EvaluationContext) -> dict[str, float]:
    """``gap.w2.mse_diff`` (test minus train MSE on W2) and ``gap.w2.mse_ratio`` (test / train;
    left out when the train MSE is below 1e-12 of the mean test W2^2, i.e. rounding noise).

    Needs train and test predictions (a solver evaluated on test pairs only gets no column).
    """
    if "train" not in ctx.predictions or "test" not in ctx.predictions:
        return {}
    mse = {}
    for split in ("train", "test"):
        stats = M.pair_metrics(split_prediction(ctx, split), ctx.dataset.pairs[split].w2sq, prefix=split)
        if f"{split}.w2.mse" not in stats:
            return {}
        mse[split] = stats[f"{split}.w2.mse"]
    # below 1e-12 of the mean squared distance, a train MSE is rounding noise: no ratio
    floor = 1e-12 * float(np.mean(ctx.dataset.pairs["test"].w2sq))
    return M.generalisation_gap(mse["train"], mse["test"], prefix="gap.w2", floor=floor)
