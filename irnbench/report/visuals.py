"""The report's visual comparisons: crops of each run's ``visuals/`` inlined as data URIs."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from irnbench.leaderboard import as_codec, as_quality, as_text, codec_rank, natural_key
from irnbench.report.formatting import quality_label
from irnbench.report.runs import RunData, dataset_labels

__all__ = ["visual_groups"]


def _data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _collect(runs: Sequence[RunData]) -> tuple[dict[tuple, dict[str, Any]], list[str]]:
    """Crops by (setting, codec, quality, dataset, image, box); the first run that has one
    wins (an entry without a codec but with a quality is JPEG). Datasets are named as the
    tables name them, so two image sets that share a name never share a row."""
    entries: dict[tuple, dict[str, Any]] = {}
    problems: list[str] = []
    for run, labels in zip(runs, dataset_labels(runs)[0], strict=True):
        for e in run.visuals:
            q = as_quality(e.get("quality"))
            codec = as_codec(e.get("codec"), q)
            box = tuple(int(b) for b in e.get("box", ()))
            dataset = as_text(e.get("dataset"))
            key = (as_text(e.get("setting")), codec, q, labels.get(dataset, dataset),
                   as_text(e.get("image")), box)
            entry = entries.setdefault(key, {
                "setting": key[0], "codec": codec, "quality": q, "dataset": key[3],
                "image": key[4], "box": box, "crops": {}, "channel_crops": {},
                "channel_label": "",
            })
            # "channel_crops": the degraded images (e.g. decolorize's 1-channel grey PNGs)
            for field_name in ("crops", "channel_crops"):
                for name, fname in (e.get(field_name) or {}).items():
                    if name in entry[field_name]:
                        continue
                    uri = None
                    if run.visuals_dir is not None:
                        # only file names inside visuals/ are read
                        uri = _data_uri(run.visuals_dir / Path(str(fname)).name)
                    if uri is None:
                        problems.append(f"visual crop {fname} of {key[4]} ({name}) is missing")
                        continue
                    entry[field_name][name] = uri
            if e.get("channel_label") and not entry["channel_label"]:
                entry["channel_label"] = as_text(e.get("channel_label"))
    return entries, problems


def _figures(entry: dict[str, Any]) -> None:
    """Add the box text and the ordered figures (GT first; the guide first) to an entry."""
    t, left, h, w = (list(entry["box"]) + [0, 0, 0, 0])[:4]
    entry["box_text"] = f"top {t}, left {left}, {w}×{h} px of the HR image"
    names = sorted(entry["crops"], key=lambda n: (n != "GT",))  # methods in recorded order
    entry["figures"] = [{"label": "GT (HR)" if n == "GT" else n, "src": entry["crops"][n]}
                        for n in names]
    chan = entry["channel_label"] or "degraded"
    cnames = sorted(entry["channel_crops"], key=lambda n: (n != "guide",))
    entry["channel_figures"] = [
        {"label": f"{chan} guide (uint8)" if n == "guide" else f"{chan} of {n}",
         "src": entry["channel_crops"][n]} for n in cnames]


def visual_groups(runs: Sequence[RunData]) -> tuple[list[dict[str, Any]], list[str]]:
    """Visual comparisons (crops inlined as data URIs) grouped by setting, codec and quality;
    crops of the same image, setting, codec, quality and box from several runs share one row."""
    entries, problems = _collect(runs)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for entry in entries.values():
        if not entry["crops"]:
            continue
        _figures(entry)
        groups.setdefault((entry["setting"], entry["codec"], entry["quality"]), []).append(entry)
    out = []
    for (setting, codec, q), items in sorted(
            groups.items(), key=lambda kv: (natural_key(kv[0][0]), codec_rank(kv[0][1]),
                                            -1 if kv[0][2] is None else kv[0][2])):
        out.append({"title": " · ".join(p for p in (setting, quality_label(q, codec)) if p),
                    "items": items})
    return out, problems
