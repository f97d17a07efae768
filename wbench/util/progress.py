"""Progress display for long work, through tqdm (quiet when ``WBENCH_PROGRESS=0``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled() -> bool:
    """False when ``$WBENCH_PROGRESS`` is ``0``/``false``/``no``."""
    return os.environ.get("WBENCH_PROGRESS", "1").lower() not in {"0", "false", "no", "off"}


def progress(iterable: Iterable[T] | None = None, *, desc: str = "", total: int | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr that disappears when progress is disabled."""
    return tqdm(iterable, desc=desc, total=total, disable=not progress_enabled(), leave=False, dynamic_ncols=True, **kwargs)
