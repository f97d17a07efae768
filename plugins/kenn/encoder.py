"""The CNN encoder shared by Naive, DeepKENN and ODE-KENN, and its width rule.

At the paper's configuration (``width=1000`` on a 28x28 grid) the encoder is

=====  ==========================================  ==========  =====
layer  operation                                   output      flat
=====  ==========================================  ==========  =====
conv1  Conv 1->8, 5x5, pad 2; ReLU; MaxPool 2      8x14x14     1568
conv2  Conv 8->16, 3x3, pad 1; ReLU; MaxPool 2     16x7x7      784
conv3  Conv 16->32, 3x3, pad 1; ReLU; MaxPool 2    32x3x3      288
fc1    Linear 288->128; ReLU                       128         128
fc2    Linear 128->64                              64          64
=====  ==========================================  ==========  =====

51,264 parameters; with the Linear(64, 64) + Tanh head (or ODE vector field) of 4,160
the models have 55,424 (Naive), 55,430 (DeepKENN) and 55,434 (ODE-KENN) parameters.

Width. ``width`` is the size of every layer in thousandths of the paper's: the
convolution channels and the feature dimension are ``round(width / 1000 * (8, 16, 32, 64))``
and FC1's size is then chosen so that the parameter count follows the smooth count of the
un-rounded architecture (FC1 absorbs the rounding of the other layers, whose single-unit
steps would otherwise jump by several per cent). Where that would make the count drop
below a narrower width's, the narrower architecture is kept, so the count never decreases
with ``width`` (what :func:`wbench.train.sizing.build_at_parameter_target` bisects on). At
``width=1000`` every grid gets the paper's layer sizes exactly.

Grid. Three 2x2 max-pools (floor) take an ``H x W`` grid to ``H//8 x W//8``, so grids
from 8x8 up work (28 -> 14 -> 7 -> 3, 8 -> 4 -> 2 -> 1).

Input. A measure on the grid enters as its density relative to the uniform measure,
``weights * H * W`` (mean 1 over the grid): a fixed linear rescaling of the unit-mass
histogram that keeps inputs of order one on every grid size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

import torch
from torch import nn

from wbench.measures import MeasureBatch

PAPER_WIDTH = 1000
"""``width`` of the paper's configuration (layer sizes in thousandths of the paper's)."""
PAPER_GRID = (28, 28)
ENCODER_LAYERS = ("conv1", "conv2", "conv3", "fc1", "fc2")
_PAPER_SIZES = (8.0, 16.0, 32.0, 128.0, 64.0)  # conv1..conv3 channels, fc1, feature dim
_KERNELS = (5, 3, 3)
MIN_GRID = 8


@dataclass(frozen=True)
class EncoderDims:
    """Layer sizes of one encoder.

    :param channels: output channels of conv1, conv2, conv3.
    :param fc1: units of FC1.
    :param dim: feature dimension (FC2's output; also the head's / ODE state's size).
    :param grid_shape: ``(H, W)`` of the input grid.
    """

    channels: tuple[int, int, int]
    fc1: int
    dim: int
    grid_shape: tuple[int, int]

    @property
    def pooled(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """Spatial size after each of the three max-pools."""
        h, w = self.grid_shape
        return (h // 2, w // 2), (h // 4, w // 4), (h // 8, w // 8)

    @property
    def flat_sizes(self) -> tuple[int, int, int, int, int]:
        """Flattened output size of conv1, conv2, conv3, fc1, fc2 (1568, 784, 288, 128, 64 in the paper)."""
        convs = tuple(c * h * w for c, (h, w) in zip(self.channels, self.pooled, strict=True))
        return (*convs, self.fc1, self.dim)

    def as_dict(self) -> dict[str, object]:
        return {
            "conv_channels": list(self.channels),
            "fc1": self.fc1,
            "feature_dim": self.dim,
            "grid_shape": list(self.grid_shape),
            "flat_sizes": dict(zip(ENCODER_LAYERS, self.flat_sizes, strict=True)),
        }


def count_parameters(channels: tuple[float, float, float], fc1: float, dim: float, spatial: int) -> float:
    """Parameters of encoder + Linear(dim, dim) head for (possibly fractional) layer sizes.

    :param spatial: number of pixels after the third max-pool (9 on 28x28, 1 on 8x8).
    """
    c1, c2, c3 = channels
    k1, k2, k3 = _KERNELS
    convs = (k1 * k1 * c1 + c1) + (k2 * k2 * c1 * c2 + c2) + (k3 * k3 * c2 * c3 + c3)
    return convs + (spatial * c3 * fc1 + fc1) + (fc1 * dim + dim) + (dim * dim + dim)


def _round(x: float) -> int:
    return max(1, math.floor(x + 0.5))


def _candidate(width: int, spatial: int) -> tuple[tuple[int, int, int], int, int]:
    scale = width / PAPER_WIDTH
    c1, c2, c3, f1, d = (size * scale for size in _PAPER_SIZES)
    smooth = count_parameters((c1, c2, c3), f1, d, spatial)
    channels = (_round(c1), _round(c2), _round(c3))
    dim = _round(d)
    rest = count_parameters(channels, 0, dim, spatial)  # everything but FC1's units
    per_unit = spatial * channels[2] + 1 + dim  # parameters one FC1 unit adds
    fc1 = _round((smooth - rest) / per_unit)
    return channels, fc1, dim


@cache
def _architectures(max_width: int, spatial: int) -> tuple[tuple[tuple[int, int, int], int, int], ...]:
    """Architecture of every width 1..max_width, made non-decreasing in parameter count."""
    chosen: list[tuple[tuple[int, int, int], int, int]] = []
    best = -1
    for width in range(1, max_width + 1):
        arch = _candidate(width, spatial)
        n = count_parameters(*arch, spatial)
        if n < best:
            arch = chosen[-1]
        else:
            best = n
        chosen.append(arch)
    return tuple(chosen)


def encoder_dims(width: int = PAPER_WIDTH, grid_shape: tuple[int, int] = PAPER_GRID) -> EncoderDims:
    """Layer sizes for ``width`` on an ``H x W`` grid (see the module docstring).

    :raises ValueError: ``width`` is not a positive integer, or the grid is smaller than 8x8.
    """
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer (1000 = the paper's sizes), got {width!r}")
    h, w = (int(v) for v in grid_shape)
    if h < MIN_GRID or w < MIN_GRID:
        raise ValueError(f"the KENN encoder max-pools three times and needs a grid of at least 8x8, got {h}x{w}")
    spatial = (h // 8) * (w // 8)
    # Cache the scan in blocks so a sweep over widths costs one pass.
    block = 1 << max(10, math.ceil(math.log2(width)))
    channels, fc1, dim = _architectures(block, spatial)[width - 1]
    return EncoderDims(channels, fc1, dim, (h, w))


class KennEncoder(nn.Module):
    """Three conv blocks and two linear layers: images ``(B, 1, H, W)`` -> features.

    :param dims: the layer sizes (:func:`encoder_dims`).
    """

    def __init__(self, dims: EncoderDims):
        super().__init__()
        self.dims = dims
        c1, c2, c3 = dims.channels
        self.conv1 = nn.Conv2d(1, c1, _KERNELS[0], padding=_KERNELS[0] // 2)
        self.conv2 = nn.Conv2d(c1, c2, _KERNELS[1], padding=_KERNELS[1] // 2)
        self.conv3 = nn.Conv2d(c2, c3, _KERNELS[2], padding=_KERNELS[2] // 2)
        self.fc1 = nn.Linear(dims.flat_sizes[2], dims.fc1)
        self.fc2 = nn.Linear(dims.fc1, dims.dim)
        self.pool = nn.MaxPool2d(2)

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five layer outputs unflattened: three conv maps ``(B, C, H, W)`` (in the
        input's memory format) and ``(B, fc1)``, ``(B, dim)``."""
        # pool(relu(y)) == relu(pool(y)) exactly (max commutes with a monotone map), values
        # and gradients alike; pooling first runs the ReLU on a quarter of the elements.
        h1 = torch.relu(self.pool(self.conv1(x)))
        h2 = torch.relu(self.pool(self.conv2(h1)))
        h3 = torch.relu(self.pool(self.conv3(h2)))
        # Flatten in (C, H, W) order whatever the memory format (reshape copies if needed).
        f4 = torch.relu(self.fc1(h3.reshape(h3.shape[0], -1)))
        return [h1, h2, h3, f4, self.fc2(f4)]

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The five flattened layer outputs ``[(B, 1568), (B, 784), (B, 288), (B, 128), (B, 64)]``."""
        # Flatten in (C, H, W) order whatever the memory format (reshape copies if needed).
        return [m.reshape(m.shape[0], -1) for m in self.feature_maps(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The feature ``(B, dim)`` (FC2's output)."""
        return self.feature_maps(x)[-1]


def grid_input(measures: MeasureBatch, grid_shape: tuple[int, int], *, channels_last: bool = False) -> torch.Tensor:
    """The encoder's input ``(B, 1, H, W)``: density relative to uniform, ``weights * H * W``.

    :raises ValueError: the measures are not on an ``H x W`` grid.
    """
    if measures.grid_shape is None or tuple(measures.grid_shape) != tuple(grid_shape):
        got = "point clouds" if measures.grid_shape is None else f"a {measures.grid_shape[0]}x{measures.grid_shape[1]} grid"
        raise ValueError(
            f"this model was built for {grid_shape[0]}x{grid_shape[1]} images and got {got}; "
            "build it with grid_shape set to the data's (params_for does so)"
        )
    x = measures.images() * float(grid_shape[0] * grid_shape[1])
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x
