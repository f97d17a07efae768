"""Saved models: a ``.pt.json`` can only name a registered surrogate, never code to import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wbench.cli.main import main
from wbench.plugin.manager import make_plugin_manager
from wbench.surrogate import TorchSurrogate
from wbench_plugins.dwe.models import DWEMatched


def _model() -> DWEMatched:
    torch.manual_seed(0)
    return DWEMatched(grid_shape=[8, 8], width=30)


def _crafted(path: Path, marker: Path, **header: object) -> None:
    """A model file whose header asks for ``subprocess.run("touch MARKER", shell=True)``."""
    torch.save({}, path)
    content = {
        "format_version": 1, "class": "subprocess:run",
        "params": {"args": f"touch {marker}", "shell": True}, "eval_params": {}, **header,
    }
    Path(f"{path}.json").write_text(json.dumps(content))


def test_crafted_model_header_runs_no_code_through_the_dwe_cli(tmp_path, capsys) -> None:
    model, marker = tmp_path / "evil.pt", tmp_path / "PWNED"
    _crafted(model, marker)
    images = tmp_path / "imgs.npy"
    np.save(images, np.random.default_rng(0).random((4, 8, 8)))
    argv = ["dwe", "interpolate", "--model", str(model), "--images", str(images), "--indices", "0,1", "--out", str(tmp_path / "i.png")]
    assert main(argv) == 2
    assert not marker.exists()  # the command in the file did not run
    err = capsys.readouterr().err
    assert "'subprocess:run' is not a registered surrogate" in err and "refusing to import it" in err
    assert "dwe-matched" in err  # lists what it can load


def test_load_refuses_names_and_classes_that_are_not_registered(tmp_path) -> None:
    from wbench.surrogate import SavedModelError

    registry = make_plugin_manager().registry
    path, marker = tmp_path / "evil.pt", tmp_path / "PWNED"
    _crafted(path, marker, surrogate="subprocess:run")
    with pytest.raises(SavedModelError, match="'subprocess:run' is not a registered surrogate"):
        TorchSurrogate.load(path, registry=registry)
    _crafted(path, marker, surrogate="dwe-matched")  # a registered name with a foreign class
    with pytest.raises(SavedModelError, match="is not the class of the registered surrogate 'dwe-matched'"):
        TorchSurrogate.load(path, registry=registry)
    _crafted(path, marker, surrogate="exact-lp", **{"class": None})  # registered, but nothing to load into
    with pytest.raises(SavedModelError, match="is not a TorchSurrogate"):
        TorchSurrogate.load(path, registry=registry)
    assert not marker.exists()


def test_save_writes_the_registered_name_and_load_resolves_it(tmp_path) -> None:
    model, path = _model(), tmp_path / "m.pt"
    model.save(path, name="dwe-matched")
    header = json.loads(Path(f"{path}.json").read_text())
    assert header["surrogate"] == "dwe-matched" and header["class"] == "wbench_plugins.dwe.models:DWEMatched"
    loaded = TorchSurrogate.load(path, registry=make_plugin_manager().registry)
    assert type(loaded) is DWEMatched and loaded.params == model.params
    x = torch.rand(3, 8, 8)
    from wbench.measures import MeasureBatch

    batch = MeasureBatch.from_images(x)
    assert torch.equal(loaded.embed_all(batch), model.embed_all(batch))


def test_files_saved_before_the_name_was_stored_still_load_by_registered_class(tmp_path) -> None:
    model, path = _model(), tmp_path / "old.pt"
    model.save(path)
    header = json.loads(Path(f"{path}.json").read_text())
    header.pop("surrogate")  # exactly what older wbench wrote
    Path(f"{path}.json").write_text(json.dumps(header))
    loaded = TorchSurrogate.load(path)
    assert type(loaded) is DWEMatched and loaded.n_parameters == model.n_parameters
