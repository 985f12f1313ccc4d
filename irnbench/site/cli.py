"""``irnbench leaderboard build|add|verify``: publish runs as a static leaderboard site."""

from __future__ import annotations

from pathlib import Path

import click

from irnbench.errors import cli_errors

__all__ = ["leaderboard"]

_RUNS = click.argument("run_dirs", nargs=-1, required=True,
                       type=click.Path(exists=True, file_okay=False))
_JOBS = click.option("--jobs", default=None, type=click.IntRange(min=1),
                     help="Processes that rank the tables (default: one per usable CPU; the "
                     "site is the same whatever the number).")


def _report(res, verb: str) -> None:
    click.echo(f"{verb} {res.path}/: {res.boards} leaderboard(s) from {res.runs} run(s); "
               f"open {res.path / 'index.html'}")
    for line in res.conflicts:
        click.echo(f"conflict (shown, not ranked): {line}", err=True)


@click.group()
def leaderboard() -> None:
    """Publish runs as a static leaderboard site (plain HTML, CSS and JS; loads nothing from
    outside the site; opens from file:// or any static host)."""


@leaderboard.command()
@_RUNS
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="The site folder (new, empty, or a site built before: rebuilt from these "
              "runs only).")
@click.option("--title", default=None, help="The site's title (default: irnbench leaderboards).")
@_JOBS
@cli_errors
def build(run_dirs, out, title, jobs):
    """Build the site from RUN folders: one page per leaderboard and per method, and data/
    (every row as CSV and Parquet, one JSON per leaderboard).

    Every run is checked first (`irnbench leaderboard verify`); a refused run stops the build
    (exit 2). Runs that measured the same entry are merged when their per-image numbers agree
    and shown as a conflict when they do not.
    """
    from irnbench.site.build import build_site

    _report(build_site([Path(d) for d in run_dirs], Path(out), title, jobs), "built")


@leaderboard.command()
@click.argument("site", type=click.Path(exists=True, file_okay=False))
@_RUNS
@_JOBS
@cli_errors
def add(site, run_dirs, jobs):
    """Add RUN folders to a built SITE (the result is byte for byte a fresh build of all its
    runs)."""
    from irnbench.site.build import add_runs

    _report(add_runs(Path(site), [Path(d) for d in run_dirs], jobs), "updated")


@leaderboard.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
@cli_errors
def verify(run_dir):
    """Check one RUN folder as build does: a known protocol version, and set means that
    recompute from its per-image rows. Exit 2, naming the run, when it is refused."""
    from irnbench.site.runs import verify_run

    res = verify_run(Path(run_dir))
    means = ("no set means recorded (written before irnbench recorded them)"
             if res["means"] is None else f"{res['means']} set mean(s) recompute")
    click.echo(f"{run_dir}: ok: protocol version {res['protocol_version']}, "
               f"{res['measured_rows']} measured row(s), {means}")
