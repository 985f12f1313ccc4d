"""``irnbench datasets list|fetch``: the registered dataset cards and the cache of hub sets."""

from __future__ import annotations

from typing import Any

import click

from irnbench.errors import IrnbenchError, cli_errors

__all__ = ["datasets"]


@click.group()
def datasets():
    """Dataset cards: list them and fetch the standard sets (hub or URL) into the cache."""


def _human_size(n: Any) -> str:
    if not n:
        return "?"
    n = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit in ("B", "kB") else f"{n:.1f} {unit}"
        n /= 1000
    return "?"


@datasets.command(name="list")
@cli_errors
def datasets_list():
    """List the registered datasets: images, size, use, source, digest, cached, licence.

    DIGEST is 'pinned' when the card carries the archive's sha256, 'first-use' when the fetch
    verifies the hub's published digest (or records the one it saw) on first download.
    """
    from irnbench.data import hub
    from irnbench.data.cards import list_image_files
    from irnbench.plugins import registered_datasets

    click.echo(f"{'name':<12} {'images':>6}  {'size':>8}  {'use':<10}  {'source':<7}  "
               f"{'digest':<9}  {'cached':<9}  licence")
    for name, card in sorted(registered_datasets().items()):
        kind = hub.source_kind(card)
        n = card.images
        size = "-"
        digest = "-"
        if kind == "bundled":
            try:
                n = len(list_image_files(card.local_dir()))
                cached = "available"
            except IrnbenchError:
                cached = "missing"
        else:
            rec = hub.fetch_record(card.name)
            size = _human_size((rec or {}).get("bytes") or card.extra.get("size"))
            digest = "pinned" if hub.is_pinned(card) else "first-use"
            cached = "yes" if hub.is_cached(card) else "no"
        lic = card.licence.splitlines()[0][:60] if card.licence else ""
        click.echo(f"{name:<12} {str(n or '?'):>6}  {size:>8}  {card.use:<10}  {kind:<7}  "
                   f"{digest:<9}  {cached:<9}  {lic}")


@datasets.command(name="fetch")
@click.argument("names", nargs=-1, required=True)
@click.option("--from", "from_dir", type=click.Path(file_okay=False, exists=True),
              help="Folder of pre-downloaded archives (e.g. Set5_HR.tar.gz) to install from "
                   "instead of downloading.")
@click.option("--force", is_flag=True, help="Download and extract again even when cached.")
@cli_errors
def datasets_fetch(names, from_dir, force):
    """Download, verify (sha256) and extract datasets into the cache ($IRNBENCH_HOME/datasets).

    A cached set is a no-op. Offline, use --from DIR with the archives copied from elsewhere.
    """
    from irnbench.data import hub
    from irnbench.errors import UnknownNameError
    from irnbench.plugins import registered_datasets

    cards = registered_datasets()
    wanted = [n.strip().lower() for v in names for n in v.split(",") if n.strip()]
    for n in wanted:
        if n not in cards:
            raise UnknownNameError("dataset", n, list(cards))
    for n in wanted:
        card = cards[n]
        was_cached = hub.source_kind(card) != "bundled" and hub.is_cached(card)
        folder = hub.fetch(card, force=force, from_dir=from_dir)
        rec = hub.fetch_record(card.name) or {}
        if hub.source_kind(card) == "bundled":
            click.echo(f"{n}: bundled, nothing to fetch ({folder})")
        elif was_cached and not force:
            click.echo(f"{n}: already cached ({rec.get('images')} images, "
                       f"sha256 {str(rec.get('sha256'))[:12]}…) in {folder.parent}")
        else:
            click.echo(f"{n}: {rec.get('images')} images, sha256 {str(rec.get('sha256'))[:12]}… "
                       f"({rec.get('verified')}) in {folder.parent}")
