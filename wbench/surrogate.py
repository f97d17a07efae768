"""The surrogate interface: learned models and reference solvers of W2.

* :class:`Surrogate` — anything that returns W2 between measures.
* :class:`TorchSurrogate` — a surrogate backed by a ``torch.nn.Module`` (save / load,
  parameter count, device).
* :class:`EmbeddingSurrogate` — implement :meth:`EmbeddingSurrogate.embed`; ``distance``
  and ``pairwise`` follow as Euclidean distances between embeddings.
* :class:`Solver` — nothing to fit (exact LP, Sinkhorn, LOT, sliced W2).

Fit-time parameters are constructor keywords; evaluation-time parameters (Sinkhorn's
blur, an ODE solver's step count) are set with :meth:`Surrogate.configure` on a fitted
model, so one fit serves several evaluation settings.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs
from wbench.measures import MeasureBatch, concat_measures  # noqa: F401 (concat_measures: re-exported)
from wbench.plugin.saved_models import (  # noqa: F401 (SavedModelError: re-exported)
    SavedModelError,
    read_saved_header,
    read_saved_state,
    resolve_saved_class,
)
from wbench.train.loop import FitReport, train_on_pairs
from wbench.validate import check_predictions

__all__ = [
    "EmbeddingSurrogate",
    "FitReport",
    "InputKind",
    "Solver",
    "Surrogate",
    "TorchSurrogate",
    "pairwise_euclidean",
    "with_grid_shape",
]

InputKind = Literal["grid", "cloud", "any"]
METHOD_CLASSES = ("learned", "hybrid", "untrained", "solver")
"""The classes of methods, in the order boards list them (see ``Surrogate.method_class``)."""
RANKED_CLASSES = ("learned", "hybrid")
"""Classes ranked on boards (each within itself); the others are reference rows."""

SAVE_FORMAT_VERSION = 1


class Surrogate(ABC):
    """Base class of every method that estimates W2 between measures.

    Class attributes a plugin sets:

    :cvar input_kind: ``"grid"`` (needs images on a shared grid), ``"cloud"`` (weighted
        point clouds, either view works) or ``"any"``.
    :cvar trainable: False for solvers.
    :cvar method_class: what a user pays at inference, one of :data:`METHOD_CLASSES`:
        ``"learned"`` (no solver at inference; the default), ``"hybrid"`` (a solver per new
        measure, e.g. an LP per measure), ``"untrained"`` (an embedding with nothing to
        learn), ``"solver"`` (a solver per pair). Boards rank learned and hybrid methods,
        each within its class; untrained embeddings and solvers are reference rows.
    :cvar width_param: name of the constructor keyword that scales the parameter count
        (searched for matched budgets), or None.
    :cvar default_eval_params: evaluation-time parameters and their defaults.
    :cvar metric_by_construction: True when every distance is a Euclidean distance between
        embeddings (symmetric, zero on the diagonal, triangle inequality by construction):
        the leaderboard then shows "metric by construction" instead of the axiom audit,
        which measures nothing there. :class:`EmbeddingSurrogate` sets it.
    :cvar evaluate_on_all_pairs: a method that is not trainable is evaluated on the suite's
        seeded subset of test pairs (``solver_eval_pairs``) unless this is True (a solver
        fast enough for every test pair, e.g. an embedding); trainable methods always see
        every test pair.
    :cvar authors_defaults: optional; the authors' hyper-parameters under the names records
        store them (budget ``lr``, a method parameter, a :meth:`describe` key at any depth);
        boards flag rows that used others. Empty (the default): nothing declared.
    """

    input_kind: ClassVar[InputKind] = "grid"
    trainable: ClassVar[bool] = True
    method_class: ClassVar[str] = "learned"
    width_param: ClassVar[str | None] = None
    default_eval_params: ClassVar[Mapping[str, Any]] = {}
    evaluate_on_all_pairs: ClassVar[bool] = False
    metric_by_construction: ClassVar[bool] = False
    authors_defaults: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)
        self.eval_params: dict[str, Any] = dict(self.default_eval_params)

    @classmethod
    def params_for(cls, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
        """Fill data-dependent fit-time parameters (grid shape, dimension) from the data.

        The runner calls this before construction; the default returns ``params`` as is.
        Grid models set ``grid_shape`` from ``measures.grid_shape``, point-cloud models
        set ``dim`` from ``measures.dim``, unless the user gave them.
        """
        return dict(params)

    def configure(self, **eval_params: Any) -> Surrogate:
        """Set evaluation-time parameters; unknown names raise ``ValueError`` listing the known."""
        unknown = set(eval_params) - set(self.default_eval_params)
        if unknown:
            raise ValueError(
                f"{type(self).__name__} has no evaluation parameter(s) {sorted(unknown)}; "
                f"known: {sorted(self.default_eval_params) or 'none'}"
            )
        self.eval_params.update(eval_params)
        return self

    @abstractmethod
    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Train on ``train`` (pairs with exact W2^2) within ``budget``; use ``val`` to select."""

    @abstractmethod
    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """Row-aligned W2 estimates ``(B,)`` between ``a[i]`` and ``b[i]``, in ground-cost units."""

    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """All W2 estimates ``(n, m)`` between ``x[i]`` and ``y[j]``.

        The default calls :meth:`distance` on every pair row by row; embedding surrogates
        override it with one matrix computation.
        """
        rows = []
        for i in range(len(x)):
            xi = x.index([i] * len(y))
            rows.append(self.distance(xi, y).reshape(1, -1))
        return torch.cat(rows, dim=0)

    @property
    def n_parameters(self) -> int:
        """Number of trainable parameters (0 for solvers)."""
        return 0

    @property
    def n_parameters_trained(self) -> int:
        """Parameters that training updates (count): :attr:`n_parameters`."""
        return self.n_parameters

    @property
    def n_parameters_inference(self) -> int:
        """Parameters used to compute distances (count); default :attr:`n_parameters`.

        A model with parts only training uses (DWE's decoder) counts less here; matched
        budgets match this count by default (``[budget] param_count``).
        """
        return self.n_parameters

    def describe(self) -> dict[str, Any]:
        """JSON-ready method-specific facts for the record (learned weights, solver settings)."""
        return {}

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        """Write method-specific figures or files into ``out_dir`` after evaluation.

        Called by the runner when the suite asks for plots (``[evaluation] plots``); the
        directory may not exist yet. Default: nothing is written, ``[]``.

        :returns: the paths written.
        """
        return []


def with_grid_shape(cls: type, params: Mapping[str, Any], measures: MeasureBatch) -> dict[str, Any]:
    """``params`` with ``grid_shape`` taken from ``measures`` unless given (grid models' ``params_for``).

    :raises ValueError: the measures are point clouds, not images on a grid.
    """
    out = dict(params)
    if "grid_shape" not in out:
        if measures.grid_shape is None:
            raise ValueError(f"{cls.__name__} needs images on a grid; these measures are point clouds")
        out["grid_shape"] = tuple(measures.grid_shape)
    return out


class Solver(Surrogate):
    """A reference method with nothing to fit (exact LP, Sinkhorn, LOT, sliced W2)."""

    trainable: ClassVar[bool] = False
    method_class: ClassVar[str] = "solver"

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Nothing to learn: returns an empty report."""
        return FitReport(stopped_by="nothing to fit")


class TorchSurrogate(Surrogate):
    """A surrogate whose trainable state is ``self.model`` (a ``torch.nn.Module``).

    Subclasses build ``self.model`` in ``__init__`` from ``self.params``; save / load then
    round-trip the state as tensors only (no pickled objects) plus a JSON header.
    """

    channels_last_on_cpu: ClassVar[bool] = False
    """Run convolutions in the ``channels_last`` memory format on CPU (see :meth:`to`): the
    same computation, results equal to float32 round-off, often 1.5-2.5x faster."""

    model: torch.nn.Module
    inference_modules: ClassVar[tuple[str, ...] | None] = None
    """Names of the sub-modules of ``model`` that compute distances (None: all of it)."""

    @property
    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def n_parameters_inference(self) -> int:
        """Trainable parameters of the :attr:`inference_modules` (all of ``model`` when None)."""
        if self.inference_modules is None:
            return self.n_parameters
        modules = dict(self.model.named_modules())
        missing = [name for name in self.inference_modules if name not in modules]
        if missing:
            raise ValueError(f"{type(self).__name__}.inference_modules names no sub-module {missing} of its model")
        seen: set[int] = set()
        total = 0
        for name in self.inference_modules:
            for p in modules[name].parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    total += p.numel()
        return total

    @property
    def device(self) -> torch.device:
        for p in self.model.parameters():
            return p.device
        return torch.device("cpu")

    def to(self, device: str | torch.device) -> TorchSurrogate:
        """Move the model to ``device``; with :attr:`channels_last_on_cpu`, on CPU the
        convolution weights go to the ``channels_last`` memory format (oneDNN's fast path)."""
        self.model.to(device)
        if self.channels_last_on_cpu:
            fmt = torch.channels_last if self.uses_channels_last() else torch.contiguous_format
            self.model.to(memory_format=fmt)
        return self

    def uses_channels_last(self) -> bool:
        """Whether inputs should be ``channels_last``: the class asks for it and the model is on CPU."""
        return self.channels_last_on_cpu and self.device.type == "cpu"

    def predict_w2(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """Differentiable W2 predictions ``(B,)`` used in training (model in train mode)."""
        raise NotImplementedError(f"{type(self).__name__} must implement predict_w2 or training_loss")

    def training_loss(self, a: MeasureBatch, b: MeasureBatch, w2sq: torch.Tensor) -> torch.Tensor:
        """Scalar loss on one batch; default: MSE between predicted and exact W2 (not squared).

        :param w2sq: ``(B,)`` exact W2^2 on the model's device.
        :raises wbench.validate.InvalidPredictionError: ``predict_w2`` did not return ``(B,)``
            finite non-negative values (call ``training``).
        """
        predicted = self.predict_w2(a, b)
        check_predictions(predicted, n=len(w2sq), method=type(self).__name__, call="training")
        return torch.nn.functional.mse_loss(predicted, w2sq.clamp_min(0).sqrt())

    def fit(self, train: LabelledPairs, val: LabelledPairs, budget: Budget) -> FitReport:
        """Train with the shared loop (:func:`wbench.train.loop.train_on_pairs`)."""
        return train_on_pairs(self, train, val, budget)

    def save(self, path: str | Path, *, name: str | None = None) -> None:
        """Write the fitted model: ``path`` (tensors, ``torch.save`` of a state dict) and
        ``path.json`` (registered name, class, fit-time and evaluation-time parameters).

        :param name: the name the class is registered under (``wbench list``); what
            :meth:`load` resolves, through the registry, when called on ``TorchSurrogate``.
            The runner passes it; without it, loading matches the recorded ``class`` against
            the registered surrogates' targets.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format_version": SAVE_FORMAT_VERSION,
            "surrogate": name,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "params": self.params,
            "eval_params": self.eval_params,
        }
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        tmp = path.with_suffix(path.suffix + ".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        Path(f"{path}.json").write_text(json.dumps(header, indent=2, sort_keys=True))

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu", registry: Any = None) -> TorchSurrogate:
        """Load a model written by :meth:`save` (tensors only: ``weights_only=True``).

        Called on a subclass, the file must hold that class. Called on ``TorchSurrogate``,
        the class is found only among the registered surrogates (:func:`resolve_saved_class`):
        a file never names code to import.

        :param registry: a :class:`wbench.plugin.registry.Registry` (default: the installed plugins').
        :raises SavedModelError: the file names no registered surrogate, or another class; its
            header is missing or not JSON; its tensors are missing, not loadable with
            ``weights_only=True`` (a pickle naming code, say) or not this model's (each names
            the file).
        """
        path = Path(path)
        header = read_saved_header(Path(f"{path}.json"))
        if not isinstance(header, dict) or header.get("format_version") != SAVE_FORMAT_VERSION:
            version = header.get("format_version") if isinstance(header, dict) else None
            raise SavedModelError(f"{path}: unsupported save format {version!r}")
        if cls is TorchSurrogate:
            target_cls = resolve_saved_class(header, registry, base=TorchSurrogate, where=f"{path}.json")
        else:
            expected = f"{cls.__module__}:{cls.__qualname__}"
            if header.get("class") != expected:
                raise SavedModelError(f"{path} holds a {header.get('class')}, not a {expected}")
            target_cls = cls
        params, eval_params = header.get("params", {}), header.get("eval_params", {})
        if not isinstance(params, dict) or not isinstance(eval_params, dict):
            raise SavedModelError(f"{path}.json: 'params' and 'eval_params' must be JSON objects")
        try:
            surrogate = target_cls(**params)
        except TypeError as exc:
            raise SavedModelError(f"{path}.json: 'params' do not fit {target_cls.__name__} ({exc})") from exc
        state = read_saved_state(path, device)
        try:
            surrogate.model.load_state_dict(state)
        except (RuntimeError, TypeError, ValueError) as exc:  # missing / unexpected keys, wrong shapes
            raise SavedModelError(f"{path}: its tensors are not those of the model its header describes ({exc})") from exc
        surrogate.to(device)
        surrogate.configure(**eval_params)
        return surrogate


class EmbeddingSurrogate(TorchSurrogate):
    """A surrogate ``d(x, y) = |embed(x) - embed(y)|`` (Euclidean norm of embeddings).

    Implement :meth:`embed`; :meth:`distance` and :meth:`pairwise` come from it, and
    pairwise embeds each item once and computes one distance matrix in chunks.
    """

    pairwise_chunk: ClassVar[int] = 4096
    metric_by_construction: ClassVar[bool] = True
    embed_batch: ClassVar[int] = 1024
    """Measures per chunk in :meth:`embed_all` (``distance`` / ``pairwise``): a network whose
    activations of a whole chunk fit in cache runs faster per measure with a smaller one."""

    @abstractmethod
    def embed(self, x: MeasureBatch) -> torch.Tensor:
        """Embeddings ``(B, k)``; Euclidean distance between embeddings is W2 in ground-cost units."""

    def predict_w2(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """Differentiable ``|embed(a) - embed(b)|`` ``(B,)``; both sides embedded in one call."""
        both = self.embed(concat_measures(a, b))
        diff = both[: len(a)] - both[len(a) :]
        return (diff.pow(2).sum(dim=1) + 1e-12).sqrt()

    @torch.inference_mode()
    def embed_all(self, x: MeasureBatch, batch_size: int | None = None) -> torch.Tensor:
        """Embed a large batch in chunks of ``batch_size`` measures (default
        :attr:`embed_batch`), in evaluation mode: ``(B, k)``."""
        batch_size = batch_size or self.embed_batch
        was_training = self.model.training
        self.model.eval()
        try:
            device = self.device
            parts = [self.embed(x.index(slice(i, i + batch_size)).to(device)) for i in range(0, len(x), batch_size)]
        finally:
            self.model.train(was_training)
        return torch.cat(parts, dim=0)

    def distance(self, a: MeasureBatch, b: MeasureBatch) -> torch.Tensor:
        """``(B,)`` Euclidean distances between the embeddings of ``a[i]`` and ``b[i]``."""
        if len(a) != len(b):
            raise ValueError(f"distance needs row-aligned batches, got {len(a)} and {len(b)} measures")
        both = self.embed_all(concat_measures(a, b))
        ea, eb = both[: len(a)], both[len(a) :]
        return (ea - eb).pow(2).sum(dim=1).clamp_min(0).sqrt()

    @torch.inference_mode()
    def pairwise(self, x: MeasureBatch, y: MeasureBatch) -> torch.Tensor:
        """``(n, m)`` distances; each measure is embedded once."""
        return pairwise_euclidean(self.embed_all(x), self.embed_all(y), chunk=self.pairwise_chunk)


def pairwise_euclidean(ex: torch.Tensor, ey: torch.Tensor, *, chunk: int = 4096) -> torch.Tensor:
    """Euclidean distance matrix ``(n, m)`` between rows of ``ex (n, k)`` and ``ey (m, k)``.

    Both sets are centred on a common mean first: ``cdist``'s matrix-product form loses
    precision on large, uncentred embeddings (d(x, x) would be visibly above 0).
    """
    centre = torch.cat([ex, ey]).mean(dim=0, keepdim=True)
    ex, ey = ex - centre, ey - centre
    rows = [torch.cdist(ex[i : i + chunk], ey) for i in range(0, ex.shape[0], chunk)]
    return torch.cat(rows, dim=0)
