"""Everything the HTML report shows, as plain dicts (no HTML here; the templates do the markup).

:func:`build_context` gathers the header, environment, leaderboards (``tables``), codec-quality
matrices (``quality``), pivots (``pivot``), per-image tables, visual comparisons and data notes
of loaded runs (``runs``).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any

import pandas as pd

from irnbench.leaderboard import as_text, normalise, summarize_measured
from irnbench.report.per_image import per_image_tables
from irnbench.report.pivot import measured_pivots, published_pivots
from irnbench.report.quality import quality_matrix_tables
from irnbench.report.runs import RunData, dataset_labels, merge_runs, protocols_for
from irnbench.report.tables import leaderboard_tables
from irnbench.report.visuals import visual_groups
from irnbench.results import BOOTSTRAP

__all__ = ["LEGEND", "PUBLISHED_TITLE", "build_context"]

LEGEND = {
    "measured": "computed by this run, under the protocol stated above the table",
    "paper-reported": "quoted from the cited publication, not re-measured here; a footnote "
    "gives its protocol where it differs from or is unconfirmed against irnbench's",
}
PUBLISHED_TITLE = "Published results (not measured in this run)"


def _modcrop_summary(measured: pd.DataFrame) -> dict[str, Any]:
    """Which measured images were modcropped (per setting), and how many distinct images."""
    if not len(measured):
        return {"images": 0, "items": []}
    seen: dict[tuple, str] = {}
    for r in measured.to_dict(orient="records"):
        note = as_text(r.get("notes"))
        if note.startswith("modcropped"):
            seen.setdefault((as_text(r.get("dataset")), as_text(r.get("image")),
                             as_text(r.get("setting"))), note)
    return {
        "images": len({(ds, img) for ds, img, _ in seen}),
        "items": [f"{ds}/{img} ({setting}): {note}" for (ds, img, setting), note in seen.items()],
    }


def _environment(runs: Sequence[RunData]) -> dict[str, Any]:
    keys = ["device", "platform", "torch threads"]
    versions: list[str] = []
    for r in runs:
        versions += [k for k in (r.meta.get("versions") or {}) if k not in versions]
    cols = []
    for r in runs:
        m = r.meta
        vals = {"device": as_text(m.get("device")), "platform": as_text(m.get("platform")),
                "torch threads": as_text(m.get("torch_threads"))}
        for k in versions:
            vals[k] = as_text((m.get("versions") or {}).get(k))
        cols.append(vals)
    rows = [{"key": k, "values": [c.get(k, "") for c in cols]} for k in keys + versions]
    return {"runs": [r.path.name or str(r.path) for r in runs], "rows": rows}


def _header(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    """Per run: folder, version, commit, command, date and what it measured (a dataset name
    that two runs use for different images with the fingerprint its tables show)."""
    out = []
    for r, shown in zip(runs, dataset_labels(runs)[0], strict=True):
        m = r.meta
        settings = m.get("settings") or []
        out.append({
            "folder": r.path.name or str(r.path),
            "version": as_text(m.get("irnbench_version")) or "unknown",
            "commit": as_text(m.get("git_commit")) or "unknown (not run from a git checkout)",
            "command": as_text(m.get("command")) or "unknown",
            "date": as_text(m.get("date")) or "unknown",
            "task": as_text(m.get("task")),
            "settings": ", ".join(
                ", ".join(f"{k}={v}" for k, v in s.items()) if isinstance(s, dict) else str(s)
                for s in settings),
            "datasets": ", ".join(
                f"{shown.get(as_text(d.get('name')), d.get('name'))} ({d.get('images')} images)"
                if isinstance(d, dict) else str(d)
                for d in (m.get("datasets") or [])),
            "methods": ", ".join(str(x) for x in (m.get("methods") or [])),
            "draws": as_text(m.get("draws")),
            "trained": [str(t) for t in (m.get("trained") or [])],
        })
    return out


def _methods_info(runs: Sequence[RunData]) -> list[dict[str, Any]]:
    info: dict[str, dict[str, Any]] = {}
    for r in runs:
        for name, d in (r.meta.get("methods_info") or {}).items():
            if name not in info and isinstance(d, dict):
                info[name] = {"name": name, "description": as_text(d.get("description")),
                              "citation": as_text(d.get("citation")),
                              "stochastic": bool(d.get("stochastic"))}
    return list(info.values())


def _measured_keys(summary: pd.DataFrame) -> set[tuple[str, str, str]]:
    if not len(summary):
        return set()
    return {(str(t), str(s), str(d).lower()) for t, s, d in
            zip(summary["task"], summary["setting"], summary["dataset"], strict=True)}


def _notes(runs: Sequence[RunData]) -> list[str]:
    notes: list[str] = []
    for r in runs:
        prefix = f"[{r.path.name}] " if len(runs) > 1 else ""
        for n in r.meta.get("notes") or []:
            if prefix + str(n) not in notes:
                notes.append(prefix + str(n))
    return notes


def build_context(runs: Sequence[RunData], generated: str | None = None) -> dict[str, Any]:
    """Everything the template shows, from loaded runs (pure: no file is written)."""
    measured, paper, merge_notes = merge_runs(runs)
    metas = [r.meta for r in runs]
    df = pd.concat([measured, paper], ignore_index=True) if len(paper) else measured
    summary = summarize_measured(measured)
    tables = leaderboard_tables(df, metas, summary=summary)
    quality_tables = quality_matrix_tables(df, summary, metas)
    for t in quality_tables:
        t["protocol"] = protocols_for(metas, None, t["task"], t["setting"])
    visuals, visual_problems = visual_groups(runs)
    tasks = list(dict.fromkeys(as_text(m.get("task")) for m in metas if m.get("task")))
    return {
        "title": "irnbench report" + (f" — {', '.join(tasks)}" if tasks else ""),
        "generated": generated
        or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "runs": _header(runs),
        "environment": _environment(runs),
        "legend": LEGEND,
        "bootstrap": BOOTSTRAP,
        "baseline_given": False,
        "leaderboards": [t for t in tables if t["section"] == "measured"],
        "pivots": measured_pivots(summary, normalise(paper)) if len(summary) else [],
        "published": published_pivots(normalise(paper), _measured_keys(summary)),
        "published_title": PUBLISHED_TITLE,
        "quality_tables": quality_tables,
        #: "JPEG", "WebP" or "JPEG and WebP": the codecs of the quality matrices
        "quality_codecs": " and ".join(dict.fromkeys(t["codec_label"] for t in quality_tables))
        or "JPEG",
        "per_image": per_image_tables(measured),
        "visuals": visuals,
        "notes": _notes(runs) + merge_notes + visual_problems,
        "modcrops": _modcrop_summary(measured),
        "methods": _methods_info(runs),
        "n_measured_rows": int(len(measured)),
    }
