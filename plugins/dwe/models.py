"""Deep Wasserstein Embedding (Courty, Flamary & Ducoffe, ICLR 2018): a siamese encoder
``phi`` trained so that ``|phi(x) - phi(y)|^2`` matches W2^2, regularised by a decoder
``psi`` that reconstructs the input histogram from its embedding.

Architecture (paper section 4.1; ``H x W`` is the image grid, every convolution keeps it):

* ``phi``: Conv 20 3x3 + ReLU, Conv 5 5x5 + ReLU, flatten, Dense 100, Dense 50 (no
  activation after either dense layer, as in the authors' Keras code).
* ``psi``: Dense 100 + ReLU, Dense 5*H*W + ReLU, reshape (5, H, W), Conv 20 5x5 + ReLU,
  Conv 1 3x3, softmax over the H*W pixels (a histogram of unit mass). The ReLU after the
  second dense layer is in the authors' code, not in the paper's text; their first decoder
  convolution has 10 filters where the paper says 20: we follow the paper.

Loss on a batch of pairs (authors' code: ``loss_weights=[1, 1e1, 1e1, 1e-3, 1e-3]``)::

    mean_i (|phi(x1_i) - phi(x2_i)|^2 - W2^2_i)^2
      + kl_weight       * (KL(x1 || psi(phi(x1))) + KL(x2 || psi(phi(x2))))      # batch means
      + sparsity_weight * (|psi(phi(x1))|_{1/2}^{1/2} + |psi(phi(x2))|_{1/2}^{1/2})

with ``KL(x || r) = sum_p x_p log(x_p / r_p)`` after clipping both to ``[1e-7, 1]`` (the
paper writes ``KL(psi(phi(x)), x)``; the authors' code computes this direction, the only
finite one for sparse images) and ``|r|_{1/2}^{1/2} = sum_p sqrt(r_p + 1e-7)``.

Parameter counts: ``n_parameters`` (= ``n_parameters_trained``) counts every trainable
parameter, encoder **and** decoder, because the decoder is part of what is trained (its loss
shapes the encoder); ``n_parameters_inference`` counts the encoder alone, the part that
computes distances, and is what matched budgets match by default. At
28x28 the paper's network has 399,855 encoder + 403,721 decoder = 803,576 parameters (the
paper's "about 400k" is the encoder); at 8x8, 39,855 + 40,121 = 79,976.

Sizes: ``width`` is the total number of hidden units of the four resizable layers (encoder
conv 1, encoder dense 1, decoder dense 1, decoder conv 1), shared out in the paper's
proportions 20 : 100 : 100 : 20 by D'Hondt's divisor method (see :func:`wbench.train.sizing.apportion`): the
paper's network is ``width=240``; each increment of ``width`` adds one unit to one layer,
so the parameter count is strictly increasing in it. ``bottleneck`` (the second encoder
conv's filters, 5 in the paper, also the decoder's reshape depth) is held fixed: changing
it rescales both big dense layers at once. The matched variant (``dwe-matched``) uses
``bottleneck=1``: at 28x28 a width step then adds at most 835 parameters, so any target
above about 45k is reachable within 1 %: matched on the encoder (the default), 55,430 ->
width 157, 55,616 encoder parameters; matched on everything trained, width 77, 55,531
parameters. On 8x8 grids any target above about 10k.

The images are multiplied by ``H*W`` inside ``phi`` (a uniform image becomes all ones): a
fixed rescaling for conditioning, no parameter; unit-mass histograms alone have pixels of
order 1e-3 and train slowly from the default initialisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from wbench.measures import MeasureBatch
from wbench.surrogate import EmbeddingSurrogate, concat_measures, with_grid_shape
from wbench.training import apportion

PAPER_WIDTHS = (20, 100, 100, 20)
"""The paper's sizes of (encoder conv 1, encoder dense 1, decoder dense 1, decoder conv 1)."""
PAPER_WIDTH = sum(PAPER_WIDTHS)
KERAS_EPSILON = 1e-7


class DWENetwork(nn.Module):
    """Encoder ``phi`` and decoder ``psi`` of DWE for ``grid_shape`` images.

    :param grid_shape: ``(H, W)``.
    :param conv1: filters of the first encoder convolution (3x3).
    :param bottleneck: filters of the second encoder convolution (5x5) and depth of the
        decoder's reshaped tensor.
    :param hidden: units of the encoder's first dense layer.
    :param embed_dim: embedding dimension p.
    :param decoder_hidden: units of the decoder's first dense layer.
    :param decoder_conv: filters of the decoder's first convolution (5x5).
    """

    def __init__(
        self,
        grid_shape: tuple[int, int],
        *,
        conv1: int,
        bottleneck: int,
        hidden: int,
        embed_dim: int,
        decoder_hidden: int,
        decoder_conv: int,
    ) -> None:
        super().__init__()
        h, w = grid_shape
        self.grid_shape = (int(h), int(w))
        self.bottleneck = bottleneck
        n_pixels = h * w
        self.encoder = nn.Sequential(
            nn.Conv2d(1, conv1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(conv1, bottleneck, 5, padding=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(bottleneck * n_pixels, hidden),
            nn.Linear(hidden, embed_dim),
        )
        self.decoder_dense = nn.Sequential(
            nn.Linear(embed_dim, decoder_hidden),
            nn.ReLU(),
            nn.Linear(decoder_hidden, bottleneck * n_pixels),
            nn.ReLU(),
        )
        self.decoder_conv = nn.Sequential(
            nn.Conv2d(bottleneck, decoder_conv, 5, padding=2),
            nn.ReLU(),
            nn.Conv2d(decoder_conv, 1, 3, padding=1),
        )

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """``phi``: unit-mass images ``(B, 1, H, W)`` -> embeddings ``(B, p)``."""
        h, w = self.grid_shape
        return self.encoder(images * float(h * w))

    def decode_logits(self, z: torch.Tensor) -> torch.Tensor:
        """Pre-softmax decoder output ``(B, H*W)`` for embeddings ``(B, p)``."""
        h, w = self.grid_shape
        x = self.decoder_dense(z).reshape(-1, self.bottleneck, h, w)
        return self.decoder_conv(x).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``psi``: embeddings ``(B, p)`` -> histograms ``(B, H*W)`` (non-negative, unit sum)."""
        return torch.softmax(self.decode_logits(z), dim=1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode(images)

    def encoder_parameters(self) -> int:
        """Trainable parameters of ``phi``."""
        return sum(p.numel() for p in self.encoder.parameters() if p.requires_grad)

    def decoder_parameters(self) -> int:
        """Trainable parameters of ``psi``."""
        return sum(
            p.numel() for m in (self.decoder_dense, self.decoder_conv) for p in m.parameters() if p.requires_grad
        )


class DWE(EmbeddingSurrogate):
    """DWE at the paper's size (``width=240``, ``bottleneck=5``): ``d(x, y) = |phi(x) - phi(y)|``.

    ``distance`` returns W2 in pixels (the square root of the trained W2^2 estimate).
    :meth:`decode` / :meth:`reconstruct` expose ``psi`` for the embedding-space tools of
    :mod:`wbench_plugins.dwe.tools` (barycenters, interpolation, principal geodesics).

    :param grid_shape: ``(H, W)`` of the images (filled from the dataset by :meth:`params_for`).
    :param width: total hidden units of the resizable layers (see the module docstring).
    :param bottleneck: filters of the second encoder convolution (5 in the paper).
    :param embed_dim: embedding dimension p (50 in the paper).
    :param kl_weight: weight of each input's KL reconstruction term (10, authors' code).
    :param sparsity_weight: weight of each input's l_{1/2} sparsity term (1e-3, authors' code).
    """

    input_kind: ClassVar[str] = "grid"
    authors_defaults: ClassVar[dict[str, Any]] = {"embed_dim": 50, "kl_weight": 10.0, "sparsity_weight": 1e-3}
    """The paper's embedding size (p = 50) and the authors' code's loss weights."""
    width_param: ClassVar[str | None] = None
    inference_modules: ClassVar[tuple[str, ...] | None] = ("encoder",)
    """Distances use the encoder ``phi`` only: ``n_parameters_inference`` counts it alone."""
    channels_last_on_cpu: ClassVar[bool] = True
    """Run the convolutions in ``channels_last`` memory format on CPU (oneDNN's fast path;
    the same computation, so the results agree to float32 rounding)."""
    embed_batch: ClassVar[int] = 256
    """Measures per chunk in :meth:`embed_all` (``distance`` / ``pairwise``): on CPU the
    activations of 256 images (20 x 28 x 28 floats each) stay in cache, about 1.8x faster
    per image than 1,024 on one thread (interleaved rounds, loaded 2-core machine)."""

    def __init__(
        self,
        *,
        grid_shape: Sequence[int] = (28, 28),
        width: int = PAPER_WIDTH,
        bottleneck: int = 5,
        embed_dim: int = 50,
        kl_weight: float = 10.0,
        sparsity_weight: float = 1e-3,
    ) -> None:
        grid = (int(grid_shape[0]), int(grid_shape[1]))
        for name, value in (("width", width), ("bottleneck", bottleneck), ("embed_dim", embed_dim)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"DWE {name} must be a positive integer, got {value!r}")
        if kl_weight < 0 or sparsity_weight < 0:
            raise ValueError("DWE loss weights must be non-negative")
        super().__init__(
            grid_shape=list(grid), width=width, bottleneck=bottleneck, embed_dim=embed_dim,
            kl_weight=float(kl_weight), sparsity_weight=float(sparsity_weight),
        )
        conv1, hidden, decoder_hidden, decoder_conv = apportion(width, PAPER_WIDTHS)
        self.layer_sizes = {
            "conv1": conv1, "bottleneck": bottleneck, "hidden": hidden, "embed_dim": embed_dim,
            "decoder_hidden": decoder_hidden, "decoder_conv": decoder_conv,
        }
        self.model = DWENetwork(grid, **self.layer_sizes)
        self.to("cpu")

    @classmethod
    def params_for(cls, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
        """Take ``grid_shape`` from the data unless given."""
        return with_grid_shape(cls, params, measures)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return self.model.grid_shape

    def _images(self, x: MeasureBatch) -> torch.Tensor:
        if x.grid_shape is None:
            raise ValueError("DWE needs images on a pixel grid, got point clouds")
        if tuple(x.grid_shape) != self.grid_shape:
            raise ValueError(f"this DWE was built for {self.grid_shape} images, got {tuple(x.grid_shape)}")
        return x.images().to(self.device, torch.float32)

    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """``phi(x)``: embeddings ``(B, embed_dim)``; squared distances estimate W2^2 (pixel^2)."""
        return self.model.encode(self._images(x))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``psi(z)``: embeddings ``(B, embed_dim)`` -> histograms ``(B, H, W)`` of unit mass."""
        return self.model.decode(z.to(self.device, torch.float32)).reshape(-1, *self.grid_shape)

    def reconstruct(self, x: MeasureBatch) -> torch.Tensor:
        """``psi(phi(x))``: ``(B, H, W)`` histograms."""
        return self.decode(self.embed(x))

    def training_loss(self, a: MeasureBatch, b: MeasureBatch, w2sq: torch.Tensor) -> torch.Tensor:
        """DWE's objective on one batch (see the module docstring); ``w2sq`` ``(B,)`` in pixel^2."""
        both = concat_measures(a, b)
        images = self._images(both).flatten(1)
        z = self.model.encode(images.reshape(-1, 1, *self.grid_shape))
        n = len(a)
        predicted_sq = (z[:n] - z[n:]).pow(2).sum(dim=1)
        loss = (predicted_sq - w2sq.to(predicted_sq.dtype)).pow(2).mean()
        kl_weight, sparsity_weight = self.params["kl_weight"], self.params["sparsity_weight"]
        if kl_weight > 0 or sparsity_weight > 0:
            recon = self.model.decode(z)
            # each input's term is a batch mean; the two inputs together = 2 * mean over both
            if kl_weight > 0:
                loss = loss + kl_weight * 2.0 * kl_divergence(images, recon).mean()
            if sparsity_weight > 0:
                loss = loss + sparsity_weight * 2.0 * (recon + KERAS_EPSILON).sqrt().sum(dim=1).mean()
        return loss

    def describe(self) -> dict[str, Any]:
        """Layer sizes and the encoder / decoder split of the parameter count."""
        return {
            "layer_sizes": dict(self.layer_sizes),
            "encoder_parameters": self.model.encoder_parameters(),
            "decoder_parameters": self.model.decoder_parameters(),
            "parameter_count_includes_decoder": True,
        }


class DWEMatched(DWE):
    """DWE resized for matched parameter budgets: ``width`` is searched, ``bottleneck`` defaults to 1.

    Matched budgets match ``n_parameters_inference`` (the encoder) by default: 55,430 ->
    width 157, 55,616 encoder parameters (111,131 trained with the decoder). With
    ``[budget] param_count = "trained"`` they match ``n_parameters`` (encoder and decoder):
    width 77, 55,531, of which the encoder has 27,816.
    """

    width_param: ClassVar[str | None] = "width"

    def __init__(self, *, bottleneck: int = 1, width: int = 77, **params: Any) -> None:
        super().__init__(bottleneck=bottleneck, width=width, **params)


def kl_divergence(target: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """``KL(target || recon)`` per row ``(B,)`` of ``(B, N)`` histograms, both clipped to [1e-7, 1]."""
    t = target.clamp(KERAS_EPSILON, 1.0)
    r = recon.clamp(KERAS_EPSILON, 1.0)
    return (t * (t.log() - r.log())).sum(dim=1)
