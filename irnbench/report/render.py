"""Render the report context with jinja2 into one self-contained HTML file."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from irnbench.report.context import build_context
from irnbench.report.runs import load_runs

__all__ = ["environment", "render_context", "render_report"]

_ENV: Environment | None = None


def environment() -> Environment:
    """The jinja2 environment: package templates, autoescaping on for every template."""
    global _ENV
    if _ENV is None:
        _ENV = Environment(
            loader=PackageLoader("irnbench.report", "templates"),
            autoescape=select_autoescape(("html", "htm", "xml"), default_for_string=True,
                                         default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _ENV


def _asset(env: Environment, name: str) -> Markup:
    """A CSS/JS file of ours, inlined verbatim (it is not a template and holds no input text)."""
    source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    if "</" in source:
        raise ValueError(f"{name} must not contain '</' (it is inlined in a <style>/<script>)")
    return Markup(source)


def render_context(context: dict[str, Any]) -> str:
    """HTML text of the report for a context from :func:`build_context`."""
    env = environment()
    template = env.get_template("report.html")
    return template.render(**context, css=_asset(env, "report.css"), js=_asset(env, "report.js"))


def render_report(run_dirs: Iterable[str | Path] | str | Path, out_path: str | Path) -> Path:
    """Render one run folder, or merge several, into one self-contained HTML file.

    Merging concatenates the measured rows (a row measured in two folders keeps the later one)
    and de-duplicates paper-reported rows. Returns ``out_path``.
    """
    if isinstance(run_dirs, (str, Path)):
        run_dirs = [run_dirs]
    runs = load_runs(run_dirs)
    html = render_context(build_context(runs))
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
