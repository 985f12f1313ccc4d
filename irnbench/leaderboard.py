"""Leaderboards: what makes a table, the metric that ranks it, the ranking and the paired Δ.

One table per task × setting × channel condition (codec and quality) × dataset (``TABLE_KEYS``). A
table is ranked by the metric its task declares (``Task.rank_metric``): rescaling and compression
by PSNR on Y, as IRN (Xiao et al., ECCV 2020, https://github.com/pkuxmq/Invertible-Image-Rescaling)
reports them; decolorization by PSNR on RGB, as IRN-Color's test does (Xiao et al., IJCV 2022,
arXiv:2210.04188). Each measured method's Δ is the mean per-image difference of that metric from
a reference — the baseline when given, else the table's first — with its 95 % paired bootstrap
interval (``irnbench.stats``). A method × quality summary (per codec) is ranked as its task says
(``Task.summary_rank``): by BD-rate against the codec's own curve (compression), else by the mean
of the rank metric over qualities.

A metric whose set mean is not a finite number — a per-image ``NaN`` or ``−inf``, or a value
missing on some of a method's images but present on others (``results.json`` writes NaN as
``null``) — is *not finite* (:data:`NOT_FINITE`, :func:`not_finite`): it has no mean, interval,
rank or Δ, and every format shows it as "n/a". ``+inf`` is a real value (the PSNR of an exact
copy, e.g. bicubic's LR against itself): it is shown as ∞, ranks first where higher is better
and may be the best.

The HTML report, the Markdown/LaTeX/CSV exports and :func:`compare` all read this module, so they
cannot rank a table differently.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from irnbench.channel import CODECS
from irnbench.rd import BDRateUndefined, bd_rate
from irnbench.results import (
    BOOTSTRAP,
    GROUP_KEYS,
    LEGACY_CODEC,
    METRIC_COLUMNS,
    METRICS,
    MetricSpec,
    per_image,
    summarize,
)
from irnbench.stats import align, paired_difference
from irnbench.tasks.base import Task

__all__ = [
    "TABLE_KEYS",
    "TableKey",
    "BDRate",
    "Delta",
    "Leaderboard",
    "NOT_FINITE",
    "Row",
    "as_codec",
    "as_float",
    "as_quality",
    "as_text",
    "bd_rates",
    "codec_label",
    "codec_rank",
    "compare",
    "lead_metric",
    "leaderboards",
    "method_name",
    "natural_key",
    "normalise",
    "not_finite",
    "paired_deltas",
    "rank",
    "rank_metric",
    "summary_order",
    "summary_rank",
    "summarize_measured",
    "table_key",
    "table_order",
    "task_class",
    "unmatched_papers",
]

#: What makes one leaderboard.
TABLE_KEYS = ["task", "setting", "codec", "quality", "dataset"]
#: (task, setting, codec ("" when plain), quality or None, dataset), as :func:`table_key` reads
#: it from a row.
TableKey = tuple[str, str, str, int | None, str]
_SPECS = {m.key: m for m in METRICS}
#: Column of set-level rows (and of per-image rows read from a file with ``NaN`` tokens): the
#: metric keys, comma-separated, whose value is not finite and shown as "n/a".
NOT_FINITE = "not_finite"


# --------------------------------------------------------------------------------------------
# reading cells of the flat results schema
# --------------------------------------------------------------------------------------------
def as_float(v: Any) -> float | None:
    """A float (``inf`` kept, also written as text) or ``None`` for missing / non-numeric."""
    if v is None:
        return None
    if isinstance(v, str):
        v = v.strip()
        if v in ("inf", "+inf", "Infinity"):
            return math.inf
        if v in ("-inf", "-Infinity"):
            return -math.inf
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def not_finite(rec: Mapping[str, Any], metric: str) -> bool:
    """Whether ``rec``'s ``metric`` is n/a: listed in its :data:`NOT_FINITE` column, or −inf."""
    flagged = as_text(rec.get(NOT_FINITE))
    if flagged and metric in flagged.split(","):
        return True
    return as_float(rec.get(metric)) == -math.inf


def as_quality(v: Any) -> int | None:
    """A codec quality as an int, ``None`` when the row has none."""
    f = as_float(v)
    return None if f is None or math.isinf(f) else int(round(f))


def as_codec(codec: Any, quality: Any) -> str:
    """A row's codec, lower-case: ``""`` without a quality (plain uint8), ``"jpeg"`` for a
    quality with no codec recorded (results written before the ``codec`` column)."""
    if as_quality(quality) is None:
        return ""
    return as_text(codec).strip().lower() or LEGACY_CODEC


def codec_label(codec: str) -> str:
    """``"webp"`` → ``"WebP"`` (``CODECS``); an unknown codec as it is, upper-case."""
    return CODECS.get(codec, codec.upper())


def codec_rank(codec: str) -> tuple[int, str]:
    """Plain first, then the codecs in ``CODECS`` order, then any other by name."""
    order = ["", *CODECS]
    return (order.index(codec), "") if codec in order else (len(order), codec)


def as_text(v: Any) -> str:
    """A text cell, ``""`` when missing (``None`` or NaN)."""
    if v is None:
        return ""
    try:
        if pd.isna(v):
            return ""
    except (TypeError, ValueError):
        pass
    return str(v)


def method_name(rec: Mapping[str, Any]) -> str:
    """A method as tables name it: the resolved ``NAME.TAG`` label, else the method."""
    return as_text(rec.get("label")) or as_text(rec.get("method"))


def table_key(rec: Mapping[str, Any]) -> TableKey:
    """The table a row belongs to: (task, setting, codec, quality, dataset)."""
    return (as_text(rec.get("task")), as_text(rec.get("setting")),
            as_codec(rec.get("codec"), rec.get("quality")), as_quality(rec.get("quality")),
            as_text(rec.get("dataset")))


def normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A copy whose ``quality`` holds ints or ``None`` (CSV and JSON give floats, NaN) and whose
    ``codec`` the codec text or ``None`` when plain (missing with a quality: JPEG)."""
    df = df.copy()
    if "quality" in df.columns:
        df["quality"] = pd.Series([as_quality(v) for v in df["quality"]], index=df.index,
                                  dtype=object)
        codecs = df["codec"] if "codec" in df.columns else [None] * len(df)
        df["codec"] = pd.Series([as_codec(c, q) or None for c, q in
                                 zip(codecs, df["quality"], strict=True)],
                                index=df.index, dtype=object)
    return df


def natural_key(s: Any) -> list[Any]:
    """Natural sort key: ``x2`` < ``x4`` < ``x16``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(s))]


def table_order(keys: Iterable[TableKey], task_order: Sequence[str],
                dataset_order: Sequence[str]) -> list[TableKey]:
    """Tables in report order: task and dataset (lower-case) as first seen, settings
    naturally, the plain channel first, then each codec (``CODECS`` order) by ascending
    quality."""
    def k(t: TableKey) -> tuple:
        task, setting, codec, q, ds = t
        return (
            task_order.index(task) if task in task_order else len(task_order), task,
            natural_key(setting),
            codec_rank(codec),
            -1 if q is None else q,
            dataset_order.index(ds.lower()) if ds.lower() in dataset_order else 10**6, ds,
        )

    return sorted(set(keys), key=k)


def _first_seen(df: pd.DataFrame, col: str, lower: bool = False) -> list[str]:
    values = (as_text(v).lower() if lower else as_text(v) for v in df.get(col, []))
    return list(dict.fromkeys(values))


# --------------------------------------------------------------------------------------------
# the metric a task is ranked by
# --------------------------------------------------------------------------------------------
def task_class(task: str) -> type[Task] | None:
    """The registered task class of that name (``None`` when no loaded plugin has it)."""
    from irnbench.plugins import registered_tasks

    return registered_tasks().get(task)


def rank_metric(task: str) -> str:
    """The metric the task's leaderboards are ranked by (``Task.rank_metric``); a task that no
    loaded plugin registers gets the base class's."""
    return (task_class(task) or Task).rank_metric


def summary_rank(task: str) -> str:
    """How the task's method × quality summary is ranked: ``"bd_rate"`` or ``"mean"``."""
    return (task_class(task) or Task).summary_rank


def lead_metric(rows: pd.DataFrame) -> str | None:
    """The metric one table's rows are ranked by: their task's ``rank_metric``, or ``None``
    when no row has a value of it (the table is then not ranked)."""
    tasks = {as_text(t) for t in rows["task"]} if "task" in rows.columns else set()
    if len(tasks) > 1:
        raise ValueError(f"one table holds one task, got {sorted(tasks)}")
    if not tasks:
        return None
    metric = rank_metric(tasks.pop())
    if metric in rows.columns and pd.to_numeric(rows[metric], errors="coerce").notna().any():
        return metric
    return None


def _spec(metric: str) -> MetricSpec:
    spec = _SPECS.get(metric)
    if spec is None or spec.better is None:
        raise ValueError(f"{metric!r} is not a ranked metric of irnbench.results.METRICS")
    return spec


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Delta:
    """A method's mean per-image difference from the reference on one metric, with its 95 %
    paired bootstrap interval; ``distinguishable`` when that interval excludes 0."""

    reference: str
    metric: str
    diff: float
    lo: float
    hi: float
    images: int
    distinguishable: bool


@dataclass
class Row:
    """One row of a leaderboard: a measured method (its set-level ``summarize`` record), a
    failed one, or a paper-reported number (its row of the flat schema)."""

    kind: str  #: "measured", "failed" or "paper"
    name: str  #: ``NAME.TAG`` label, else the method
    method: str
    record: dict[str, Any]
    delta: Delta | None = None

    def value(self, metric: str) -> float | None:
        """The row's value of ``metric`` (a set mean for measured rows); ``None`` when missing
        or not finite (:meth:`na`)."""
        return None if self.na(metric) else as_float(self.record.get(metric))

    def na(self, metric: str) -> bool:
        """Whether the row's ``metric`` is not finite (shown as "n/a"; see the module notes)."""
        return not_finite(self.record, metric)


@dataclass
class Leaderboard:
    """One table: its keys, the metric that ranks it, the reference of its Δ and its rows —
    measured best first, then failed, then the paper rows of the same dataset."""

    task: str
    setting: str
    codec: str  #: "jpeg", "webp"; "" for the plain uint8 channel
    quality: int | None
    dataset: str
    lead: MetricSpec | None  #: ``None``: no row has the task's rank metric; not ranked
    reference: str | None  #: the Δ reference (``None``: no Δ)
    rows: list[Row]
    runs: frozenset[int] = frozenset()  #: indices of the runs that measured it
    per_image: pd.DataFrame = field(default_factory=pd.DataFrame)  #: its measured ok rows
    protocol: list[str] = field(default_factory=list)  #: filled by the report from run metas

    @property
    def key(self) -> TableKey:
        return (self.task, self.setting, self.codec, self.quality, self.dataset)

    @property
    def measured(self) -> list[Row]:
        return [r for r in self.rows if r.kind == "measured"]

    def metrics(self) -> list[MetricSpec]:
        """The metric columns with a value (or an n/a) in some row, in ``METRICS`` order."""
        return [m for m in METRICS
                if any(r.value(m.key) is not None or r.na(m.key) for r in self.rows)]


@dataclass(frozen=True)
class BDRate:
    """A method's BD-rate (percent) against the anchor curve, or why it is undefined."""

    value: float | None
    reason: str = ""


# --------------------------------------------------------------------------------------------
# ranking and Δ
# --------------------------------------------------------------------------------------------
def rank(records: Sequence[Mapping[str, Any]], metric: str | None) -> list[Mapping[str, Any]]:
    """Records best first by ``metric`` (missing and not-finite values last, ties in their given
    order)."""
    if metric is None:
        return list(records)
    sign = -1.0 if _spec(metric).better == "higher" else 1.0

    def key(rec: Mapping[str, Any]) -> tuple[bool, float]:
        v = None if not_finite(rec, metric) else as_float(rec.get(metric))
        return v is None, sign * (v if v is not None else 0.0)

    return sorted(records, key=key)


def paired_deltas(rows: pd.DataFrame, reference: str, metric: str) -> dict[str, Delta]:
    """Each method's (``name`` column) Δ of ``metric`` from ``reference`` on the images both
    measured (``BOOTSTRAP``); a stochastic method's draws are averaged per image first, so
    images are resampled, not draws. A method that shares no finite image with the reference
    gets none."""
    per_method = {str(n): per_image(g, metric) for n, g in rows.groupby("name", sort=False)}
    if reference not in per_method:
        return {}
    out = {}
    for name, (images, values) in per_method.items():
        a, b = align(images, values, *per_method[reference])
        ci = paired_difference(a, b, **BOOTSTRAP)
        if ci.n == 0:
            continue
        out[name] = Delta(reference, metric, ci.mean, ci.lo, ci.hi, ci.n,
                          bool(name != reference and ci.excludes_zero))
    return out


def _baseline(baseline: str | None, rows: pd.DataFrame) -> str | None:
    """``baseline`` as the table names it (a run's ``irn`` is the table's ``irn.cpu``)."""
    if baseline is None or not len(rows):
        return None
    names = rows[["method", "name"]].drop_duplicates()
    for col in ("name", "method"):
        hit = names[names[col].astype(str) == baseline]
        if len(hit):
            return str(hit["name"].iloc[0])
    return None


def _not_finite_groups(measured: pd.DataFrame) -> dict[tuple[str, ...], list[str]]:
    """Set-level row key (``GROUP_KEYS`` as text) → its metrics with no finite mean: a
    per-image ``NaN`` token (:data:`NOT_FINITE`) or ``−inf``, or a value missing on some of the
    group's ok rows but present on others."""
    ok = measured[measured["status"].fillna("ok") == "ok"]
    out: dict[tuple[str, ...], list[str]] = {}
    for key, g in ok.groupby(GROUP_KEYS, dropna=False, sort=False):
        tokens = set(",".join(as_text(v) for v in g.get(NOT_FINITE, [])).split(","))
        bad = []
        for m in METRIC_COLUMNS:
            v = pd.to_numeric(g[m], errors="coerce")
            present = v.notna()
            if m in tokens or (present.any() and (not present.all() or (v == -np.inf).any())):
                bad.append(m)
        if bad:
            out[tuple(as_text(k) for k in key)] = bad
    return out


def _mark_not_finite(summary: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """``summary`` with its not-finite metrics blanked (mean, interval, spread) and listed in
    its :data:`NOT_FINITE` column (``""`` elsewhere)."""
    summary[NOT_FINITE] = ""
    groups = _not_finite_groups(measured) if len(summary) else {}
    for idx, rec in zip(summary.index, summary[GROUP_KEYS].to_dict(orient="records"),
                        strict=True):
        bad = groups.get(tuple(as_text(rec[k]) for k in GROUP_KEYS))
        if not bad or as_text(summary.at[idx, "status"]) == "failed":
            continue
        for m in bad:
            for col in (m, f"{m}_lo", f"{m}_hi", f"{m}_std"):
                summary.loc[idx, col] = np.nan
        summary.at[idx, NOT_FINITE] = ",".join(bad)
    return summary


def summarize_measured(df: pd.DataFrame, intervals: bool = True) -> pd.DataFrame:
    """``results.summarize`` of the measured rows, codec and quality normalised (empty frame
    if none); metrics without a finite set mean are blanked and listed in :data:`NOT_FINITE`."""
    measured = normalise(df[df["source"] == "measured"]) if len(df) else df
    if not len(measured):
        return pd.DataFrame()
    with np.errstate(invalid="ignore"):  # std of [inf, inf] (a lossless LR) is NaN: fine
        summary = normalise(summarize(measured, intervals=intervals))
    return _mark_not_finite(summary, measured)


def _board(key: TableKey, recs: list[dict[str, Any]], per_image_rows: pd.DataFrame,
           papers: list[dict[str, Any]], baseline: str | None) -> Leaderboard:
    """One leaderboard from its set-level records, per-image rows and paper rows."""
    ok = [r for r in recs if as_text(r.get("status")) in ("", "ok")]
    failed = [r for r in recs if as_text(r.get("status")) == "failed"]
    metric = lead_metric(pd.DataFrame(ok)) if ok else None
    lead = _spec(metric) if metric else None
    rows = [Row("measured", method_name(r), as_text(r.get("method")), r)
            for r in rank(ok, metric)]
    if baseline is not None:
        reference = _baseline(baseline, per_image_rows)
    else:
        reference = rows[0].name if lead and rows and rows[0].value(lead.key) is not None \
            else None
    if lead and reference:
        # a not-finite mean has no Δ, and a not-finite reference gives none to anyone
        na = {r.name for r in rows if r.na(lead.key)}
        deltas = {} if reference in na else paired_deltas(per_image_rows, reference, lead.key)
        for r in rows:
            r.delta = None if r.name in na else deltas.get(r.name)
        reference = reference if deltas else None
    rows += [Row("failed", method_name(r), as_text(r.get("method")), r) for r in failed]
    rows += [Row("paper", method_name(r), as_text(r.get("method")), r) for r in papers]
    return Leaderboard(*key, lead=lead, reference=reference if lead else None, rows=rows,
                       per_image=per_image_rows)


def _lower(key: TableKey) -> TableKey:
    """Paper rows meet measured ones whatever the dataset's case (``Set5`` vs ``set5``)."""
    return key[0], key[1], key[2], key[3], key[4].lower()


def leaderboards(df: pd.DataFrame, baseline: str | None = None,
                 summary: pd.DataFrame | None = None) -> list[Leaderboard]:
    """The leaderboards of a flat results frame, in report order.

    Measured rows (per image; a ``run`` column indexes the merged runs) make the tables;
    paper-reported rows of the same task, setting, codec, quality and dataset
    (case-insensitive) sit below them. ``baseline`` names the Δ reference as tables do
    (``irn.cpu``) or as the run did (``irn``); default: each table's first. ``summary``: a
    precomputed :func:`summarize_measured` of ``df``.
    """
    df = normalise(df) if len(df) else df
    measured = df[df["source"] == "measured"] if len(df) else df
    paper = df[df["source"] != "measured"] if len(df) else df
    summary = summarize_measured(measured) if summary is None else summary
    recs: dict[TableKey, list[dict[str, Any]]] = {}
    for r in summary.to_dict(orient="records") if len(summary) else []:
        recs.setdefault(table_key(r), []).append(r)
    ok = measured[measured["status"].fillna("ok") == "ok"].copy() if len(measured) else measured
    per_key: dict[TableKey, pd.DataFrame] = {}
    if len(ok):
        ok["name"] = [method_name(r) for r in ok.to_dict(orient="records")]
        keys = [table_key(r) for r in ok.to_dict(orient="records")]
        per_key = {k: g for k, g in ok.groupby(pd.Series(keys, index=ok.index), sort=False)}
    beside: dict[TableKey, list[dict[str, Any]]] = {}
    for r in paper.to_dict(orient="records") if len(paper) else []:
        beside.setdefault(_lower(table_key(r)), []).append(r)
    runs_of: dict[TableKey, set[int]] = {}
    for r in measured.to_dict(orient="records") if len(measured) else []:
        run = as_float(r.get("run"))
        runs_of.setdefault(table_key(r), set()).update([] if run is None else [int(run)])
    boards = []
    for key in table_order(recs, _first_seen(measured, "task"),
                           _first_seen(measured, "dataset", lower=True)):
        board = _board(key, recs[key], per_key.get(key, pd.DataFrame()),
                       beside.get(_lower(key), []), baseline)
        board.runs = frozenset(runs_of.get(key, ()))
        boards.append(board)
    return boards


def unmatched_papers(df: pd.DataFrame, boards: Sequence[Leaderboard]) -> list[dict[str, Any]]:
    """The paper-reported rows of ``df`` that sit beside no measured table."""
    measured = {_lower(b.key) for b in boards}
    paper = normalise(df[df["source"] != "measured"]) if len(df) else df
    return [r for r in (paper.to_dict(orient="records") if len(paper) else [])
            if _lower(table_key(r)) not in measured]


def compare(df: pd.DataFrame, baseline: str | None = None,
            metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (table, method, metric): ``reference``, ``diff`` (method − reference),
    ``diff_lo`` / ``diff_hi``, ``images`` and ``distinguishable``.

    The reference is the table's (``baseline`` when given, else the method ranked first by the
    task's metric); ``metrics`` defaults to that rank metric.
    """
    boards = leaderboards(df, baseline, summarize_measured(df, intervals=False) if len(df)
                          else pd.DataFrame())
    out = []
    for b in boards:
        if b.reference is None or b.lead is None:
            continue
        for metric in metrics or [b.lead.key]:
            na = {r.name for r in b.measured if r.na(metric)}
            if b.reference in na:
                continue
            for name, d in paired_deltas(b.per_image, b.reference, metric).items():
                if name in na:
                    continue
                out.append({**dict(zip(TABLE_KEYS, b.key, strict=True)), "label": name,
                            "reference": d.reference, "metric": metric, "diff": d.diff,
                            "diff_lo": d.lo, "diff_hi": d.hi, "images": d.images,
                            "distinguishable": d.distinguishable})
    return pd.DataFrame(out)


# --------------------------------------------------------------------------------------------
# method × quality summaries (one per codec)
# --------------------------------------------------------------------------------------------
def bd_rates(curves: Mapping[str, Sequence[Mapping[str, Any]]], anchor: str,
             metric: str) -> dict[str, BDRate]:
    """Each curve's BD-rate on ``metric`` against the ``anchor`` curve (points with ``bpp``
    and ``metric``; ``irnbench.rd.bd_rate``); the anchor's own is 0."""
    def pts(curve: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
        ok = [(p["bpp"], p[metric]) for p in curve
              if p.get("bpp") is not None and p.get(metric) is not None]
        return [b for b, _ in ok], [v for _, v in ok]

    out = {}
    for name, curve in curves.items():
        if name == anchor:
            out[name] = BDRate(0.0)
            continue
        try:
            out[name] = BDRate(bd_rate(*pts(curves[anchor]), *pts(curve)))
        except BDRateUndefined as exc:
            out[name] = BDRate(None, str(exc))
    return out


def summary_order(task: str, curves: Mapping[str, Sequence[Mapping[str, Any]]],
                  anchor: str | None, qualities: Iterable[int] | None = None) -> list[str]:
    """A method × quality summary's methods, strongest first.

    ``summary_rank == "bd_rate"`` with an anchor: by BD-rate of the task's rank metric against
    it (the anchor at 0 %; undefined BD-rates after the defined ones); otherwise, and among
    undefined BD-rates, by the mean of the rank metric over ``qualities`` (default: all).
    """
    metric = rank_metric(task)
    sign = -1.0 if _spec(metric).better == "higher" else 1.0
    shown = set(qualities) if qualities is not None else None
    bd = bd_rates(curves, anchor, metric) if anchor and summary_rank(task) == "bd_rate" else {}

    def mean(curve: Sequence[Mapping[str, Any]]) -> float:
        vals = [v for p in curve if shown is None or p["quality"] in shown
                for v in [as_float(p.get(metric))] if v is not None]
        return sign * float(np.mean(vals)) if vals else math.inf

    def key(name: str) -> tuple[bool, float, float]:
        value = bd.get(name, BDRate(None)).value
        return value is None, value if value is not None else 0.0, mean(curves[name])

    return sorted(curves, key=key)
