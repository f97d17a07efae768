"""Wasserstein data mining in DWE's embedding (paper section 3.2), and POT references.

Everything here works on a fitted :class:`~wbench_plugins.dwe.models.DWE` and images on
its grid (a :class:`~wbench.measures.MeasureBatch`), in evaluation mode and without
gradients:

* :func:`barycenter`: ``psi(sum_i alpha_i phi(x_i))``, the approximate W2 barycenter.
* :func:`interpolate`: barycenters of two images with ``alpha = (1 - t, t)``.
* :func:`pga`: principal geodesic analysis, i.e. PCA of ``phi(x)`` decoded by ``psi``
  along each principal direction.
* :func:`pot_barycenter` and :func:`barycenter_w2_to_pot`: an exact (or entropic)
  barycenter computed by POT, and the W2 between it and the DWE barycenter (pixels);
  :func:`barycenter_cost`: the objective a barycenter minimises, to rank candidates.
* :func:`save_image_grid`: a PNG of rows of images (matplotlib, Agg canvas, imported lazily).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import torch

from wbench.measures import MeasureBatch, grid_coordinates

if TYPE_CHECKING:
    from wbench_plugins.dwe.models import DWE

ReferenceMethod = Literal["free_support", "lp", "convolutional"]


def _alphas(weights: Sequence[float] | np.ndarray | torch.Tensor | None, n: int) -> torch.Tensor:
    """Barycentric weights ``(n,)`` float64: uniform when None, else checked and normalised."""
    if weights is None:
        return torch.full((n,), 1.0 / n, dtype=torch.float64)
    alpha = torch.as_tensor(np.asarray(weights, dtype=np.float64))
    if alpha.shape != (n,):
        raise ValueError(f"need {n} barycentric weights (one per image), got shape {tuple(alpha.shape)}")
    if not bool(torch.isfinite(alpha).all()) or bool((alpha < 0).any()) or float(alpha.sum()) <= 0:
        raise ValueError(f"barycentric weights must be finite, non-negative and not all zero, got {alpha.tolist()}")
    return alpha / alpha.sum()


@torch.inference_mode()
def embed(model: DWE, images: MeasureBatch) -> torch.Tensor:
    """``phi(x)`` ``(n, p)`` on the model's device, in evaluation mode."""
    return model.embed_all(images)


@torch.inference_mode()
def decode(model: DWE, z: torch.Tensor) -> torch.Tensor:
    """``psi(z)`` for embeddings ``(n, p)``: histograms ``(n, H, W)`` (unit mass each)."""
    was_training = model.model.training
    model.model.eval()
    try:
        return model.decode(z)
    finally:
        model.model.train(was_training)


def reconstruct(model: DWE, images: MeasureBatch) -> torch.Tensor:
    """``psi(phi(x))``: ``(n, H, W)``."""
    return decode(model, embed(model, images))


def barycenter(model: DWE, images: MeasureBatch, weights: Sequence[float] | np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """DWE's barycenter ``psi(sum_i alpha_i phi(x_i))`` of the images: ``(H, W)``, unit mass.

    :param images: ``n`` images on the model's grid.
    :param weights: ``(n,)`` non-negative barycentric weights, normalised to sum 1
        (default uniform: the Frechet mean).
    """
    z = embed(model, images)
    alpha = _alphas(weights, len(images)).to(z.device, z.dtype)
    return decode(model, (alpha[:, None] * z).sum(dim=0, keepdim=True))[0]


def interpolate(model: DWE, images: MeasureBatch, ts: Sequence[float] | np.ndarray | int = 9) -> torch.Tensor:
    """Interpolation between two images: ``psi((1 - t) phi(x0) + t phi(x1))`` for each t.

    :param images: exactly two images.
    :param ts: the values of t in [0, 1], or their number (evenly spaced, ends included).
    :returns: ``(T, H, W)``.
    """
    if len(images) != 2:
        raise ValueError(f"interpolation needs exactly two images, got {len(images)}")
    t = np.linspace(0.0, 1.0, ts) if isinstance(ts, int) else np.asarray(ts, dtype=np.float64)
    if t.ndim != 1 or len(t) == 0 or (t < 0).any() or (t > 1).any():
        raise ValueError("interpolation times must be a non-empty list of values in [0, 1]")
    z = embed(model, images)
    tt = torch.as_tensor(t, dtype=z.dtype, device=z.device)[:, None]
    return decode(model, (1.0 - tt) * z[0] + tt * z[1])


@dataclass(frozen=True)
class PGAResult:
    """Principal geodesic analysis in DWE's embedding.

    :param mean: ``(p,)`` mean embedding (the approximate Frechet mean's code).
    :param components: ``(k, p)`` orthonormal principal directions.
    :param stds: ``(k,)`` standard deviation of the embeddings along each direction
        (pixels: embedding distances are W2).
    :param explained_variance_ratio: ``(k,)`` share of the embedding variance.
    :param steps: ``(S,)`` positions along each direction, in standard deviations.
    :param images: ``(k, S, H, W)`` decoded ``psi(mean + s * std_k * v_k)``.
    :param mean_image: ``(H, W)`` decoded mean, ``psi(mean)``.
    """

    mean: np.ndarray
    components: np.ndarray
    stds: np.ndarray
    explained_variance_ratio: np.ndarray
    steps: np.ndarray
    images: np.ndarray
    mean_image: np.ndarray


def pga(model: DWE, images: MeasureBatch, *, n_components: int = 3, n_steps: int = 7, span: float = 2.0) -> PGAResult:
    """PCA of ``phi(x)`` over the images, each direction decoded by ``psi`` (paper eq. 5).

    :param n_components: principal directions kept (at most ``min(n - 1, p)``).
    :param n_steps: images per direction, from ``-span`` to ``+span`` standard deviations.
    :param span: half-width of the walk, in standard deviations along the direction.
    """
    if len(images) < 2:
        raise ValueError("principal geodesic analysis needs at least two images")
    z = embed(model, images).double().cpu()
    mean = z.mean(dim=0)
    centred = z - mean
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    k = max(1, min(n_components, len(images) - 1, vh.shape[0]))
    variance = singular.pow(2) / (len(images) - 1)
    stds = variance[:k].sqrt()
    steps = torch.linspace(-span, span, n_steps, dtype=torch.float64)
    codes = mean + steps[None, :, None] * stds[:, None, None] * vh[:k, None, :]
    decoded = decode(model, codes.reshape(-1, z.shape[1]).float()).reshape(k, n_steps, *model.grid_shape)
    total = float(variance.sum())
    return PGAResult(
        mean=mean.numpy(),
        components=vh[:k].numpy(),
        stds=stds.numpy(),
        explained_variance_ratio=(variance[:k] / total).numpy() if total > 0 else np.zeros(k),
        steps=steps.numpy(),
        images=decoded.double().cpu().numpy(),
        mean_image=decode(model, mean[None].float())[0].double().cpu().numpy(),
    )


# --------------------------------------------------------------------------- POT references


def _support(hist: np.ndarray, coords: np.ndarray, threshold: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(k, 2)`` and masses ``(k,)`` (float64, sum 1) of the pixels above ``threshold``."""
    flat = np.asarray(hist, dtype=np.float64).reshape(-1)
    keep = flat > threshold
    masses = flat[keep]
    return coords[keep], masses / masses.sum()


def pot_barycenter(
    images: MeasureBatch,
    weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    *,
    method: ReferenceMethod = "free_support",
    reg: float = 1.0,
    num_iter_max: int = 100,
) -> tuple[np.ndarray, np.ndarray]:
    """A W2 barycenter of the images computed by POT: ``(points (k, 2), masses (k,))`` in pixels.

    :param method:

        * ``"free_support"`` (default): the exact W2 barycenter for one or two images (the
          displacement interpolation: the optimal plan ``pi`` between the two images, from
          ``ot.emd``, pushed forward by ``(x, y) -> alpha_0 x + alpha_1 y``); for more
          images ``ot.lp.free_support_barycenter``, fixed-point iterations on the atom
          locations started at the pixels of the Euclidean mean image with its masses (kept
          fixed): a local method, usually close but not certified optimal.
        * ``"lp"``: ``ot.lp.barycenter``, the exact barycenter restricted to the pixel grid
          (a linear program over the bounding box of the images' supports; small images only).
        * ``"convolutional"``: ``ot.bregman.convolutional_barycenter2d``, entropic (blurred)
          with regularisation ``reg`` (POT's units: the grid is scaled to [0, 1]).

    :param weights: ``(n,)`` barycentric weights (default uniform).
    :param num_iter_max: iterations of the free-support fixed point.
    """
    import ot

    if images.grid_shape is None:
        raise ValueError("pot_barycenter needs images on a grid")
    h, w = images.grid_shape
    alpha = _alphas(weights, len(images)).numpy()
    hists = images.weights.detach().double().cpu().numpy()
    hists = hists / hists.sum(axis=1, keepdims=True)
    coords = grid_coordinates(h, w, dtype=torch.float64).numpy()
    if method == "free_support":
        supports = [_support(hists[i], coords) for i in range(len(images))]
        used = np.flatnonzero(alpha > 0)
        if len(used) == 1:
            return supports[int(used[0])]
        if len(used) == 2:
            (xa, wa), (xb, wb) = supports[int(used[0])], supports[int(used[1])]
            plan = ot.emd(wa, wb, ot.dist(xa, xb, metric="sqeuclidean"))
            rows, cols = np.nonzero(plan > 0)
            t = alpha[used[1]]
            points = (1.0 - t) * xa[rows] + t * xb[cols]
            masses = plan[rows, cols]
            return points, masses / masses.sum()
        locations, masses = zip(*supports, strict=True)
        x_init, b = _support(alpha @ hists, coords)
        points = ot.lp.free_support_barycenter(
            list(locations), list(masses), x_init, b=b, weights=alpha, numItermax=num_iter_max, stopThr=1e-9,
        )
        return np.asarray(points, dtype=np.float64), b
    if method == "lp":
        mask = hists.sum(axis=0).reshape(h, w) > 0
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.zeros((h, w), dtype=bool)
        box[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = True
        keep = box.reshape(-1)
        pts = coords[keep]
        a = hists[:, keep].T  # (k, n): POT takes histograms as columns
        cost = ot.dist(pts, pts, metric="sqeuclidean")
        bary = np.maximum(np.asarray(ot.lp.barycenter(a, cost, weights=alpha), dtype=np.float64), 0.0)
        return _support(bary, pts, threshold=1e-12)
    if method == "convolutional":
        bary = ot.bregman.convolutional_barycenter2d(hists.reshape(-1, h, w), reg, weights=alpha)
        return _support(np.maximum(np.asarray(bary, dtype=np.float64), 0.0), coords, threshold=0.0)
    raise ValueError(f"unknown reference method {method!r}; use 'free_support', 'lp' or 'convolutional'")


def w2_between(points_a: np.ndarray, masses_a: np.ndarray, points_b: np.ndarray, masses_b: np.ndarray) -> float:
    """Exact W2 (not squared) between two weighted point sets, in their units (the wbench oracle)."""
    from wbench.oracle import exact_w2sq_pair

    return float(np.sqrt(exact_w2sq_pair(points_a, masses_a, points_b, masses_b)))


def histogram_w2(hist: np.ndarray | torch.Tensor, points: np.ndarray, masses: np.ndarray) -> float:
    """W2 in pixels between a grid histogram ``(H, W)`` and a weighted point set."""
    return w2_between(*histogram_support(hist), points, masses)


def barycenter_w2_to_pot(
    model: DWE,
    images: MeasureBatch,
    weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
    *,
    method: ReferenceMethod = "free_support",
    reg: float = 1.0,
) -> float:
    """W2 (pixels) between DWE's barycenter of ``images`` and POT's (see :func:`pot_barycenter`)."""
    dwe_bary = barycenter(model, images, weights)
    points, masses = pot_barycenter(images, weights, method=method, reg=reg)
    return histogram_w2(dwe_bary, points, masses)


def barycenter_cost(
    points: np.ndarray,
    masses: np.ndarray,
    images: MeasureBatch,
    weights: Sequence[float] | np.ndarray | torch.Tensor | None = None,
) -> float:
    """The barycenter objective ``sum_i alpha_i W2^2(mu, x_i)`` (pixel^2) of ``mu = (points, masses)``.

    What a W2 barycenter minimises: a candidate (DWE's, the L2 mean, POT's) is better the
    lower its cost. For two images the minimum is ``alpha_0 alpha_1 W2^2(x_0, x_1)``.
    """
    from wbench.oracle import exact_w2sq_pair

    alpha = _alphas(weights, len(images)).numpy()
    return float(sum(a * exact_w2sq_pair(points, masses, *images.measure(i)) for i, a in enumerate(alpha) if a > 0))


def histogram_support(hist: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """A grid histogram ``(H, W)`` as ``(points (k, 2), masses (k,))`` over its non-zero pixels."""
    hist = np.asarray(torch.as_tensor(hist).detach().double().cpu().numpy())
    return _support(hist, grid_coordinates(*hist.shape, dtype=torch.float64).numpy())


def euclidean_mean(images: MeasureBatch, weights: Sequence[float] | np.ndarray | torch.Tensor | None = None) -> torch.Tensor:
    """The L2 (pixel-wise) weighted mean image ``(H, W)``: the baseline the paper compares with."""
    alpha = _alphas(weights, len(images)).to(images.weights.dtype)
    return (alpha[:, None] * images.weights.detach().cpu()).sum(dim=0).reshape(images.grid_shape)


def points_to_image(points: np.ndarray, masses: np.ndarray, grid_shape: tuple[int, int]) -> np.ndarray:
    """Splat a weighted point set onto the grid bilinearly, for display: ``(H, W)``."""
    h, w = grid_shape
    out = np.zeros((h, w))
    r0, c0 = np.floor(points[:, 0]).astype(int), np.floor(points[:, 1]).astype(int)
    fr, fc = points[:, 0] - r0, points[:, 1] - c0
    for dr, dc, share in ((0, 0, (1 - fr) * (1 - fc)), (1, 0, fr * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 1, fr * fc)):
        rr, cc = np.clip(r0 + dr, 0, h - 1), np.clip(c0 + dc, 0, w - 1)
        np.add.at(out, (rr, cc), masses * share)
    return out


# --------------------------------------------------------------------------- figures


def save_image_grid(
    rows: Sequence[Sequence[np.ndarray | torch.Tensor]],
    path: str | Path,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    title: str = "",
    cell_inches: float = 1.1,
) -> Path:
    """Write rows of ``(H, W)`` images as one PNG (each image scaled to its own maximum).

    :param rows: a list of rows, each a list of images (rows may differ in length).
    :returns: the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n_rows = len(rows)
    n_cols = max((len(r) for r in rows), default=0)
    if n_rows == 0 or n_cols == 0:
        raise ValueError("no images to draw")
    left = 1.2 if row_labels else 0.1
    fig = Figure(figsize=(left + cell_inches * n_cols, 0.5 + cell_inches * n_rows + (0.3 if title else 0.0)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for i in range(n_rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j < len(rows[i]):
                img = np.asarray(torch.as_tensor(rows[i][j]).detach().double().cpu().numpy())
                ax.imshow(img, cmap="gray_r", vmin=0.0, vmax=max(float(img.max()), 1e-12), interpolation="nearest")
            else:
                ax.axis("off")
            if i == 0 and col_labels and j < len(col_labels):
                ax.set_title(col_labels[j], fontsize=7)
        if row_labels and i < len(row_labels):
            axes[i][0].set_ylabel(row_labels[i], fontsize=7, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    return path
