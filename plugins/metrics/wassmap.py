"""Built-in metric: Wassmap, Isomap of the surrogate's and the exact W2 on an image manifold."""

from __future__ import annotations

import numpy as np

from wbench import metrics as M
from wbench.data import PairedDataset
from wbench.evaluation import (
    EvaluationContext,
    MetricSkipped,
    exact_matrix_w2,
    guard_cost,
    surrogate_matrix,
)


def _wassmap_members(ctx: EvaluationContext, parameters: np.ndarray) -> np.ndarray:
    candidates = np.flatnonzero(np.all(np.isfinite(parameters), axis=1))
    labels = ctx.dataset.labels
    if labels is not None and len(candidates):
        labels = np.asarray(labels)[candidates]
        chosen = ctx.options.get("wassmap_label")
        if chosen is None:
            values, counts = np.unique(labels, return_counts=True)
            chosen = values[np.argmax(counts)]
        candidates = candidates[labels == chosen]
    return candidates


def manifold_parameters(dataset: PairedDataset) -> np.ndarray | None:
    """The known manifold coordinates ``(n, p)`` of a dataset's measures, or None.

    ``metadata["translations"]`` ``(n, 2)`` (pixels), plus ``metadata["scales"]`` ``(n,)``
    as a third coordinate when present; coordinates that are constant over the dataset
    (the scale of a translation family, the translation of a dilation family) are dropped.
    """
    metadata = dataset.metadata or {}
    if metadata.get("translations") is None:
        return None
    n = len(dataset.measures)
    translations = np.asarray(metadata["translations"], dtype=np.float64)
    if translations.ndim != 2 or translations.shape[0] != n:
        raise ValueError(f"metadata['translations'] has shape {translations.shape}; expected ({n}, 2)")
    columns = [translations]
    if metadata.get("scales") is not None:
        scales = np.asarray(metadata["scales"], dtype=np.float64).reshape(-1, 1)
        if scales.shape[0] != n:
            raise ValueError(f"metadata['scales'] has {scales.shape[0]} entries for {n} measures")
        columns.append(scales)
    parameters = np.concatenate(columns, axis=1)
    finite = np.all(np.isfinite(parameters), axis=1)
    varying = np.ptp(parameters[finite], axis=0) > 0 if finite.any() else np.zeros(parameters.shape[1], bool)
    return parameters[:, varying]


def wassmap(ctx: EvaluationContext) -> dict[str, float]:
    """Wassmap downstream: Isomap of the surrogate's and of the exact W2 matrix of an image
    manifold, compared with the manifold's true coordinates by Procrustes disparity.

    Runs only when ``dataset.metadata["translations"]`` ``(n, 2)`` exists (the ``shapes``
    dataset); otherwise returns ``{}``. The true coordinates are
    :func:`manifold_parameters` (the translation offsets; the scale too for a dilation
    family), and Isomap embeds in as many dimensions. For the translation family the exact W2
    is ``|v_i - v_j|``, so the exact embedding recovers the offsets up to a similarity; for
    dilations the W2 scale axis is stretched by the shape's second moment, so even the exact
    disparity is not 0 and is the floor to compare the surrogate with. When the dataset has
    labels, one label's measures are used (option ``wassmap_label``, default the most
    frequent). ``wassmap_n`` (100) measures are drawn (seeded by ``eval_seed``); Isomap uses
    ``wassmap_neighbors`` (8) neighbours.

    Columns: ``wassmap.procrustes_surrogate``, ``wassmap.procrustes_exact`` (0: the
    coordinates recovered up to a similarity; at most 1), ``wassmap.n`` and
    ``wassmap.n_components``.
    """
    parameters = manifold_parameters(ctx.dataset)
    if parameters is None:
        return {}
    if parameters.shape[1] == 0:
        raise MetricSkipped("the manifold coordinates are constant: nothing to recover")
    members = _wassmap_members(ctx, parameters)
    n = min(int(ctx.option("wassmap_n", 100)), len(members))
    if n < parameters.shape[1] + 3:
        raise MetricSkipped(f"only {len(members)} measures carry manifold coordinates")
    guard_cost(ctx, n * n, "wassmap")
    idx = np.sort(ctx.rng().choice(members, size=n, replace=False))
    neighbours = int(ctx.option("wassmap_neighbors", 8))
    components = parameters.shape[1]
    predicted = surrogate_matrix(ctx, idx, idx)
    if not np.all(np.isfinite(predicted)):
        raise ValueError(f"the surrogate failed on {(~np.isfinite(predicted)).sum()} of the {n}x{n} pairs")
    exact = exact_matrix_w2(ctx, idx, idx)
    truth = parameters[idx]

    def disparity(distances: np.ndarray) -> float:
        embedding = M.wassmap_embedding(distances, n_neighbors=neighbours, n_components=components)
        return M.procrustes_disparity(truth, embedding)

    return {
        "wassmap.procrustes_surrogate": disparity(predicted),
        "wassmap.procrustes_exact": disparity(exact),
        "wassmap.n": float(n),
        "wassmap.n_components": float(components),
    }
