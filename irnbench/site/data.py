"""The site's content as plain, JSON-ready dicts: one per leaderboard, one per method, and the
index. ``data/`` publishes them as they are and the HTML pages are rendered from them, so the
page and its JSON cannot say different things."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from irnbench.leaderboard import Row, as_float, as_text
from irnbench.results import BOOTSTRAP, METRICS
from irnbench.site.cards import method_card, weight_source
from irnbench.site.merge import Conflict, Entry, Merged, SiteBoard, slug
from irnbench.site.runs import SiteRun

__all__ = ["board_data", "board_title", "channel_text", "clean", "index_data", "method_data",
           "method_slug", "methods_of"]

#: How pages write a codec of the ``codec`` column.
_CODECS = {"jpeg": "JPEG", "webp": "WebP"}


def clean(v: Any) -> Any:
    """``v`` as strict JSON holds it: NaN → ``None``, ±inf → ``"inf"`` / ``"-inf"`` (as
    ``irnbench.results`` writes them), numpy scalars → Python, recursively."""
    if isinstance(v, Mapping):
        return {str(k): clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean(x) for x in v]
    if v is None or isinstance(v, (str, bool)):
        return v
    f = as_float(v)
    if f is None:
        return None
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return int(f) if isinstance(v, (int,)) or (hasattr(v, "dtype") and v.dtype.kind in "iu") \
        else f


def method_slug(method: str) -> str:
    return slug(method)


def _metrics(rec: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for m in METRICS:
        v = as_float(rec.get(m.key))
        if v is None:
            continue
        out[m.key] = {"mean": v, "lo": rec.get(f"{m.key}_lo"), "hi": rec.get(f"{m.key}_hi"),
                      "std": rec.get(f"{m.key}_std")}
    return out


def _row(row: Row, position: int | None, entry: Entry | None) -> dict[str, Any]:
    r = row.record
    d = row.delta
    return {
        "rank": position, "kind": row.kind, "name": row.name, "method": row.method,
        "tag": as_text(r.get("tag")) if row.kind != "paper" else "paper",
        "sha256": entry.sha256 if entry else "", "weights": as_text(r.get("weights")),
        "metrics": _metrics(r),
        "delta": None if d is None else {"reference": d.reference, "metric": d.metric,
                                         "diff": d.diff, "lo": d.lo, "hi": d.hi,
                                         "images": d.images,
                                         "distinguishable": d.distinguishable},
        "images": r.get("images"), "draws": r.get("draws"), "seconds": r.get("seconds"),
        "params": r.get("params"), "runs": entry.runs if entry else [],
        "first_date": entry.first_date if entry else "",
        "error": as_text(r.get("error")), "source": as_text(r.get("reference")),
        "notes": as_text(r.get("notes")) if row.kind == "paper" else "",
    }


def _conflict(c: Conflict) -> dict[str, Any]:
    e = c.entry
    return {"name": e.name, "method": e.method, "tag": e.tag, "sha256": e.sha256,
            "groups": [{"runs": ids, "images": rec.get("images"), "draws": rec.get("draws"),
                        "metrics": _metrics(rec)} for ids, rec in c.groups]}


def _protocol(sb: SiteBoard, runs: Mapping[str, SiteRun]) -> list[str]:
    out: list[str] = []
    for rid in sb.runs:
        info = runs[rid].info
        if as_text(info.get("task")) not in ("", sb.board.task):
            continue
        text = as_text((info.get("protocol") or {}).get(sb.board.setting))
        if text and text not in out:
            out.append(text)
    return out


def board_data(sb: SiteBoard, runs: Mapping[str, SiteRun]) -> dict[str, Any]:
    """One leaderboard: its keys, rank metric, Δ reference, rows (measured best first, then
    failed, then paper-reported), conflicts, timeline and the runs behind it."""
    b = sb.board
    rows, position = [], 0
    for row in b.rows:
        if row.kind == "measured":
            position += 1
        rows.append(_row(row, position if row.kind == "measured" else None,
                         sb.entries.get(row.name) if row.kind != "paper" else None))
    dates = [runs[r].date for r in sb.runs]
    return clean({
        "slug": sb.slug, "task": b.task, "setting": b.setting, "condition": sb.condition,
        "dataset": b.dataset, "fingerprint": sb.fingerprint,
        "protocol_version": sb.protocol_version,
        "rank_metric": b.lead.key if b.lead else None, "reference": b.reference,
        "leader": next((r["name"] for r in rows if r["kind"] == "measured"), None),
        "entries": len(sb.entries), "runs": sb.runs, "last_update": max(dates, default=""),
        "protocol": _protocol(sb, runs), "rows": rows,
        "conflicts": [_conflict(c) for c in sb.conflicts], "timeline": sb.timeline,
        "bootstrap": BOOTSTRAP,
    })


def index_data(merged: Merged, boards: Sequence[dict[str, Any]], title: str) -> dict[str, Any]:
    """The index: every board's keys, leader, entries, runs and last update; every run."""
    keep = ("slug", "task", "setting", "condition", "dataset", "fingerprint",
            "protocol_version", "rank_metric", "leader", "entries", "runs", "last_update")
    return clean({
        "title": title,
        "boards": [{**{k: b[k] for k in keep}, "conflicts": len(b["conflicts"])}
                   for b in boards],
        "runs": [{"id": r.id, "name": r.name, "date": r.date,
                  "git_commit": as_text(r.info.get("git_commit")),
                  "protocol_version": r.info.get("protocol_version")} for r in merged.runs],
        "methods": methods_of(boards),
    })


def methods_of(boards: Sequence[dict[str, Any]]) -> list[str]:
    """The methods measured on any board (conflicted entries included), sorted."""
    return sorted({r["method"] for b in boards for r in b["rows"] if r["kind"] != "paper"}
                  | {c["method"] for b in boards for c in b["conflicts"]})


def _weight_sets(method: str, runs: Sequence[SiteRun]) -> list[dict[str, Any]]:
    """Every weight set the runs measured ``method`` with: tag, sha256, label, settings."""
    sets: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        for spec, per in (run.info.get("weights") or {}).items():
            if not isinstance(per, Mapping):
                continue
            for setting, info in per.items():
                info = info if isinstance(info, Mapping) else {}
                tag = as_text(info.get("tag"))
                base = spec[: -len(tag) - 1] if tag and spec.endswith("." + tag) else spec
                if base != method:
                    continue
                sha = as_text(info.get("sha256"))
                s = sets.setdefault((tag, sha), {
                    "tag": tag, "sha256": sha, "label": as_text(info.get("label")),
                    "budget": as_text(info.get("budget")), "settings": [], "runs": [],
                    "source": weight_source(method, info)})
                if setting not in s["settings"]:
                    s["settings"].append(setting)
                if run.id not in s["runs"]:
                    s["runs"].append(run.id)
    return [sets[k] for k in sorted(sets)]


def method_data(method: str, merged: Merged, boards: Sequence[dict[str, Any]]
                ) -> dict[str, Any]:
    """One method: its card, weight sets, the boards it appears on (rank and value) and its
    paper-reported rows."""
    infos = [r.info.get("methods_info") or {} for r in merged.runs]
    on = []
    for b in boards:
        for row in b["rows"]:
            if row["method"] == method and row["kind"] != "paper":
                value = row["metrics"].get(b["rank_metric"] or "", {}).get("mean")
                on.append({"slug": b["slug"], "name": row["name"], "kind": row["kind"],
                           "rank": row["rank"], "of": sum(r["kind"] == "measured"
                                                          for r in b["rows"]),
                           "metric": b["rank_metric"], "value": value, "board": b})
        for c in b["conflicts"]:
            if c["method"] == method:
                on.append({"slug": b["slug"], "name": c["name"], "kind": "conflict",
                           "rank": None, "of": None, "metric": b["rank_metric"],
                           "value": None, "board": b})
    return clean({
        "method": method, "slug": method_slug(method), "card": method_card(method, infos),
        "weights": _weight_sets(method, merged.runs),
        "boards": [{**{k: v for k, v in o.items() if k != "board"},
                    "title": board_title(o["board"])} for o in on],
        "csv": f"{method_slug(method)}.csv",
    })


def board_title(b: Mapping[str, Any]) -> str:
    """``rescale · x2 · JPEG q30 · mini``: how pages name a board (a ``codec`` condition, where
    the table keys have one, names the codec of the quality)."""
    return " · ".join(p for p in (b["task"], b["setting"], channel_text(b.get("condition")),
                                  b["dataset"]) if p)


def channel_text(condition: Mapping[str, Any] | None) -> str:
    """A channel condition as pages write it: ``JPEG q30``, ``WebP q50``; ``""`` for none."""
    cond = dict(condition or {})
    codec = as_text(cond.pop("codec", None))
    name = _CODECS.get(codec.lower(), codec)
    parts = [f"{name or 'JPEG'} q{v}" if k == "quality" else as_text(v)
             for k, v in cond.items() if v is not None and as_text(v)]
    if name and cond.get("quality") is None:
        parts.append(name)
    return " · ".join(parts)
