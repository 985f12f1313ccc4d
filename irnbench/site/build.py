"""``build`` and ``add``: the site from run folders, and the site grown by more runs.

The site keeps what it is made from in ``data/`` (every row with its provenance in
``rows.parquet``, each run's metadata in ``runs.json``, the title in ``site.json``), so ``add``
rebuilds from that plus the new runs, and its output is byte for byte a fresh ``build`` of all the
runs. Nothing here carries a time of its own: the only dates are the runs'.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from irnbench import __version__
from irnbench.errors import IrnbenchError
from irnbench.leaderboard import as_text
from irnbench.results import COLUMNS
from irnbench.site.data import board_data, clean, index_data, method_data, method_slug
from irnbench.site.merge import Merged, entry_method, merge
from irnbench.site.pages import board_page, index_page, method_page
from irnbench.site.render import render_page
from irnbench.site.runs import SiteRun, canonical, read_runs

__all__ = ["DEFAULT_TITLE", "MANAGED", "SITE_FORMAT", "BuildResult", "add_runs", "build_site",
           "parquet_bytes", "read_site"]

DEFAULT_TITLE = "irnbench leaderboards"
#: Version of the layout of ``data/`` that ``add`` reads back.
SITE_FORMAT = 1
#: What a build writes in the site folder (anything else there is left alone).
MANAGED = ("index.html", "boards", "methods", "data")


@dataclass
class BuildResult:
    """What a build wrote: the folder, its boards and runs, and the conflicts it shows."""

    path: Path
    boards: int
    runs: int
    conflicts: list[str]


def _json(value: Any) -> bytes:
    return (json.dumps(clean(value), indent=1, ensure_ascii=False, sort_keys=False)
            + "\n").encode()


def parquet_bytes(df: pd.DataFrame) -> bytes:
    """``df`` as Parquet with an explicit schema and no pandas metadata, so the bytes depend
    only on the rows (and the pyarrow version that writes them)."""
    fields = []
    for c in df.columns:
        kind = df[c].dtype
        t = pa.int64() if str(kind) == "Int64" else pa.float64() if kind == "float64" \
            else pa.string()
        fields.append(pa.field(c, t))
    table = pa.Table.from_pandas(df, schema=pa.schema(fields), preserve_index=False)
    table = table.replace_schema_metadata(None)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd", row_group_size=1 << 20, store_schema=False)
    return buf.getvalue()


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False, lineterminator="\n").encode()


def _ordered(runs: Iterable[SiteRun]) -> list[SiteRun]:
    """One run per id (a run given twice is one run; its name the smaller), by date, then id."""
    by_id: dict[str, SiteRun] = {}
    for r in runs:
        if r.id not in by_id or r.name < by_id[r.id].name:
            by_id[r.id] = r
    return sorted(by_id.values(), key=lambda r: (r.date, r.id))


def _paper(rows: pd.DataFrame) -> pd.DataFrame:
    """Paper-reported rows once each, in a fixed order."""
    if not len(rows):
        return rows
    text = rows[COLUMNS].map(as_text)
    keep = ~text.duplicated()
    rows, keys = rows[keep], list(text[keep].itertuples(index=False, name=None))
    order = sorted(range(len(rows)), key=keys.__getitem__)
    return rows.iloc[order]


def _assemble(runs: Sequence[SiteRun], frames: Sequence[pd.DataFrame],
              workers: int | None = None) -> Merged:
    """Canonical rows (measured in run order, then paper rows once) merged into boards."""
    ordered = _ordered(runs)
    pos = {r.id: i for i, r in enumerate(ordered)}
    frames = [f for f in frames if len(f)]
    rows = pd.concat(frames, ignore_index=True) if frames else canonical(pd.DataFrame())
    is_measured = rows["source"] == "measured"
    measured = rows[is_measured]
    measured = measured.iloc[measured["run_id"].map(pos).to_numpy().argsort(kind="stable")]
    merged = pd.concat([measured, _paper(rows[~is_measured])], ignore_index=True)
    return merge(ordered, merged, workers)


def _files(merged: Merged, title: str) -> dict[str, bytes]:
    """Every file of the site, by path relative to its folder."""
    runs = {r.id: r for r in merged.runs}
    boards = [board_data(sb, runs) for sb in merged.boards]
    index = index_data(merged, boards, title)
    rows = merged.rows
    files = {
        "data/site.json": _json({"format": SITE_FORMAT, "title": title,
                                 "generator": f"irnbench {__version__}"}),
        "data/runs.json": _json([{"id": r.id, "name": r.name, **r.info} for r in merged.runs]),
        "data/index.json": _json(index),
        "data/rows.csv": _csv_bytes(rows),
        "data/rows.parquet": parquet_bytes(rows),
        "index.html": render_page("index.html", index_page(index, boards,
                                                           len(merged.unmatched)),
                                  title, "").encode(),
    }
    for b in boards:
        files[f"data/boards/{b['slug']}.json"] = _json(b)
        files[f"boards/{b['slug']}.html"] = render_page("board.html", board_page(b, runs),
                                                        title, "../").encode()
    measured = rows[rows["source"] == "measured"]
    paper = rows[rows["source"] != "measured"]
    methods = pd.Series([entry_method(s, t) for s, t in zip(measured["method"], measured["tag"],
                                                              strict=True)], index=measured.index)
    for method in index["methods"]:
        data = method_data(method, merged, boards)
        mine = measured[methods == method]
        files[f"data/methods/{method_slug(method)}.csv"] = _csv_bytes(mine)
        ctx = method_page(data, paper[paper["method"] == method].to_dict(orient="records"))
        files[f"methods/{method_slug(method)}.html"] = render_page("method.html", ctx, title,
                                                                   "../").encode()
    return files


def _is_site(path: Path) -> bool:
    return (path / "data" / "site.json").is_file()


def _write(files: dict[str, bytes], out: Path) -> None:
    """Write the files into a fresh folder beside ``out``, then swap the managed entries."""
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not _is_site(out):
        raise IrnbenchError(f"{out} exists and is not an irnbench leaderboard site; give an "
                            "empty or new folder")
    tmp = out.parent / f".{out.name}.irnbench-build"
    shutil.rmtree(tmp, ignore_errors=True)
    for rel, data in files.items():
        target = tmp / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    out.mkdir(parents=True, exist_ok=True)
    for name in MANAGED:
        old = out / name
        if old.is_dir():
            shutil.rmtree(old)
        elif old.exists():
            old.unlink()
        if (tmp / name).exists():
            (tmp / name).replace(old)
    shutil.rmtree(tmp, ignore_errors=True)


def _conflict_lines(merged: Merged) -> list[str]:
    names = {r.id: r.title for r in merged.runs}
    return [f"{sb.slug}: {c.entry.name}: runs disagree: " + " vs ".join(
        ", ".join(names[i] for i in ids) for ids, _ in c.groups)
        for sb in merged.boards for c in sb.conflicts]


def build_site(run_dirs: Iterable[str | Path], out: str | Path, title: str | None = None,
               jobs: int | None = None) -> BuildResult:
    """Check every run (``RunRefused`` names the first refused), merge them and write the site
    to ``out``; ``jobs``: processes that rank the tables (default: one per usable CPU)."""
    runs, rows = read_runs(run_dirs)
    if not runs:
        raise IrnbenchError("leaderboard build needs at least one run folder")
    merged = _assemble(runs, [rows], jobs)
    _write(_files(merged, title or DEFAULT_TITLE), Path(out))
    return BuildResult(Path(out), len(merged.boards), len(merged.runs), _conflict_lines(merged))


def read_site(site: str | Path) -> tuple[str, list[SiteRun], pd.DataFrame]:
    """(title, runs, their rows and the paper rows) of a built site, from its ``data/``."""
    site = Path(site)
    if not _is_site(site):
        raise IrnbenchError(f"{site} is not an irnbench leaderboard site (no data/site.json)")
    meta = json.loads((site / "data" / "site.json").read_text())
    if meta.get("format") != SITE_FORMAT:
        raise IrnbenchError(f"{site}: site format {meta.get('format')!r}, this irnbench "
                            f"writes {SITE_FORMAT}; build it again from its runs")
    stored = json.loads((site / "data" / "runs.json").read_text())
    rows = canonical(pq.read_table(site / "data" / "rows.parquet").to_pandas())
    runs = [SiteRun(r["id"], r["name"], {k: v for k, v in r.items() if k not in ("id", "name")})
            for r in stored]
    return str(meta.get("title") or DEFAULT_TITLE), runs, rows


def add_runs(site: str | Path, run_dirs: Iterable[str | Path],
             jobs: int | None = None) -> BuildResult:
    """Add runs to a built site: the result equals ``build`` of all its runs, byte for byte
    (a run it already holds is not added twice)."""
    title, runs, rows = read_site(site)
    new, new_rows = read_runs(run_dirs)
    have = {r.id for r in runs}
    new_rows = new_rows[~new_rows["run_id"].isin(list(have))]
    merged = _assemble([*runs, *new], [rows, new_rows], jobs)
    _write(_files(merged, title), Path(site))
    return BuildResult(Path(site), len(merged.boards), len(merged.runs), _conflict_lines(merged))
