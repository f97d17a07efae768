"""A small learned surrogate: an MLP on the first two moments of each measure."""

from __future__ import annotations

import torch

from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate


class MomentsSurrogate(EmbeddingSurrogate):
    """``d(x, y) = |f(m_x, C_x) - f(m_y, C_y)|`` with ``m`` the mean and ``C`` the covariance.

    Works on grid histograms and point clouds alike (``input_kind = "any"``); W2 in the
    ground-cost units of the data.
    """

    input_kind = "any"
    width_param = "hidden"

    def __init__(self, *, hidden: int = 32, dim: int = 2) -> None:
        super().__init__(hidden=hidden, dim=dim)
        n_features = dim + dim * dim
        self.model = torch.nn.Sequential(
            torch.nn.Linear(n_features, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden)
        )

    @classmethod
    def params_for(cls, params, measures):
        return {"dim": measures.dim, **params}

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """``(B, hidden)`` embedding of the mean ``(B, D)`` and covariance ``(B, D, D)``."""
        points, weights = x.point_clouds()
        mean = torch.einsum("bn,bnd->bd", weights, points)
        centred = points - mean[:, None, :]
        cov = torch.einsum("bn,bnd,bne->bde", weights, centred, centred)
        return self.model(torch.cat([mean, cov.flatten(1)], dim=1))
