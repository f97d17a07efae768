"""File names the harness derives from labels (artifacts, checkpoints, site pages, run folders)."""

from __future__ import annotations

import re


def safe_stem(text: str) -> str:
    """``text`` with every character other than letters, digits and ``-_.=`` replaced by ``_``:
    a file-name stem that is the same on every file system (``"dwe (paper size)"`` ->
    ``"dwe__paper_size_"``)."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)


def slug(text: str, *, empty: str = "x") -> str:
    """A URL- and file-name-safe form of ``text``: lower case, each run of characters other
    than ``a-z0-9`` as one ``-``, no ``-`` at either end (``"DWE (paper size)"`` ->
    ``"dwe-paper-size"``); ``empty`` when nothing is left."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or empty
