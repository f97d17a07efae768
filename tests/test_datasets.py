"""The built-in datasets: mnist, digits, shapes, distributions, and their shared pair protocol."""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.linalg import inv, sqrtm

from wbench.data import SPLITS, PairedDataset
from wbench.errors import InvalidMeasureError
from wbench.oracle.solve import exact_w2sq
from wbench.plugin.manager import make_plugin_manager
from wbench_plugins.datasets._common import images_to_measures
from wbench_plugins.datasets._pairs import (
    class_combinations,
    partition,
    random_pair_splits,
    split_sizes,
)
from wbench_plugins.datasets.digits import DigitsDataset
from wbench_plugins.datasets.distributions import (
    FAMILIES_1D,
    DistributionsDataset,
    bures_wasserstein_sq,
    normal_shrinking_sets,
    rasterise,
)
from wbench_plugins.datasets.mnist import (
    MnistDataset,
    MnistFormatError,
    MnistNotFoundError,
    read_idx,
)
from wbench_plugins.datasets.shapes import ShapesDataset

NAMES = ("mnist", "digits", "shapes", "distributions")
CLASSES = {"mnist": MnistDataset, "digits": DigitsDataset, "shapes": ShapesDataset, "distributions": DistributionsDataset}
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def all_pairs(ds: PairedDataset) -> tuple[np.ndarray, np.ndarray]:
    left = np.concatenate([ds.pairs[s].left for s in SPLITS])
    right = np.concatenate([ds.pairs[s].right for s in SPLITS])
    return left, right


def assert_same_pairs(a: PairedDataset, b: PairedDataset) -> None:
    for split in SPLITS:
        np.testing.assert_array_equal(a.pairs[split].left, b.pairs[split].left)
        np.testing.assert_array_equal(a.pairs[split].right, b.pairs[split].right)


def pairs_differ(a: PairedDataset, b: PairedDataset) -> bool:
    return any(not np.array_equal(a.pairs[s].left, b.pairs[s].left) for s in SPLITS)


def assert_distinct_pairs(ds: PairedDataset) -> None:
    left, right = all_pairs(ds)
    assert np.all(left != right), "a measure is paired with itself"
    keys = set(zip(np.minimum(left, right).tolist(), np.maximum(left, right).tolist(), strict=True))
    assert len(keys) == len(left), "a pair occurs twice"


def assert_combination_counts(ds: PairedDataset, per_combination: int) -> None:
    """Each class combination a <= b occurs exactly ``per_combination`` times, left class a."""
    left, right = all_pairs(ds)
    la, lb = ds.labels[left], ds.labels[right]
    assert np.all(la <= lb)
    counts = Counter(zip(la.tolist(), lb.tolist(), strict=True))
    assert set(counts) == set(class_combinations(ds.labels))
    assert set(counts.values()) == {per_combination}


# --- registration -----------------------------------------------------------------------


def test_all_four_register_through_the_entry_point() -> None:
    plugins = make_plugin_manager()
    registry = plugins.registry
    assert set(NAMES) <= set(registry.names("dataset"))
    for name in NAMES:
        entry = registry.get("dataset", name)
        assert entry.plugin == "datasets" and entry.distribution.startswith("wbench ")
        assert entry.load() is CLASSES[name]
        assert entry.description
        # the defaults are declared once, on the class: the registry reads them there
        assert entry.legacy_params is None and entry.params == dict(CLASSES[name].defaults)
        assert set(entry.test_params) <= set(CLASSES[name].defaults)


@pytest.mark.parametrize("name", ["digits", "shapes", "distributions"])
def test_test_params_build_small_and_fast(name: str) -> None:
    entry = make_plugin_manager().registry.get("dataset", name)
    ds = entry.load()(**entry.test_params).build()
    assert len(ds.measures) <= 200 and sum(len(p) for p in ds.pairs.values()) <= 100
    assert not ds.has_ground_truth and all(p.w2sq is None for p in ds.pairs.values())


# --- the shared pair protocol ----------------------------------------------------------


def test_split_size_rounding_rule() -> None:
    assert split_sizes(55_000, (0.9, 0.05, 0.05)) == (49_500, 2_750, 2_750)
    assert split_sizes(2_200, (0.9, 0.05, 0.05)) == (1_980, 110, 110)
    assert split_sizes(550, (0.9, 0.05, 0.05)) == (495, 27, 28)
    assert split_sizes(10, (0.7, 0.2, 0.1)) == (7, 2, 1)


def test_digits_protocol_counts_and_combinations() -> None:
    ds = DigitsDataset(pairs_per_combination=10).build()
    assert len(ds.measures) == 1797 and ds.measures.grid_shape == (8, 8) and ds.unit == "pixel"
    assert {s: len(p) for s, p in ds.pairs.items()} == {"train": 495, "val": 27, "test": 28}
    assert_combination_counts(ds, 10)
    assert_distinct_pairs(ds)


def test_default_digits_protocol() -> None:
    ds = DigitsDataset().build()
    assert {s: len(p) for s, p in ds.pairs.items()} == {"train": 1980, "val": 110, "test": 110}
    assert_combination_counts(ds, 40)
    assert ds.params["pairs_per_combination"] == 40 and ds.params["size"] == 8  # every param is recorded


def test_seeded_determinism_and_different_seeds_differ() -> None:
    for cls, params in [
        (DigitsDataset, {"pairs_per_combination": 3, "n_images": 300}),
        (ShapesDataset, {"n_measures": 30, "n_pairs": 60, "family": "both"}),
        (DistributionsDataset, {"n_sets": 21, "sample_size": 20, "n_pairs": 40}),
    ]:
        a, b = cls(**params, seed=3).build(), cls(**params, seed=3).build()
        assert_same_pairs(a, b)
        assert torch.equal(a.measures.weights, b.measures.weights)
        assert torch.equal(a.measures.support, b.measures.support)
        c = cls(**params, seed=4).build()
        assert pairs_differ(a, c), cls.name
        grid = a.measures.is_grid  # the measures differ too: grid masses, or the point clouds
        field = "weights" if grid else "support"
        assert not torch.equal(getattr(a.measures, field), getattr(c.measures, field)), cls.name


def test_more_pairs_keep_the_same_images() -> None:
    """Independent seed streams: the image subset does not depend on the number of pairs."""
    a = DigitsDataset(n_images=200, pairs_per_combination=1).build()
    b = DigitsDataset(n_images=200, pairs_per_combination=2).build()
    np.testing.assert_array_equal(a.metadata["source_index"], b.metadata["source_index"])


def test_image_disjoint_split() -> None:
    ds = DigitsDataset(pairs_per_combination=10, split="image-disjoint").build()
    assert {s: len(p) for s, p in ds.pairs.items()} == {"train": 495, "val": 27, "test": 28}
    assert_combination_counts(ds, 10)
    assert_distinct_pairs(ds)
    used = {s: set(ds.pairs[s].left.tolist()) | set(ds.pairs[s].right.tolist()) for s in SPLITS}
    assert not used["train"] & used["test"]
    assert not used["train"] & used["val"]
    assert not used["val"] & used["test"]
    groups = ds.metadata["image_groups"]
    for split in SPLITS:
        assert used[split] <= set(groups[split].tolist())
    # groups: a partition of the images, stratified by class, 80 / 10 / 10 per class
    assert sorted(np.concatenate(list(groups.values())).tolist()) == list(range(len(ds.measures)))
    for c in range(10):
        n_c = int((ds.labels == c).sum())
        assert int((ds.labels[groups["train"]] == c).sum()) == int(np.floor(0.8 * n_c + 1e-9))


def test_disjoint_split_of_random_pairs() -> None:
    rng = np.random.default_rng(0)
    pools = partition(rng, 100, (0.6, 0.2, 0.2))
    pairs = random_pair_splits(rng, 100, 300, (0.8, 0.1, 0.1), pools=pools)
    for split in SPLITS:
        members = set(pools[split].tolist())
        assert set(pairs[split].left.tolist()) | set(pairs[split].right.tolist()) <= members
    shapes = ShapesDataset(n_measures=40, n_pairs=80, split="image-disjoint").build()
    train_images = set(shapes.pairs["train"].left.tolist()) | set(shapes.pairs["train"].right.tolist())
    assert not train_images & (set(shapes.pairs["test"].left.tolist()) | set(shapes.pairs["test"].right.tolist()))
    dists = DistributionsDataset(n_sets=70, sample_size=10, n_pairs=100, split="set-disjoint").build()
    train_sets = set(dists.pairs["train"].left.tolist()) | set(dists.pairs["train"].right.tolist())
    assert not train_sets & (set(dists.pairs["test"].left.tolist()) | set(dists.pairs["test"].right.tolist()))


# --- mnist ------------------------------------------------------------------------------


@pytest.mark.mnist
def test_mnist_reads_the_10000_test_images(mnist_root: Path) -> None:
    ds = MnistDataset(root=str(mnist_root), pairs_per_combination=2).build()
    assert len(ds.measures) == 10_000 and ds.measures.grid_shape == (28, 28) and ds.unit == "pixel"
    assert np.bincount(ds.labels, minlength=10).tolist() == MNIST_TEST_COUNTS
    mass = ds.measures.weights.double().sum(dim=1)
    assert torch.allclose(mass, torch.ones_like(mass), atol=1e-5)
    assert {s: len(p) for s, p in ds.pairs.items()} == {"train": 99, "val": 5, "test": 6}
    assert_combination_counts(ds, 2)


@pytest.mark.mnist
def test_mnist_default_root_from_the_environment_and_protocol(mnist_root: Path) -> None:
    ds = MnistDataset().build()  # root from $WBENCH_MNIST_ROOT, 1,000 pairs per combination
    assert {s: len(p) for s, p in ds.pairs.items()} == {"train": 49_500, "val": 2_750, "test": 2_750}
    assert_combination_counts(ds, 1000)
    assert_distinct_pairs(ds)


@pytest.mark.mnist
def test_mnist_subset_of_images(mnist_root: Path) -> None:
    ds = MnistDataset(root=str(mnist_root), n_images=500, pairs_per_combination=3, split="image-disjoint").build()
    assert len(ds.measures) == 500 and len(set(ds.metadata["source_index"].tolist())) == 500
    assert_combination_counts(ds, 3)
    again = MnistDataset(root=str(mnist_root), n_images=500, pairs_per_combination=3, split="image-disjoint").build()
    assert torch.equal(ds.measures.weights, again.measures.weights)
    with pytest.raises(MnistNotFoundError, match=r"MNIST train files not found.*WBENCH_MNIST_ROOT.*download=True"):
        MnistDataset(root=str(mnist_root), subset="train").build()


def test_mnist_missing_root_says_where_it_looked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MnistNotFoundError) as info:
        MnistDataset(root=str(tmp_path)).build()
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message and "t10k-images-idx3-ubyte" in message
    assert "WBENCH_MNIST_ROOT" in message and "download=True" in message
    monkeypatch.delenv("WBENCH_MNIST_ROOT", raising=False)
    with pytest.raises(MnistNotFoundError, match="set WBENCH_MNIST_ROOT"):
        MnistDataset().build()
    assert isinstance(info.value, FileNotFoundError)


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    data = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def _fake_mnist(root: Path, n_train: int = 40, n_test: int = 30) -> None:
    """A small MNIST in torchvision's layout: gzipped train files, decompressed test files."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n, suffix in (("train", n_train, ".gz"), ("t10k", n_test, "")):
        images = rng.integers(0, 256, size=(n, 28, 28))
        images[:, :2] = 0
        _write_idx(raw / f"{prefix}-images-idx3-ubyte{suffix}", 2051, images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte{suffix}", 2049, np.arange(n) % 10)


def test_mnist_subsets_on_a_full_fake_set(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    train = MnistDataset(root=tmp_path, subset="train", pairs_per_combination=1).build()
    test = MnistDataset(root=tmp_path, subset="test", pairs_per_combination=1).build()
    both = MnistDataset(root=tmp_path, subset="all", pairs_per_combination=1).build()
    assert (len(train.measures), len(test.measures), len(both.measures)) == (40, 30, 70)
    assert torch.equal(both.measures.weights, torch.cat([train.measures.weights, test.measures.weights]))
    np.testing.assert_array_equal(both.labels, np.r_[np.arange(40) % 10, np.arange(30) % 10])
    assert train.params["root"] == str(tmp_path)


def test_mnist_download_goes_through_torchvision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torchvision.datasets

    calls = []

    class FakeMNIST:  # stands in for torchvision.datasets.MNIST: "downloads" the fake files
        def __init__(self, root: str, train: bool, download: bool) -> None:
            calls.append((root, train, download))
            _fake_mnist(Path(root))

    monkeypatch.setattr(torchvision.datasets, "MNIST", FakeMNIST)
    ds = MnistDataset(root=tmp_path, download=True, pairs_per_combination=1).build()
    assert calls == [(str(tmp_path), False, True)] and len(ds.measures) == 30
    MnistDataset(root=tmp_path, download=True, pairs_per_combination=1).build()
    assert len(calls) == 1  # the files are there now: no second download

    class OfflineMNIST:
        def __init__(self, root: str, train: bool, download: bool) -> None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision.datasets, "MNIST", OfflineMNIST)
    with pytest.raises(MnistNotFoundError, match=r"downloading MNIST into .*MNIST/raw failed: RuntimeError"):
        MnistDataset(root=tmp_path / "empty", download=True).build()


def test_mnist_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    images = raw / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with pytest.raises(MnistFormatError, match="truncated or corrupt"):
        MnistDataset(root=tmp_path).build()
    _write_idx(images, 2049, np.zeros(30))  # a labels file where the images should be
    with pytest.raises(MnistFormatError, match="expected MNIST images"):
        MnistDataset(root=tmp_path).build()
    bad_gzip = raw / "train-labels-idx1-ubyte.gz"
    bad_gzip.write_bytes(b"not gzip at all")
    with pytest.raises(MnistFormatError, match="cannot read"):
        read_idx(bad_gzip)
    (raw / "x").write_bytes(b"\x00\x00\x0d\x01abcd")  # float IDX: not MNIST
    with pytest.raises(MnistFormatError, match="not an IDX file of unsigned bytes"):
        read_idx(raw / "x")


def test_all_zero_image_is_an_error_naming_its_index(tmp_path: Path) -> None:
    images = np.ones((5, 4, 4))
    images[3] = 0
    with pytest.raises(InvalidMeasureError, match="image 13 has no mass"):
        images_to_measures(images, index=np.arange(10, 15))
    _fake_mnist(tmp_path)
    raw = tmp_path / "MNIST" / "raw"
    blank = np.full((30, 28, 28), 7)
    blank[17] = 0
    _write_idx(raw / "t10k-images-idx3-ubyte", 2051, blank)
    with pytest.raises(InvalidMeasureError, match="image 17 has no mass"):
        MnistDataset(root=tmp_path).build()


# --- digits -----------------------------------------------------------------------------


def test_digits_upsampled_to_28() -> None:
    small = DigitsDataset(pairs_per_combination=1).build()
    big = DigitsDataset(pairs_per_combination=1, size=28).build()
    assert big.measures.grid_shape == (28, 28) and big.measures.n_points == 784
    assert torch.all(big.measures.weights >= 0)
    assert torch.allclose(big.measures.weights.double().sum(1), torch.ones(len(big.measures), dtype=torch.float64), atol=1e-5)
    assert_same_pairs(small, big)  # the same pairs, only the grid changes

    def centres(ds: PairedDataset) -> np.ndarray:  # centre of mass in pixels, (n, 2)
        points, weights = ds.measures.point_clouds()
        return torch.einsum("bn,bnd->bd", weights.double(), points.double()).numpy()

    # bilinear with align_corners=False keeps the image's extent: x_big + 0.5 = 3.5 (x_small + 0.5)
    np.testing.assert_allclose(centres(big) + 0.5, 3.5 * (centres(small) + 0.5), atol=0.6)


# --- views ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (DigitsDataset, {"n_images": 50, "pairs_per_combination": 1}),
        (ShapesDataset, {"n_measures": 10, "n_pairs": 20, "size": 12, "scale": 3.0}),
        (DistributionsDataset, {"family": "normal2d", "view": "grid", "n_sets": 10, "n_pairs": 20, "grid_size": 16}),
    ],
)
def test_grid_view_equals_point_cloud_masses(cls, params) -> None:
    measures = cls(**params).build().measures
    images = measures.images()[:, 0]
    points, weights = measures.point_clouds()
    rows, cols = points[..., 0].long(), points[..., 1].long()
    assert torch.equal(points, points.round())  # pixel coordinates
    batch = torch.arange(len(measures))[:, None].expand_as(rows)
    assert torch.equal(images[batch, rows, cols], weights)
    assert torch.allclose(weights.double().sum(1), torch.ones(len(measures), dtype=torch.float64), atol=1e-5)


# --- shapes -----------------------------------------------------------------------------


def test_shapes_translations_have_exact_w2() -> None:
    for shape in ("disk", "square", "ring", "gaussian"):
        ds = ShapesDataset(shape=shape, n_measures=30, n_pairs=40, size=20, scale=4.0).build()
        translations = ds.metadata["translations"]
        assert translations.shape == (30, 2) and np.array_equal(translations, np.round(translations))
        assert np.all(ds.metadata["scales"] == 4.0)
        assert len({tuple(t) for t in translations.tolist()}) == 30  # distinct positions
        for split in SPLITS:
            pairs = ds.pairs[split]
            expected = np.linalg.norm(translations[pairs.left] - translations[pairs.right], axis=1)
            closed = ds.metadata["closed_form_w2"][split]
            np.testing.assert_array_equal(closed, expected)
            w2 = np.sqrt(exact_w2sq(ds.measures, pairs.left, pairs.right))
            np.testing.assert_allclose(w2, expected, rtol=0, atol=1e-9)


def test_shapes_dilation_and_both_families() -> None:
    dil = ShapesDataset(family="dilation", shape="ring", n_measures=20, n_pairs=30).build()
    scales = dil.metadata["scales"]
    assert scales.shape == (20,) and scales.min() >= 2.0 and scales.max() <= 9.0
    assert np.all(dil.metadata["translations"] == 0)
    assert all(np.isnan(v).all() for v in dil.metadata["closed_form_w2"].values())
    # images are centred: centre of mass at the grid centre
    points, weights = dil.measures.point_clouds()
    com = torch.einsum("bn,bnd->bd", weights.double(), points.double())
    assert torch.allclose(com, torch.full_like(com, 13.5), atol=1e-4)
    # larger radius, larger spread
    spread = torch.einsum("bn,bn->b", weights.double(), ((points.double() - 13.5) ** 2).sum(-1)).numpy()
    assert np.all(np.diff(spread[np.argsort(scales)]) > 0)
    both = ShapesDataset(family="both", n_measures=20, n_pairs=30).build()
    assert np.any(both.metadata["translations"] != 0) and len(set(both.metadata["scales"].tolist())) == 20


# --- distributions ----------------------------------------------------------------------


def _delta_method_sd(m1: np.ndarray, c1: np.ndarray, m2: np.ndarray, c2: np.ndarray, n: int) -> float:
    """Standard deviation of the empirical W2^2 between two n-samples of N(m1, c1), N(m2, c2).

    First-order term: (1/n) sum f(X_i) + (1/n) sum g(Y_j) with the optimal potentials; for
    normals the map is T(x) = m2 + A (x - m1), A = c1^-1/2 (c1^1/2 c2 c1^1/2)^1/2 c1^-1/2,
    f(m1 + z) = const + 2 (m1 - m2).z + z.(I - A) z, so Var f(X) = 4 d.c1.d + 2 tr(((I - A) c1)^2)
    (and likewise g with A^-1 and c2).
    """
    root = np.real(sqrtm(c1))
    a = inv(root) @ np.real(sqrtm(root @ c2 @ root)) @ inv(root)
    d, eye = m1 - m2, np.eye(len(m1))
    var_f = 4 * d @ c1 @ d + 2 * np.trace(((eye - a) @ c1) @ ((eye - a) @ c1))
    var_g = 4 * d @ c2 @ d + 2 * np.trace(((eye - inv(a)) @ c2) @ ((eye - inv(a)) @ c2))
    return float(np.sqrt((var_f + var_g) / n))


def test_normal2d_oracle_agrees_with_bures_wasserstein() -> None:
    """Empirical W2^2 (oracle) vs the populations' closed form, within sampling error.

    The empirical value fluctuates around the population one with the delta-method standard
    deviation sd (above) and has a positive second-order bias of order log(n)/n in 2-D
    (measured over 150 pairs: mean error 0.19 at n = 300, 0.08 at n = 500, with every
    |error| below 4 sd). Tolerance per pair: 4 sd + 0.2; and the mean standardised error
    over the pairs must be small (catches a formula that is off for every pair).
    """
    n = 500
    ds = DistributionsDataset(family="normal2d", n_sets=20, sample_size=n, n_pairs=16, fractions=(0.5, 0.25, 0.25)).build()
    assert ds.unit == "coordinate" and ds.measures.support.shape == (20, n, 2)
    means, covs = ds.metadata["mean"], ds.metadata["cov"]
    left, right = all_pairs(ds)
    exact = exact_w2sq(ds.measures, left, right)
    closed = np.concatenate([ds.metadata["closed_form_w2sq"][s] for s in SPLITS])
    sd = np.array([_delta_method_sd(means[i], covs[i], means[j], covs[j], n) for i, j in zip(left, right, strict=True)])
    assert np.all(np.abs(exact - closed) <= 4 * sd + 0.2), np.c_[exact, closed, sd]
    assert -1.0 < float(np.mean((exact - closed) / sd)) < 2.0


def test_bures_wasserstein_closed_forms() -> None:
    assert bures_wasserstein_sq(1.0, 4.0, -1.0, 1.0) == pytest.approx(4.0 + 1.0)  # 1-D: dm^2 + (s1 - s2)^2
    diag = bures_wasserstein_sq(np.zeros(2), np.diag([4.0, 9.0]), np.ones(2), np.diag([1.0, 1.0]))
    assert diag == pytest.approx(2.0 + 1.0 + 4.0)  # commuting: |dm|^2 + sum (sqrt a - sqrt b)^2
    rng = np.random.default_rng(0)
    f1, f2 = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    c1, c2 = f1 @ f1.T + 0.1 * np.eye(2), f2 @ f2.T + 0.1 * np.eye(2)
    m1, m2 = rng.normal(size=2), rng.normal(size=2)
    assert bures_wasserstein_sq(m1, c1, m2, c2) == pytest.approx(bures_wasserstein_sq(m2, c2, m1, c1))
    assert bures_wasserstein_sq(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-10)
    rot = np.array([[0.0, -1.0], [1.0, 0.0]])  # rotating a covariance: Bures = tr(c1 + c2 - 2 (c1^1/2 c2 c1^1/2)^1/2)
    assert bures_wasserstein_sq(m1, c1, m1, rot @ c1 @ rot.T) >= 0.0


def test_one_d_families_metadata_and_moments() -> None:
    ds = DistributionsDataset(sample_size=20_000, n_sets=14, n_pairs=20).build()
    assert ds.measures.support.shape == (14, 20_000, 1)
    assert ds.metadata["family"].tolist() == [FAMILIES_1D[i % 7] for i in range(14)]
    assert ds.metadata["label_names"] == list(FAMILIES_1D)
    np.testing.assert_array_equal(ds.labels, np.arange(14) % 7)
    samples = ds.measures.support[..., 0].double().numpy()
    # population moments (closed forms) vs 20,000 samples: 5 standard errors
    mean, std = ds.metadata["mean"], ds.metadata["std"]
    assert np.all(np.abs(samples.mean(1) - mean) < 5 * std / np.sqrt(20_000))
    np.testing.assert_allclose(samples.std(1), std, rtol=0.06)
    # and vs scipy.stats for the same parameters
    from scipy import stats

    frozen = {
        "uniform": lambda q: stats.uniform(loc=q["low"], scale=q["width"]),
        "normal": lambda q: stats.norm(q["mean"], q["std"]),
        "beta": lambda q: stats.beta(q["a"], q["b"]),
        "gamma": lambda q: stats.gamma(q["shape"], scale=q["scale"]),
        "exponential": lambda q: stats.expon(scale=q["scale"]),
        "laplace": lambda q: stats.laplace(q["loc"], q["scale"]),
        "lognormal": lambda q: stats.lognorm(s=q["sigma"], scale=np.exp(q["mu"])),
    }
    for name, q, m, s in zip(ds.metadata["family"], ds.metadata["family_params"], mean, std, strict=True):
        assert frozen[name](q).mean() == pytest.approx(m) and frozen[name](q).std() == pytest.approx(s)
    # 1-D normal pairs get the closed form, the others NaN
    closed = np.concatenate([ds.metadata["closed_form_w2sq"][s] for s in SPLITS])
    left, right = all_pairs(ds)
    both_normal = (ds.metadata["family"][left] == "normal") & (ds.metadata["family"][right] == "normal")
    assert np.array_equal(np.isfinite(closed), both_normal)


def test_single_family_and_default_sizes() -> None:
    ds = DistributionsDataset(family="gamma", n_pairs=20).build()
    assert ds.measures.support.shape == (50, 500, 1) and set(ds.metadata["family"]) == {"gamma"}
    assert ds.params["n_sets"] == 50 and ds.params["sample_size"] == 500
    two = DistributionsDataset(family="normal2d", n_pairs=20).build()
    assert two.measures.support.shape == (100, 300, 2) and two.metadata["cov"].shape == (100, 2, 2)
    covs = two.metadata["cov"]
    assert np.allclose(covs, covs.transpose(0, 2, 1)) and np.all(np.linalg.eigvalsh(covs) > 0)
    everything = DistributionsDataset(n_pairs=20).build()
    assert everything.measures.support.shape == (350, 500, 1)


def test_normal2d_grid_view() -> None:
    params = {"family": "normal2d", "n_sets": 8, "sample_size": 100, "n_pairs": 20, "grid_size": 14, "extent": 7.0}
    points = DistributionsDataset(**params).build()
    grid = DistributionsDataset(**params, view="grid").build()
    assert grid.unit == "pixel" and grid.measures.grid_shape == (14, 14) and grid.metadata["pixel_size"] == 1.0
    assert_same_pairs(points, grid)
    counts, clipped = rasterise(points.measures.support.double().numpy(), 14, 7.0)
    np.testing.assert_allclose(grid.measures.images()[:, 0].numpy(), counts / 100, atol=1e-7)
    np.testing.assert_array_equal(grid.metadata["n_clipped"], clipped)
    # closed form in pixel^2: sample units / pixel_size
    for split in SPLITS:
        np.testing.assert_allclose(grid.metadata["closed_form_w2sq"][split], points.metadata["closed_form_w2sq"][split])
    half = DistributionsDataset(**{**params, "grid_size": 28}, view="grid").build()
    np.testing.assert_allclose(half.metadata["closed_form_w2sq"]["train"], 4 * points.metadata["closed_form_w2sq"]["train"])
    pts, _ = rasterise(np.array([[[-7.0, 6.99], [100.0, 0.0]]]), 14, 7.0)
    assert pts[0, 0, 13] == 1 and pts[0, 13, 7] == 1  # corner pixel; a far point is clipped to the border


def test_normal_shrinking_sets() -> None:
    ns = [1, 10, 100, 1000]
    probe = normal_shrinking_sets(ns, sample_size=4000, seed=1)
    assert probe.support.shape == (5, 4000, 1) and not probe.is_grid
    samples = probe.support[..., 0].double().numpy()
    np.testing.assert_allclose(samples[:4].std(1), 1 / np.sqrt(ns), rtol=0.05)
    assert np.all(samples[4] == 0.0)  # the Dirac at 0
    # W2 of an empirical set to the Dirac at 0 is exactly sqrt(mean |x|^2), close to 1 / sqrt(n)
    small = normal_shrinking_sets(ns, sample_size=200, seed=1)
    w2sq_to_dirac = exact_w2sq(small, np.arange(4), np.full(4, 4))
    np.testing.assert_allclose(w2sq_to_dirac, (small.support[:4, :, 0].double() ** 2).mean(1).numpy(), rtol=1e-9)
    assert torch.equal(normal_shrinking_sets(ns, 50, seed=2).support, normal_shrinking_sets(ns, 50, seed=2).support)
    assert normal_shrinking_sets([4], 10, dim=2).support.shape == (2, 10, 2)
    with pytest.raises(ValueError, match="positive integers"):
        normal_shrinking_sets([0, 3])


# --- bad parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (DigitsDataset, {"pairs_per_combo": 3}, r"unknown parameter\(s\) 'pairs_per_combo' for dataset 'digits'; known: .*pairs_per_combination"),
        (DigitsDataset, {"fractions": (0.9, 0.2, 0.05)}, "fractions must sum to 1"),
        (DigitsDataset, {"fractions": (0.9, 0.1)}, "fractions must be three numbers"),
        (DigitsDataset, {"fractions": (1.1, -0.05, -0.05)}, "non-negative"),
        (DigitsDataset, {"image_fractions": "0.8"}, "image_fractions must be three numbers"),
        (DigitsDataset, {"split": "by-image"}, "unknown split 'by-image'; choose one of 'random', 'image-disjoint'"),
        (DigitsDataset, {"pairs_per_combination": 0}, "pairs_per_combination must be >= 1"),
        (DigitsDataset, {"pairs_per_combination": 2.5}, "pairs_per_combination must be an integer"),
        (DigitsDataset, {"size": 4}, "size must be >= 8"),
        (DigitsDataset, {"seed": -1}, "seed must be >= 0"),
        (MnistDataset, {"subset": "validation"}, "unknown subset 'validation'"),
        (MnistDataset, {"download": "yes"}, "download must be true or false"),
        (ShapesDataset, {"family": "rotation"}, "unknown family 'rotation'; choose one of 'translation', 'dilation', 'both'"),
        (ShapesDataset, {"shape": "star"}, "unknown shape 'star'"),
        (ShapesDataset, {"scale": 20.0}, r"radius of 20.0 pixels does not fit a 28x28 grid"),
        (ShapesDataset, {"family": "dilation", "scale_range": (5.0, 3.0)}, "0 < min <= max"),
        (DistributionsDataset, {"family": "cauchy"}, "unknown family 'cauchy'"),
        (DistributionsDataset, {"view": "grid"}, "view='grid' needs family='normal2d'"),
        (DistributionsDataset, {"n_sets": 1}, "n_sets must be >= 2"),
        (DistributionsDataset, {"extent": -1.0}, "extent must be > 0"),
    ],
)
def test_bad_params_raise_clear_errors(cls, params, message) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**params)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (DigitsDataset, {"n_images": 5000}, "n_images=5000 but only 1797 images are available"),
        (DigitsDataset, {"n_images": 30, "pairs_per_combination": 20}, r"cannot draw 20 distinct pairs of classes \(\d, \d\) from all measures"),
        (DigitsDataset, {"n_images": 30, "split": "image-disjoint"}, r"from the '(train|val|test)' measure group: only \d+ exist"),
        (DigitsDataset, {"pairs_per_combination": 1, "fractions": (0.99, 0.005, 0.005)}, "split 'val' would get no pairs"),
        (ShapesDataset, {"n_measures": 5, "n_pairs": 20}, "cannot draw 20 distinct pairs of measures from all measures: only 10 exist"),
        (ShapesDataset, {"size": 10, "scale": 4.0, "n_measures": 20}, "only 9 distinct positions on a 10x10 grid"),
    ],
)
def test_impossible_builds_raise_clear_errors(cls, params, message) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**params).build()
