"""The report in a real browser: headless Chromium renders it and runs its sort script."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from irnbench.report import render_report
from irnbench.runner import run_benchmark

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("headless Chromium is not installed (chromium not on PATH)",
                allow_module_level=True)


def _dump_dom(path: Path, fragment: str = "") -> str:
    url = path.resolve().as_uri() + fragment
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-extensions", "--no-first-run",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "<html" in proc.stdout, proc.stderr[-2000:]
    return proc.stdout


def _first_leaderboard(dom: str) -> str:
    m = re.search(r'<table class="leaderboard sortable".*?</table>', dom, flags=re.S)
    assert m, "no leaderboard table in the DOM"
    return m.group(0)


def _measured_rows(table: str) -> list[tuple[str, float]]:
    """(method, PSNR-Y data-sort value) of each measured row, in DOM order."""
    body = re.search(r'<tbody class="rows-measured">(.*?)</tbody>', table, flags=re.S).group(1)
    rows = re.findall(r"<tr\b[^>]*>.*?</tr>", body, flags=re.S)
    out = []
    for r in rows:
        method = re.search(r'data-method="([^"]*)"', r).group(1)
        cells = re.findall(r"<td\b[^>]*>", r)
        psnr = re.search(r'data-sort="([^"]*)"', cells[3]).group(1)  # column 3 = PSNR-Y
        out.append((method, float(psnr)))
    return out


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """The report of a real bicubic run on three small random images."""
    root = tmp_path_factory.mktemp("browser")
    rng = np.random.default_rng(1)
    folder = root / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (48 + 8 * i, 64, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png")
    out = run_benchmark(task="rescale", methods=["bicubic"], settings=[{"scale": 2}],
                        datasets=[str(folder)], out=root / "run", device="cpu", progress=False)
    return render_report([out.run_dir], root / "report.html")


def test_leaderboard_in_rendered_dom(report):
    dom = _dump_dom(report)
    table = _first_leaderboard(dom)
    rows = _measured_rows(table)
    assert [m for m, _ in rows] == ["bicubic"]
    assert "Published results (not measured in this run)" in dom
    # the script ran without sorting anything (no hash)
    assert "data-sorted" not in table


def _per_image_images(dom: str) -> list[str]:
    m = re.search(r'<table class="perimage sortable".*?</table>', dom, flags=re.S)
    assert m, "no per-image table in the DOM"
    body = re.search(r"<tbody>(.*?)</tbody>", m.group(0), flags=re.S).group(1)
    return re.findall(r"<tr><td>([^<]*)</td>", body)


def _per_image_psnr(dom: str) -> list[float]:
    m = re.search(r'<table class="perimage sortable".*?</table>', dom, flags=re.S)
    body = re.search(r"<tbody>(.*?)</tbody>", m.group(0), flags=re.S).group(1)
    out = []
    for r in re.findall(r"<tr>.*?</tr>", body, flags=re.S):
        cells = re.findall(r"<td\b[^>]*>", r)
        out.append(float(re.search(r'data-sort="([^"]*)"', cells[3]).group(1)))
    return out


def test_sort_script(report):
    html = report.read_text()
    n_sortable = len(re.findall(r'<table class="[^"]*\bsortable\b', html))
    lb_count = len(re.findall(r'<table class="leaderboard sortable"', html))
    per_image_index = n_sortable - 1  # the per-image table is the last sortable one
    static = _per_image_images(html)
    assert static == ["img0.png", "img1.png", "img2.png"]

    # text column (image name), descending: order reversed
    dom = _dump_dom(report, f"#sort={per_image_index}:0:desc")
    assert _per_image_images(dom) == ["img2.png", "img1.png", "img0.png"]
    assert 'data-sorted="0:desc"' in dom

    # numeric column (PSNR-Y): a header click on a numeric column sorts descending first
    dom = _dump_dom(report, f"#sort={per_image_index}:3")
    psnr = _per_image_psnr(dom)
    assert psnr == sorted(psnr, reverse=True)
    dom = _dump_dom(report, f"#sort={per_image_index}:3:asc")
    psnr_asc = _per_image_psnr(dom)
    assert psnr_asc == sorted(psnr_asc) and psnr_asc == psnr[::-1]
    assert lb_count >= 1


def test_leaderboard_sort_merged(report, tmp_path):
    """A merged report with several measured rows in one leaderboard: sorting reorders them."""
    from irnbench.results import load_run, save_run

    # a second run folder whose rows are the first run's, renamed and shifted down 1 dB
    df, meta = load_run(report.parent / "run")
    m = df["source"] == "measured"
    df2 = df[m].copy()
    df2["method"] = df2["label"] = "bicubic-minus-1db"
    df2["psnr_y"] = df2["psnr_y"].astype(float) - 1.0
    save_run(tmp_path / "run2", df2, meta)
    merged = render_report([report.parent / "run", tmp_path / "run2"], tmp_path / "m.html")

    default = _measured_rows(_first_leaderboard(merged.read_text()))
    assert [x for x, _ in default] == ["bicubic", "bicubic-minus-1db"]  # best first
    dom = _dump_dom(merged, "#sort=0:3:asc")
    table = _first_leaderboard(dom)
    assert 'data-sorted="3:asc"' in table
    rows = _measured_rows(table)
    assert [x for x, _ in rows] == ["bicubic-minus-1db", "bicubic"]
    assert rows[0][1] < rows[1][1]
    # the best value stays bold wherever its row moves
    assert re.search(r'<tr class="row-measured" data-method="bicubic">.*?<strong>', table,
                     flags=re.S)


_FIT_PROBE = """<script>
window.addEventListener('load', () => {
  const over = [...document.querySelectorAll('table.leaderboard')]
    .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1).length;
  document.body.setAttribute('data-fit', JSON.stringify({
    inner: window.innerWidth, page: document.documentElement.scrollWidth, over: over,
    tables: document.querySelectorAll('table.leaderboard').length}));
});
</script></body>"""


def test_leaderboard_fits_1400px_without_horizontal_scrolling(tmp_path):
    """IRN's long chained weights label and the training budget wrap inside a 1400 px window."""
    import json

    rng = np.random.default_rng(2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(
            folder / f"img{i}.png")
    out = run_benchmark(task="rescale", methods=["irn", "tar", "car", "bicubic"],
                        settings=[{"scale": 2}], datasets=[str(folder)], out=tmp_path / "run",
                        device="cpu", progress=False, draws=2)
    page = render_report([out.run_dir], tmp_path / "report.html")
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text().replace("</body>", _FIT_PROBE, 1))
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--window-size=1400,900",
         "--no-first-run", "--dump-dom", probe.resolve().as_uri()],
        capture_output=True, text=True, timeout=60, check=False)
    fit = json.loads(re.search(r"data-fit=\"([^\"]*)\"", proc.stdout).group(1)
                     .replace("&quot;", '"'))
    assert fit["tables"] >= 1 and fit["inner"] == 1400
    assert fit["over"] == 0, fit
    assert fit["page"] <= fit["inner"], fit
