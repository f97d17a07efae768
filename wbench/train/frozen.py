"""Frozen inference graphs of a network forward: the CPU fast path of the CNN embeddings.

``torch.jit.trace`` of a forward, frozen (weights folded in as constants) and passed
through ``torch.jit.optimize_for_inference`` runs oneDNN's fused convolution + ReLU on
weights laid out once, instead of reordering them on every call: in chunks of 256 images
on this machine's 2 idle cores, 1.7x / 1.3x / 1.1x the images per second of the eager
forward for Naive / DeepKENN / ODE-KENN (``benchmarks/bench_embed_variants.py``, issue 21's
roofline).

:class:`FrozenForward` keeps one frozen graph per input shape and rebuilds it when any
weight changes (a training step, ``load_state_dict``); a training's validations run eager
(:func:`eager_only`), as their weights are new each time and every trace keeps memory that
torch never frees (about 10 MB for a KENN encoder). Every graph is checked against the
eager forward on the input it is built from; a graph that cannot be built (a torch without
TorchScript, an untraceable forward) or that disagrees beyond float round-off is not used:
the eager forward runs instead, and :attr:`FrozenForward.disabled` says why.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import torch
from torch import nn

__all__ = ["FrozenForward", "eager_only", "weights_key"]

_EAGER_ONLY: ContextVar[bool] = ContextVar("wbench_frozen_eager_only", default=False)

AGREEMENT_RTOL = 1e-4
"""Largest difference between frozen and eager outputs, over the eager output's largest
magnitude, that counts as float round-off."""


def weights_key(module: nn.Module) -> tuple[tuple[int, int, int], ...]:
    """Identity of ``module``'s current weights: (storage address, version counter, size) of
    every parameter and buffer. Any in-place update (an optimiser step, ``copy_``) bumps a
    version counter and any reassignment changes an address, so the key changes."""
    return tuple((t.data_ptr(), t._version, t.numel()) for t in (*module.parameters(), *module.buffers()))


@contextmanager
def eager_only() -> Iterator[None]:
    """Within this block every :class:`FrozenForward` runs the eager forward: for counting
    FLOPs (torch's FLOP counter sees the eager operators, not those inside a frozen graph)."""
    token = _EAGER_ONLY.set(True)
    try:
        yield
    finally:
        _EAGER_ONLY.reset(token)


class _Bound(nn.Module):
    """``forward(x) = call(net, x)`` as a module (what ``torch.jit.trace`` and ``freeze`` take)."""

    def __init__(self, net: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.net = net
        self.call = call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.call(self.net, x)


class FrozenForward:
    """Run ``call(net, x)`` through a frozen TorchScript graph of it, one per input shape.

    :param max_graphs: graphs kept (least recently used dropped); each costs one trace
        (about 0.1-0.3 s for a KENN encoder).
    """

    def __init__(self, max_graphs: int = 8) -> None:
        self.max_graphs = max_graphs
        self.disabled: str | None = None
        self._graphs: OrderedDict[Hashable, torch.jit.ScriptModule] = OrderedDict()
        self._weights: Hashable = None

    def __call__(
        self,
        net: nn.Module,
        call: Callable[[nn.Module, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        *,
        context: Hashable = None,
    ) -> torch.Tensor:
        """``call(net, x)`` ``(B, ...)``, from the frozen graph of ``x``'s shape when there is one.

        :param context: anything else the traced graph depends on (e.g. ODE solver settings):
            a different value builds a different graph.
        """
        if self.disabled is not None or _EAGER_ONLY.get():
            return call(net, x)
        weights = weights_key(net)
        if weights != self._weights:
            self._graphs.clear()
            self._weights = weights
        key = (tuple(x.shape), x.dtype, x.device.type, _layout(x), context)
        graph = self._graphs.get(key)
        if graph is not None:
            self._graphs.move_to_end(key)
            return graph(x)
        eager = call(net, x)
        built = self._build(net, call, x, eager)
        if built is None:
            return eager
        self._graphs[key], out = built
        while len(self._graphs) > self.max_graphs:
            self._graphs.popitem(last=False)
        return out  # the graph's own output, so that every call with a graph gives its results

    def _build(
        self, net: nn.Module, call: Callable[[nn.Module, torch.Tensor], torch.Tensor], x: torch.Tensor, eager: torch.Tensor
    ) -> tuple[torch.jit.ScriptModule, torch.Tensor] | None:
        """The frozen graph of ``call`` on ``x``'s shape and its output on ``x``, checked
        against ``eager``; None (and :attr:`disabled` set) when it cannot be built or disagrees."""
        try:
            with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
                warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer warnings
                bound = _Bound(net, call).eval()
                x_plain = x.clone()  # an inference-mode tensor cannot be traced
                graph = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(bound, x_plain, check_trace=False)))
                frozen = graph(x_plain)
        except Exception as error:  # noqa: BLE001 - any failure means: use the eager forward
            self.disabled = f"frozen graph not built ({type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''})"
            return None
        if frozen.shape != eager.shape:
            self.disabled = f"frozen graph gives shape {tuple(frozen.shape)}, the eager forward {tuple(eager.shape)}"
            return None
        both_nan = torch.isnan(frozen) & torch.isnan(eager)  # a NaN the eager forward gives too is agreement
        gap = torch.where(both_nan, torch.zeros_like(eager), (frozen - eager).abs())
        finite = eager[~torch.isnan(eager)].abs()
        scale = float(finite.max()) if finite.numel() else 0.0
        difference = float(gap.max()) if gap.numel() else 0.0
        if not difference <= AGREEMENT_RTOL * max(scale, 1e-30):
            self.disabled = (f"frozen graph disagrees with the eager forward (largest difference {difference:.3g} "
                             f"of scale {scale:.3g})")
            return None
        return graph, frozen

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenForward:
        return FrozenForward(self.max_graphs)  # graphs hold the old weights: a copy starts empty

    def __getstate__(self) -> dict[str, Any]:
        return {"max_graphs": self.max_graphs}  # graphs are rebuilt where the object is unpickled

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["max_graphs"])


def _layout(x: torch.Tensor) -> str:
    return "channels_last" if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) else "contiguous"

