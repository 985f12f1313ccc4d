"""The leaderboard site in a real browser: headless Chromium opens it from file://, follows
index → leaderboard → method page, clicks a header to sort, filters by weights tag, and checks
that no request leaves the site and that a leaderboard fits a 1400 px window.

As tests/test_browser.py does, each page is read with ``chromium --headless --dump-dom``; where
the test must act on a page (click, choose a tag, watch requests), a copy of the page beside it
(so its relative links still resolve) carries a probe script that acts through the DOM's own
events and writes what it saw into an attribute of ``<body>``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from irnbench.site import build_site

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("headless Chromium is not installed (chromium not on PATH)",
                allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
_PROBE_START = "<script>window.addEventListener('load', function () { "


def _dump_dom(path: Path, fragment: str = "", width: int = 1400) -> str:
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-extensions", "--no-first-run",
         f"--window-size={width},900", "--virtual-time-budget=3000", "--dump-dom",
         path.resolve().as_uri() + fragment],
        capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def _probe(page: Path, script: str, fragment: str = "") -> dict:
    """Run ``script`` (it sets ``window.probe``) in a copy of ``page`` after load; its JSON,
    and the DOM as ``probe["dom"]``."""
    copy = page.with_name("_probe-" + page.name)
    body = (_PROBE_START + "setTimeout(function () {"
            f"{script}; document.body.setAttribute('data-probe', JSON.stringify(window.probe));"
            "}, 300); });</script></body>")
    copy.write_text(page.read_text().replace("</body>", body, 1))
    dom = _dump_dom(copy, fragment)
    m = re.search(r'data-probe="([^"]*)"', dom)
    assert m, "the probe did not run"
    return {**json.loads(html.unescape(m.group(1))), "dom": dom}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site of the four published runs in reports/."""
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(sorted((ROOT / "reports").glob("*-mini")), out)
    return out


def _board_page(site: Path) -> Path:
    return next((site / "boards").glob("rescale-x2-mini-*.html"))


def _measured(dom: str) -> list[tuple[str, str, bool]]:
    """(entry, tag, hidden) of each measured row of the leaderboard, in DOM order."""
    body = re.search(r'<tbody class="rows-measured">(.*?)</tbody>', dom, flags=re.S).group(1)
    out = []
    for tr in re.findall(r"<tr\b[^>]*>.*?</tr>", body, flags=re.S):
        name = re.search(r'<a class="method"[^>]*>([^<]*)</a>', tr).group(1)
        tag = re.search(r'data-tag="([^"]*)"', tr).group(1)
        out.append((name, tag, 'class="row-measured hidden"' in tr))
    return out


def test_index_to_leaderboard_to_method_page(site):
    index = _dump_dom(site / "index.html")
    links = re.findall(r'<a class="board" href="([^"]+)">([^<]*)</a>', index)
    assert len(links) == 16
    href = dict((t, h) for h, t in links)["rescale · x2 · mini"]
    board = _dump_dom(site / href)
    assert "<h1>rescale · x2 · mini</h1>" in board
    assert [n for n, _, _ in _measured(board)] == ["irn.cpu", "tar.cpu", "car.cpu", "bicubic"]
    method = re.search(r'<a class="method" href="([^"]+)">irn.cpu</a>', board).group(1)
    page = _dump_dom((site / href).parent / method)
    assert "<h1>irn</h1>" in page and "Weights measured" in page
    assert "3b32639000e84810c29e1032fca1230d1989c047fa02dfcd30f00c6dcb528756" in page
    back = re.findall(r'<a class="board" href="([^"]+)">', page)
    assert back and all(((site / "methods") / h).resolve().is_file() for h in back)


_CLICK = """
var table = document.querySelector('table.leaderboard');
var heads = table.tHead.rows[0].cells, col = -1;
for (var i = 0; i < heads.length; i++) { if (heads[i].textContent === 'SSIM-Y') { col = i; } }
function names() { return Array.prototype.map.call(
  table.querySelectorAll('tbody.rows-measured a.method'), function (a) { return a.textContent; }); }
heads[col].click(); var first = names();
heads[col].click(); var second = names();
window.probe = {col: col, desc: first, asc: second, sorted: table.getAttribute('data-sorted')};
"""


def test_a_header_click_sorts_the_leaderboard(site):
    page = _board_page(site)
    seen = _probe(page, _CLICK)
    assert seen["col"] > 0 and seen["sorted"] == f"{seen['col']}:asc"
    # SSIM-Y of the published x2 run: irn 0.9754 > tar 0.9439 > car 0.9347 > bicubic 0.9298
    assert seen["desc"] == ["irn.cpu", "tar.cpu", "car.cpu", "bicubic"]
    assert seen["asc"] == seen["desc"][::-1]
    # the report's hash hook sorts on load too (text column, descending)
    dom = _dump_dom(page, "#sort=0:1:desc")
    assert [n for n, _, _ in _measured(dom)] == ["tar.cpu", "irn.cpu", "car.cpu", "bicubic"]


_FILTER = """
var select = document.getElementById('tag-filter');
select.value = 'cpu'; select.dispatchEvent(new Event('change'));
function shown() { return Array.prototype.filter.call(
  document.querySelectorAll('table.leaderboard tbody tr'),
  function (tr) { return tr.offsetParent !== null; }).map(function (tr) {
    return tr.getAttribute('data-tag'); }); }
var cpu = shown();
select.value = ''; select.dispatchEvent(new Event('change'));
window.probe = {cpu: cpu, all: shown(), options: Array.prototype.map.call(select.options,
  function (o) { return o.value; })};
"""


def test_filter_by_weights_tag(site):
    page = _board_page(site)
    seen = _probe(page, _FILTER)
    assert seen["options"] == ["", "cpu", "none"]
    assert seen["cpu"] == ["cpu", "cpu", "cpu"]
    assert sorted(seen["all"]) == ["cpu", "cpu", "cpu", "none"]
    dom = _dump_dom(page, "#tag=none")
    assert [(n, h) for n, _, h in _measured(dom)] == [
        ("irn.cpu", True), ("tar.cpu", True), ("car.cpu", True), ("bicubic", False)]


_REQUESTS = """
var blocked = [];
document.addEventListener('securitypolicyviolation', function (e) { blocked.push(e.blockedURI); });
var external = [];
document.querySelectorAll('[src], link[href], [style*="url("]').forEach(function (el) {
  external.push(el.outerHTML.slice(0, 80)); });
var loaded = performance.getEntriesByType('resource').map(function (e) { return e.name; });
var img = document.createElement('img');
img.src = 'http://127.0.0.1:9/csp-check.png';
document.body.appendChild(img);
setTimeout(function () {
  document.body.setAttribute('data-probe2', JSON.stringify(
    {loaded: loaded, external: external, blocked: blocked}));
}, 200);
window.probe = {};
"""


def test_no_request_leaves_the_site(site):
    pages = [site / "index.html", _board_page(site), site / "methods" / "irn.html"]
    for page in pages:
        dom = _probe(page, _REQUESTS)["dom"]
        seen = json.loads(html.unescape(re.search(r'data-probe2="([^"]*)"', dom).group(1)))
        assert seen["loaded"] == [] and seen["external"] == [], (page, seen)
        # the page's Content-Security-Policy blocks a request even a script tries to make
        assert seen["blocked"] == ["http://127.0.0.1:9/csp-check.png"], (page, seen)
        # and the rendered DOM (the probe left out) names no outside resource; links to papers
        # and code on a method page are navigation, not requests
        own = dom.split(_PROBE_START)[0]
        assert not re.search(r"""\ssrc=|<link\b|@import|url\(""", own), page


_FIT = """
var t = document.querySelector('table.leaderboard');
window.probe = {inner: window.innerWidth, page: document.documentElement.scrollWidth,
                table: t.scrollWidth, room: t.parentElement.clientWidth};
"""


def test_a_leaderboard_fits_1400px(site):
    # the x2 board carries IRN's long chained weights label and six metrics with intervals
    seen = _probe(_board_page(site), _FIT)
    assert seen["inner"] == 1400
    assert seen["table"] <= seen["room"] and seen["page"] <= seen["inner"], seen
