"""``irnbench weights list|import|fetch|sources|remove``: the tagged weight sets of every
method and where the published ones come from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from irnbench.errors import InvalidSetting, IrnbenchError, cli_errors
from irnbench.weights import (
    DEFAULT_TRAIN_TAG,
    SHIPPED_TAG,
    cache_weights_dir,
    format_spec,
    parse_spec,
    read_sidecar,
)
from irnbench.weights.store import check_cache, reading, weights_lock

__all__ = ["weights", "WeightSet", "weight_sets"]


@dataclass(frozen=True)
class WeightSet:
    """One weights file: ``method.tag`` for one task setting, where it is, how it is labelled."""

    method: str
    tag: str
    task_key: str
    label: str
    sha256: str
    where: str  #: "shipped" or "cache"
    path: Path

    @property
    def spec(self) -> str:
        return format_spec(self.method, self.tag)


def _cache_sets(method: str | None) -> list[WeightSet]:
    root = cache_weights_dir()
    folders = [root / method] if method else sorted(p for p in root.glob("*") if p.is_dir())
    out = []
    for folder in folders:
        for f in sorted(folder.glob("*.safetensors")):
            stem = f.name[: -len(".safetensors")]
            key, dot, tag = stem.rpartition(".")
            if not dot:  # written before tags: a local training
                key, tag = stem, DEFAULT_TRAIN_TAG
            with reading(f):  # the sidecar of the file that is there now
                side = read_sidecar(f) if f.exists() else None
            if side is None:  # removed meanwhile
                continue
            out.append(WeightSet(folder.name, side.get("tag") or tag, key,
                                 side.get("label", ""), side.get("sha256", ""), "cache", f))
    return out


def _shipped_sets(method: str | None) -> list[WeightSet]:
    from irnbench.plugins import registered_methods

    out = []
    for name, cls in sorted(registered_methods().items()):
        if method not in (None, name):
            continue
        for key, cfg in sorted(cls.pretrained_cfgs.items()):
            out.append(WeightSet(name, SHIPPED_TAG, key, cfg.label, cfg.sha256, "shipped",
                                 cls.package_dir() / cfg.file))
    return out


def weight_sets(method: str | None = None) -> list[WeightSet]:
    """Every shipped and cached weight set (of ``method`` only, when given)."""
    return sorted(_shipped_sets(method) + _cache_sets(method),
                  key=lambda w: (w.method, w.task_key, w.where != "cache", w.tag))


@click.group()
def weights() -> None:
    """Tagged weights: list them, fetch or import the authors' checkpoints, remove your own.

    Tags: cpu (irnbench's shipped CPU-preset weights), official (a published checkpoint you
    fetched or imported), local or any name (your trainings, `irnbench train --tag NAME`).
    Name them as METHOD.TAG anywhere a method is named; an untagged name resolves to official
    if present, else cpu (run/eval fetch official weights that have a pinned URL when neither
    is here, unless --no-download).
    """


@weights.command(name="list")
@click.argument("method", required=False)
@cli_errors
def weights_list(method: str | None) -> None:
    """List weight sets: METHOD.TAG, setting, label, sha256[:12], where they are."""
    if method:
        from irnbench.registry import get_method_class

        get_method_class(method)  # an unknown name lists the known ones
    check_cache(write=False)
    rows = weight_sets(parse_spec(method)[0] if method else None)
    if not rows:
        click.echo("(no weights)")
        return
    click.echo(f"{'weights':<20} {'setting':<12} {'sha256':<12}  {'where':<7}  label")
    for w in rows:
        click.echo(f"{w.spec:<20} {w.task_key:<12} {w.sha256[:12]:<12}  {w.where:<7}  "
                   f"{w.label}")


@weights.command(name="import")
@click.argument("method")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--task", default="rescale", show_default=True, help="Task of the checkpoint.")
@click.option("--scale", default=None, type=int, help="Scale of a rescale/compress checkpoint.")
@click.option("--tag", default=None,
              help="Tag to import under (default: official; e.g. plus for IRN+_x4.pth).")
@click.option("--replace", is_flag=True,
              help="Replace other weights installed under the tag (else: exit 2, unchanged).")
@cli_errors
def weights_import(method: str, files: tuple[str, ...], task: str, scale: int | None,
                   tag: str | None, replace: bool) -> None:
    """Convert the authors' checkpoint FILE(s) of METHOD into tagged irnbench weights.

    Files are read with torch.load(weights_only=True) only: a file that needs code to
    unpickle is refused unexecuted. Every tensor must map one to one onto irnbench's model.
    Other weights under the tag are replaced only with --replace; the same files again
    change nothing.
    """
    from irnbench.weights.official import import_checkpoint

    setting = {"scale": scale} if scale is not None else {}
    res = import_checkpoint(method, list(files), task, tag=tag, replace=replace, **setting)
    spec = format_spec(parse_spec(method)[0], res.tag)
    if not res.changed:
        click.echo(f"{spec} is already imported from these files: {res.label}, sha256 "
                   f"{res.sha256[:12]} → {res.path} (nothing changed)")
        return
    click.echo(f"imported {spec}: {res.label}, sha256 {res.sha256[:12]} → {res.path}")


@weights.command(name="fetch")
@click.argument("method")
@click.option("--task", default="rescale", show_default=True, help="Task of the checkpoint.")
@click.option("--scale", default=None, type=int, help="Scale of a rescale/compress checkpoint.")
@click.option("--tag", default=None,
              help="Release to fetch (default: official; or a variant's tag, see "
                   "`irnbench weights sources`).")
@click.option("--force", is_flag=True, help="Download again though the cache holds it.")
@click.option("--replace", is_flag=True,
              help="Replace other weights installed under the tag (else: exit 2, unchanged).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@cli_errors
def weights_fetch(method: str, task: str, scale: int | None, tag: str | None, force: bool,
                  replace: bool, quiet: bool) -> None:
    """Download METHOD's published checkpoint from its pinned URL, verify it, import it.

    Each file must match the git blob SHA-1 pinned in the plugin (what `git hash-object`
    prints) before it is imported exactly as `weights import` would; the sidecar records its
    URL, commit, blob id and sha256. A file that does not verify is deleted (exit 1). Files
    the authors link only for manual download are named with the `weights import` command to
    use instead (exit 2). Other weights under the tag are replaced only with --replace.
    """
    from irnbench.weights.fetch import fetch_weights

    setting = {"scale": scale} if scale is not None else {}
    res = fetch_weights(method, task, tag=tag, force=force, progress=not quiet,
                        announce=lambda line: click.echo(line, err=True), replace=replace,
                        **setting)
    spec = format_spec(parse_spec(method)[0], res.tag)
    blobs = ", ".join(f"{s.get('file')} git blob {str(s.get('git_blob_sha1'))[:12]}"
                      for s in res.sources)
    if res.downloaded and not res.changed:
        click.echo(f"fetched {spec}: the same files are installed already ({res.label}, "
                   f"sha256 {res.sha256[:12]}) → {res.path}; nothing changed")
    elif res.downloaded:
        click.echo(f"fetched {spec}: {res.label}; {blobs} verified; sha256 {res.sha256[:12]} "
                   f"→ {res.path}")
    else:
        click.echo(f"{spec} is already fetched ({blobs}) → {res.path}; --force downloads it "
                   "again")


@weights.command(name="sources")
@click.argument("method", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@cli_errors
def weights_sources(method: str | None, as_json: bool) -> None:
    """Where every published checkpoint file comes from: a pinned URL, commit and git blob
    SHA-1 (`irnbench weights fetch`), or the authors' link for a manual download
    (`irnbench weights import`)."""
    import json

    from irnbench.weights.fetch import weight_sources

    rows = weight_sources(parse_spec(method)[0] if method else None)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo("(no published checkpoints)")
        return
    click.echo(f"{'weights':<20} {'setting':<12} {'file':<24} {'how':<6}  from")
    for r in rows:
        how, where = (("fetch", f"{r['url']} (git blob {r['git_blob_sha1'][:12]})")
                      if "url" in r else ("manual", r["manual_download"]))
        click.echo(f"{format_spec(r['method'], r['tag']):<20} {r['task_key']:<12} "
                   f"{r['file']:<24} {how:<6}  {where}")


@weights.command(name="remove")
@click.argument("spec")
@click.option("--task", default=None, help="Only this task's weights.")
@click.option("--scale", default=None, type=int, help="Only this scale's weights.")
@cli_errors
def weights_remove(spec: str, task: str | None, scale: int | None) -> None:
    """Remove METHOD.TAG weights from the user cache (shipped cpu weights stay)."""
    for w in _to_remove(spec, task, scale):
        with weights_lock(w.path):  # no reader sees the file without its sidecar
            w.path.unlink(missing_ok=True)
            w.path.with_suffix(".json").unlink(missing_ok=True)
        click.echo(f"removed {w.spec} {w.task_key} ({w.path})")


def _to_remove(spec: str, task: str | None, scale: int | None) -> list[WeightSet]:
    from irnbench.plugins import registered_methods
    from irnbench.registry import create_task, get_method_class

    name, tag = parse_spec(spec)
    if name not in registered_methods() and not _cache_sets(name):
        get_method_class(name)  # unknown (and nothing cached under it): lists the known ones
    if tag is None:
        raise InvalidSetting(f"name the weights to remove as METHOD.TAG (e.g. {name}.local)")
    if tag == SHIPPED_TAG:
        raise InvalidSetting(f"{spec}: the shipped {SHIPPED_TAG!r} weights are part of the "
                             "plugin and cannot be removed")
    key = None
    if task is not None or scale is not None:
        setting = {"scale": scale} if scale is not None else {}
        key = get_method_class(name).weights_task(create_task(task or "rescale", **setting)).key
    found = [w for w in _cache_sets(name) if w.tag == tag and key in (None, w.task_key)]
    if not found:
        have = sorted({w.spec for w in _cache_sets(name)})
        raise IrnbenchError(f"no cached {spec} weights" + (f" for {key}" if key else "")
                            + (f"; cached: {', '.join(have)}" if have else ""))
    return found
