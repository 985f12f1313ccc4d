"""Re-render the published reports in ``reports/`` so that they name no place on a machine.

Each dataset is recorded by name and content fingerprint (``irnbench.data.loading``), the
recorded command and every free-text field pass through ``irnbench.runinfo``'s path scrubbing,
and, where a row's weights label is exactly that of the weights shipped now, the run's
``weights`` record (tag, label, sha256, training budget) is filled from them. The numbers are
not touched. Usage: ``python scripts/publish_reports.py [reports | reports/FOLDER ...]`` (a
folder holding ``results.json`` is re-rendered alone; any other is searched one level down).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from irnbench.data.loading import dataset_fingerprint, resolve_dataset
from irnbench.registry import create_method, create_task
from irnbench.report import render_report
from irnbench.results import load_run, save_run
from irnbench.runinfo import public_command, scrub_record
from irnbench.runner import weights_info


def _datasets(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        ds = resolve_dataset(e["name"])
        out.append({"name": e["name"], "images": e.get("images", len(ds)),
                    "fingerprint": dataset_fingerprint(ds.records)})
    return out


def _weights(df, task: str) -> dict[str, dict[str, dict[str, Any]]]:
    """The weights record of rows whose label is that of today's shipped weights."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    rows = df[df["source"] == "measured"][["method", "setting", "weights"]].drop_duplicates()
    for method, setting, label in rows.itertuples(index=False):
        scale = {"scale": int(setting[1:])} if str(setting).startswith("x") else {}
        model = create_method(str(method), create_task(task, **scale))
        if model.weights_label == label:
            out.setdefault(str(method), {})[str(setting)] = weights_info(model)
    return out


def publish(folder: Path) -> None:
    df, meta = load_run(folder)
    meta["datasets"] = _datasets(meta.get("datasets") or [])
    meta["command"] = public_command(meta.get("command") or "")
    meta.setdefault("weights", _weights(df, meta["task"]))
    save_run(folder, df, scrub_record(meta))
    render_report([folder], folder / "report.html")
    print(f"{folder}: re-rendered")


def folders(paths: list[str]) -> list[Path]:
    """The run folders named, or found one level below the paths named (default ``reports``)."""
    out = []
    for root in map(Path, paths or ["reports"]):
        if (root / "results.json").is_file():
            out.append(root)
        else:
            out += sorted(p for p in root.iterdir() if (p / "results.json").is_file())
    return out


if __name__ == "__main__":
    for d in folders(sys.argv[1:]):
        publish(d)
