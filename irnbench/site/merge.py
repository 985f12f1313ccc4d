"""Merging runs into leaderboards, verified and never blended.

An *entry* is one measured thing: method, weights tag, weights sha256, dataset name and
fingerprint, task setting, channel condition (the ``TABLE_KEYS`` beyond task, setting and
dataset: JPEG quality…) and protocol version. When several runs measured the same entry, their
per-image numbers must agree (then the entry is kept once, credited to every run); when they do
not, the entry is a *conflict*: it is shown with each run's numbers and never ranked. A
leaderboard is one table of ``irnbench.leaderboard`` (which ranks it and computes its intervals
and Δ) for one dataset fingerprint and protocol version.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from irnbench.leaderboard import (
    TABLE_KEYS,
    Leaderboard,
    as_text,
    leaderboards,
    natural_key,
    rank,
    summarize_measured,
    table_key,
    unmatched_papers,
)
from irnbench.results import METRIC_COLUMNS
from irnbench.site.runs import SiteRun

__all__ = ["CONDITION_KEYS", "ENTRY_KEYS", "Conflict", "Entry", "Merged", "SiteBoard",
           "entry_method", "jobs", "merge", "slug"]

#: The channel condition of a table: the table keys other than task, setting and dataset.
CONDITION_KEYS = [k for k in TABLE_KEYS if k not in ("task", "setting", "dataset")]
#: What identifies an entry (the row's ``method`` is first stripped of its ``.TAG``).
ENTRY_KEYS = ["method", "tag", "weights_sha256", "task", "setting", *CONDITION_KEYS, "dataset",
              "fingerprint", "protocol_version"]
#: Two runs' per-image numbers agree when they differ by at most this, relative: the last
#: digits that float reordering between versions moves (1e-6 dB at 30 dB), no digit a table
#: shows; a real change (a re-run that moves a PSNR by 1e-4 dB) is a conflict.
_REL_TOL = 1e-6


@dataclass
class Entry:
    """One entry: its name on its board (``NAME.TAG``, ``@sha`` added when two weights of one
    name meet), the runs that measured it (agreeing), and when it was first measured."""

    key: tuple
    name: str
    method: str
    tag: str
    sha256: str
    runs: list[str]
    first_date: str


@dataclass
class Conflict:
    """An entry whose runs disagree: each group of agreeing runs with its set means."""

    entry: Entry
    groups: list[tuple[list[str], dict[str, Any]]]  #: (run ids, ``summarize`` record)


@dataclass
class SiteBoard:
    """One leaderboard of the site: the ranked table and what the site adds to it."""

    board: Leaderboard
    fingerprint: str
    protocol_version: int | None
    slug: str
    entries: dict[str, Entry] = field(default_factory=dict)  #: by name
    conflicts: list[Conflict] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  #: run ids, in run order
    timeline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def condition(self) -> dict[str, Any]:
        return {k: v for k, v in zip(TABLE_KEYS, self.board.key, strict=True)
                if k in CONDITION_KEYS}


@dataclass
class Merged:
    """Everything the pages and ``data/`` show: the boards, the paper rows that sit beside no
    board, and the merged rows (measured rows of every run, paper rows once)."""

    runs: list[SiteRun]
    rows: pd.DataFrame
    boards: list[SiteBoard]
    unmatched: list[dict[str, Any]]


def entry_method(spec: Any, tag: Any) -> str:
    """The method of an entry: the row's method without the ``.TAG`` its spec may carry."""
    spec, tag = as_text(spec), as_text(tag)
    return spec[: -len(tag) - 1] if tag and spec.endswith("." + tag) else spec


def slug(*parts: Any) -> str:
    """A file name for a page: the parts joined by ``-`` when they are plain, else made plain
    and suffixed with a hash of the parts (so no name carries markup or a path)."""
    text = "-".join(as_text(p) for p in parts if as_text(p))
    plain = re.sub(r"[^a-z0-9._-]+", "_", text.lower()).strip("._-")[:80] or "x"
    if plain == text:
        return plain
    return f"{plain}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


@dataclass
class _Rows:
    """The measured rows as plain arrays: what comparing runs reads, without pandas slicing."""

    run: np.ndarray  #: run ids
    image: np.ndarray
    draw: np.ndarray  #: ints, -1 for none
    status: np.ndarray
    values: np.ndarray  #: metric columns, float

    @classmethod
    def of(cls, rows: pd.DataFrame) -> _Rows:
        text = [np.array([as_text(v) for v in rows[c]], dtype=object)
                for c in ("run_id", "image", "status")]
        draw = rows["draw"].astype("Float64").fillna(-1).to_numpy(dtype=float).astype(int)
        return cls(text[0], text[1], draw, text[2], rows[METRIC_COLUMNS].to_numpy(dtype=float))

    def numbers(self, idx: np.ndarray) -> tuple[list[tuple], np.ndarray]:
        """One run's per-image record of an entry (row positions ``idx``): (image, draw,
        status) in image and draw order, and the metric values in that order."""
        idx = idx[np.lexsort((self.draw[idx], self.image[idx]))]
        ids = list(zip(self.image[idx], self.draw[idx].tolist(), self.status[idx], strict=True))
        return ids, self.values[idx]


def _agree(a: tuple[list[tuple], np.ndarray], b: tuple[list[tuple], np.ndarray]) -> bool:
    """Same images, draws and statuses, and every metric that both runs measured equal to
    ``_REL_TOL`` (a metric only one of them has, e.g. one added later, is no disagreement)."""
    if a[0] != b[0] or a[1].shape != b[1].shape:
        return False
    both = ~np.isnan(a[1]).all(axis=0) & ~np.isnan(b[1]).all(axis=0)
    return bool(np.isclose(a[1][:, both], b[1][:, both], rtol=_REL_TOL, atol=0,
                           equal_nan=True).all())


def _groups(rows: _Rows, idx: np.ndarray) -> list[tuple[list[str], str]]:
    """The runs of one entry (row positions ``idx``, in run order) in groups whose per-image
    numbers agree, each with the run whose rows it keeps: the one that measured most values
    (the earliest on ties)."""
    groups: list[tuple[tuple[list[tuple], np.ndarray], list[str], list[int]]] = []
    for run_id in dict.fromkeys(rows.run[idx]):
        nums = rows.numbers(idx[rows.run[idx] == run_id])
        count = int((~np.isnan(nums[1])).sum())
        for rep, ids, counts in groups:
            if _agree(rep, nums):
                ids.append(run_id)
                counts.append(count)
                break
        else:
            groups.append((nums, [run_id], [count]))
    return [(ids, ids[int(np.argmax(counts))]) for _, ids, counts in groups]


def _keys(measured: pd.DataFrame) -> list[tuple]:
    """Each row's entry key (``ENTRY_KEYS``, as text)."""
    cols = [[as_text(v) for v in measured[c]] for c in ENTRY_KEYS if c != "method"]
    method = [entry_method(s, t) for s, t in zip(measured["method"], measured["tag"],
                                                   strict=True)]
    return list(zip(method, *cols, strict=True))


def _names(keys: Sequence[tuple]) -> dict[tuple, str]:
    """Each entry's name on its board: ``NAME.TAG``, with ``@SHA8`` where one board holds two
    weights of that name."""
    base = {k: f"{k[0]}.{k[1]}" if k[1] else k[0] for k in keys}
    shas: dict[tuple, set[str]] = {}
    for k in keys:
        shas.setdefault((k[3:], base[k]), set()).add(k[2])
    return {k: base[k] + (f"@{k[2][:8] or 'none'}" if len(shas[(k[3:], base[k])]) > 1 else "")
            for k in keys}


def _entries(measured: pd.DataFrame, runs: Sequence[SiteRun]
             ) -> tuple[pd.DataFrame, list[Entry], dict[tuple, list[tuple[list[str], Any]]]]:
    """(rows to rank: one run per agreeing entry, named; every entry; each conflict's groups
    of agreeing runs with the rows of the group's kept run). ``measured`` is in run order."""
    dates = {r.id: r.date for r in runs}
    keys = _keys(measured)
    codes, uniques = pd.factorize(pd.Series(keys, dtype=object), sort=False)
    names = _names(list(uniques))
    rows = _Rows.of(measured)
    keep = np.ones(len(measured), dtype=bool)
    entries, conflicts = [], {}
    for code, idx in pd.Series(codes).groupby(codes, sort=False).indices.items():
        key = uniques[code]
        run_ids = list(dict.fromkeys(rows.run[idx]))
        groups = _groups(rows, idx) if len(run_ids) > 1 else [(run_ids, run_ids[0])]
        first = min((dates[r] for r in run_ids), default="")
        entries.append(Entry(key, names[key], key[0], key[1], key[2],
                             groups[0][0] if len(groups) == 1 else run_ids, first))
        if len(groups) > 1:
            keep[idx] = False
            conflicts[key] = [(ids, measured.iloc[idx[rows.run[idx] == kept]])
                              for ids, kept in groups]
        elif len(run_ids) > 1:
            keep[idx[rows.run[idx] != groups[0][1]]] = False
    ranked = measured[keep].copy()
    ranked["label"] = [names[k] for k, m in zip(keys, keep, strict=True) if m]
    ranked["method"] = [k[0] for k, m in zip(keys, keep, strict=True) if m]
    return ranked, entries, conflicts


def _table_of(entry_key: tuple) -> tuple:
    """The ``table_key`` of an entry (its quality an int, as ``table_key`` gives it)."""
    rec = dict(zip(ENTRY_KEYS, entry_key, strict=True))
    return table_key(rec)


def _timeline(sb: SiteBoard, order: dict[str, int], dates: dict[str, str]) -> list[dict]:
    """When each entry became the leader: entries join at their first run's date and the
    board is ranked again (``irnbench.leaderboard.rank``) after each date."""
    lead = sb.board.lead
    rows = sb.board.measured
    if lead is None or not rows:
        return []
    first = {r.name: sb.entries[r.name] for r in rows if r.name in sb.entries}
    joined = sorted(rows, key=lambda r: (first[r.name].first_date,
                                         min(order[x] for x in first[r.name].runs)))
    out, seen, leader = [], [], None
    for date in dict.fromkeys(first[r.name].first_date for r in joined):
        seen += [r for r in joined if first[r.name].first_date == date]
        best = rank([r.record for r in seen], lead.key)[0]
        name = next(r.name for r in seen if r.record is best)
        if name != leader:
            runs = [x for x in first[name].runs if dates[x] == date] or first[name].runs
            out.append({"date": date, "name": name, "value": best.get(lead.key),
                        "run": runs[0]})
            leader = name
    return out


def _conflict_records(groups: list[tuple[list[str], pd.DataFrame]]
                      ) -> list[tuple[list[str], dict[str, Any]]]:
    """Each agreeing group of a conflicted entry with its own set means (first run's rows)."""
    out = []
    for ids, rows in groups:
        s = summarize_measured(rows)
        out.append((ids, s.to_dict(orient="records")[0] if len(s) else {}))
    return out


def jobs(requested: int | None = None) -> int:
    """Worker processes for ranking the tables: ``requested``, else the usable CPUs (max 8)."""
    if requested:
        return max(1, int(requested))
    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not Linux
        return max(1, min(8, os.cpu_count() or 1))


def _rank_tables(frames: list[pd.DataFrame], workers: int) -> list[list[Leaderboard]]:
    """``leaderboards`` of each frame, in worker processes when there are several (the tables
    are independent, so the result is the same whatever the number of workers)."""
    if workers <= 1 or len(frames) < 2 * workers:
        return [leaderboards(f) for f in frames]
    methods = mp.get_all_start_methods()
    ctx = mp.get_context("fork" if "fork" in methods else methods[0])
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        return list(pool.map(leaderboards, frames, chunksize=max(1, len(frames) // (4 * workers))))


def _boards_of(ranked: pd.DataFrame, paper: pd.DataFrame, workers: int
               ) -> dict[tuple, Leaderboard]:
    """The ranked table (``irnbench.leaderboard.leaderboards``) of each table key, dataset
    fingerprint and protocol version, with the paper rows of its dataset beside it."""
    by = [*TABLE_KEYS, "fingerprint", "protocol_version"]
    lower = paper["dataset"].map(as_text).str.lower()
    keys, frames = [], []
    for key, part in ranked.groupby(by, sort=False, dropna=False):
        named = dict(zip(by, key, strict=True))
        beside = paper[lower == as_text(named["dataset"]).lower()]
        keys.append((as_text(named["fingerprint"]), as_text(named["protocol_version"])))
        frames.append(pd.concat([part, beside], ignore_index=True) if len(beside) else part)
    out: dict[tuple, Leaderboard] = {}
    for (fp, pv), boards in zip(keys, _rank_tables(frames, workers), strict=True):
        for b in boards:
            out[(*b.key, fp, pv)] = b
    return out


def _board_order(key: tuple) -> tuple:
    """Boards by task, setting (naturally), condition (none first), dataset, fingerprint."""
    t = dict(zip(TABLE_KEYS, key[:-2], strict=True))
    cond = [(t[c] is not None, natural_key(t[c]) if t[c] is not None else []) for c in
            CONDITION_KEYS]
    return (t["task"], natural_key(t["setting"]), cond, t["dataset"].lower(), t["dataset"],
            key[-2], key[-1])


def merge(runs: Sequence[SiteRun], rows: pd.DataFrame, workers: int | None = None) -> Merged:
    """The site's boards from canonical rows (measured rows of ``runs``, in run order, and
    paper rows); ``runs`` are in the site's order (date, then id). ``workers``: processes
    that rank the tables (default: one per usable CPU)."""
    measured = rows[rows["source"] == "measured"]
    paper = rows[rows["source"] != "measured"]
    ranked, entries, conflicts = _entries(measured, runs)
    tables = _boards_of(ranked, paper, jobs(workers))
    order = {r.id: i for i, r in enumerate(runs)}
    dates = {r.id: r.date for r in runs}
    boards: dict[tuple, SiteBoard] = {}
    for e in entries:
        bkey = (*_table_of(e.key), e.key[-2], e.key[-1])
        if bkey not in boards:
            table = tables.get(bkey) or Leaderboard(*_table_of(e.key), lead=None,
                                                    reference=None, rows=[])
            pv = int(bkey[-1]) if bkey[-1] else None
            t = dict(zip(TABLE_KEYS, bkey[:-2], strict=True))
            cond = [f"q{t[k]}" if k == "quality" else t[k] for k in CONDITION_KEYS
                    if t[k] is not None]
            boards[bkey] = SiteBoard(table, bkey[-2], pv, slug(
                t["task"], t["setting"], *cond, t["dataset"], bkey[-2][:12], f"p{bkey[-1]}"))
        sb = boards[bkey]
        sb.entries[e.name] = e
        if e.key in conflicts:
            sb.conflicts.append(Conflict(e, _conflict_records(conflicts[e.key])))
    out, slugs = [], set()
    for bkey in sorted(boards, key=_board_order):
        sb = boards[bkey]
        if sb.slug in slugs:  # two keys that read the same once made plain
            sb.slug = slug(sb.slug, repr(bkey))
        slugs.add(sb.slug)
        sb.runs = sorted({r for e in sb.entries.values() for r in e.runs}, key=order.get)
        sb.timeline = _timeline(sb, order, dates)
        out.append(sb)
    return Merged(list(runs), rows, out, unmatched_papers(paper, [b.board for b in out]))
