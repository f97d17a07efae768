"""Handlers of ``wbench dwe barycenter | interpolate | pga`` (parsers: :mod:`wbench_plugins.dwe`).

Examples::

    wbench dwe barycenter --model runs/x/models/dwe.pt --dataset digits --label 3 --limit 200 \\
        --reference free_support --out bary3.png
    wbench dwe interpolate --model dwe.pt --dataset digits --indices 0,10 --steps 9 --out interp.png
    wbench dwe pga --model dwe.pt --dataset mnist --param root=/data --label 0 --limit 1000 --out pga0.png
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

from wbench.errors import WbenchError


def parse_indices(text: str | None) -> list[int] | None:
    """``"0,5,10-12"`` -> ``[0, 5, 10, 11, 12]``; None stays None."""
    if text is None:
        return None
    out: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        start, sep, stop = part.partition("-")
        try:
            if sep:
                lo, hi = int(start), int(stop)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise WbenchError(f"--indices: cannot read {part!r}; use a list like 0,5,10-19") from None
    if not out:
        raise WbenchError("--indices is empty")
    return out


def parse_floats(text: str | None, what: str) -> list[float] | None:
    """``"0.2,0.8"`` -> ``[0.2, 0.8]``; None stays None; ``what`` names the option in errors."""
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise WbenchError(f"{what}: expected comma-separated numbers, got {text!r}") from None


def _assignments(items: list[str]) -> dict[str, Any]:
    from wbench.registry import parse_assignments

    return parse_assignments(items)


def load_model(path: str, device: str = "cpu", registry: Any = None) -> Any:
    """A DWE written by ``TorchSurrogate.save`` (any DWE subclass), its class found only
    among the registered surrogates (``registry``; default: the installed plugins')."""
    from wbench.surrogate import TorchSurrogate
    from wbench_plugins.dwe.models import DWE

    model = TorchSurrogate.load(path, device=device, registry=registry)
    if not isinstance(model, DWE):
        raise WbenchError(f"{path} holds a {type(model).__name__}, not a DWE model")
    model.model.eval()
    return model


def _registry(args: argparse.Namespace) -> Any:
    """The registry of the command's plugins (entry points and ``--plugin`` files)."""
    plugins = getattr(args, "plugins", None)
    if plugins is None:
        from wbench.registry import make_plugin_manager

        plugins = make_plugin_manager(getattr(args, "plugin", []) or [])
    return plugins.registry


def select_images(args: argparse.Namespace) -> tuple[Any, list[int]]:
    """The images chosen by ``--dataset/--images``, ``--indices``, ``--label`` and ``--limit``."""
    import torch

    from wbench.measures import MeasureBatch

    labels = None
    if args.images:
        measures = MeasureBatch.from_images(torch.from_numpy(np.load(args.images)).double())
    else:
        plugins = getattr(args, "plugins", None)
        if plugins is None:
            from wbench.registry import make_plugin_manager

            plugins = make_plugin_manager(getattr(args, "plugin", []) or [])
        dataset = plugins.registry.get("dataset", args.dataset).load()(**_assignments(args.param)).build()
        measures, labels = dataset.measures, dataset.labels
    if measures.grid_shape is None:
        raise WbenchError("DWE tools need images on a grid; this dataset holds point clouds")
    chosen = parse_indices(args.indices)
    if chosen is None:
        chosen = list(range(len(measures)))
    if args.label is not None:
        if labels is None:
            raise WbenchError("--label needs a labelled dataset")
        chosen = [i for i in chosen if int(labels[i]) == args.label]
    if args.limit is not None:
        chosen = chosen[: args.limit]
    bad = [i for i in chosen if not 0 <= i < len(measures)]
    if bad:
        raise WbenchError(f"--indices {bad[:3]} out of range: the dataset has {len(measures)} images")
    if not chosen:
        raise WbenchError("no image selected (check --indices / --label / --limit)")
    return measures.index(chosen).to(dtype=torch.float32), chosen


def _check_grid(model: Any, images: Any) -> None:
    if tuple(images.grid_shape) != tuple(model.grid_shape):
        raise WbenchError(f"the model was trained on {tuple(model.grid_shape)} images; these are {tuple(images.grid_shape)}")


def run_barycenter(args: argparse.Namespace) -> int:
    """Decode the barycenter of the selected images; optionally compare it with POT's."""
    from wbench_plugins.dwe import tools

    model = load_model(args.model, args.device, _registry(args))
    images, chosen = select_images(args)
    _check_grid(model, images)
    weights = parse_floats(args.weights, "--weights")
    bary = tools.barycenter(model, images, weights)
    summary: dict[str, Any] = {
        "command": "barycenter", "model": str(args.model), "dataset": args.images or args.dataset,
        "indices": chosen, "n_images": len(chosen), "out": args.out,
    }
    shown = [images.weights[i].reshape(images.grid_shape) for i in range(min(len(chosen), 8))]
    rows = [shown, [tools.euclidean_mean(images, weights), bary]]
    labels = [f"inputs ({len(shown)} of {len(chosen)} shown)" if len(shown) < len(chosen) else f"inputs ({len(chosen)})",
              "L2 mean | DWE"]
    if args.reference != "none":
        points, masses = tools.pot_barycenter(images, weights, method=args.reference, reg=args.reg)
        summary["reference"] = args.reference
        summary["w2_dwe_vs_pot"] = tools.histogram_w2(bary, points, masses)
        summary["w2_l2mean_vs_pot"] = tools.histogram_w2(tools.euclidean_mean(images, weights), points, masses)
        summary["cost_dwe"] = tools.barycenter_cost(*tools.histogram_support(bary), images, weights)
        summary["cost_l2mean"] = tools.barycenter_cost(*tools.histogram_support(tools.euclidean_mean(images, weights)), images, weights)
        summary["cost_pot"] = tools.barycenter_cost(points, masses, images, weights)
        rows[1].append(tools.points_to_image(points, masses, images.grid_shape))
        labels[1] = f"L2 mean | DWE | POT {args.reference}"
    tools.save_image_grid(rows, args.out, row_labels=labels, title="DWE barycenter")
    from wbench.provenance import provenance

    summary["provenance"] = provenance(str(args.device))
    print(json.dumps(summary, indent=2))
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    """Decode the interpolation between two selected images."""
    from wbench_plugins.dwe import tools

    model = load_model(args.model, args.device, _registry(args))
    images, chosen = select_images(args)
    if len(chosen) != 2:
        print(f"wbench dwe interpolate: select exactly two images (got {len(chosen)})", file=sys.stderr)
        return 2
    _check_grid(model, images)
    ts = np.linspace(0.0, 1.0, args.steps)
    frames = tools.interpolate(model, images, ts)
    tools.save_image_grid(
        [list(frames)], args.out, col_labels=[f"t={t:.2f}" for t in ts],
        title=f"DWE interpolation between images {chosen[0]} and {chosen[1]}",
    )
    print(json.dumps({"command": "interpolate", "indices": chosen, "steps": args.steps, "out": args.out}, indent=2))
    return 0


def run_pga(args: argparse.Namespace) -> int:
    """Principal geodesic analysis of the selected images."""
    from wbench_plugins.dwe import tools

    model = load_model(args.model, args.device, _registry(args))
    images, chosen = select_images(args)
    _check_grid(model, images)
    result = tools.pga(model, images, n_components=args.components, n_steps=args.steps, span=args.span)
    tools.save_image_grid(
        [list(row) for row in result.images], args.out,
        row_labels=[f"PC{k + 1} ({r:.0%})" for k, r in enumerate(result.explained_variance_ratio)],
        col_labels=[f"{s:+.1f} sd" for s in result.steps],
        title=f"DWE principal geodesics ({len(chosen)} images)",
    )
    summary = {
        "command": "pga", "n_images": len(chosen), "out": args.out,
        "stds_w2": [float(s) for s in result.stds],
        "explained_variance_ratio": [float(r) for r in result.explained_variance_ratio],
    }
    print(json.dumps(summary, indent=2))
    return 0
