"""Training checkpoints at budget milestones: what a run needs to continue bit for bit, and
the hooks through which the training loop hands milestones to the cell.

A checkpoint holds the model's current weights, the optimiser state, the batch-order
generator's state and the global RNG states (Python, NumPy, torch CPU), the current epoch's
batch order and position in it, the losses of that epoch so far, the running best
validation (MSE and weights) and the fit report so far. It is written atomically
(temporary file, fsync, ``os.replace``) and read with ``torch.load(weights_only=True)``:
tensors, numbers, strings, lists and dicts only.

The state is serialised on its own and stored as a byte tensor beside the SHA-256 of the
format, the run's identity and those bytes (format 2): a bit flipped anywhere in them (a
weight, an RNG state, the fit report) makes :func:`load_checkpoint` refuse the file, so a
damaged checkpoint never resumes a run that then records changed metrics as ``ok``.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wbench.errors import WbenchError
from wbench.train.report import FitReport
from wbench.util.atomic import atomic_writer

CHECKPOINT_FORMAT = 2
"""Format 2: the state's bytes with their SHA-256 (format 1, without a digest, is refused)."""
CHECKPOINT_DIR = "checkpoints"


class CheckpointError(WbenchError):
    """A checkpoint file is unreadable, corrupt or belongs to another run; the message names it."""


@dataclass
class MilestoneHooks:
    """What the training loop calls at each milestone (set with :func:`milestone_hooks`).

    :param evaluate: ``evaluate(milestone_index, report)``, called at every milestone but the
        last with the milestone's selected weights loaded (model in eval mode); the loop
        restores the training weights, mode and RNG states afterwards.
    :param checkpoint: ``checkpoint(milestone_index, state)``, called at every milestone
        (after ``evaluate``) with the state a continuing run needs (:func:`save_checkpoint`).
    :param resume: a state from :func:`load_checkpoint` to continue from, or None.
    :param save_progress: ``save_progress(step, state)``, called between milestones once
        ``progress_every_s`` seconds of training have passed since the run (re)started or last
        saved a state, so that a long run stopped between milestones (a session's end, a kill)
        continues from there; ``state`` is what ``checkpoint`` gets.
    :param progress_every_s: seconds of training between two ``save_progress`` calls.
    """

    evaluate: Callable[[int, FitReport], None] | None = None
    checkpoint: Callable[[int, dict[str, Any]], None] | None = None
    resume: dict[str, Any] | None = None
    save_progress: Callable[[int, dict[str, Any]], None] | None = None
    progress_every_s: float = 600.0


_HOOKS: contextvars.ContextVar[MilestoneHooks | None] = contextvars.ContextVar("wbench_milestone_hooks", default=None)


@contextlib.contextmanager
def milestone_hooks(hooks: MilestoneHooks) -> Iterator[MilestoneHooks]:
    """Make ``hooks`` the milestone hooks of every training loop run inside the block.

    The hooks travel beside ``Surrogate.fit(train, val, budget)`` so that plugins that
    override ``fit`` and call the shared loop get milestones without a new argument.
    """
    token = _HOOKS.set(hooks)
    try:
        yield hooks
    finally:
        _HOOKS.reset(token)


def active_hooks() -> MilestoneHooks | None:
    """The hooks set by the innermost :func:`milestone_hooks` block, or None."""
    return _HOOKS.get()


def global_rng_state() -> dict[str, Any]:
    """The global RNG states (Python ``random``, NumPy, torch CPU) as checkpointable values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": _to_lists(random.getstate()),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "torch": torch.get_rng_state(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    """Restore the states :func:`global_rng_state` returned."""
    random.setstate(_to_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, tuple | list) else value


def _to_tuples(value: Any) -> Any:
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value


def save_checkpoint(path: str | Path, state: dict[str, Any], *, identity: str) -> Path:
    """Write ``state`` to ``path`` atomically, tagged with the run's ``identity`` string.

    :param identity: what the run is (a canonical JSON of its cell identity without the
        steps); :func:`load_checkpoint` refuses a checkpoint of another run.
    :returns: ``path``.
    """
    path = Path(path)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    payload = buffer.getvalue()
    envelope = {
        "format": CHECKPOINT_FORMAT, "identity": identity, "sha256": checkpoint_digest(identity, payload),
        "state_bytes": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    with atomic_writer(path) as handle:
        torch.save(envelope, handle)
    return path


def checkpoint_digest(identity: str, payload: bytes) -> str:
    """SHA-256 (hex) of a checkpoint's format, run identity and serialised state."""
    digest = hashlib.sha256(f"wbench checkpoint {CHECKPOINT_FORMAT}\n{identity}\n".encode())
    digest.update(payload)
    return digest.hexdigest()


def load_checkpoint(path: str | Path, *, identity: str | None = None) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint` at ``path``.

    :param identity: when given, the checkpoint must have been saved with it.
    :raises CheckpointError: the file is missing, unreadable or corrupt (its bytes do not
        match the SHA-256 written with them), of another format, or of another run (the
        message names the file).
    """
    path = Path(path)
    data = _torch_load(path, path)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else None
        raise CheckpointError(
            f"checkpoint {path} is not a wbench checkpoint of format {CHECKPOINT_FORMAT} (format {found!r}"
            f"{': written without a digest by an older wbench' if found == 1 else ''}); delete it and the cell "
            f"trains from its start"
        )
    if identity is not None and data.get("identity") != identity:
        raise CheckpointError(f"checkpoint {path} belongs to another run (its identity differs from this cell's)")
    state = _torch_load(_verified_payload(data, path), path)
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} is corrupt: its state is a {type(state).__name__}, not a dict")
    return state


def _verified_payload(data: dict[str, Any], path: Path) -> io.BytesIO:
    """The serialised state of a loaded checkpoint, once its SHA-256 matches the one written."""
    stored, identity, tensor = data.get("sha256"), data.get("identity"), data.get("state_bytes")
    if not isinstance(stored, str) or not isinstance(identity, str) or not isinstance(tensor, torch.Tensor) \
            or tensor.dtype != torch.uint8 or tensor.dim() != 1:
        raise CheckpointError(f"checkpoint {path} is corrupt: no 'sha256', 'identity' or byte tensor 'state_bytes'")
    payload = tensor.numpy().tobytes()
    actual = checkpoint_digest(identity, payload)
    if actual != stored:
        raise CheckpointError(
            f"checkpoint {path} is corrupt: the SHA-256 of its state ({actual[:16]}...) is not the one written with "
            f"it ({stored[:16]}...): the file changed after it was saved; delete it and the cell trains from "
            f"its start (or an earlier checkpoint)"
        )
    return io.BytesIO(payload)


def _torch_load(source: Path | io.BytesIO, path: Path) -> Any:
    """``torch.load(source, weights_only=True)`` on the CPU; errors name the checkpoint ``path``."""
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise CheckpointError(f"checkpoint {path} does not exist") from exc
    except Exception as exc:  # truncated zip, pickle error, ...: all mean a corrupt file
        raise CheckpointError(f"checkpoint {path} is corrupt or unreadable ({type(exc).__name__}: {exc})") from exc
