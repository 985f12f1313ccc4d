"""The HTML pages' contexts: the ``data`` dicts with their numbers written as the report writes
them (``irnbench.report.formatting``), cells carrying exact sort keys, and relative links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from irnbench.leaderboard import as_float, as_text
from irnbench.report.formatting import (
    format_number,
    format_params,
    format_seconds,
    int_text,
    sort_key,
)
from irnbench.results import METRICS, MetricSpec
from irnbench.site.data import board_title, channel_text, method_slug
from irnbench.site.runs import SiteRun

__all__ = ["board_page", "index_page", "method_page"]

_SPECS = {m.key: m for m in METRICS}


def _num(v: Any, text: str) -> dict[str, Any]:
    return {"text": text, "sort": sort_key(v), "cls": "num"}


def _metric_cell(metrics: Mapping[str, Any], m: MetricSpec, best: bool) -> dict[str, Any]:
    v = (metrics.get(m.key) or {})
    mean, lo, hi = v.get("mean"), as_float(v.get("lo")), as_float(v.get("hi"))
    ci = None
    if lo is not None and hi is not None and lo != hi:
        ci = f"[{format_number(lo, m.digits)}, {format_number(hi, m.digits)}]"
    return {**_num(mean, format_number(mean, m.digits)), "ci": ci, "bold": best}


def _delta_cell(d: Mapping[str, Any] | None, name: str) -> dict[str, Any]:
    if not d:
        return {"text": "—", "sort": "", "cls": "num"}
    if name == d["reference"]:
        return _num(0.0, "reference")
    digits = _SPECS[d["metric"]].digits if d["metric"] in _SPECS else 2
    diff, lo, hi = as_float(d["diff"]), as_float(d["lo"]), as_float(d["hi"])
    if diff is None:  # no image in common with the reference
        return {"text": "—", "sort": "", "cls": "num", "title": "no image in common"}
    return {**_num(diff, f"{diff:+.{digits}f}" + ("*" if d["distinguishable"] else "")),
            "ci": f"[{lo:+.{digits}f}, {hi:+.{digits}f}]" if lo is not None and hi is not None
            else None}


def _shown(board: Mapping[str, Any]) -> list[MetricSpec]:
    used = {k for r in board["rows"] for k in r["metrics"]}
    return [m for m in METRICS if m.key in used]


def _best(board: Mapping[str, Any], shown: list[MetricSpec]) -> dict[str, float | None]:
    """The best measured value of each metric (bold in the table; ties all bold)."""
    out: dict[str, float | None] = {}
    for m in shown:
        vals = [as_float((r["metrics"].get(m.key) or {}).get("mean")) for r in board["rows"]
                if r["kind"] == "measured"]
        vals = [v for v in vals if v is not None]
        out[m.key] = None if m.better is None or len(vals) < 2 else (
            max(vals) if m.better == "higher" else min(vals))
    return out


def _row(r: Mapping[str, Any], shown: list[MetricSpec], best: Mapping[str, Any],
         run_names: Mapping[str, str]) -> dict[str, Any]:
    metrics = [_metric_cell(r["metrics"], m, best[m.key] is not None and as_float(
        (r["metrics"].get(m.key) or {}).get("mean")) == best[m.key]) for m in shown]
    sha = r["sha256"]
    return {
        "kind": r["kind"], "tag": r["tag"] or "none", "method": r["method"],
        "href": f"../methods/{method_slug(r['method'])}.html" if r["kind"] != "paper" else
        None,
        "cells": [
            _num(r["rank"], int_text(r["rank"])) if r["rank"] else {"text": "", "sort": ""},
            {"text": r["name"], "badge": r["kind"], "ref": r["source"]},
            {"text": r["tag"] if r["kind"] != "paper" else "—"},
            {"text": r["weights"] or "—", "sub": sha[:12], "title": sha, "cls": "weights"},
            *metrics,
            _delta_cell(r["delta"], r["name"]),
            _num(r["images"], int_text(r["images"])),
            _num(r["draws"], int_text(r["draws"])),
            _num(r["params"], format_params(r["params"])),
            _num(r["seconds"], format_seconds(r["seconds"])),
            {"text": str(len(r["runs"])) if r["runs"] else "", "sort": str(len(r["runs"])),
             "cls": "num", "title": "; ".join(run_names[x] for x in r["runs"])},
            {"text": r["first_date"][:10], "sort": r["first_date"]},
        ],
        "error": r["error"] if r["kind"] == "failed" else "",
    }


def _columns(shown: list[MetricSpec], lead: str | None) -> list[dict[str, str]]:
    cols = [("#", "num", "rank by the task's metric"), ("Method", "text", "entry name"),
            ("Tag", "text", "weights tag"), ("Weights", "text", "weights label and sha256")]
    cols += [(m.label, "num", m.title) for m in shown]
    delta = f"Δ {_SPECS[lead].label}" if lead in _SPECS else "Δ"
    cols += [(delta, "num", "mean per-image difference from the reference, 95 % paired "
              "bootstrap interval; * the interval excludes 0"),
             ("Images", "num", "images"), ("Draws", "num", "z draws per image"),
             ("Params", "num", "parameters"), ("s/img", "num", "seconds per image"),
             ("Runs", "num", "runs that measured this entry (hover: which)"),
             ("Since", "text", "date of the first run that measured it")]
    return [{"label": a, "type": t, "title": b} for a, t, b in cols]


def _conflicts(board: Mapping[str, Any], run_names: Mapping[str, str]) -> list[dict]:
    lead = board["rank_metric"]
    spec = _SPECS.get(lead or "")
    out = []
    for c in board["conflicts"]:
        groups = []
        for g in c["groups"]:
            v = (g["metrics"].get(lead or "") or {}).get("mean")
            groups.append({"runs": [run_names[x] for x in g["runs"]],
                           "value": format_number(v, spec.digits) if spec else "",
                           "images": int_text(g["images"])})
        out.append({"name": c["name"], "tag": c["tag"] or "none", "sha256": c["sha256"],
                    "href": f"../methods/{method_slug(c['method'])}.html", "groups": groups})
    return out


def board_page(board: Mapping[str, Any], runs: Mapping[str, SiteRun]) -> dict[str, Any]:
    """The context of one leaderboard page."""
    shown = _shown(board)
    best = _best(board, shown)
    names = {rid: r.title for rid, r in runs.items()}
    rows = [_row(r, shown, best, names) for r in board["rows"]]
    spec = _SPECS.get(board["rank_metric"] or "")
    timeline = [{"date": t["date"][:10] or "undated", "name": t["name"],
                 "value": format_number(t["value"], spec.digits) if spec else "",
                 "run": names[t["run"]]} for t in board["timeline"]]
    tags = sorted({r["tag"] for r in rows})
    return {
        "title": board_title(board), "board": board, "columns": _columns(shown, spec and spec.key),
        "channel": channel_text(board["condition"]) or "none (the lossless uint8 channel)",
        "measured": [r for r in rows if r["kind"] == "measured"],
        "failed": [r for r in rows if r["kind"] == "failed"],
        "paper": [r for r in rows if r["kind"] == "paper"],
        "lead": spec.label if spec else None, "conflicts": _conflicts(board, names),
        "timeline": timeline, "tags": tags, "ncols": len(_columns(shown, None)),
        "runs": [runs[rid] for rid in board["runs"]],
    }


def index_page(index: Mapping[str, Any], boards: Sequence[Mapping[str, Any]],
               unmatched: int) -> dict[str, Any]:
    """The context of the index page."""
    spec_label = {m.key: m.label for m in METRICS}
    items = []
    for b, full in zip(index["boards"], boards, strict=True):
        lead = next((r for r in full["rows"] if r["kind"] == "measured"), None)
        value = (lead["metrics"].get(b["rank_metric"] or "") or {}).get("mean") if lead else None
        spec = _SPECS.get(b["rank_metric"] or "")
        items.append({**b, "title": board_title(b),
                      "condition_text": channel_text(b["condition"]) or "—",
                      "metric": spec_label.get(b["rank_metric"] or "", "—"),
                      "value": format_number(value, spec.digits) if spec else "",
                      "nruns": len(b["runs"])})
    return {"title": index["title"], "boards": items, "methods": index["methods"],
            "runs": index["runs"], "unmatched": unmatched}


def method_page(data: Mapping[str, Any], paper_rows: Sequence[Mapping[str, Any]]
                ) -> dict[str, Any]:
    """The context of one method page (``paper_rows``: its paper-reported rows)."""
    papers = []
    for r in paper_rows:
        vals = [f"{m.label} {format_number(r.get(m.key), m.digits)}" for m in METRICS
                if as_float(r.get(m.key)) is not None]
        q = r.get("quality")
        papers.append({"label": as_text(r.get("label")), "where": " · ".join(
            p for p in (as_text(r.get("task")), as_text(r.get("setting")),
                        f"JPEG q{int(q)}" if as_float(q) is not None else "",
                        as_text(r.get("dataset"))) if p),
            "numbers": ", ".join(vals), "source": as_text(r.get("reference"))})
    boards = []
    for b in data["boards"]:
        spec = _SPECS.get(b["metric"] or "")
        boards.append({**b, "value_text": format_number(b["value"], spec.digits) if spec
                       else "", "metric_label": spec.label if spec else ""})
    return {"title": data["method"], "m": data, "boards": boards, "papers": papers}
