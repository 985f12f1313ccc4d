"""The leaderboard ``run``/``eval`` print at the end: set-level rows ranked by the task's metric
(``irnbench.leaderboard``), paper-reported rows beside them, the weights used, BD-rates."""

from __future__ import annotations

import click

__all__ = ["print_leaderboard"]


def print_leaderboard(df) -> None:
    """Print the set-level table of a run (measured rows, paper-reported beside them)."""
    import pandas as pd

    from irnbench.leaderboard import as_codec, codec_label, lead_metric, rank
    from irnbench.results import METRIC_COLUMNS, summarize

    summary = summarize(df)
    measured_sets = set(summary["dataset"]) if len(summary) else set()
    papers = df[(df["source"] == "paper-reported") & df["dataset"].isin(measured_sets)]
    table = pd.concat([summary, papers], ignore_index=True) if len(papers) else summary
    if not len(table):
        click.echo("(no results)")
        return
    metric_cols = [c for c in METRIC_COLUMNS if c in table.columns and table[c].notna().any()]
    for key, g in table.groupby(["task", "setting", "codec", "quality", "dataset"],
                                dropna=False, sort=False):
        task, setting, codec, quality, dataset = key
        title = f"{task} {setting}" + (
            f" {codec_label(as_codec(codec, quality))} q{int(quality)}"
            if pd.notna(quality) else "")
        metric = lead_metric(g[g["source"] == "measured"])
        click.echo(f"\n== {title} · {dataset} ==" + (f" (ranked by {metric})" if metric else ""))
        show = pd.DataFrame(rank(g.to_dict("records"), metric), columns=g.columns)
        show["name"] = [
            f"{r.label or r.method} [{r.source}]" if r.source == "measured" else
            f"{r.label} [paper: {r.reference}]" for r in show.itertuples()
        ]
        cols = ["name"] + [c for c in metric_cols if show[c].notna().any()]
        for extra in ("seconds", "status"):
            if extra in show.columns and show[extra].notna().any():
                cols.append(extra)
        click.echo(show[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    _print_weights(summary)
    _print_bd_rates(df, summary)


def _print_weights(summary) -> None:
    """Under the tables: which weights (tag and label) each measured row ran."""
    rows = summary.drop_duplicates(["label", "weights"]) if len(summary) else summary
    if not len(rows):
        return
    click.echo("\n== weights ==")
    for r in rows.itertuples():
        click.echo(f"{r.label or r.method}: {r.weights}")


def _print_bd_rates(df, summary) -> None:
    """BD-rate of each method against the codec's own curve (compress runs), as in the report."""
    from irnbench.report.quality import quality_matrix_tables

    for t in quality_matrix_tables(df, summary, plots=False):
        if t["kind"] != "rd":
            continue
        click.echo(f"\n== BD-rate vs {t['anchor']} · {t['task']} {t['setting']} · "
                   f"{t['dataset']} (Y / RGB) ==")
        for r in t["rows"]:
            if r["kind"] == "measured" and not r["codec"]:
                y, rgb = (c["text"] + (f" ({c['reason']})" if c["reason"] else "")
                          for c in r["bd"])
                click.echo(f"{r['label']}: {y} / {rgb}")
