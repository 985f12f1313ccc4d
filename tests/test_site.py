"""The static leaderboard site (``irnbench leaderboard``): escaping, verified merging (conflicts,
fingerprints, refused runs), incremental ``add`` equal to a fresh ``build`` byte for byte,
deterministic output, and ``data/`` consistent with the pages."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from markupsafe import escape

from irnbench.cli import cli
from irnbench.leaderboard import leaderboards
from irnbench.results import frame, load_run, save_run, set_means
from irnbench.site import add_runs, build_site, verify_run
from irnbench.site.render import CSP
from irnbench.site.runs import RunRefused, canonical, read_runs, recompute_means

ROOT = Path(__file__).resolve().parents[1]
FP = "a" * 64


def make_run(path: Path, entries: list[dict], date: str = "2026-01-01T00:00:00+00:00",
             datasets: dict[str, str] | None = None, images: int = 6,
             papers: list[dict] | None = None, **meta) -> Path:
    """A run folder written by ``save_run``: each entry is ``method``, ``tag``, ``sha``,
    ``dataset``, ``setting``, ``quality``, ``level`` (its PSNR-Y), optional ``draws``/``seed``
    and ``label``/``images`` (image names); ``papers``: paper-reported rows."""
    rows, weights = [], {}
    for e in entries:
        rng = np.random.default_rng(e.get("seed", 0))
        tag = e.get("tag", "cpu")
        spec = f"{e['method']}.{tag}" if tag else e["method"]
        names = e.get("images") or [f"img{i}.png" for i in range(images)]
        for i, name in enumerate(names):
            for d in range(e.get("draws", 1)):
                v = e["level"] + (i % 3) * 0.5 + rng.normal(0, 0.05) + 0.01 * d
                rows.append({"source": "measured", "method": spec, "label": e.get("label", spec),
                             "weights": f"{tag or 'no'} weights", "tag": tag or None,
                             "task": "rescale", "setting": e.get("setting", "x2"),
                             "codec": e.get("codec"), "quality": e.get("quality"),
                             "dataset": e.get("dataset", "mini"),
                             "image": name, "draw": d, "psnr_y": v, "ssim_y": 1 - 1 / v,
                             "seconds": 0.5, "params": 1000, "status": "ok"})
        weights.setdefault(spec, {})[e.get("setting", "x2")] = {
            "tag": tag, "label": f"{tag or 'no'} weights", "sha256": e.get("sha", ""),
            **e.get("weights_info", {})}
    ds = datasets or {"mini": FP}
    info = {"date": date, "task": "rescale", "git_commit": "0" * 40,
            "datasets": [{"name": n, "fingerprint": f} for n, f in ds.items()],
            "weights": weights, "protocol": {"x2": "protocol text <x2>"},
            "methods_info": {}, **meta}
    rows += [{"source": "paper-reported", "weights": "as published", "task": "rescale",
              "setting": "x2", **r} for r in papers or []]
    save_run(path, frame(rows), info)
    return path


def _files(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes()
            for p in sorted(site.rglob("*")) if p.is_file()}


def _board(site: Path, slug_part: str = "") -> dict:
    (path,) = [p for p in (site / "data" / "boards").glob("*.json") if slug_part in p.name]
    return json.loads(path.read_text())


@pytest.fixture
def three(tmp_path) -> list[Path]:
    """Three runs: four tables (two settings, JPEG conditions), two weights of one method."""
    a = make_run(tmp_path / "a", [
        {"method": "irn", "sha": "1" * 64, "level": 33},
        {"method": "bicubic", "tag": "", "level": 30},
        {"method": "irn", "sha": "1" * 64, "level": 28, "quality": 50},
        {"method": "bicubic", "tag": "", "level": 27, "quality": 50}])
    b = make_run(tmp_path / "b", [
        {"method": "car", "sha": "2" * 64, "level": 31, "setting": "x4"},
        {"method": "bicubic", "tag": "", "level": 26, "setting": "x4"},
        {"method": "bicubic", "tag": "", "level": 24, "setting": "x4", "quality": 30}],
        date="2026-02-01T00:00:00+00:00")
    c = make_run(tmp_path / "c", [
        {"method": "irn", "tag": "local", "sha": "3" * 64, "level": 34, "seed": 4},
        {"method": "bicubic", "tag": "", "level": 30}],  # the same bicubic as in a
        date="2026-03-01T00:00:00+00:00")
    return [a, b, c]


def test_build_ranks_through_the_leaderboard_module(three, tmp_path):
    res = build_site(three, tmp_path / "site")
    assert res.runs == 3 and res.conflicts == []
    board = _board(tmp_path / "site", "rescale-x2-mini-")
    measured = [r for r in board["rows"] if r["kind"] == "measured"]
    assert [r["name"] for r in measured] == ["irn.local", "irn.cpu", "bicubic"]
    assert [r["rank"] for r in measured] == [1, 2, 3]
    assert board["rank_metric"] == "psnr_y" and board["reference"] == "irn.local"
    # the same order irnbench.leaderboard gives the measured rows of that table
    a, c = load_run(three[0])[0], load_run(three[2])[0]
    rows = pd.concat([a, c[c["method"] == "irn.local"]], ignore_index=True)
    (lb,) = leaderboards(rows[(rows["setting"] == "x2") & rows["quality"].isna()])
    assert [r.name for r in lb.measured] == [r["name"] for r in measured]
    top = measured[0]
    assert top["metrics"]["psnr_y"]["lo"] < top["metrics"]["psnr_y"]["mean"] \
        < top["metrics"]["psnr_y"]["hi"]
    assert measured[1]["delta"]["reference"] == "irn.local" and measured[1]["delta"]["diff"] < 0
    # bicubic measured by a and c with the same numbers: one entry credited to both runs
    assert len(measured[2]["runs"]) == 2
    assert [t["name"] for t in board["timeline"]] == ["irn.cpu", "irn.local"]
    assert board["last_update"].startswith("2026-03-01")


def test_paper_rows_sit_beside_once_and_labelled(tmp_path):
    paper = {"method": "irn", "label": "IRN", "dataset": "Mini", "psnr_y": 40.1,
             "reference": "IRN (Xiao et al., ECCV 2020) Table 1"}
    other = {**paper, "dataset": "set5"}
    runs = [make_run(tmp_path / n, [{"method": "irn", "sha": "1" * 64, "level": 33}],
                     papers=[paper, other], date=f"2026-01-0{i + 1}T00:00:00+00:00")
            for i, n in enumerate("ab")]
    build_site(runs, tmp_path / "site")
    rows = _board(tmp_path / "site")["rows"]
    assert [(r["kind"], r["name"]) for r in rows] == [("measured", "irn.cpu"), ("paper", "IRN")]
    assert rows[1]["rank"] is None and rows[1]["source"].startswith("IRN (Xiao")
    page = next((tmp_path / "site" / "boards").glob("*.html")).read_text()
    assert 'class="rows-paper"' in page and 'data-tag="paper"' in page
    assert "paper-reported</span>" in page
    data = pd.read_csv(tmp_path / "site" / "data" / "rows.csv")
    assert sorted(data.loc[data["source"] == "paper-reported", "dataset"]) == ["Mini", "set5"]
    index = (tmp_path / "site" / "index.html").read_text()
    assert "1 paper-reported row matches no measured leaderboard" in index


def test_pages_filter_sort_and_link(three, tmp_path):
    build_site(three, tmp_path / "site")
    site = tmp_path / "site"
    index = (site / "index.html").read_text()
    links = re.findall(r'href="(boards/[^"]+\.html)"', index)
    assert len(links) == 4 and all((site / link).is_file() for link in links)
    page = (site / links[0]).read_text()
    assert 'id="tag-filter"' in page and 'data-tag="cpu"' in page
    assert "table class=\"leaderboard sortable\"" in page
    for href in re.findall(r'href="(\.\./methods/[^"]+)"', page):
        assert (site / "boards" / href).resolve().is_file()
    irn = (site / "methods" / "irn.html").read_text()
    assert "1" * 64 in irn and "3" * 64 in irn  # both weight sets, full sha256
    assert 'href="../data/methods/irn.csv"' in irn
    per_image = pd.read_csv(site / "data" / "methods" / "irn.csv")
    assert set(per_image["tag"]) == {"cpu", "local"} and len(per_image) == 18


def test_method_page_names_a_pinned_source_the_run_records(tmp_path):
    url = "https://github.com/pkuxmq/Invertible-Image-Rescaling/raw/" + "c" * 40 + "/IRN_x2.pth"
    source = {"file": "IRN_x2.pth", "released_as": "IRN_x2.pth", "sha256": "d" * 64,
              "url": url, "commit": "c" * 40, "git_blob_sha1": "e" * 40}
    run = make_run(tmp_path / "r", [{"method": "irn", "tag": "official", "sha": "1" * 64,
                                     "level": 33, "weights_info": {
                                         "sources": [source, {"file": "x", "url": "javascript:1"}],
                                         "origin": {"repository": "github.com/pkuxmq/IRN"}}}])
    build_site([run], tmp_path / "site")
    page = (tmp_path / "site" / "methods" / "irn.html").read_text()
    assert f'<a href="{url}" rel="noreferrer">pinned URL</a>' in page
    assert "commit <code>cccccccccccc</code>" in page and "blob <code>eeeeeeeeeeee</code>" in page
    assert "javascript:" not in page  # a recorded URL that is not http(s) is not linked


def test_escaping_of_labels_and_file_names(tmp_path):
    evil = '<script>alert("x")</script>'
    run = make_run(tmp_path / "<b>run", [
        {"method": "m<i>x", "tag": "", "level": 30, "label": evil,
         "images": ['<img src=x onerror="alert(1)">.png', "b.png"]},
        {"method": "bicubic", "tag": "", "level": 29}])
    build_site([run], tmp_path / "site", title="<h1>T</h1>")
    site = tmp_path / "site"
    for path in site.rglob("*"):
        assert "<" not in path.name and ">" not in path.name
    pages = {p.name: p.read_text() for p in site.rglob("*.html")}
    assert len(pages) == 4
    for name, html in pages.items():
        assert "<script>alert" not in html and "<b>run" not in html, name
        assert "onerror=" not in html.replace("onerror=&#34;", ""), name
        assert "<h1>T</h1>" not in html and "&lt;h1&gt;T&lt;/h1&gt;" in html, name
    method_pages = [p for p in (site / "methods").glob("m_i_x-*.html")]
    assert len(method_pages) == 1
    assert "m&lt;i&gt;x" in method_pages[0].read_text()
    assert "&lt;b&gt;run" in pages["index.html"]
    # the data keeps the text as it is
    rows = pd.read_csv(site / "data" / "rows.csv")
    assert '<img src=x onerror="alert(1)">.png' in set(rows["image"])


def test_agreeing_runs_merge_and_disagreeing_runs_conflict(tmp_path):
    base = {"method": "irn", "sha": "1" * 64, "level": 33}
    a = make_run(tmp_path / "a", [base, {"method": "bicubic", "tag": "", "level": 30}])
    b = make_run(tmp_path / "b", [base], date="2026-01-02T00:00:00+00:00")
    c = make_run(tmp_path / "c", [{**base, "level": 33.2}], date="2026-01-03T00:00:00+00:00")
    res = build_site([a, b], tmp_path / "ok")
    board = _board(tmp_path / "ok")
    assert res.conflicts == [] and board["conflicts"] == []
    irn = next(r for r in board["rows"] if r["name"] == "irn.cpu")
    assert len(irn["runs"]) == 2 and irn["images"] == 6

    res = build_site([a, b, c], tmp_path / "conflict")
    board = _board(tmp_path / "conflict")
    assert [r["name"] for r in board["rows"]] == ["bicubic"]  # irn.cpu is not ranked
    (conflict,) = board["conflicts"]
    assert conflict["name"] == "irn.cpu" and len(conflict["groups"]) == 2
    ids = {r.name: r.id for r in read_runs([a, b, c])[0]}
    assert [g["runs"] for g in conflict["groups"]] == [[ids["a"], ids["b"]], [ids["c"]]]
    means = [g["metrics"]["psnr_y"]["mean"] for g in conflict["groups"]]
    assert means[1] == pytest.approx(means[0] + 0.2)
    (line,) = res.conflicts
    assert "irn.cpu" in line and "a (" in line and "b (" in line and "c (" in line
    page = next((tmp_path / "conflict" / "boards").glob("*.html")).read_text()
    assert "Conflicts (not ranked)" in page and page.count('class="row-conflict"') == 2
    index = json.loads((tmp_path / "conflict" / "data" / "index.json").read_text())
    assert index["boards"][0]["conflicts"] == 1


def test_each_codec_of_a_quality_is_its_own_board(tmp_path):
    run = make_run(tmp_path / "r", [
        {"method": "irn", "sha": "1" * 64, "level": 30, "quality": 50},
        {"method": "irn", "sha": "1" * 64, "level": 31, "quality": 50, "codec": "webp"}])
    build_site([run], tmp_path / "site")
    index = json.loads((tmp_path / "site" / "data" / "index.json").read_text())
    assert sorted((b["condition"]["codec"], b["condition"]["quality"]) for b in index["boards"]) \
        == [("jpeg", 50), ("webp", 50)]
    titles = re.findall(r'<a class="board" href="[^"]+">([^<]*)</a>',
                        (tmp_path / "site" / "index.html").read_text())
    assert sorted(titles) == ["rescale · x2 · JPEG q50 · mini", "rescale · x2 · WebP q50 · mini"]


def test_two_weights_of_one_name_are_two_entries(tmp_path):
    a = make_run(tmp_path / "a", [{"method": "irn", "tag": "local", "sha": "1" * 64,
                                   "level": 33}])
    b = make_run(tmp_path / "b", [{"method": "irn", "tag": "local", "sha": "2" * 64,
                                   "level": 32}])
    build_site([a, b], tmp_path / "site")
    names = [r["name"] for r in _board(tmp_path / "site")["rows"]]
    assert names == ["irn.local@11111111", "irn.local@22222222"]


def test_a_dataset_with_two_fingerprints_gives_two_boards(tmp_path):
    a = make_run(tmp_path / "a", [{"method": "irn", "sha": "1" * 64, "level": 33}])
    b = make_run(tmp_path / "b", [{"method": "irn", "sha": "1" * 64, "level": 31}],
                 datasets={"mini": "b" * 64})
    res = build_site([a, b], tmp_path / "site")
    assert res.boards == 2 and res.conflicts == []
    fps = sorted(_board(tmp_path / "site", p)["fingerprint"] for p in ("aaaaaaaa", "bbbbbbbb"))
    assert fps == ["a" * 64, "b" * 64]
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.count('title="' + "a" * 64) == 1 and index.count('title="' + "b" * 64) == 1


def _tamper(run: Path, fn) -> None:
    path = run / "results.json"
    payload = json.loads(path.read_text())
    fn(payload)
    path.write_text(json.dumps(payload))


def test_refused_runs_exit_2_naming_the_run(tmp_path):
    good = make_run(tmp_path / "good", [{"method": "irn", "sha": "1" * 64, "level": 33}])
    bad = make_run(tmp_path / "bad-means", [{"method": "irn", "sha": "1" * 64, "level": 33}])
    _tamper(bad, lambda p: p["rows"][0].update(psnr_y=p["rows"][0]["psnr_y"] + 1))
    newer = make_run(tmp_path / "future", [{"method": "irn", "sha": "1" * 64, "level": 33}],
                     protocol_version=99)
    runner = CliRunner()
    for run, why in ((bad, "set means do not recompute"), (newer, "unknown protocol version")):
        for args in (["leaderboard", "build", str(good), str(run), "--out",
                      str(tmp_path / "site")], ["leaderboard", "verify", str(run)]):
            res = runner.invoke(cli, args)
            assert res.exit_code == 2, res.output
            (line,) = res.output.strip().splitlines()
            assert line.startswith(f"Error: {run}: refused") and why in line
        with pytest.raises(RunRefused):
            verify_run(run)
    assert not (tmp_path / "site").exists()
    res = runner.invoke(cli, ["leaderboard", "verify", str(good)])
    assert res.exit_code == 0 and "1 set mean(s) recompute" in res.output


def test_a_recorded_mean_is_checked_too(tmp_path):
    run = make_run(tmp_path / "r", [{"method": "irn", "sha": "1" * 64, "level": 33}])
    _tamper(run, lambda p: p["means"][0].update(psnr_y=p["means"][0]["psnr_y"] + 1e-6))
    with pytest.raises(RunRefused, match="psnr_y recorded"):
        verify_run(run)


def test_means_recorded_before_the_codec_column_still_recompute(tmp_path):
    run = make_run(tmp_path / "r", [{"method": "irn", "sha": "1" * 64, "level": 33,
                                     "quality": 30}])

    def drop_codec(payload):
        for rec in payload["rows"] + payload["means"]:
            rec.pop("codec", None)

    _tamper(run, drop_codec)
    assert verify_run(run)["means"] == 1


def test_runs_written_before_versions_and_means_are_version_1(tmp_path):
    run = make_run(tmp_path / "old", [{"method": "irn", "sha": "1" * 64, "level": 33}])
    _tamper(run, lambda p: (p.pop("means"), p["meta"].pop("protocol_version")))
    assert verify_run(run)["protocol_version"] == 1 and verify_run(run)["means"] is None
    for folder in sorted((ROOT / "reports").glob("*-mini")):
        assert verify_run(folder)["protocol_version"] == 1


def test_recomputed_means_are_those_of_summarize(tmp_path):
    run = make_run(tmp_path / "r", [{"method": "irn", "sha": "1" * 64, "level": 33, "draws": 3},
                                    {"method": "bicubic", "tag": "", "level": 30,
                                     "quality": 30}])
    df, _ = load_run(run)
    again = recompute_means(df.assign(run_id="x")).set_index("method")
    for rec in set_means(df):
        for col in ("psnr_y", "ssim_y", "images", "draws"):
            assert again.loc[rec["method"], col] == pytest.approx(rec[col], rel=1e-12)


def test_add_equals_a_fresh_build_byte_for_byte(three, tmp_path):
    build_site(three, tmp_path / "fresh", title="T")
    build_site(three[::-1], tmp_path / "again", title="T", jobs=2)
    assert _files(tmp_path / "fresh") == _files(tmp_path / "again")
    build_site(three[:1], tmp_path / "grown", title="T")
    res = CliRunner().invoke(cli, ["leaderboard", "add", str(tmp_path / "grown"),
                                   *map(str, three[1:])])
    assert res.exit_code == 0, res.output
    assert _files(tmp_path / "grown") == _files(tmp_path / "fresh")
    add_runs(tmp_path / "grown", three[2:])  # a run added twice is one run
    assert _files(tmp_path / "grown") == _files(tmp_path / "fresh")


def test_data_files_are_present_and_consistent(three, tmp_path):
    build_site(three, tmp_path / "site")
    data = tmp_path / "site" / "data"
    csv = pd.read_csv(data / "rows.csv")
    parquet = pd.read_parquet(data / "rows.parquet")
    assert list(csv.columns) == list(parquet.columns) and len(csv) == len(parquet)
    assert {"weights_sha256", "fingerprint", "protocol_version", "run_id"} <= set(csv.columns)
    pd.testing.assert_frame_equal(canonical(csv), canonical(parquet))
    runs, rows = read_runs(three)
    assert len(csv[csv["source"] == "measured"]) == len(rows) == 9 * 6  # 9 sets of 6 images
    # every per-image number is the run's own
    mine = csv[csv["run_id"] == runs[1].id].reset_index(drop=True)
    own = load_run(three[1])[0]
    assert np.array_equal(mine["psnr_y"].to_numpy(), own["psnr_y"].to_numpy(dtype=float))
    index = json.loads((data / "index.json").read_text())
    slugs = sorted(b["slug"] for b in index["boards"])
    assert slugs == sorted(p.stem for p in (data / "boards").glob("*.json")) \
        == sorted(p.stem for p in (tmp_path / "site" / "boards").glob("*.html"))
    assert [r["id"] for r in json.loads((data / "runs.json").read_text())] == \
        [r.id for r in runs]  # in date order
    for slug in slugs:
        board = json.loads((data / "boards" / f"{slug}.json").read_text())
        assert board["fingerprint"] == FP and board["protocol_version"] == 1


def test_pages_request_nothing_outside_the_site(three, tmp_path):
    build_site(three, tmp_path / "site")
    for page in (tmp_path / "site").rglob("*.html"):
        html = page.read_text()
        assert f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">' in html
        assert not re.search(r"<(link|img|iframe|object|embed)\b", html), page
        assert not re.search(r"""\bsrc\s*=|@import|url\(""", html), page
        for href in re.findall(r'href="([^"]*)"', html):
            assert "://" not in href or page.parent.name == "methods", (page, href)


def test_build_refuses_a_folder_that_is_not_a_site(three, tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.txt").write_text("x")
    res = CliRunner().invoke(cli, ["leaderboard", "build", str(three[0]), "--out",
                                   str(tmp_path / "docs")])
    assert res.exit_code == 1 and "not an irnbench leaderboard site" in res.output
    build_site(three[:1], tmp_path / "site")
    (tmp_path / "site" / "CNAME").write_text("example.org")  # a host's own file stays
    build_site(three, tmp_path / "site")
    assert (tmp_path / "site" / "CNAME").read_text() == "example.org"
