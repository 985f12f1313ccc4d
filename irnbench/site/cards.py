"""What a method page says of a method and of each weight set: the registered method class when
there is one (``description``, ``paper``, a ``card`` if it declares one, its shipped and
official weights), otherwise what the runs recorded (``methods_info``, ``weights``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from irnbench.leaderboard import as_text

__all__ = ["method_card", "safe_url", "weight_source"]

_FILE_KEYS = ("file", "released_as", "sha256", "bytes", "url", "commit", "git_blob_sha1")


def safe_url(text: Any) -> str:
    """An ``http(s)`` URL to link to (``github.com/…`` gets ``https://``); ``""`` for anything
    else, so no recorded text becomes a ``javascript:`` or local link."""
    t = as_text(text).strip()
    if t.startswith(("https://", "http://")):
        return t if not any(c in t for c in " <>\"'\\") else ""
    if t.startswith(("github.com/", "gitlab.com/", "huggingface.co/")) and " " not in t:
        return "https://" + t
    return ""


def _method_class(method: str) -> type | None:
    from irnbench.plugins import registered_methods

    return registered_methods().get(method)


def _recorded(method: str, infos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The last run's ``methods_info`` of the method (keyed by spec, ``method`` inside)."""
    found: dict[str, Any] = {}
    for info in infos:
        for spec, rec in info.items():
            if isinstance(rec, Mapping) and (spec == method or rec.get("method") == method):
                found = dict(rec)
    return found


def method_card(method: str, infos: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The method's card: description, what it is, paper (citation, link), code, licence,
    and where the card comes from (``class``, ``card`` or ``runs``)."""
    cls = _method_class(method)
    rec = _recorded(method, infos)
    card = getattr(cls, "card", None) if cls is not None else None
    paper = getattr(cls, "paper", None) if cls is not None else None
    official = list((getattr(cls, "official_weights", None) or {}).values())
    first = official[0] if official else None
    return {
        "from": "card" if card is not None else ("class" if cls is not None else "runs"),
        "description": as_text(getattr(cls, "description", "")) or as_text(
            getattr(card, "summary", "")) or as_text(rec.get("description")),
        "what": as_text(getattr(card, "what", "")),
        "departures": as_text(getattr(card, "departures", "")),
        "weights": as_text(getattr(card, "weights", "")),
        "also": [as_text(a) for a in getattr(card, "also", ()) or ()],
        "citation": as_text(getattr(card, "citation", "")) or as_text(
            getattr(paper, "citation", "")) or as_text(rec.get("citation")),
        "paper_url": safe_url(getattr(card, "url", "") or getattr(paper, "url", "")),
        "code": as_text(getattr(card, "code", "") or getattr(first, "repository", "")),
        "code_url": safe_url(getattr(card, "code", "") or getattr(first, "repository", "")),
        "licence": as_text(getattr(card, "licence", "") or getattr(first, "licence", "")),
        "stochastic": bool(getattr(cls, "stochastic", rec.get("stochastic", False))),
    }


def _files(entries: Any) -> list[dict[str, Any]]:
    out = []
    for f in entries if isinstance(entries, list) else []:
        if isinstance(f, Mapping):
            item = {k: as_text(f.get(k)) for k in _FILE_KEYS if as_text(f.get(k))}
            item["url"] = safe_url(item.get("url", ""))
            out.append(item)
    return out


def _shipped(method: str, sha: str) -> dict[str, Any] | None:
    cls = _method_class(method)
    for cfg in (getattr(cls, "pretrained_cfgs", None) or {}).values():
        if sha and getattr(cfg, "sha256", "") == sha:
            return {"kind": "shipped", "text": f"shipped with irnbench ({method} plugin, "
                    f"{cfg.file}; licence {cfg.licence})", "files": []}
    return None


def weight_source(method: str, info: Mapping[str, Any]) -> dict[str, Any]:
    """Where a weight set came from, as far as the run's weights record (or, for shipped
    weights, the method's own sidecar) says: ``kind`` (import, pinned, shipped, trained,
    none, unrecorded), a sentence, and any files with their pinned URL, commit and blob."""
    sha = as_text(info.get("sha256"))
    files = _files(info.get("sources"))
    pinned = {k: as_text(info.get(k)) for k in ("url", "commit", "git_blob_sha1")
              if as_text(info.get(k))}
    if pinned:
        files.append({**pinned, "url": safe_url(pinned.get("url", "")),
                      "file": as_text(info.get("file"))})
    origin = info.get("origin") if isinstance(info.get("origin"), Mapping) else {}
    repo = as_text(origin.get("repository"))
    if files:
        kind = "pinned" if any(f.get("url") for f in files) else "import"
        text = ("fetched from a pinned URL" if kind == "pinned" else "imported from the "
                "authors' file(s)") + (f" of {repo}" if repo else "")
        return {"kind": kind, "text": text, "files": files, "repository": safe_url(repo)}
    shipped = _shipped(method, sha)
    if shipped:
        return shipped
    if not sha:
        return {"kind": "none", "text": as_text(info.get("label")) or "none needed",
                "files": []}
    budget = as_text(info.get("budget"))
    if budget:
        return {"kind": "trained", "text": f"trained with irnbench ({budget})", "files": []}
    return {"kind": "unrecorded", "text": "not recorded by the run", "files": []}
