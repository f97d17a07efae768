"""scikit-learn's bundled 8x8 handwritten digits: the embedded default, no download.

1,797 images of 8x8 pixels with intensities 0..16, classes 0..9 (about 180 each), from
``sklearn.datasets.load_digits``. Same class-combination pair protocol as ``mnist``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ._common import LabelledImageDataset

NATIVE_SIZE = 8


def upsample(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear upsampling of ``(n, h, w)`` images to ``(n, size, size)``.

    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` in float64:
    pixels are squares whose centres are sampled, so the image keeps its extent and its
    centre; bilinear weights are non-negative, so intensities stay non-negative.
    """
    tensor = torch.from_numpy(np.asarray(images, dtype=np.float64))[:, None]
    return F.interpolate(tensor, size=(size, size), mode="bilinear", align_corners=False)[:, 0].numpy()


class DigitsDataset(LabelledImageDataset):
    """scikit-learn's 8x8 digits as unit-mass pixel histograms; W2 in pixels.

    Parameters besides those of :class:`LabelledImageDataset` (``pairs_per_combination``
    default 40: 2,200 pairs split 1,980 / 110 / 110):

    - ``size``: side of the grid (default 8, native). Larger values upsample bilinearly
      (see :func:`upsample`), e.g. ``size=28`` to run 28x28 models or test transfer
      to / from MNIST. Distances are in pixels of the chosen grid, so W2 grows about
      ``size / 8`` times.
    """

    name: ClassVar[str] = "digits"
    defaults: ClassVar[dict[str, Any]] = {
        **LabelledImageDataset.defaults,
        "pairs_per_combination": 40,
        "size": NATIVE_SIZE,
    }

    def validate(self) -> None:
        super().validate()
        self.integer("size", minimum=NATIVE_SIZE)

    def load(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = bunch.images.astype(np.float64)
        if self.params["size"] != NATIVE_SIZE:
            images = upsample(images, self.params["size"])
        return images, bunch.target, {}
