"""Cells cannot see what they must not: a method's code runs in its own process, which never
holds the exact distances of the pairs it is tested on.

A run keeps one method process (:class:`Sandbox`, one per thread that runs cells, started at
its first cell and reused: starting Python and torch costs seconds). For each cell the run
sends the task and copies of the cell's datasets whose pair sets other than ``train`` and
``val`` carry no ``w2sq`` (:func:`redacted`); the process builds and fits the method there.
Evaluation stays in the run's process, which holds the truth: at each milestone, and after
the fit, the metrics call a :class:`~wbench.run.remote_surrogate.RemoteSurrogate`, whose
predictions, attribute look-ups and model saving are answered by the method process.

A method process that dies (a crash, ``os._exit``) fails its cell with
:class:`SandboxDiedError`; the next cell starts a new one, as it does after a cell that left
the process holding more than :data:`RECYCLE_ABOVE_BYTES`. A cell stopped by its time limit
kills its process too, so even a call into C that never returns is stopped.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from typing import Any

from wbench.data import PairedDataset
from wbench.errors import WbenchError
from wbench.run.cell_task import CellTask
from wbench.run.isolation import TorchState
from wbench.run.remote_surrogate import RemoteSurrogate, remote_class
from wbench.run.sandbox_wire import FitView, PackedError, dumps, receive, send

KNOWN_SPLITS = ("train", "val")
"""The pair sets whose exact distances a method's process holds (what ``fit`` is given)."""

RECYCLE_ABOVE_BYTES = 4 * 2**30
"""A method process holding more memory than this after a cell is replaced before the next:
a leak in a method's code (or in torch: each TorchScript trace keeps memory it never frees)
cannot grow across a run's cells. Starting a new one costs about 5 s."""

_BOOT = (
    "import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
    "from wbench.run.sandbox_child import main; main(int(sys.argv[1]))"
)


class SandboxDiedError(WbenchError):
    """The method's process ended in the middle of a cell (a crash, a kill, ``os._exit``)."""


def redacted(dataset: PairedDataset) -> PairedDataset:
    """``dataset`` whose pair sets other than ``train`` and ``val`` carry no exact distances."""
    pairs = {split: p if split in KNOWN_SPLITS or p.w2sq is None else type(p)(p.left, p.right)
             for split, p in dataset.pairs.items()}
    return dataset.with_pairs(pairs)


class Sandbox:
    """One method process and the socket to it; started on demand, restarted after a death."""

    def __init__(self) -> None:
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._sent: dict[str, PairedDataset] = {}

    def _start(self) -> Connection:
        if self._conn is not None and self._process is not None and self._process.poll() is None:
            return self._conn
        self.kill()
        ours, theirs = socket.socketpair()
        with theirs:
            fd = theirs.fileno()
            self._process = subprocess.Popen(
                [sys.executable, "-c", _BOOT, str(fd), json.dumps(sys.path)], pass_fds=(fd,),
            )
        self._conn = Connection(ours.detach())
        if self.receive() != ("ready",):
            raise SandboxDiedError("the method's process did not start")
        return self._conn

    def start(self) -> None:
        """Start the method process unless it runs; return once it has imported wbench (a
        cell's time limit should not count the seconds that takes)."""
        self._start()

    def send(self, message: Any, *, by_value: bool = False) -> None:
        """Send a message to the method process (it must be running)."""
        try:
            send(self._started(), message, by_value=by_value)
        except OSError as exc:
            raise self._died() from exc

    def receive(self) -> Any:
        """The method process's next message; :class:`SandboxDiedError` when it is gone."""
        try:
            return receive(self._started())
        except (EOFError, OSError) as exc:
            raise self._died() from exc

    def _started(self) -> Connection:
        if self._conn is None:
            raise SandboxDiedError("the method's process is not running")
        return self._conn

    def _died(self) -> SandboxDiedError:
        process, code = self._process, None
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                code = process.wait(timeout=5)
        self.kill()
        if code is not None and code < 0:
            how = f"was killed by signal {code} ({signal.Signals(-code).name})" if -code in signal.valid_signals() \
                else f"ended with code {code}"
        else:
            how = f"exited with code {code}" if code is not None else "stopped answering"
        return SandboxDiedError(f"the method's process {how} during the cell (a crash or exit in the method's code)")

    def kill(self) -> None:
        """End the method process now (the next cell starts a new one)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.close()
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process, self._conn = None, None
        self._sent.clear()

    def close(self) -> None:
        """Stop the method process (it ends when the run's socket closes)."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                send(self._conn, ("stop",))
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        self.kill()

    @contextlib.contextmanager
    def cell(self, task: CellTask, datasets: Mapping[str, PairedDataset]) -> Iterator[CellSession]:
        """Start ``task`` in the method process; a cell left early (an error, a time limit)
        kills the process, whose state is then unknown."""
        self._start()
        session = CellSession(self, task, datasets)
        session.begin(self._payload(task, datasets))
        try:
            yield session
        except BaseException:
            self.kill()
            raise
        if not session.closed:
            self.kill()
        elif session.resident_bytes > RECYCLE_ABOVE_BYTES:
            self.close()

    def _payload(self, task: CellTask, datasets: Mapping[str, PairedDataset]) -> dict[str, Any]:
        send_now: dict[str, PairedDataset | None] = {}
        for memo, dataset in datasets.items():
            send_now[memo] = None if self._sent.get(memo) is dataset else redacted(dataset)
        self._sent = dict(datasets)
        return {
            "task": dumps(replace(task, metrics={}), by_value=True), "datasets": send_now, "environ": dict(os.environ),
            "cwd": os.getcwd(), "sys_path": list(sys.path), "torch_state": TorchState.now(),
        }


class CellSession:
    """The run's side of one cell in the method process: its events and its requests."""

    def __init__(self, sandbox: Sandbox, task: CellTask, datasets: Mapping[str, PairedDataset]) -> None:
        self.sandbox = sandbox
        self.closed = False
        self.side_effects: dict[str, str] = {}
        self.resident_bytes = 0
        """The method process's memory when it closed the cell (bytes)."""
        measures = {id(d.measures): memo for memo, d in datasets.items()}
        self.surrogate: RemoteSurrogate = remote_class(task.surrogate_cls)(self.request, measures, list(datasets.values()))

    def begin(self, payload: dict[str, Any]) -> None:
        """Send the cell."""
        self.sandbox.send(("cell", payload))

    def next_event(self) -> tuple[str, Any, ...]:
        """``("milestone", index, FitView)``, ``("fitted", FitView)`` or ``("failed", exception)``
        (the method process then closed the cell)."""
        message = self.sandbox.receive()
        if message[0] == "failed":
            self._closed(self.sandbox.receive())
            return ("failed", message[1].unpack())
        if message[0] not in ("milestone", "fitted") or not isinstance(message[-1], FitView):
            raise SandboxDiedError(f"the method's process sent {message[0]!r} where a milestone was due")
        return message

    def resume(self) -> None:
        """Let the fit go on after a milestone's evaluation."""
        self.sandbox.send(("resume",))

    def finish(self) -> dict[str, str]:
        """End the cell after the last evaluation; the torch settings the cell changed."""
        self.sandbox.send(("resume",))
        self._closed(self.sandbox.receive())
        return self.side_effects

    def _closed(self, message: Any) -> None:
        if message[0] != "closed":
            raise SandboxDiedError(f"the method's process sent {message[0]!r} where the cell's end was due")
        self.side_effects, self.resident_bytes = dict(message[1]), int(message[2])
        self.closed = True

    def request(self, *message: Any) -> Any:
        """Ask the method process; its reply's value, or its error raised here."""
        self.sandbox.send(message)
        reply = self.sandbox.receive()
        if reply[0] != "reply":
            raise SandboxDiedError(f"the method's process sent {reply[0]!r} where a reply was due")
        if reply[1]:
            return reply[2]
        error = reply[2]
        raise error.unpack() if isinstance(error, PackedError) else SandboxDiedError(str(error))


_LOCAL = threading.local()


def default_sandbox() -> Sandbox:
    """The method process of this thread (one per thread that runs cells), created on first use."""
    sandbox = getattr(_LOCAL, "sandbox", None)
    if sandbox is None:
        sandbox = _LOCAL.sandbox = Sandbox()
        _ALL.append(sandbox)
    return sandbox


_ALL: list[Sandbox] = []


def close_all() -> None:
    """Stop every method process of this process (at exit)."""
    for sandbox in _ALL:
        sandbox.close()


atexit.register(close_all)
