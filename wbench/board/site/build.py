"""``wbench site``: build the static website of every run under a results folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from wbench.board.site.assets import write_assets
from wbench.board.site.pages import MethodPage, index_page, method_page, run_page, slug
from wbench.board.site.source import RunData, SiteInputError, find_runs, load_run
from wbench.run.lock import RunDirNotWritableError, check_writable

MARKER = ".wbench-site"
"""File marking a folder as built by ``wbench site``: only such a folder is cleaned on rebuild."""


def _unique_slugs(names: list[str]) -> dict[str, str]:
    taken: dict[str, str] = {}
    used: set[str] = set()
    for name in sorted(names):
        base = candidate = slug(name)
        n = 2
        while candidate in used or candidate in {"assets", "index", "img"}:
            candidate, n = f"{base}-{n}", n + 1
        used.add(candidate)
        taken[name] = candidate
    return taken


def _method_pages(run: RunData, dataset_slugs: dict[str, str]) -> dict[tuple[str, str], MethodPage]:
    pages: dict[tuple[str, str], MethodPage] = {}
    for dataset in run.datasets:
        methods = sorted(str(m) for m in run.summary.loc[run.summary["dataset"] == dataset, "method"])
        for method, mslug in _unique_slugs(methods).items():
            images = []
            for r in sorted(run.records, key=lambda r: (r.get("seed") is None, r.get("seed") or 0)):
                if (r.get("dataset_label") or r.get("dataset")) != dataset or str(r.get("label") or r.get("method")) != method:
                    continue
                for artifact in r.get("artifacts") or []:
                    if str(artifact).endswith("-pred.png") and (run.path / artifact).is_file():
                        images.append((f"img/{Path(artifact).name}", f"seed {r.get('seed')}: {Path(artifact).name}"))
            pages[(dataset, method)] = MethodPage(dataset, method, f"{dataset_slugs[dataset]}/{mslug}.html",
                                                  tuple(dict.fromkeys(images)))
    return pages


RUN_FOLDER_FILES = ("records.jsonl", "suite.json", ".wbench-run.lock")
"""Files of which any one marks a run folder (see :data:`wbench.run.runner.RUN_FOLDER_FILES`)."""


def _is_run_folder(folder: Path) -> bool:
    return any((folder / name).is_file() for name in RUN_FOLDER_FILES)


def _run_folder_in(out: Path) -> Path | None:
    """A run folder that ``out`` is, lies inside, or contains (searched without following links); None if none."""
    resolved = out.resolve()
    for folder in (resolved, *resolved.parents):
        if _is_run_folder(folder):
            return folder
    if resolved.is_dir():
        for folder, _dirs, files in os.walk(resolved):
            if set(files) & set(RUN_FOLDER_FILES):
                return Path(folder)
    return None


def check_site_out(out: Path, *, force: bool = False) -> None:
    """Refuse an ``out`` whose rebuild would delete files that are not an earlier site's.

    A run folder (one holding ``records.jsonl`` or ``suite.json``), a folder inside one or a
    folder containing one is always refused, ``force`` or not. A non-empty folder without
    the :data:`MARKER` of an earlier ``wbench site`` is refused unless ``force``.

    :raises SiteInputError: naming the folder; nothing has been written or deleted.
    """
    if out.exists() and not out.is_dir():
        raise SiteInputError(f"site output {out} exists and is not a folder")
    run_folder = _run_folder_in(out)
    if run_folder is not None:
        where = ("is" if run_folder == out.resolve() else
                 "lies inside" if run_folder in out.resolve().parents else "contains")
        raise SiteInputError(
            f"site output {out} {where} the run folder {run_folder} (it holds records.jsonl or suite.json); "
            f"building the site there would delete the run's records and models. Choose a folder "
            f"outside every run folder, e.g. --out site/ (nothing was written or deleted)"
        )
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file() and not force:
        raise SiteInputError(
            f"site output {out} is a non-empty folder not built by `wbench site` (no {MARKER} file); "
            f"a build replaces a folder's whole contents. Choose an empty or new folder, or pass --force "
            f"to replace its contents (nothing was written or deleted)"
        )


def _prepare_out(out: Path, force: bool) -> None:
    check_site_out(out, force=force)
    try:
        check_writable(out)
    except RunDirNotWritableError as exc:
        raise SiteInputError(f"site output: {exc}") from exc


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    written.append(path)


def build_site(results: str | Path, out: str | Path, *, force: bool = False) -> list[Path]:
    """Build the static site of every run under ``results`` into ``out``.

    ``results`` is a run folder (holding ``records.jsonl``) or a folder of run folders.
    Pages: ``index.html``; per run ``RUN/index.html``; per dataset and method
    ``RUN/DATASET/METHOD.html`` with its prediction plots copied to ``RUN/DATASET/img/``;
    assets (style, sorting script, plotly.js) once in ``assets/``. Files of an earlier build
    that this build does not write are removed, so the folder is a function of the records.

    :param force: build into a non-empty ``out`` that this command did not build (its files
        are replaced); a run folder is refused even so (:func:`check_site_out`).
    :returns: the files written, sorted.
    :raises SiteInputError: for a missing results folder, no runs, an ``out`` that is, holds or
        lies inside a run folder, an ``out`` folder not built by this command (without
        ``force``), or an ``out`` that cannot be written.
    """
    results, out = Path(results), Path(out)
    check_site_out(out, force=force)  # before reading anything: a clear refusal first
    run_dirs = find_runs(results)
    out_resolved = out.resolve()
    run_dirs = [d for d in run_dirs if d.resolve() != out_resolved]
    names = _unique_slugs([d.name for d in run_dirs])
    runs = [load_run(d, name=d.name) for d in run_dirs]
    _prepare_out(out, force)
    written: list[Path] = []
    _write(out / MARKER, "built by `wbench site`; the whole folder is regenerated from the records\n", written)
    written += write_assets(out)
    run_hrefs = {run.name: f"{names[run.name]}/index.html" for run in runs}
    _write(out / "index.html", index_page(runs, run_hrefs), written)
    for run in runs:
        run_dir = out / names[run.name]
        dataset_slugs = _unique_slugs(run.datasets)
        methods = _method_pages(run, dataset_slugs)
        _write(run_dir / "index.html", run_page(run, dataset_slugs, methods), written)
        for (dataset, _method), info in sorted(methods.items()):
            target = run_dir / info.href
            _write(target, method_page(run, info, "index.html", dataset_slugs[dataset]), written)
            for src, _caption in info.images:
                source = next(run.path / a for r in run.records for a in (r.get("artifacts") or [])
                              if Path(a).name == Path(src).name)
                dest = target.parent / src
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, dest)
                written.append(dest)
    keep = {p.resolve() for p in written}
    for path in sorted(out.rglob("*"), reverse=True):
        if path.is_file() and path.resolve() not in keep:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return sorted(set(written))
