"""JSON lines of ``records.jsonl``: the canonical encoding (sorted keys, no NaN: ``None``), and
reading one line as JSON of finite numbers or a clear error naming the file and line (the
record checks follow in :func:`wbench.records.store.parse_record_line`)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def clean_floats(value: Any) -> Any:
    """Replace NaN and infinities by None recursively, so no non-finite number is stored."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean_floats(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean_floats(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype") and getattr(value, "ndim", 1) == 0:
        return clean_floats(value.item())
    return value

class RecordFileError(WbenchError):
    """A records file has a line that is not a valid record."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text}")
    return value


def parse_json_line(line: str, where: str) -> Any:
    """One line of ``records.jsonl`` as JSON of finite numbers.

    :raises RecordFileError: not JSON, or a ``NaN`` / ``Infinity`` (or a number that overflows
        to one), naming ``where``.
    """
    try:
        return json.loads(line, parse_constant=_refuse_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise RecordFileError(f"{where}: not a JSON record ({exc.msg})") from exc
    except ValueError as exc:  # from the two hooks above
        raise RecordFileError(f"{where}: {exc}: records never hold NaN or infinities (a damaged or hand-edited file?)") from exc
