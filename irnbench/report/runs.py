"""Run folders read back from disk, and merged: what every report (HTML or text) starts from.

Merging several runs: measured rows are concatenated (a row measured twice — same method,
weights, setting, quality, dataset, image and draw — keeps the later run's numbers, and a note
says so); paper-reported rows are de-duplicated. A dataset name that the runs' ``meta.json``
record with different content fingerprints (two folders called ``photos``) names different
images: its rows are kept apart as ``NAME (sha256[:8])``, never averaged together.

A ``results.json`` that cannot be read (truncated, ``[]``, no ``rows`` list) is one
:class:`UnreadableRun` line naming the file. A metric written as ``NaN`` (or ``"nan"``) is
listed in the row's ``not_finite`` column, so that the report shows it as n/a rather than
dropping it from the mean (``irnbench.leaderboard.NOT_FINITE``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from irnbench.errors import IrnbenchError
from irnbench.leaderboard import NOT_FINITE, as_text, normalise
from irnbench.results import GROUP_KEYS, METRIC_COLUMNS, frame, load_run

__all__ = ["RunData", "UnreadableRun", "dataset_labels", "load_runs", "merge_runs",
           "protocols_for", "training_budgets"]


class UnreadableRun(IrnbenchError):
    """A run folder whose ``results.json`` (or ``visuals/index.json``) cannot be read: one
    line naming the file (exit 1, as a folder without ``results.json``)."""


@dataclass
class RunData:
    """One run folder, as read back from disk."""

    path: Path
    df: pd.DataFrame
    meta: dict[str, Any]
    visuals: list[dict[str, Any]] = field(default_factory=list)  #: index.json entries
    visuals_dir: Path | None = None


def _shape_problem(payload: Any) -> str | None:
    """What keeps a parsed ``results.json`` from being a run's (``None``: nothing)."""
    if not isinstance(payload, dict):
        return (f"holds a JSON {type(payload).__name__}, not an irnbench results object "
                '({"meta": {...}, "rows": [...]})')
    rows = payload.get("rows")
    if not isinstance(rows, list):
        return "has no \"rows\" list"
    bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
    if bad is not None:
        return f"row {bad} is a JSON {type(rows[bad]).__name__}, not an object"
    if not isinstance(payload.get("meta", {}), dict):
        return "its \"meta\" is not an object"
    return None


class _NaN(float):
    """The ``NaN`` token of a JSON file, told apart from ``null`` (both read back as NaN)."""


def _not_finite_cells(path: Path) -> list[str]:
    """Per row of ``path``: the metric keys written as ``NaN`` or ``"nan"`` (comma-joined,
    ``""`` when none); ``UnreadableRun`` when the file is not a run's ``results.json``."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"),
                             parse_constant=lambda c: _NaN("nan") if c == "NaN" else float(c))
    except (OSError, UnicodeDecodeError) as exc:
        raise UnreadableRun(f"{path}: cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise UnreadableRun(f"{path}: truncated or not JSON ({exc.msg}, line {exc.lineno} "
                            f"column {exc.colno}); re-run or restore it") from None
    problem = _shape_problem(payload)
    if problem:
        raise UnreadableRun(f"{path}: {problem}; not an irnbench results.json")
    cells = []
    for r in payload["rows"]:
        keys = [k for k in METRIC_COLUMNS if isinstance(r.get(k), _NaN)
                or (isinstance(r.get(k), str) and r[k].strip().lower() == "nan")]
        cells.append(",".join(keys))
    return cells


def _visuals(vdir: Path) -> list[dict[str, Any]]:
    """``visuals/index.json`` entries (none when absent; ``UnreadableRun`` when unreadable)."""
    index = vdir / "index.json"
    if not index.is_file():
        return []
    try:
        entries = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UnreadableRun(f"{index}: cannot be read ({str(exc).splitlines()[0]})") from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise UnreadableRun(f"{index}: not a list of objects")
    return entries


def load_runs(run_dirs: Iterable[str | Path]) -> list[RunData]:
    """Read each run folder (``results.json``; ``visuals/index.json`` when present)."""
    runs = []
    for d in run_dirs:
        d = Path(d)
        path = d / "results.json"
        if not path.is_file():
            raise UnreadableRun(f"{d} holds no results.json (not an irnbench run folder)")
        cells = _not_finite_cells(path)
        try:
            df, meta = load_run(d)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UnreadableRun(f"{path}: not an irnbench results.json "
                                f"({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
        if any(cells):
            df[NOT_FINITE] = cells
        runs.append(RunData(d, df, meta, _visuals(d / "visuals"), d / "visuals"))
    if not runs:
        raise ValueError("render_report needs at least one run folder")
    return runs


def _fingerprints(run: RunData) -> dict[str, set[str]]:
    """Dataset name → the content fingerprints the run records for it (``""``: none recorded;
    names only its rows give count as unrecorded)."""
    out: dict[str, set[str]] = {}
    for d in run.meta.get("datasets") or []:
        if isinstance(d, dict) and as_text(d.get("name")):
            out.setdefault(as_text(d["name"]), set()).add(as_text(d.get("fingerprint")))
    measured = run.df[run.df["source"] == "measured"] if len(run.df) else run.df
    for name in dict.fromkeys(as_text(v) for v in measured.get("dataset", [])):
        out.setdefault(name, {""})
    return out


def dataset_labels(runs: Sequence[RunData]) -> tuple[list[dict[str, str]], list[str]]:
    """Per run, dataset name → the name its rows are shown under, and notes.

    A name that two runs record with different fingerprints (or one with and one without)
    becomes ``NAME (sha256[:8])`` (``NAME (no fingerprint)``) in every run that uses it, so
    that the tables keep the sets apart; a run that measured two sets of one name is noted
    (its rows cannot be told apart).
    """
    per_run = [_fingerprints(r) for r in runs]
    seen: dict[str, set[str]] = {}
    for fps in per_run:
        for name, prints in fps.items():
            seen.setdefault(name, set()).update(prints)
    notes = []
    for r, fps in zip(runs, per_run, strict=True):
        for name, prints in fps.items():
            if len(prints) > 1:
                notes.append(f"{r.path.name or r.path} measured {len(prints)} different image "
                             f"sets named {name!r} in one run; its rows of {name!r} mix them.")
    clash = sorted(n for n, prints in seen.items() if len(prints) > 1)
    # 8 hex digits, or the whole fingerprint where two of one name share those 8
    width = {n: 8 if len({p[:8] for p in seen[n]}) == len(seen[n]) else 64 for n in clash}
    labels = []
    for fps in per_run:
        labels.append({n: f"{n} ({next(iter(fps[n]))[:width[n]] or 'no fingerprint'})"
                       for n in clash if n in fps and len(fps[n]) == 1})
    for name in clash:
        shown = sorted({lab[name] for lab in labels if name in lab})
        notes.append(f"Dataset {name!r} names different image sets in these runs (content "
                      f"fingerprints differ); shown apart as {', '.join(shown)}.")
    return labels, notes


def _relabel(df: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """``df`` with the dataset names in ``labels`` replaced (rows of other names untouched)."""
    if not labels or not len(df):
        return df
    df = df.copy()
    df["dataset"] = [labels.get(as_text(v), v) for v in df["dataset"]]
    return df


def merge_runs(runs: Sequence[RunData]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(measured rows with a ``run`` column, de-duplicated paper rows, merge notes).

    Measured rows of a dataset name that the runs record with different fingerprints are
    relabelled first (:func:`dataset_labels`), so no table or duplicate check mixes them.
    """
    measured, papers = [], []
    labels, notes = dataset_labels(runs)
    for i, r in enumerate(runs):
        df = normalise(r.df)
        m = _relabel(df[df["source"] == "measured"], labels[i]).copy()
        m["run"] = i
        measured.append(m)
        papers.append(df[df["source"] != "measured"])
    meas = pd.concat(measured, ignore_index=True) if measured else frame([])
    if "run" not in meas.columns:
        meas["run"] = pd.Series(dtype=int)
    if len(runs) > 1 and len(meas):
        key = GROUP_KEYS + ["image", "draw"]
        dup = meas.duplicated(subset=key, keep="last")
        if dup.any():
            notes.append(
                f"{int(dup.sum())} measured row(s) appear in more than one run folder; the later "
                "folder's numbers are used."
            )
            meas = meas[~dup].reset_index(drop=True)
    pap = pd.concat(papers, ignore_index=True) if papers else frame([])
    if len(pap):
        cols = [c for c in pap.columns if c not in ("image", "draw", NOT_FINITE)]
        as_text_cells = pap[cols].astype(str)
        pap = pap[~as_text_cells.duplicated()].reset_index(drop=True)
    return meas, pap, notes


def protocols_for(metas: Sequence[dict[str, Any]], runs: Iterable[int] | None, task: str,
                  setting: str) -> list[str]:
    """Distinct protocol texts that the given runs (all runs when ``None``) state for a setting."""
    idx = range(len(metas)) if runs is None else sorted(set(runs))
    out: list[str] = []
    for i in idx:
        meta = metas[i]
        if meta.get("task") not in (None, task):
            continue
        text = (meta.get("protocol") or {}).get(setting)
        if text and text not in out:
            out.append(str(text))
    return out


def training_budgets(metas: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """(method as the run named it, setting) → the training budget its weights record."""
    out: dict[tuple[str, str], str] = {}
    for meta in metas:
        for spec, per_setting in (meta.get("weights") or {}).items():
            for setting, info in (per_setting or {}).items():
                out[(str(spec), str(setting))] = str((info or {}).get("budget") or "")
    return out
