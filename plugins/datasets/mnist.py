"""MNIST digits as measures on the 28x28 pixel grid, paired by the DeepKENN protocol.

The files are read from torchvision's folder layout, ``ROOT/MNIST/raw/`` (``ROOT`` itself
is searched too), decompressed or gzipped: ``t10k-images-idx3-ubyte[.gz]``,
``t10k-labels-idx1-ubyte[.gz]`` for the 10,000 test images and ``train-...`` for the
60,000 training images. The IDX format is decoded here with gzip and numpy (magic number,
dimensions and file length are checked), so a read-only folder holding only the gzipped
test files works; ``torchvision.datasets.MNIST`` is used only to download
(``download=True``), which fetches all four files into ``ROOT/MNIST/raw/``.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wbench.errors import WbenchError

from ._common import LabelledImageDataset

ROOT_ENV = "WBENCH_MNIST_ROOT"
"""Environment variable naming the default MNIST root folder (the one holding ``MNIST/raw/``)."""

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SUBSETS = {"test": ("test",), "train": ("train",), "all": ("train", "test")}
_IMAGE_MAGIC, _LABEL_MAGIC = 2051, 2049


class MnistNotFoundError(WbenchError, FileNotFoundError):
    """The MNIST files are not where the dataset looked; the message says how to fix it."""


class MnistFormatError(WbenchError, ValueError):
    """An MNIST file is truncated, corrupt or not an IDX file of the expected kind."""


def read_idx(path: str | os.PathLike[str]) -> tuple[int, np.ndarray]:
    """Decode an IDX file of unsigned bytes (optionally gzipped, by a ``.gz`` suffix).

    :returns: ``(magic, array)``: the magic number (2051 images, 2049 labels) and the
        ``uint8`` array of the dimensions the header announces.
    :raises MnistFormatError: not gzip, not unsigned-byte IDX, or a length that does not
        match the header.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                data = handle.read()
        else:
            data = path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise MnistFormatError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 3:
        raise MnistFormatError(f"{path} is not an IDX file of unsigned bytes (header {data[:4].hex() or 'empty'})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistFormatError(f"{path} is truncated: {len(data)} bytes, shorter than its header")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise MnistFormatError(
            f"{path} is truncated or corrupt: its header announces dimensions {dims} "
            f"({expected} bytes) but it holds {len(data)} bytes"
        )
    magic = struct.unpack(">I", data[:4])[0]
    return magic, np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def resolve_root(root: str | os.PathLike[str] | None) -> Path:
    """The MNIST root: ``root`` if given, else ``$WBENCH_MNIST_ROOT``."""
    if root is None:
        root = os.environ.get(ROOT_ENV) or None
    if root is None:
        raise MnistNotFoundError(
            f"no MNIST root folder: set {ROOT_ENV}=/path/to/data (a folder holding MNIST/raw/) "
            "or pass the dataset parameter root=...; with download=True, torchvision downloads "
            "the files into ROOT/MNIST/raw/ (needs internet and a writable root)"
        )
    return Path(root).expanduser()


def _candidates(root: Path) -> list[Path]:
    return [root / "MNIST" / "raw", root]


def find_file(root: Path, name: str) -> Path | None:
    """The first of ``name`` or ``name.gz`` in ``ROOT/MNIST/raw`` then ``ROOT``, or None."""
    for folder in _candidates(root):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    return None


def _download(root: Path, part: str) -> None:
    from torchvision.datasets import MNIST  # heavy: only when asked to download

    try:
        MNIST(str(root), train=part == "train", download=True)
    except Exception as exc:  # network, permissions, checksum: say which
        raise MnistNotFoundError(
            f"downloading MNIST into {root / 'MNIST' / 'raw'} failed: {type(exc).__name__}: {exc}"
        ) from exc


def part_files(root: Path, part: str) -> tuple[Path, Path]:
    """The image and label files of the ``"train"`` or ``"test"`` part under ``root``.

    :raises MnistNotFoundError: either is missing; the message says where it looked.
    """
    names = FILES[part]
    paths = [find_file(root, name) for name in names]
    if None in paths:
        looked = " and ".join(str(folder) for folder in _candidates(root))
        wanted = " and ".join(f"{name}[.gz]" for name in names)
        raise MnistNotFoundError(
            f"MNIST {part} files not found: looked for {wanted} in {looked}. Point "
            f"{ROOT_ENV} (or the parameter root) at the folder holding MNIST/raw/, or pass "
            "download=True to let torchvision download them (needs internet)"
        )
    image_path, label_path = paths
    assert image_path is not None and label_path is not None
    return image_path, label_path


def load_part(root: Path, part: str, *, download: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 28, 28)`` uint8 and labels ``(n,)`` of the ``"train"`` or ``"test"`` files."""
    if download and any(find_file(root, name) is None for name in FILES[part]):
        _download(root, part)
    image_path, label_path = part_files(root, part)
    magic, images = read_idx(image_path)
    if magic != _IMAGE_MAGIC or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise MnistFormatError(f"{image_path}: expected MNIST images (magic {_IMAGE_MAGIC}, n x 28 x 28), got magic {magic}, shape {images.shape}")
    magic, labels = read_idx(label_path)
    if magic != _LABEL_MAGIC or labels.ndim != 1:
        raise MnistFormatError(f"{label_path}: expected MNIST labels (magic {_LABEL_MAGIC}, 1-D), got magic {magic}, shape {labels.shape}")
    if len(labels) != len(images):
        raise MnistFormatError(f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels")
    if labels.size and labels.max() > 9:
        raise MnistFormatError(f"{label_path} holds a label {int(labels.max())} outside 0..9")
    return images, labels


class MnistDataset(LabelledImageDataset):
    """MNIST (28x28, 10 classes) as unit-mass pixel histograms; W2 in pixels.

    Parameters besides those of :class:`LabelledImageDataset` (``pairs_per_combination``
    default 1,000: 55,000 pairs split 49,500 / 2,750 / 2,750 as in the DeepKENN paper):

    - ``root``: folder holding ``MNIST/raw/`` (default ``$WBENCH_MNIST_ROOT``).
    - ``subset``: ``"test"`` (10,000 images, the default), ``"train"`` (60,000) or
      ``"all"`` (training images first, then test images; ``metadata["source_index"]``
      counts in that order).
    - ``download``: let torchvision download missing files into ``root``.
    - ``unseen`` (see :class:`LabelledImageDataset`): the protocol's 55,000 pairs touch
      about every image of the 10,000 in ``subset="test"`` (each image is in about 11 pairs),
      so the unseen images come from images no pair may use. Either hold images out with
      ``n_images`` (e.g. 8,000: the pairs use a seeded 8,000 of the 10,000 test images, the
      other 2,000 form the pool; only the test files are needed), or, with ``n_images``
      unset, from the part ``subset`` leaves out (the 60,000 images of the training file,
      which must then be present: the protocol's pairs are then exactly the paper's).

    Intensities (0..255) are normalised to unit mass per image; an all-zero image is an
    error naming its index.
    """

    name: ClassVar[str] = "mnist"
    defaults: ClassVar[dict[str, Any]] = {
        **LabelledImageDataset.defaults,
        "root": None,
        "subset": "test",
        "download": False,
    }

    def validate(self) -> None:
        super().validate()
        self.choice("subset", tuple(SUBSETS))
        if not isinstance(self.params["download"], bool):
            raise ValueError(f"mnist: download must be true or false, got {self.params['download']!r}")
        root = self.params["root"]
        if root is not None and not isinstance(root, str | os.PathLike):
            raise ValueError(f"mnist: root must be a path, got {root!r}")
        if root is not None:
            self.params["root"] = str(root)

    def preflight(self) -> None:
        """Check that the root folder is set and (unless ``download``) holds the subset's files.

        :raises MnistNotFoundError: no root, or missing files; the message says how to fix it.
        """
        root = resolve_root(self.params["root"])
        if not self.params["download"]:
            for part in SUBSETS[self.params["subset"]]:
                part_files(root, part)
            for part in self.unseen_parts() if self.params["unseen"] else ():
                try:
                    part_files(root, part)
                except MnistNotFoundError as exc:
                    raise MnistNotFoundError(f"mnist: unseen = true draws its images from the MNIST {part} "
                                             f"file, which subset={self.params['subset']!r} leaves out "
                                             f"(or set n_images, e.g. 8000, to hold images of the subset out): {exc}") from exc

    def unseen_parts(self) -> tuple[str, ...]:
        """The MNIST parts that feed the ``unseen`` pool: those ``subset`` leaves out, unless
        ``n_images`` holds images of ``subset`` out (then none: the pool is those images)."""
        if self.params["n_images"] is not None:
            return ()
        return tuple(part for part in FILES if part not in SUBSETS[self.params["subset"]])

    def extra_images(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The images and labels of the parts ``subset`` leaves out (None: it reads both)."""
        parts = self.unseen_parts()
        if not parts:
            return None
        root = resolve_root(self.params["root"])
        loaded = [load_part(root, part, download=self.params["download"]) for part in parts]
        return np.concatenate([i for i, _ in loaded]), np.concatenate([lab for _, lab in loaded])

    def load(self) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        root = resolve_root(self.params["root"])
        parts = [load_part(root, part, download=self.params["download"]) for part in SUBSETS[self.params["subset"]]]
        images = np.concatenate([images for images, _ in parts])
        labels = np.concatenate([labels for _, labels in parts])
        return images, labels, {"root": str(root)}
