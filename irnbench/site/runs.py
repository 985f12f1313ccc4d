"""Run folders as the leaderboard site reads them: checked, identified and given provenance.

A run is refused (``RunRefused``, exit 2) when it records a protocol version this irnbench does
not know, or when the set means it records (``results.json`` ``means``, written by
``irnbench.results.save_run``) do not recompute from its own per-image rows. Every row it keeps
gains the provenance an entry is keyed by: the weights' sha256 (from the run's ``weights``
record), the dataset's content fingerprint (``datasets``), the protocol version and the run id.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from irnbench.errors import IrnbenchError
from irnbench.leaderboard import as_float, as_quality, as_text
from irnbench.protocol import PROTOCOL_VERSION
from irnbench.results import COLUMNS, GROUP_KEYS, METRIC_COLUMNS, frame

__all__ = ["KNOWN_PROTOCOLS", "PROVENANCE", "RunRefused", "SiteRun", "canonical", "check_means",
           "provenance", "read_run", "read_runs", "recompute_means", "run_info", "verify_run"]

#: Protocol versions this irnbench can rank (a run that records none is version 1).
KNOWN_PROTOCOLS = tuple(range(1, PROTOCOL_VERSION + 1))
#: Columns the site adds to the flat schema: where a row comes from.
PROVENANCE = ["weights_sha256", "fingerprint", "protocol_version", "run_id"]
_INT_COLUMNS = ("quality", "draw", "protocol_version")
_FLOAT_COLUMNS = (*METRIC_COLUMNS, "seconds", "params", "height", "width")
#: What ``data/runs.json`` keeps of a run's metadata (all the site shows or keys by).
_INFO_KEYS = ("date", "git_commit", "command", "irnbench_version", "task", "device", "draws",
              "datasets", "weights", "methods_info", "protocol")
#: Two per-image numbers agree when they differ by at most this, relative (JSON keeps floats
#: exactly; this only forgives the last bits of a re-run on another machine).
_REL_TOL = 1e-9
#: What matches a recorded set mean to a recomputed one: ``GROUP_KEYS`` but the tag, which the
#: site fills from the run's weights record where an older run left the column empty.
_MEANS_KEYS = [k for k in GROUP_KEYS if k != "tag"]


class RunRefused(IrnbenchError):
    """A run the site will not rank: unknown protocol version, or set means that do not
    recompute from its per-image rows (exit 2)."""

    exit_code = 2


@dataclass
class SiteRun:
    """One run: its id (content hash), name (folder name) and the metadata the site keeps.
    Its rows travel in one frame with every other run's (``run_id`` says whose)."""

    id: str
    name: str
    info: dict[str, Any]
    path: str = ""  #: the folder as given (messages name it)
    means: list[dict[str, Any]] | None = None  #: the set means it records, if any

    @property
    def date(self) -> str:
        return as_text(self.info.get("date"))

    @property
    def title(self) -> str:
        """How pages and messages name the run: ``NAME (DATE, ID)``."""
        return f"{self.name} ({self.date[:10] or 'undated'}, {self.id})"


def _payload(path: Path) -> tuple[bytes, dict[str, Any]]:
    results = path / "results.json"
    if not results.is_file():
        raise RunRefused(f"{path}: refused: not an irnbench run folder (no results.json)")
    raw = results.read_bytes()
    try:
        return raw, json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RunRefused(f"{path}: refused: results.json is not JSON ({exc.msg})") from None


def protocol_version(meta: Mapping[str, Any]) -> int | None:
    """The protocol version a run records (1 when it records none; ``None``: not a number)."""
    v = meta.get("protocol_version", 1)
    f = as_float(v)
    return int(f) if f is not None and not math.isinf(f) and f == int(f) else None


def _means_key(rec: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(as_quality(rec.get(k))) if k == "quality" else as_text(rec.get(k))
                 for k in _MEANS_KEYS)


def _set_name(key: tuple[str, ...]) -> str:
    """A set as a message names it: ``LABEL SETTING [QUALITY] DATASET``."""
    named = dict(zip(_MEANS_KEYS, key, strict=True))
    parts = (named["label"] or named["method"], named["setting"], named["quality"],
             named["dataset"])
    return " ".join(p for p in parts if p and p != "None")


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= _REL_TOL * max(1.0, abs(a), abs(b))


def recompute_means(df: pd.DataFrame) -> pd.DataFrame:
    """The set means of measured ok rows, by ``run_id`` and ``GROUP_KEYS``: images, draws and
    each metric's mean over draws of the per-draw mean over images, NaN skipped — what
    ``irnbench.results.summarize`` computes, in one vectorised pass over many runs."""
    ok = df[(df["source"] == "measured") & (df["status"].fillna("ok") == "ok")].copy()
    keys = ["run_id", *GROUP_KEYS]
    for c in METRIC_COLUMNS:
        ok[c] = pd.to_numeric(ok[c], errors="coerce").astype(float)
    with np.errstate(invalid="ignore"):
        per_draw = ok.groupby([*keys, "draw"], dropna=False, sort=False)[METRIC_COLUMNS].mean()
        out = per_draw.groupby(level=keys, dropna=False, sort=False).mean()
    out["draws"] = per_draw.groupby(level=keys, dropna=False, sort=False).size()
    out["images"] = ok.groupby(keys, dropna=False, sort=False)["image"].nunique()
    return out.reset_index()


def _means_problem(recomputed: dict[tuple, Mapping[str, Any]],
                   recorded: list[dict[str, Any]]) -> str | None:
    """Why a run's recorded set means are not those of its rows (``None`` when they are)."""
    stated = {_means_key(r): r for r in recorded}
    for key in sorted(set(recomputed) ^ set(stated)):
        where = "is recorded but has no per-image rows" if key in stated else "has no mean"
        return f"{_set_name(key)} {where}"
    for key, rec in stated.items():
        for col in ("images", "draws", *METRIC_COLUMNS):
            a, b = as_float(rec.get(col)), as_float(recomputed[key].get(col))
            if not _close(a, b):
                return f"{_set_name(key)}: {col} recorded {a!r}, recomputed {b!r}"
    return None


def check_means(runs: Sequence[SiteRun], rows: pd.DataFrame) -> None:
    """Refuse (``RunRefused``, the first in order) a run whose recorded set means do not
    recompute from its per-image rows (``rows``: theirs, with ``run_id``); runs that record
    none pass (written before irnbench recorded them)."""
    todo = [r for r in runs if r.means is not None]
    if not todo:
        return
    again: dict[str, dict[tuple, dict[str, Any]]] = {r.id: {} for r in todo}
    mine = rows[rows["run_id"].isin(list(again))]
    for rec in recompute_means(mine).to_dict(orient="records"):
        again[rec["run_id"]][_means_key(rec)] = rec
    # the recorded means read as rows are read (``frame``: e.g. a quality without a codec, from
    # before the codec column, is JPEG), so that they key as the recomputed ones do
    stated: dict[str, list[dict[str, Any]]] = {r.id: [] for r in todo}
    recorded = [{**m, "run_id": r.id} for r in todo for m in r.means or []]
    for rec in frame(recorded).to_dict(orient="records") if recorded else []:
        stated[rec["run_id"]].append(rec)
    for r in todo:
        problem = _means_problem(again[r.id], stated[r.id])
        if problem:
            raise RunRefused(f"{r.path}: refused: its set means do not recompute from its "
                             f"per-image rows ({problem})")


def run_info(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the site keeps of a run's metadata, JSON-clean (the same from a folder or from
    ``data/runs.json``)."""
    info = {k: meta[k] for k in _INFO_KEYS if k in meta}
    info["protocol_version"] = protocol_version(meta)
    return json.loads(json.dumps(info, default=str, sort_keys=True))


def _weights_of(info: Mapping[str, Any], spec: str, setting: str) -> Mapping[str, Any]:
    per = (info.get("weights") or {}).get(spec) or {}
    return per.get(setting) or {} if isinstance(per, Mapping) else {}


def provenance(runs: Sequence[SiteRun], rows: pd.DataFrame) -> pd.DataFrame:
    """Canonical rows of ``runs`` with an empty ``tag`` filled from the run's weights record
    and the provenance columns set (measured rows; paper rows have none)."""
    info = {r.id: r.info for r in runs}
    fps = {}
    for r in runs:
        for d in r.info.get("datasets") or []:
            fps.setdefault((r.id, as_text(d.get("name"))), as_text(d.get("fingerprint")))
    measured = (rows["source"] == "measured").to_numpy()
    cols = ("run_id", "method", "setting", "tag", "dataset")
    found: dict[tuple, tuple[str | None, str | None]] = {}
    tags, shas, fp, pv = [], [], [], []
    for rid, spec, setting, tag, ds in zip(*(rows[c] for c in cols), strict=True):
        key = (rid, spec, setting)
        if key not in found:
            w = _weights_of(info[rid], as_text(spec), as_text(setting)) if rid in info else {}
            found[key] = (as_text(w.get("tag")) or None, as_text(w.get("sha256")) or None)
        tags.append(tag or found[key][0])
        shas.append(found[key][1])
        fp.append(fps.get((rid, as_text(ds))) or None)
        pv.append(info[rid].get("protocol_version") if rid in info else None)
    def text(values: Any) -> pd.Series:
        return pd.Series(np.where(measured, np.array(values, dtype=object), None),
                         index=rows.index, dtype=object)

    rows = rows.copy()
    rows["tag"] = pd.Series(np.where(measured, np.array(tags, dtype=object),
                                     rows["tag"].to_numpy(dtype=object)), index=rows.index,
                            dtype=object)
    rows["weights_sha256"], rows["fingerprint"] = text(shas), text(fp)
    rows["run_id"] = text(rows["run_id"].to_numpy(dtype=object))
    rows["protocol_version"] = pd.array(np.where(measured, np.array(pv, dtype=object), None),
                                        dtype="Int64")
    return rows


def read_run(path: str | Path) -> tuple[SiteRun, list[dict[str, Any]]]:
    """One run folder (parsed once, as ``irnbench.results.load_run`` reads it) and its rows,
    each with its ``run_id``; ``RunRefused`` if it is not a run or records an unknown protocol
    version. Its set means are checked by :func:`check_means`."""
    path = Path(path)
    raw, payload = _payload(path)
    meta = payload.get("meta") or {}
    version = protocol_version(meta)
    if version not in KNOWN_PROTOCOLS:
        raise RunRefused(f"{path}: refused: unknown protocol version "
                         f"{meta.get('protocol_version')!r} (this irnbench knows "
                         f"{', '.join(map(str, KNOWN_PROTOCOLS))})")
    run_id = hashlib.sha256(raw).hexdigest()[:12]
    means = payload.get("means")
    run = SiteRun(run_id, path.resolve().name, run_info(meta), str(path),
                  None if means is None else list(means))
    return run, [{**r, "run_id": run_id} for r in payload.get("rows") or []]


def read_runs(paths: Iterable[str | Path]) -> tuple[list[SiteRun], pd.DataFrame]:
    """Every run folder (:func:`read_run`), their rows canonical with provenance, their set
    means checked (:func:`check_means`)."""
    runs: dict[str, SiteRun] = {}
    rows: list[dict[str, Any]] = []
    for p in paths:
        run, recs = read_run(p)
        if run.id in runs:  # one run in two folders: one run, named by the smaller name
            if run.name < runs[run.id].name:
                runs[run.id] = run
            continue
        runs[run.id] = run
        rows += recs
    df = canonical(frame(rows))
    check_means(list(runs.values()), df)
    return list(runs.values()), provenance(list(runs.values()), df)


def verify_run(path: str | Path) -> dict[str, Any]:
    """The checks of one run folder; raises ``RunRefused`` naming the run, else a summary."""
    (run,), rows = read_runs([path])
    measured = int((rows["source"] == "measured").sum())
    return {"run": str(path), "protocol_version": run.info.get("protocol_version"),
            "measured_rows": measured, "means": None if run.means is None else len(run.means)}


def _text(v: Any) -> str | None:
    if type(v) is str:
        return v or None
    t = as_text(v)
    return t or None


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in the site's exact form: the flat schema's columns plus ``PROVENANCE``, ints as
    nullable ``Int64``, numbers ``float64``, text ``str`` or ``None`` ("" is ``None``).

    Rows read back from ``data/rows.parquet`` and rows read from run folders come out equal,
    which is what makes ``leaderboard add`` byte-identical to a fresh ``build``.
    """
    out = {}
    n = len(df)
    for c in [*COLUMNS, *PROVENANCE]:
        col = df[c] if c in df.columns else pd.Series([None] * n, index=df.index, dtype=object)
        if c in _INT_COLUMNS or c in _FLOAT_COLUMNS:
            if not pd.api.types.is_numeric_dtype(col.dtype):
                col = col.map(as_float)
            vals = pd.to_numeric(col, errors="coerce").astype("float64")
            out[c] = vals.round().astype("Int64") if c in _INT_COLUMNS else vals
        else:
            out[c] = pd.Series([_text(v) for v in col], index=df.index, dtype=object)
    return pd.DataFrame(out).reset_index(drop=True)
