"""File names the harness derives from labels (artifacts, checkpoints, site pages, run folders).

Every file or folder name built from a label, dataset, method or suite name goes through
:func:`safe_stem` (``slug`` is its URL-style variant and ends in it), so that one function
guarantees what such a name can never be: empty, ``.`` or ``..`` or holding ``..``, holding a
path separator, or longer than :data:`MAX_STEM_BYTES`. :func:`anchor_id` is the unbounded
form for HTML ids only (long section titles keep their published anchors).
"""

from __future__ import annotations

import hashlib
import re

MAX_STEM_BYTES = 120
"""Longest stem in UTF-8 bytes: room for prefixes and suffixes (``speed-accuracy-``,
``-seed0-loss.png``) within the 255 bytes most file systems allow for one name."""

HASH_CHARS = 10
"""Hex digits of the hash appended to a shortened stem (keeps distinct labels distinct)."""

_DOT_RUNS = re.compile(r"\.{2,}")


def _stem_characters(text: str) -> str:
    """``text`` with every character other than letters, digits and ``-_.=`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-_.=" else "_" for c in text)


def _without_dot_names(stem: str) -> str:
    """``stem`` with runs of dots (``..``) and a leading dot (hidden, ``.``) as ``_``."""
    stem = _DOT_RUNS.sub(lambda m: "_" * len(m.group()), stem)
    return "_" + stem[1:] if stem.startswith(".") else stem


def _digest(text: str) -> str:
    """A short hex hash of ``text`` (any string, lone surrogates included)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_CHARS]


def _bounded(stem: str, original: str, limit: int = MAX_STEM_BYTES) -> str:
    """``stem`` when it fits in ``limit`` UTF-8 bytes, else its longest prefix that fits with
    ``-`` and a hash of ``original`` appended."""
    if len(stem.encode()) <= limit:
        return stem
    suffix = f"-{_digest(original)}"
    room = limit - len(suffix)
    prefix = stem.encode()[:room].decode(errors="ignore")  # never cut a character in half
    return prefix + suffix


def safe_stem(text: object, *, empty: str = "x") -> str:
    """A file-name stem from ``text`` that is the same on every file system.

    Characters other than letters, digits and ``-_.=`` become ``_`` (``"dwe (paper size)"`` ->
    ``"dwe__paper_size_"``), so the stem holds no path separator; runs of dots and a leading
    dot become ``_`` (never ``.``, ``..`` or a hidden file); ``empty`` stands for an empty
    stem; a stem over :data:`MAX_STEM_BYTES` bytes is cut and ends in ``-`` and a hash of
    ``text``, so distinct long labels keep distinct names.
    """
    original = str(text)
    stem = _without_dot_names(_stem_characters(original)) or _without_dot_names(_stem_characters(empty)) or "x"
    return _bounded(stem, original)


def anchor_id(text: object, *, empty: str = "x") -> str:
    """An HTML ``id`` (URL fragment) from ``text``: lower case, each run of characters other
    than ``a-z0-9`` as one ``-``, no ``-`` at either end (``"DWE (paper size)"`` ->
    ``"dwe-paper-size"``); ``empty`` when nothing is left. Not length-bounded: never use it
    for a file name (:func:`slug` is that)."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or empty


def slug(text: object, *, empty: str = "x") -> str:
    """A URL- and file-name-safe form of ``text``: :func:`anchor_id` (``"DWE (paper size)"`` ->
    ``"dwe-paper-size"``) bounded by :func:`safe_stem` (a long one cut, ending in a hash)."""
    return safe_stem(anchor_id(text, empty=empty), empty=empty)
