"""Run folders read back from disk, and merged: what every report (HTML or text) starts from.

Merging several runs: measured rows are concatenated (a row measured twice — same method,
weights, setting, quality, dataset, image and draw — keeps the later run's numbers, and a note
says so); paper-reported rows are de-duplicated.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from irnbench.leaderboard import normalise
from irnbench.results import GROUP_KEYS, frame, load_run

__all__ = ["RunData", "load_runs", "merge_runs", "protocols_for", "training_budgets"]


@dataclass
class RunData:
    """One run folder, as read back from disk."""

    path: Path
    df: pd.DataFrame
    meta: dict[str, Any]
    visuals: list[dict[str, Any]] = field(default_factory=list)  #: index.json entries
    visuals_dir: Path | None = None


def load_runs(run_dirs: Iterable[str | Path]) -> list[RunData]:
    """Read each run folder (``results.json``; ``visuals/index.json`` when present)."""
    runs = []
    for d in run_dirs:
        d = Path(d)
        df, meta = load_run(d)
        vdir = d / "visuals"
        index = vdir / "index.json"
        visuals = json.loads(index.read_text()) if index.is_file() else []
        runs.append(RunData(d, df, meta, visuals, vdir))
    if not runs:
        raise ValueError("render_report needs at least one run folder")
    return runs


def merge_runs(runs: Sequence[RunData]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """(measured rows with a ``run`` column, de-duplicated paper rows, merge notes)."""
    measured, papers, notes = [], [], []
    for i, r in enumerate(runs):
        df = normalise(r.df)
        m = df[df["source"] == "measured"].copy()
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
        cols = [c for c in pap.columns if c not in ("image", "draw")]
        as_text = pap[cols].astype(str)
        pap = pap[~as_text.duplicated()].reset_index(drop=True)
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
