"""What a cell writes beside its records: its artifacts (the saved model, loss and prediction
plots, the model's own files), under names made from its identity."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wbench.data import PairedDataset
from wbench.run.cell_plots import plot_loss_curves, plot_predicted_vs_true
from wbench.run.cell_task import method_label
from wbench.run.suite import Suite, SurrogateSpec
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.util.filenames import safe_stem


def artifacts_of(
    suite: Suite, surrogate: Surrogate, fit: Mapping[str, Any], predictions: Mapping[str, np.ndarray],
    dataset: PairedDataset, ident: Mapping[str, Any], out_dir: Path,
) -> list[str]:
    """Write the cell's plots and model; return their paths relative to ``out_dir``."""

    ev = suite.evaluation
    stem = f"{ident['dataset_label']}-{method_label(SurrogateSpec(name=ident['method'], params=ident['method_params']), ident['eval_params'])}-seed{ident['seed']}"
    milestone = fit.get("milestone")
    if milestone and len(milestone["of"]) > 1:  # one run, several milestones: one set of files each
        stem += f"-{milestone['value']}{milestone['unit']}"
    stem = safe_stem(stem)
    paths: list[Path] = []
    if ev.plots:
        title = f"{ident['method']} on {ident['dataset_label']}, seed {ident['seed']}"
        if fit["train_loss"]:
            paths.append(plot_loss_curves(fit["train_loss"], fit["val_mse"], out_dir / "plots" / f"{stem}-loss.png", title=title,
                                          epochs=fit.get("val_epochs")))
        true_w2 = dataset.pairs["test"].w2
        paths.append(
            plot_predicted_vs_true(predictions["test"], true_w2, out_dir / "plots" / f"{stem}-pred.png", unit=dataset.unit, title=title)
        )
        paths.extend(Path(p) for p in surrogate.write_artifacts(out_dir / "plots" / stem))
    cls = getattr(surrogate, "surrogate_class", type(surrogate))  # a RemoteSurrogate names the method's class
    if ev.save_models and issubclass(cls, TorchSurrogate) and cls.trainable:
        model_path = out_dir / "models" / f"{stem}.pt"
        surrogate.save(model_path, name=ident["method"])
        paths.append(model_path)
    return [str(p.relative_to(out_dir)) for p in paths]
