"""The method process: where a method's code runs (construction, fit, every prediction), on
copies of the datasets that hold the exact distances of their train and val pairs only.

Started by :class:`wbench.run.sandbox.Sandbox`; runs one cell after another. For a cell it
builds and fits the method and, at each milestone and after the fit, serves the run's
requests (predictions, attributes, saving the model) until the run says to go on. Its
torch settings are the run's at the start of every cell, and what a cell changed is sent
back (``outcome.side_effects``).
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import torch

from wbench.budget import Budget
from wbench.data import LabelledPairs, PairedDataset, PairSet
from wbench.measures import MeasureBatch
from wbench.run.cell_milestones import cell_training_hooks
from wbench.run.cell_task import CellTask, check_compatible, dataset_memo
from wbench.run.isolation import TorchState, torch_state_guard
from wbench.run.sandbox_wire import CALLABLE, SELF, FitView, PackedError, receive, send
from wbench.run.suite import SurrogateSpec, budget_for
from wbench.surrogate import Surrogate, TorchSurrogate
from wbench.train.checkpoint import milestone_hooks
from wbench.train.loop import predict_pairs, seed_everything

PREDICTION_CALLS = frozenset({"distance", "pairwise", "embed", "embed_all", "predict_w2"})
"""Calls run in inference mode with their measures moved to the method's device."""


def main(fd: int) -> None:
    """Serve cells over the socket ``fd`` until the run says stop or goes away."""
    conn = Connection(fd)
    end_with_parent(os.getppid())
    warm_up()
    send(conn, ("ready",))
    datasets: dict[str, PairedDataset] = {}
    while True:
        try:
            message = receive(conn)
        except (EOFError, OSError):
            return
        if message[0] == "cell":
            run_cell(conn, message[1], datasets)
        else:  # "stop"
            return


def end_with_parent(parent: int, period_s: float = 0.5) -> None:
    """End this process within ``period_s`` seconds of the run's process ``parent`` ending.

    A run killed in the middle of a fit (``kill``, a scheduler's SIGKILL) never reads from the
    socket again, and a fit that never writes to it would otherwise compute on, for minutes, for a
    run that cannot use it, on the cores the next job was given.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(period_s)
        os._exit(1)

    threading.Thread(target=watch, name="wbench-end-with-parent", daemon=True).start()


def warm_up() -> None:
    """Import now what the run's process had imported before its cells (the oracle, POT, the
    sizing search, torch's lazily imported compiler that a settings change pulls in), so that
    a cell's time limit never counts it."""
    import wbench.oracle  # noqa: F401
    import wbench.train.sizing  # noqa: F401

    TorchState.now().restore()


def run_cell(conn: Connection, payload: Mapping[str, Any], datasets: dict[str, PairedDataset]) -> None:
    """One cell: the run's environment and torch settings, the datasets (kept between cells
    while the run still names them), the fit and its requests, then ``("closed", side_effects,
    resident bytes)``."""
    os.environ.clear()
    os.environ.update(payload["environ"])
    os.chdir(payload["cwd"])
    sys.path[:] = payload["sys_path"]
    for memo in set(datasets) - set(payload["datasets"]):
        del datasets[memo]
    datasets.update({memo: d for memo, d in payload["datasets"].items() if d is not None})
    payload["torch_state"].restore()
    with torch_state_guard() as side_effects:
        try:
            task = receive_task(payload["task"])
        except Exception as exc:
            send(conn, ("failed", PackedError.of(exc)))
        else:
            fit_and_serve(conn, task, datasets)
    send(conn, ("closed", dict(side_effects), resident_bytes()))


def resident_bytes() -> int:
    """This process's resident memory now (bytes); its peak where ``/proc`` is missing."""
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024  # macOS: bytes; Linux: KiB


def receive_task(data: bytes) -> CellTask:
    """The cell's task (its classes by value when they come from local plugin files)."""
    import pickle

    return pickle.loads(data)


def fit_and_serve(conn: Connection, task: CellTask, datasets: Mapping[str, PairedDataset]) -> None:
    """Build and fit the method, handing each milestone to the run; then serve until told to end.

    Sends ``("milestone", index, FitView)`` at each milestone the loop evaluates (and serves
    until ``resume``), then ``("fitted", FitView)``, or ``("failed", PackedError)`` when
    building or fitting raised.
    """
    s = task.surrogate
    budget = replace(budget_for(task.suite, s), seed=task.seed, device=task.suite.device)
    dataset = datasets[dataset_memo(task.dataset.name, task.dataset.params)]
    n_train = len(dataset.split("train"))
    try:
        surrogate = build_surrogate(task.surrogate_cls, s, dataset, budget)
        server = RequestServer(conn, surrogate, datasets)

        def evaluate_milestone(index: int, fit_report: Any) -> None:
            saved = dict(surrogate.eval_params)  # evaluation settings never reach training's validation
            try:
                send(conn, ("milestone", index, FitView.of(fit_report)))
                server.serve()
            finally:
                surrogate.eval_params = saved

        hooks = cell_training_hooks(task, budget, n_train, evaluate_milestone)
        with milestone_hooks(hooks):
            report = surrogate.fit(dataset.split("train"), dataset.split("val"), budget)
        view = FitView.of(report)
    except Exception as exc:
        send(conn, ("failed", PackedError.of(exc)))
        return
    send(conn, ("fitted", view))
    server.serve()


def build_surrogate(cls: type[Surrogate], s: SurrogateSpec, dataset: PairedDataset, budget: Budget) -> Surrogate:
    """Build the method (at the budget's parameter target when it learns), seeded, on the budget's device."""
    from wbench.train.sizing import build_at_parameter_target

    check_compatible(cls, s.name, dataset)
    params = cls.params_for(s.params, dataset.measures)
    seed_everything(budget.seed)
    if cls.trainable and budget.param_target is not None and s.match_budget:
        surrogate = build_at_parameter_target(
            cls, params, budget.param_target, tolerance=budget.param_tolerance, count=budget.param_count
        )
    else:
        surrogate = cls(**params)
    if isinstance(surrogate, TorchSurrogate):
        surrogate.to(budget.device)
    return surrogate


class RequestServer:
    """Answers the run's requests about one fitted surrogate until the run says ``resume``."""

    def __init__(self, conn: Connection, surrogate: Surrogate, datasets: Mapping[str, PairedDataset]) -> None:
        self.conn = conn
        self.surrogate = surrogate
        self.datasets = datasets

    def serve(self) -> None:
        """Answer ``call``, ``getattr`` and ``predict`` requests until ``resume``."""
        while True:
            message = receive(self.conn)
            if message[0] == "resume":
                return
            try:
                reply: tuple[Any, ...] = ("reply", True, self.answer(message))
            except Exception as exc:
                reply = ("reply", False, PackedError.of(exc))
            try:
                send(self.conn, reply)
            except Exception as exc:  # a value that cannot cross: say so
                send(self.conn, ("reply", False, PackedError.of(exc)))

    def answer(self, message: tuple[Any, ...]) -> Any:
        """The value one request asks for."""
        kind = message[0]
        if kind == "getattr":
            value = getattr(self.surrogate, message[1])
            return CALLABLE if inspect.ismethod(value) or inspect.isfunction(value) else _cpu(value)
        if kind == "predict":
            _, measures, left, right, options = message
            if isinstance(measures, str):
                measures = self.datasets[measures].measures
            return predict_pairs(self.surrogate, LabelledPairs(measures, PairSet(left, right)), **options)
        _, name, args, kwargs = message  # "call"
        return self.call(name, args, kwargs)

    def call(self, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """``surrogate.name(*args, **kwargs)``; a prediction call in inference mode on the method's device."""
        target = getattr(self.surrogate, name)
        if name in PREDICTION_CALLS:
            device = getattr(self.surrogate, "device", None)
            args = tuple(a.to(device) if device is not None and isinstance(a, MeasureBatch) else a for a in args)
            with torch.inference_mode():
                result = target(*args, **kwargs)
        else:
            result = target(*args, **kwargs)
        return SELF if result is self.surrogate else _cpu(result)


def _cpu(value: Any) -> Any:
    """Tensors come back on the CPU (the run never touches the method's device)."""
    return value.detach().cpu() if isinstance(value, torch.Tensor) else value


if __name__ == "__main__":
    main(int(sys.argv[1]))
