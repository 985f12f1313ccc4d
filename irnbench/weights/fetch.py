"""``irnbench weights fetch``: download the authors' published checkpoints from their pinned
URLs, verify every file by its git blob SHA-1, and import them like ``irnbench weights import``.

Each file of a release is streamed (progress bar, bounded waits) into a fresh temporary folder
inside the method's cache folder, its length checked against ``Content-Length`` and its bytes
against the ``git_blob_sha1`` its ``OfficialFile`` pins; then ``import_checkpoint`` (the one
import path) converts it, and the sidecar's ``sources`` record each file's URL, commit, blob id
and sha256. The temporary folder is always removed: the cache holds the old weights or the new
ones, never part of a download. Offline (``HF_HUB_OFFLINE=1``), or when the server does not
answer within ``CONNECT_TIMEOUT``, a fetch fails at once with one line naming the command to
run on a connected machine and the ``weights import`` alternative. One process at a time
fetches a method's tag for one setting: the download and install hold the setting's exclusive
``store.weights_lock``, the lock every install and read of the cache takes. Other weights
under the tag are replaced only with ``replace=True`` (``--replace``).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from irnbench.errors import CheckpointError, InvalidSetting, IrnbenchError, WeightsNotFound
from irnbench.weights.cards import OfficialCheckpoint, OfficialFile
from irnbench.weights.record import installed_record, read_sidecar, refuse_replace
from irnbench.weights.store import cache_weights_path, check_cache, reading, weights_lock
from irnbench.weights.tags import OFFICIAL_TAG, format_spec

if TYPE_CHECKING:
    from irnbench.methods import Method
    from irnbench.tasks.base import Task

__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "TIMEOUT_ENV", "FetchError", "FetchUnavailable",
           "ManualDownload", "Release", "Fetched", "git_blob_sha1", "find_release",
           "release_for", "fetch_release", "fetch_weights", "weight_sources",
           "unavailable_message", "stderr_line"]

#: Seconds for a server's first answer (DNS, connect, redirects, headers), hard-bounded: what
#: decides "no network" quickly.
CONNECT_TIMEOUT = 5.0
#: Seconds a download may stall once the server has answered (``$IRNBENCH_FETCH_TIMEOUT``).
READ_TIMEOUT = 30.0
TIMEOUT_ENV = "IRNBENCH_FETCH_TIMEOUT"
_CHUNK = 1 << 16
_NOTHING = "the download was deleted and nothing was installed"


class FetchError(IrnbenchError):
    """A download that failed or did not verify; nothing was installed (exit 1)."""


class ManualDownload(IrnbenchError):
    """The release has no pinned URL: the authors link its files for manual download (exit 2)."""

    exit_code = 2


class FetchUnavailable(WeightsNotFound):
    """Weights that must be downloaded but cannot be now (offline, unreachable, downloads off);
    the message names the fetch command and the ``weights import`` alternative."""


# -- what a method publishes -----------------------------------------------------------------
@dataclass(frozen=True)
class Release:
    """The files published for one method, task setting and tag, with the checkpoint (mapping,
    repository, licence) they belong to."""

    method: str
    tag: str
    task: Task  #: the setting whose weights they are (``Method.weights_task``)
    official: OfficialCheckpoint
    files: tuple[OfficialFile, ...]

    @property
    def spec(self) -> str:
        return format_spec(self.method, self.tag)

    @property
    def fetchable(self) -> bool:
        """Whether every file has a pinned URL and blob id."""
        return all(f.fetchable for f in self.files)

    @property
    def where(self) -> str:
        """E.g. ``sain.official rescale x4``."""
        return f"{self.spec} {self.task.name} {self.task.setting_label}"

    def _flags(self) -> str:
        args = f" {self.task.cli_args()}" if self.task.cli_args() else ""
        tag = f" --tag {self.tag}" if self.tag != OFFICIAL_TAG else ""
        return f" --task {self.task.name}{args}{tag}"

    def fetch_command(self) -> str:
        return f"irnbench weights fetch {self.method}{self._flags()}"

    def import_command(self) -> str:
        """``weights import`` of the files as downloaded (a fetch saves them by base name)."""
        names = " ".join(Path(f.name).name if f.fetchable else f.name for f in self.files)
        return f"irnbench weights import {self.method} {names}{self._flags()}"


def release_for(cls: type[Method], task: Task, tag: str | None = None) -> Release | None:
    """The release of ``cls`` an (untagged, ``official`` or variant) tag names for ``task``'s
    weights, or ``None`` (no published checkpoint, or a tag that is not one of its releases)."""
    official = cls.official_for(task)
    tag = tag or OFFICIAL_TAG
    if official is None:
        return None
    if tag == OFFICIAL_TAG:
        files = official.files
    elif tag in official.variants:
        files = (official.variants[tag],)
    else:
        return None
    return Release(cls.name, tag, cls.weights_task(task), official, tuple(files))


def find_release(method: str, task: str | Task = "rescale", tag: str | None = None,
                 **setting: Any) -> Release:
    """The release ``irnbench weights fetch METHOD [--tag TAG]`` downloads (``method`` may be a
    ``NAME.TAG`` spec); ``CheckpointError`` when there is none, naming what there is."""
    from irnbench.registry import _split_setting, get_method_class
    from irnbench.weights.tags import parse_spec

    name, tag = parse_spec(method, tag)
    cls = get_method_class(name)
    task_obj = cls.weights_task(_split_setting(task, setting)[0])
    rel = release_for(cls, task_obj, tag)
    if rel is not None:
        return rel
    official = cls.official_for(task_obj)
    where = f"{task_obj.name} {task_obj.setting_label}"
    if official is None:
        known = ", ".join(cls.official_weights) or "none"
        raise CheckpointError(f"{name} has no published checkpoint for {where}; it has: {known}")
    tags = ", ".join([OFFICIAL_TAG, *official.variants])
    raise CheckpointError(f"{name} publishes no {tag!r} release for {where}; tags: {tags}")


def weight_sources(method: str | None = None) -> list[dict[str, Any]]:
    """Where every published file of every registered method (or of ``method``) comes from: a
    pinned ``url``/``commit``/``git_blob_sha1`` (``weights fetch``), else ``manual_download``."""
    from irnbench.plugins import registered_methods
    from irnbench.registry import get_method_class

    classes = ([get_method_class(method)] if method
               else [c for _, c in sorted(registered_methods().items())])
    out = []
    for cls in classes:
        for key, official in sorted(cls.official_weights.items()):
            tagged = [(OFFICIAL_TAG, f) for f in official.files]
            tagged += sorted(official.variants.items())
            for tag, f in tagged:
                entry: dict[str, Any] = {
                    "method": cls.name, "tag": tag, "task": official.task,
                    "scale": official.setting.get("scale"), "task_key": key, "file": f.name,
                    "what": f.what, "repository": official.repository}
                if f.fetchable:
                    entry.update(url=f.url, commit=f.commit, git_blob_sha1=f.git_blob_sha1)
                else:
                    entry["manual_download"] = official.download
                out.append(entry)
    return out


# -- messages --------------------------------------------------------------------------------
def _origins(rel: Release) -> str:
    return "; ".join(f"{Path(f.name).name} from {f.url or rel.official.download}"
                     for f in rel.files)


def unavailable_message(rel: Release, why: str) -> str:
    """One line: the weights cannot be downloaded now (``why``), the fetch command for a
    connected machine, and the manual download + ``weights import`` alternative."""
    folder = cache_weights_path(rel.method, rel.task.key, rel.tag).parent
    return (f"{rel.where} weights are not in the cache and were not downloaded ({why}). "
            f"On a connected machine run `{rel.fetch_command()}` and copy its "
            f"$IRNBENCH_HOME/weights/{rel.method} folder to {folder}; or download "
            f"{_origins(rel)} and run `{rel.import_command()}`.")


def _manual_message(rel: Release) -> str:
    manual = ", ".join(Path(f.name).name for f in rel.files if not f.fetchable)
    return (f"{rel.where}: {manual} has no pinned download (the authors link it for manual "
            f"download): download it from {rel.official.download}, then run "
            f"`{rel.import_command()}`")


# -- downloading -----------------------------------------------------------------------------
def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what ``git hash-object`` prints)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _digests(path: Path) -> tuple[str, str]:
    """(git blob SHA-1, sha256) of a file, in one read."""
    blob = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            blob.update(chunk)
            sha.update(chunk)
    return blob.hexdigest(), sha.hexdigest()


def _read_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return READ_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise InvalidSetting(f"${TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


class _Unreachable(Exception):
    """The server did not answer (no network, refused, DNS, silent): reported as offline."""


def _version() -> str:
    from irnbench import __version__

    return __version__


def _download(rel: Release, file: OfficialFile, dest: Path, progress: bool) -> dict[str, Any]:
    """Stream ``file.url`` into ``dest``; check its length and git blob SHA-1. Returns what the
    sidecar records of it. A failure raises (``dest``'s folder is the caller's to remove)."""
    from irnbench.data.hub import bounded, progress_bar  # the datasets' bounded wait and bar

    stall = _read_timeout()
    url = file.url
    what = f"{rel.where}: {Path(file.name).name} from {url}"
    req = urllib.request.Request(url, headers={"User-Agent": f"irnbench/{_version()}"})
    try:
        resp = bounded(lambda: urllib.request.urlopen(req, timeout=stall),  # noqa: S310
                        CONNECT_TIMEOUT)
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{what}: the server answered HTTP {exc.code} {exc.reason}; "
                         "nothing was installed") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:
        host = urllib.parse.urlparse(url).netloc or url
        if isinstance(exc, TimeoutError):
            detail = f"no answer within {CONNECT_TIMEOUT:g} s"
        else:
            reason = getattr(exc, "reason", None) or exc
            detail = f"{type(exc).__name__}: {str(reason)[:160]}"
        raise _Unreachable(f"{host} did not answer: {detail}") from None
    header = resp.headers.get("Content-Length")
    total = int(header) if header and header.strip().isdigit() else None
    part = dest.with_name(dest.name + ".part")
    read = getattr(resp, "read1", resp.read)  # what has arrived, so a stall is counted right
    got = 0
    try:
        with resp, open(part, "wb") as out, progress_bar(total, Path(file.name).name,
                                                       progress) as bar:
            for chunk in iter(lambda: read(_CHUNK), b""):
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
    except TimeoutError:
        raise FetchError(f"{what}: the download stalled for {stall:g} s after {got:,} bytes "
                         f"(${TIMEOUT_ENV} sets the limit); {_NOTHING}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise FetchError(f"{what}: the connection broke after {got:,} bytes "
                         f"({type(exc).__name__}: {str(exc)[:120]}); {_NOTHING}") from None
    if total is not None and got != total:
        raise FetchError(f"{what}: the download was cut short ({got:,} of {total:,} bytes); "
                         f"{_NOTHING}")
    blob, sha256 = _digests(part)
    if blob != file.git_blob_sha1:
        raise FetchError(f"{what}: git blob SHA-1 mismatch: expected {file.git_blob_sha1}, "
                         f"got {blob} ({got:,} bytes); {_NOTHING}")
    os.replace(part, dest)
    return {"url": url, "commit": file.commit, "git_blob_sha1": blob, "sha256": sha256}


# -- fetching --------------------------------------------------------------------------------
@dataclass
class Fetched:
    """The weights a fetch installed, or found installed by an earlier fetch."""

    path: Path
    label: str
    tag: str
    sha256: str
    downloaded: bool  #: False: the cache already held this release (nothing downloaded)
    sources: list[dict[str, Any]]  #: the sidecar's ``sources`` (url, commit, blob, sha256…)
    changed: bool = True  #: False: nothing was written (already fetched, or the same file)


def _already(rel: Release, target: Path) -> Fetched | None:
    """The cached weights of an earlier fetch of exactly these files (by blob id), if any."""
    with reading(target):
        if not target.exists():
            return None
        side = read_sidecar(target)
    sources = side.get("sources") or []
    have = sorted(str(s.get("git_blob_sha1")) for s in sources if isinstance(s, Mapping))
    if side.get("tag") != rel.tag or have != sorted(f.git_blob_sha1 for f in rel.files):
        return None
    return Fetched(target, side.get("label", ""), rel.tag, side.get("sha256", ""), False,
                   list(sources), False)


def _offline() -> bool:
    from irnbench.data.hub import offline as hub_offline  # the one HF_HUB_OFFLINE reading

    return hub_offline()


def _refuse_other(rel: Release, replace: bool) -> None:
    """Before downloading: other weights under the tag need ``replace``. An import without
    blob ids may be these very files, so it is compared after the download instead."""
    have = installed_record(rel.method, rel.task.key, rel.tag)
    if have is None or replace:
        return
    sources = [s for s in have.get("sources") or [] if isinstance(s, Mapping)]
    if not sources or any(s.get("git_blob_sha1") for s in sources):
        refuse_replace(rel.method, rel.task.key, rel.tag, replace)


def fetch_release(rel: Release, *, force: bool = False, progress: bool = True,
                  announce: Callable[[str], None] | None = None,
                  replace: bool = False) -> Fetched:
    """Download, verify and import ``rel`` into the user cache under its tag.

    A cache that already holds these files (same blob ids) is kept unless ``force``; other
    weights under the tag are replaced only with ``replace`` (refused before downloading when
    they are known to differ). ``announce`` gets one line per file before it is downloaded.
    Raises ``ManualDownload`` for files without a pinned URL, ``FetchUnavailable`` offline or
    when the server does not answer, ``FetchError`` when a download breaks or does not verify,
    ``WeightsExist`` for other weights without ``replace``.
    """
    if not rel.fetchable:
        raise ManualDownload(_manual_message(rel))
    target = cache_weights_path(rel.method, rel.task.key, rel.tag)
    done = None if force else _already(rel, target)
    if done is not None:
        return done
    check_cache()
    _refuse_other(rel, replace)
    if _offline():
        raise FetchUnavailable(unavailable_message(rel, "offline: HF_HUB_OFFLINE is set"))
    from irnbench.weights.official import import_checkpoint

    with weights_lock(target):
        done = None if force else _already(rel, target)  # another process fetched it meanwhile
        if done is not None:
            return done
        _refuse_other(rel, replace)
        folder = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
        try:
            paths, provenance = [], {}
            for f in rel.files:
                if announce is not None:
                    announce(f"fetching {rel.where}: {Path(f.name).name} from {f.url} "
                             f"(commit {f.commit[:12] or '?'}, checked by git blob SHA-1)")
                dest = folder / Path(f.name).name
                try:
                    provenance[dest.name] = _download(rel, f, dest, progress)
                except _Unreachable as exc:
                    raise FetchUnavailable(unavailable_message(rel, str(exc))) from None
                paths.append(dest)
            res = import_checkpoint(rel.method, paths, rel.task, tag=rel.tag,
                                    provenance=provenance, replace=replace)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        side = read_sidecar(res.path)
    return Fetched(res.path, res.label, res.tag, res.sha256, True, list(side.get("sources", [])),
                   res.changed)


def fetch_weights(method: str, task: str | Task = "rescale", tag: str | None = None, *,
                  force: bool = False, progress: bool = True,
                  announce: Callable[[str], None] | None = None, replace: bool = False,
                  **setting: Any) -> Fetched:
    """``irnbench weights fetch``: download ``method``'s published checkpoint for a task
    setting (``tag`` ``official`` by default, or a variant's), verify it and import it
    (replacing other weights under the tag only with ``replace``)."""
    rel = find_release(method, task, tag, **setting)
    return fetch_release(rel, force=force, progress=progress, announce=announce,
                         replace=replace)


def stderr_line(text: str) -> None:
    """Print one status line to the current stderr (what a run says before it downloads)."""
    print(text, file=sys.stderr, flush=True)
