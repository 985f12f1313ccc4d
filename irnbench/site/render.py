"""HTML of the site's pages: jinja2 templates in ``templates/`` (autoescaped: every text from a
run is escaped), with the report's stylesheet and sort script and the site's own CSS and tag
filter inlined, under a Content-Security-Policy that lets a page load nothing at all."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from irnbench import __version__
from irnbench.report.render import environment as report_environment
from irnbench.site.merge import slug

__all__ = ["CSP", "render_page"]

#: Inline styles and scripts only; no fetch, image, font, frame or form can leave the page.
CSP = ("default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
       "img-src data:; base-uri 'none'; form-action 'none'")
_ENV: Environment | None = None


def _source(env: Environment, name: str) -> str:
    source, _, _ = env.loader.get_source(env, name)  # type: ignore[union-attr]
    if "</" in source:
        raise ValueError(f"{name} must not contain '</' (it is inlined in a <style>/<script>)")
    return source


def _environment() -> Environment:
    """The site's templates, autoescaped, with the inlined assets as globals."""
    global _ENV
    if _ENV is None:
        env = Environment(
            loader=PackageLoader("irnbench.site", "templates"),
            autoescape=select_autoescape(("html",), default_for_string=True, default=True),
            trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        )
        report = report_environment()
        env.globals.update(
            css=Markup(_source(report, "report.css") + _source(env, "site.css")),
            js=Markup(_source(report, "report.js") + _source(env, "site.js")),
            csp=CSP, version=__version__,
        )
        env.filters["slug"] = slug
        _ENV = env
    return _ENV


def render_page(template: str, context: Mapping[str, Any], site_title: str, root: str) -> str:
    """One page: ``template`` with ``context``; ``root`` is the way back to the site's top
    (``""`` or ``"../"``)."""
    env = _environment()
    return env.get_template(template).render(**context, site_title=site_title, root=root,
                                             page_title=context.get("title", site_title))
