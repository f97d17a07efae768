"""A content-addressed, verified on-disk cache of exact W2^2 arrays.

Where
-----
``default_cache_dir()`` is ``$WBENCH_CACHE_DIR`` when set, else ``~/.cache/wbench``; every
function takes a ``cache_dir`` option that overrides it. An entry lives at
``CACHE_DIR/w2sq/KEY[:2]/KEY.npz``.

Key
---
``KEY`` is the SHA-256 (hex) of the entry's *content*: a canonical JSON description
(cache format version, oracle version, cost name, kind of entry, dtypes and shapes) and
the bytes of every input array, in order. For the oracle these are the float64 support
points, masses and offsets of the measures involved and the pair indices into them (see
:mod:`wbench.oracle.groundtruth`), so the same measures and pairs give the same key wherever they
come from, and any change to a mass, a point, a pair or the oracle gives another key.

File format (version 1)
-----------------------
An uncompressed ZIP archive (a NumPy ``.npz``, readable by ``numpy.load`` with
``allow_pickle=False`` or any ZIP tool) with two members:

* ``w2sq.npy`` — the values, a float64 little-endian C-order array in NumPy's ``.npy``
  format (``(P,)`` for pairs, ``(n, m)`` for a block), squared ground-cost units.
* ``header.json`` — UTF-8 JSON::

      {"format": "wbench-w2sq-cache", "format_version": 1, "key": "<hex>",
       "shape": [P], "count": P, "dtype": "<f8",
       "sha256": "<hex SHA-256 of the values' raw bytes>",
       "created": "<ISO 8601 UTC>", "meta": {...}}

  ``meta`` holds what the writer adds (oracle version, cost, kind, seconds, versions).

Reading checks everything, and first that the entry is a regular file (a symlink to
``/dev/zero``, a FIFO or a device is refused before a byte is read) no larger than an
entry can be: the expected shape's values plus :data:`ENTRY_OVERHEAD_BYTES` when the caller
states a shape, else :data:`MAX_ENTRY_BYTES`; and that the values member is no larger than
the header's ``count`` implies. Then: the archive opens, both members exist, the header parses and
names this format, version and key, the array has the recorded shape (and the shape the
caller expects) and dtype, its SHA-256 matches, and every value is finite and >= 0. A
file that fails any check is reported with a :class:`CacheWarning`, recomputed and
rewritten. Writes go to a temporary file in the same folder, are flushed to disk, then
renamed over the entry with ``os.replace`` (atomic), so readers never see a partial file
and two processes writing the same entry at once leave one complete, valid file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from wbench.errors import CacheError
from wbench.util.atomic import atomic_writer

CACHE_ENV = "WBENCH_CACHE_DIR"
FORMAT_NAME = "wbench-w2sq-cache"
FORMAT_VERSION = 1
VALUES_MEMBER = "w2sq.npy"
HEADER_MEMBER = "header.json"
_SUBDIR = "w2sq"
MAX_ENTRY_BYTES = 16 * 2**30
"""No entry file over this size is read, whatever the caller's shape (an ``n x n`` float64
block of n = 40,000 is 12 GiB; the oracle's blocks are far smaller)."""
ENTRY_OVERHEAD_BYTES = 1 << 20
"""Bytes an entry may hold beyond its values: the ZIP records, the ``.npy`` header and
``header.json`` (whose ``meta`` is a few hundred bytes)."""


class CacheWarning(UserWarning):
    """A cache entry was unreadable or corrupt (it is recomputed) or could not be written."""


PathLike = str | os.PathLike[str]


def default_cache_dir() -> Path:
    """``$WBENCH_CACHE_DIR`` if set (and non-empty), else ``~/.cache/wbench``."""
    env = os.environ.get(CACHE_ENV, "").strip()
    return Path(env).expanduser() if env else Path.home() / ".cache" / "wbench"


def resolve_cache_dir(cache_dir: PathLike | None = None) -> Path:
    """``cache_dir`` as a path, or :func:`default_cache_dir` when None."""
    return default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()


def content_key(description: Mapping[str, Any], arrays: Sequence[np.ndarray] = ()) -> str:
    """SHA-256 hex digest of a JSON-able description and the bytes of ``arrays``.

    Each array contributes its dtype (normalised to little-endian), shape and raw C-order
    bytes, so arrays with equal bytes but other shapes or dtypes give other keys.
    """
    h = hashlib.sha256()
    h.update(json.dumps({"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **description}, sort_keys=True, default=str).encode())
    for arr in arrays:
        arr = np.asarray(arr)
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        h.update(f"|{arr.dtype.str}|{arr.shape}|".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def entry_path(key: str, cache_dir: PathLike | None = None) -> Path:
    """Where the entry ``key`` is (or would be) stored."""
    if len(key) < 8 or not all(c in "0123456789abcdef" for c in key):
        raise ValueError(f"not a cache key: {key!r}")
    return resolve_cache_dir(cache_dir) / _SUBDIR / key[:2] / f"{key}.npz"


def _values_digest(values: np.ndarray) -> str:
    return hashlib.sha256(memoryview(np.ascontiguousarray(values)).cast("B")).hexdigest()


def write_entry(key: str, values: np.ndarray, *, cache_dir: PathLike | None = None, meta: Mapping[str, Any] | None = None) -> Path:
    """Store ``values`` (float64) under ``key``, atomically; returns the entry's path.

    :raises OSError: the folder cannot be created or written.
    """
    values = np.ascontiguousarray(values, dtype="<f8")
    path = entry_path(key, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "key": key,
        "shape": list(values.shape),
        "count": int(values.size),
        "dtype": values.dtype.str,
        "sha256": _values_digest(values),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "meta": dict(meta or {}),
    }
    npy = io.BytesIO()
    np.lib.format.write_array(npy, values, allow_pickle=False)
    with atomic_writer(path) as f, zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(VALUES_MEMBER, npy.getvalue())
        zf.writestr(HEADER_MEMBER, json.dumps(header, indent=1, sort_keys=True, default=str))
    return path


def read_entry(key: str, *, cache_dir: PathLike | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    """The verified values stored under ``key``, or None when there is no entry.

    :param shape: the shape the caller expects; another shape counts as corrupt.
    :raises CacheError: the entry exists but fails a check (message says which).
    """
    path = entry_path(key, cache_dir)
    handle = _open_entry(path, _size_limit(shape))
    if handle is None:
        return None
    try:
        with handle, zipfile.ZipFile(handle) as zf:
            _check_member_size(path, zf, HEADER_MEMBER, ENTRY_OVERHEAD_BYTES, "a header may take")
            header = json.loads(zf.read(HEADER_MEMBER).decode())
            _check_member_size(path, zf, VALUES_MEMBER, _values_limit(header, shape), "the header's count implies")
            raw = zf.read(VALUES_MEMBER)  # checks the member's CRC-32
        values = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError, UnicodeDecodeError) as exc:
        raise CacheError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from exc
    if not isinstance(header, dict):
        raise CacheError(f"{path}: header is not a JSON object")
    if header.get("format") != FORMAT_NAME or header.get("format_version") != FORMAT_VERSION:
        raise CacheError(f"{path}: not a {FORMAT_NAME} file of version {FORMAT_VERSION}")
    if header.get("key") != key:
        raise CacheError(f"{path}: header key {header.get('key')!r} differs from the file's key")
    if values.dtype != np.dtype("<f8"):
        raise CacheError(f"{path}: values have dtype {values.dtype}, expected float64")
    if list(values.shape) != header.get("shape") or values.size != header.get("count"):
        raise CacheError(f"{path}: values have shape {values.shape}, header says {header.get('shape')}")
    if shape is not None and tuple(values.shape) != tuple(shape):
        raise CacheError(f"{path}: values have shape {values.shape}, expected {tuple(shape)}")
    if _values_digest(values) != header.get("sha256"):
        raise CacheError(f"{path}: SHA-256 of the values does not match the header")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise CacheError(f"{path}: values are not all finite and non-negative")
    return values


def _size_limit(shape: tuple[int, ...] | None) -> int:
    """The largest entry file that may hold values of ``shape`` (None: any shape)."""
    if shape is None:
        return MAX_ENTRY_BYTES
    return min(MAX_ENTRY_BYTES, 8 * math.prod(int(n) for n in shape) + ENTRY_OVERHEAD_BYTES)


def _values_limit(header: Any, shape: tuple[int, ...] | None) -> int:
    """The largest ``w2sq.npy`` member the header's ``count`` (and ``shape``) allow."""
    count = header.get("count") if isinstance(header, dict) else None
    limit = _size_limit(shape)
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        limit = min(limit, 8 * count + ENTRY_OVERHEAD_BYTES)
    return limit


def _open_entry(path: Path, limit: int) -> BinaryIO | None:
    """``path`` opened for reading once it is checked to be a regular file of at most
    ``limit`` bytes (checked before opening, so no device or FIFO is opened, and again on
    the open file, so nothing swapped in between is read); None when there is no entry.

    :raises CacheError: naming the file: not a regular file, too large, or not openable.
    """
    try:
        _check_entry_stat(path, os.stat(path), limit)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (FileNotFoundError, NotADirectoryError):
        return None  # no entry (or a dangling symlink, or removed meanwhile, or no cache folder)
    except OSError as exc:
        raise CacheError(f"{path}: cannot be opened ({type(exc).__name__}: {exc})") from exc
    try:
        _check_entry_stat(path, os.fstat(fd), limit)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def _check_entry_stat(path: Path, info: os.stat_result, limit: int) -> None:
    """Refuse an entry that is not a regular file, or larger than ``limit`` bytes."""
    if not stat.S_ISREG(info.st_mode):
        kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
        raise CacheError(f"{path}: not a regular file ({kind}{', through a symlink' if path.is_symlink() else ''}); "
                         f"a cache entry is a file wbench wrote: remove it")
    if info.st_size > limit:
        raise CacheError(f"{path}: {info.st_size} bytes, more than the {limit} bytes an entry of this shape can take; "
                         f"refusing to read it (remove it and the values are recomputed)")


def _check_member_size(path: Path, zf: zipfile.ZipFile, member: str, limit: int, what: str) -> None:
    """Refuse a ZIP member whose stated (uncompressed) size is over ``limit`` before reading it."""
    size = zf.getinfo(member).file_size
    if size > limit:
        raise CacheError(f"{path}: member {member} is {size} bytes, more than the {limit} bytes {what}; "
                         f"refusing to read it")


@dataclass(frozen=True)
class CacheResult:
    """What :func:`load_or_compute` did.

    :param values: the verified (or freshly computed) values.
    :param path: the entry's file (None if it could not be written).
    :param hit: True when the values came from the cache.
    :param key: the entry's key.
    :param seconds: wall time spent computing (0 on a hit).
    """

    values: np.ndarray
    path: Path | None
    hit: bool
    key: str
    seconds: float


def load_or_compute(
    key: str,
    compute: Callable[[], np.ndarray],
    *,
    cache_dir: PathLike | None = None,
    shape: tuple[int, ...] | None = None,
    meta: Mapping[str, Any] | None = None,
    spot_check: Callable[[np.ndarray], str | None] | None = None,
) -> CacheResult:
    """Return the cached values for ``key``, or compute, store and return them.

    A corrupt entry is reported with a :class:`CacheWarning` and recomputed; so is an entry
    whose checksum holds but whose values fail ``spot_check`` (a few values solved again: an
    entry forged with a recomputed checksum); a failed write is reported with a
    :class:`CacheWarning` and the computed values are returned.

    :param spot_check: called with cached values; returns what is wrong (None: nothing).
    """
    path = entry_path(key, cache_dir)
    try:
        cached = read_entry(key, cache_dir=cache_dir, shape=shape)
        problem = spot_check(cached) if cached is not None and spot_check is not None else None
        if problem:
            raise CacheError(f"{path}: {problem}")
    except CacheError as exc:
        warnings.warn(f"corrupt ground-truth cache entry, recomputing: {exc}", CacheWarning, stacklevel=2)
        cached = None
    if cached is not None:
        return CacheResult(cached, path, True, key, 0.0)
    start = time.perf_counter()
    values = np.ascontiguousarray(compute(), dtype=np.float64)
    seconds = time.perf_counter() - start
    if shape is not None and tuple(values.shape) != tuple(shape):
        raise ValueError(f"computed values have shape {values.shape}, expected {tuple(shape)}")
    try:
        stored: Path | None = write_entry(key, values, cache_dir=cache_dir, meta={**(meta or {}), "seconds": seconds})
    except OSError as exc:
        warnings.warn(f"could not write the ground-truth cache entry {path}: {exc}", CacheWarning, stacklevel=2)
        stored = None
    return CacheResult(values, stored, False, key, seconds)
