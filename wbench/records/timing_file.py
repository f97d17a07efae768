"""``timing.json``: the speed figures of a run folder, written by its one timing pass.

Records hold what a cell computed (fit, accuracy); speed is measured afterwards, for every
model of the run together (:mod:`wbench.run.timing_pass`), and kept beside the records in
this file: per cell key its figures (at most :data:`MAX_FIGURES` keys), per dataset the exact
LP's figures from the same rounds. This module reads and checks it; boards join its figures
to the records by key (:func:`timing_figures`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wbench.errors import WbenchError
from wbench.records.read import load_records

TIMING_FILE = "timing.json"
"""The file the timing pass writes into the run folder."""
FORMAT_VERSION = 2
MAX_FIGURES = 20
"""The most figures one cell of ``timing.json`` holds."""


class TimingError(WbenchError, ValueError):
    """A run folder cannot be timed, or its ``timing.json`` cannot be read or is stale."""


def timing_path(run_dir: str | Path) -> Path:
    """The ``timing.json`` of a run folder (or of the folder of a ``records.jsonl``)."""
    folder = Path(run_dir)
    return (folder.parent if folder.name.endswith(".jsonl") else folder) / TIMING_FILE


def read_timing(path: str | Path) -> dict[str, Any]:
    """A ``timing.json``, checked (:func:`timing_problems`).

    :raises TimingError: unreadable JSON, another format version, missing keys, or a figure
        that is not finite or out of its range (the file and the key named).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise TimingError(f"{path}: not a readable timing file ({error})") from error
    version = data.get("format_version") if isinstance(data, dict) else None
    if version != FORMAT_VERSION:
        raise TimingError(f"{path}: unsupported timing format {version!r} (this wbench reads {FORMAT_VERSION}): "
                          f"run `wbench retime {path.parent}` to time the run again")
    for key in ("cells", "references", "protocol", "provenance"):
        if key not in data:
            raise TimingError(f"{path}: no {key!r}")
    problems = timing_problems(data)
    if problems:
        raise TimingError(f"{path}: refused, {'; '.join(problems)}; the timing pass never writes such a file "
                          f"(edited or damaged?): run `wbench retime {path.parent}` again")
    return data


def timing_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong in a parsed ``timing.json`` (empty: nothing): ``cells`` not a list of
    objects with a key and figures, more than :data:`MAX_FIGURES` figures, a value that is
    not a finite number, a negative one, or a zero rate, speed-up or embedding time."""
    cells, references = data.get("cells"), data.get("references")
    if not isinstance(cells, list):
        return ["'cells' is not a list"]
    if not isinstance(references, dict):
        return ["'references' is not an object"]
    problems: list[str] = []
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict) or not isinstance(cell.get("key"), str) or not isinstance(cell.get("figures"), dict):
            problems.append(f"cells[{index}] is not an object with a string 'key' and an object 'figures'")
            continue
        if len(cell["figures"]) > MAX_FIGURES:
            problems.append(f"cells[{index}] holds {len(cell['figures'])} figures (at most {MAX_FIGURES})")
        embedding = cell["figures"].get("cost.embedding", 1.0) != 0
        for name, value in cell["figures"].items():
            problem = _value_problem(str(name), value, positive=embedding and name == "cost.embed_s")
            if problem:
                problems.append(f"cells[{index}] (key {cell['key']}) figure {name!r} = {value!r} {problem}")
    for label, reference in references.items():
        values = reference.items() if isinstance(reference, dict) else [("", None)]
        for name, value in values:
            problem = _value_problem(str(name), value)
            if problem:
                problems.append(f"references[{label!r}] {name!r} = {value!r} {problem}")
    return problems


def _value_problem(name: str, value: Any, *, positive: bool = False) -> str | None:
    """Why ``value`` is not a valid figure ``name`` (None: it is); ``positive``: it must be above 0."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "is not a number"
    if not math.isfinite(value):
        return "is not finite"
    positive = positive or name.startswith("speedup.") or name.endswith("pairs_per_s")
    if positive and value <= 0:
        return "must be positive"
    if value < 0:
        return "is a negative time" if name.endswith("_s") else "must not be negative"
    return None


def check_current(data: Mapping[str, Any], path: Path, run_dir: Path) -> None:
    """Refuse a timing file that no longer matches the run's records: a cell whose record is
    gone, or was made again since the pass (its ``finished_at`` differs), would put figures
    of another model on the board.

    :raises TimingError: naming the first such cell and the command that renews the file.
    """
    finished = {record.key: record.finished_at for record in load_records([run_dir])}
    for cell in data["cells"]:
        what = f"{cell.get('label')} seed {cell.get('seed')}"
        if cell["key"] not in finished:
            raise TimingError(f"{path} is stale: its cell {cell['key']} ({what}) has no record in {run_dir} any more; "
                              f"run `wbench retime {run_dir}` again")
        if cell.get("finished_at") != finished[cell["key"]]:
            raise TimingError(f"{path} is stale: the record of {cell['key']} ({what}) was made again after the pass "
                              f"(finished {finished[cell['key']]}, timed the one of {cell.get('finished_at')}); "
                              f"run `wbench retime {run_dir}` again")


def timing_files(run_dirs: Iterable[str | Path]) -> list[Path]:
    """The ``timing.json`` files that exist beside ``run_dirs``, in order."""
    return [path for path in map(timing_path, run_dirs) if path.is_file()]


def timing_figures(run_dirs: Iterable[str | Path]) -> dict[str, dict[str, float]]:
    """Record key -> its speed figures, from the ``timing.json`` of each of ``run_dirs`` (checked
    and current, see :func:`check_current`); cells of a folder without one are absent.

    A series (dataset, method, seed) is timed once, at its last milestone: its earlier
    milestones' records share that figure (a network's speed does not depend on its weights).
    """
    out: dict[str, dict[str, float]] = {}
    for path in timing_files(run_dirs):
        data = read_timing(path)
        check_current(data, path, path.parent)
        for cell in data["cells"]:
            for key in [cell["key"], *cell.get("same_model", [])]:
                out[key] = dict(cell["figures"])
    return out


def timing_passes(run_dirs: Iterable[str | Path]) -> list[dict[str, Any]]:
    """The checked contents of each ``timing.json`` of ``run_dirs`` (for notes and sections)."""
    return [read_timing(path) for path in timing_files(run_dirs)]
