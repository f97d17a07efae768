"""File names the harness derives from labels (artifacts, checkpoints)."""

from __future__ import annotations


def safe_stem(text: str) -> str:
    """``text`` with every character other than letters, digits and ``-_.=`` replaced by ``_``:
    a file-name stem that is the same on every file system (``"dwe (paper size)"`` ->
    ``"dwe__paper_size_"``)."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)
