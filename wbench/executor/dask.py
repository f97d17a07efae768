"""The Dask backend of :mod:`wbench.executor.base`: an :class:`~wbench.executor.base.Executor` on a Dask
``distributed`` cluster. ``distributed`` is imported only when one is opened (``pip install
"wbench[dask]"``); each task runs through the same task function as the local backend
(:func:`wbench.executor.base._run_task`), so failures read the same on both.
"""

from __future__ import annotations

import os
import traceback
import uuid
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from wbench.executor.base import (
    CONNECT_TIMEOUT_S,
    DEFAULT_PORT,
    DaskMissingError,
    SchedulerUnreachableError,
    TaskFailedError,
    _check_errors,
    _run_task,
)

__all__ = ["DaskExecutor", "NotADaskSchedulerError"]


def _shared_value(value: Any) -> Any:
    """The value itself: the task behind :meth:`DaskExecutor.share`."""
    return value


def _import_distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise DaskMissingError(
            f"a Dask scheduler was requested but the 'distributed' package is not installed ({exc}); "
            'install it with: pip install "wbench[dask]"'
        ) from exc
    return distributed


class DaskExecutor:
    """A Dask ``distributed`` cluster, through a client.

    :param scheduler: a scheduler address (``tcp://host:8786``) or the path of a scheduler
        file (written by ``dask scheduler --scheduler-file PATH``); a path that exists is a
        scheduler file.
    :param client: an existing ``distributed.Client`` to use instead (not closed by :meth:`close`).
    :param timeout: seconds to wait for the scheduler.
    :raises SchedulerUnreachableError: the scheduler does not answer within ``timeout``;
        the message names the address.
    :raises DaskMissingError: ``distributed`` is not installed.
    """

    kind = "dask"

    def __init__(self, scheduler: str | os.PathLike[str] | None = None, *, client: Any = None, timeout: float = CONNECT_TIMEOUT_S):
        if client is not None:
            self.client, self._owns_client = client, False
            self.address = str(client.scheduler.address)
            return
        if scheduler is None:
            raise ValueError("DaskExecutor needs a scheduler address, a scheduler file or a client")
        distributed = _import_distributed()
        target = str(scheduler)
        is_file = Path(target).expanduser().is_file()
        self.address = f"scheduler file {target}" if is_file else target
        hint = "is `dask scheduler` running there, and is the address right?"
        if not is_file:
            _probe(target, timeout, hint)
        try:
            kwargs: dict[str, Any] = {"scheduler_file": str(Path(target).expanduser())} if is_file else {"address": target}
            self.client = distributed.Client(timeout=timeout, set_as_default=False, **kwargs)
        except Exception as exc:  # OSError, TimeoutError, or garbage from something that is not a scheduler
            raise SchedulerUnreachableError(
                f"cannot reach the Dask scheduler at {self.address} within {timeout:g} s "
                f"({type(exc).__name__}: {exc}); {hint}"
            ) from exc
        self._owns_client = True
        if is_file:
            self.address = f"{self.client.scheduler.address} (scheduler file {target})"

    @property
    def n_workers(self) -> int:
        return max(1, sum(self.client.nthreads().values()))

    def share(self, value: Any) -> Any:
        # A task that returns the value, copied to every worker, rather than scattered data:
        # Dask's active memory manager may drop the extra copies of scattered data, and a
        # scattered key whose last holder dies is lost for good (the tasks that need it are
        # cancelled), whereas a task's result is recomputed from its spec if every copy dies.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Ll]arge (object|graph)")
            shared = self.client.submit(_shared_value, value, pure=False, key=f"wbench-shared-{uuid.uuid4().hex[:8]}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # replicate warns that the memory manager may undo it later
            self.client.replicate([shared])
        return shared

    def map(
        self, fn: Callable[..., Any], tasks: Iterable[tuple[Any, ...]], *, ordered: bool = True,
        resources: dict[str, float] | None = None, name: str = "wbench", errors: str = "raise",
    ) -> Iterator[tuple[int, Any]]:
        capture = _check_errors(errors)
        distributed = _import_distributed()
        for resource in resources or {}:
            self._give_every_worker(resource)
        tag = uuid.uuid4().hex[:8]
        futures = [
            self.client.submit(
                _run_task, fn, index, args, key=f"{name}-{tag}-{index}", pure=False, resources=resources,
                priority=-index,  # earlier tasks first, as the local backends do
            )
            for index, args in enumerate(tasks)
        ]
        index_of = {f.key: i for i, f in enumerate(futures)}
        buffered: dict[int, Any] = {}
        next_index = 0
        try:
            for future in distributed.as_completed(futures, loop=self.client.loop):
                index = index_of[future.key]
                try:
                    result = self._result(future, index)
                except TaskFailedError as exc:
                    if not capture:
                        raise
                    result = exc
                futures[index] = None  # type: ignore[call-overload]  # let Dask forget it
                if not ordered:
                    yield index, result
                    continue
                buffered[index] = result
                while next_index in buffered:
                    yield next_index, buffered.pop(next_index)
                    next_index += 1
        finally:
            pending = [f for f in futures if f is not None and not f.done()]
            if pending:
                self.client.cancel(pending)

    def _give_every_worker(self, resource: str) -> None:
        """One unit of ``resource`` on every worker that lacks it, now and when workers join."""
        from wbench.executor._dask import ResourceSlot

        self.client.register_plugin(ResourceSlot(resource), name=f"wbench-slot-{resource}")  # idempotent

    def _result(self, future: Any, index: int) -> Any:
        if future.status == "error":
            exc = future.exception()
            if isinstance(exc, TaskFailedError):
                raise exc
            tb = "".join(traceback.format_tb(future.traceback())) if future.traceback() is not None else ""
            raise TaskFailedError(index, "the Dask cluster", f"{type(exc).__name__}: {exc}", tb) from exc
        if future.status == "cancelled":
            raise TaskFailedError(index, "the Dask cluster", "the task was cancelled (scheduler or client shut down?)")
        return future.result()

    def describe(self) -> str:
        return f"dask {self.address}, {self.n_workers} worker thread{'s' if self.n_workers > 1 else ''}"

    def close(self) -> None:
        if self._owns_client:
            self.client.close()


def _probe(address: str, timeout: float, hint: str) -> None:
    """Fail fast, naming ``address``, when nothing listens at a ``tcp://host:port`` address."""
    import socket
    from urllib.parse import urlsplit

    if "://" not in address and (address.endswith(".json") or os.sep in address):
        raise SchedulerUnreachableError(f"the Dask scheduler file {address} does not exist")
    text = address if "://" in address else f"tcp://{address}"
    parts = urlsplit(text)
    if parts.scheme != "tcp":
        return  # tls://, ucx://, inproc://: left to Dask
    try:
        host, port = parts.hostname, parts.port or DEFAULT_PORT
    except ValueError as exc:
        raise SchedulerUnreachableError(f"not a Dask scheduler address: {address!r} ({exc})") from exc
    if not host:
        raise SchedulerUnreachableError(
            f"not a Dask scheduler address: {address!r} (expected tcp://HOST:PORT, or the path of an existing scheduler file)"
        )
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        raise SchedulerUnreachableError(
            f"cannot reach the Dask scheduler at {address} ({type(exc).__name__}: {exc}); {hint}"
        ) from exc
    with connection:
        found = _not_a_scheduler(connection, min(timeout, GREETING_WAIT_S))
    if found is not None:
        raise NotADaskSchedulerError(
            f"{host}:{port} answered but is not a Dask scheduler ({found}); is the address (or port) right? "
            f"A Dask scheduler listens on port {DEFAULT_PORT} by default"
        )


GREETING_WAIT_S = 3.0
"""Seconds to wait for a server's first bytes: a Dask scheduler sends its handshake at once."""

_MAX_HANDSHAKE_BYTES = 1 << 26
"""A Dask handshake is a few hundred bytes; a length prefix above this (64 MiB) is not one."""


class NotADaskSchedulerError(SchedulerUnreachableError):
    """Something answers at the address, but not a Dask scheduler (the message says what)."""


def _not_a_scheduler(connection: Any, wait: float) -> str | None:
    """What a server that accepted ``connection`` turned out to be, or None when it greets
    like a Dask scheduler (the 8-byte length prefix of its handshake message comes first).

    A server that sends nothing is asked ``GET / HTTP/1.0``, so that a web server names itself.
    """
    import struct

    def first_bytes(deadline: float) -> bytes:
        connection.settimeout(deadline)
        data = b""
        try:
            while len(data) < 8:
                chunk = connection.recv(256)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
        except OSError as exc:
            return f"<{type(exc).__name__}: {exc}>".encode()
        return data

    def described(data: bytes) -> str:
        if data.startswith(b"HTTP/"):
            status = data.splitlines()[0].decode("latin-1")[:80]
            return f"got an HTTP response: {status!r}"
        return f"got {data[:40]!r}"

    data = first_bytes(wait)
    if len(data) >= 8:
        (length,) = struct.unpack("<Q", data[:8])
        return None if 0 < length <= _MAX_HANDSHAKE_BYTES else described(data)
    if data:
        return described(data)
    try:
        connection.sendall(b"GET / HTTP/1.0\r\nHost: wbench-probe\r\n\r\n")
    except OSError:
        return "it closed the connection without the handshake a Dask scheduler sends"
    data = first_bytes(wait)
    if data:
        return described(data)
    return f"it sent nothing within {wait:g} s, where a Dask scheduler sends its handshake at once"
