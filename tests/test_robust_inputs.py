"""Hostile but realistic inputs (issue #29): merged runs of two image sets that share a name,
NaN / −inf / huge metrics, markup in labels, unreadable results.json, absent devices and tiny
tiles. Each is refused in one line or shown for what it is, in every report format."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from irnbench.cli import cli
from irnbench.device import resolve_device
from irnbench.errors import InvalidSetting
from irnbench.registry import get_method_class
from irnbench.report import build_context, export_report, load_runs, render_report
from irnbench.report.formatting import NA_NOTE
from irnbench.results import frame, save_run

FP_A, FP_B = "a" * 64, "b" * 64


def _rows(label: str, psnr: list[float], dataset: str = "photos", first: int = 0) -> list[dict]:
    """Per-image measured rows of one method (images ``im{first}``…), rescale x2."""
    return [{"source": "measured", "method": label, "label": label, "weights": "w",
             "task": "rescale", "setting": "x2", "quality": None, "dataset": dataset,
             "image": f"im{first + i}", "draw": 0, "status": "ok", "psnr_y": v,
             "ssim_y": 0.9, "params": 1000, "seconds": 0.5} for i, v in enumerate(psnr)]


def _folder(path: Path, rows: list[dict], fingerprint: str = FP_A, protocol: str = "P",
            nan: dict[tuple[str, str], list[int]] | None = None) -> Path:
    """A run folder as ``save_run`` writes it; ``nan`` rewrites cells (label, metric) → image
    indices as JSON ``NaN`` tokens, as another tool (``json.dumps``) writes them."""
    meta = {"task": "rescale", "datasets": [{"name": rows[0]["dataset"], "images": 3,
                                             "fingerprint": fingerprint}],
            "protocol": {"x2": protocol}, "methods": sorted({r["label"] for r in rows})}
    save_run(path, frame(rows), meta)
    if nan:
        payload = json.loads((path / "results.json").read_text())
        for r in payload["rows"]:
            for (label, metric), images in nan.items():
                if r["label"] == label and int(r["image"][2:]) in images:
                    r[metric] = float("nan")
        (path / "results.json").write_text(json.dumps(payload))
    return path


def _md_rows(text: str) -> dict[str, list[str]]:
    """Markdown table rows by their first cell (cells stripped)."""
    return {cells[0]: cells for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("|---")
            for cells in [[c.strip() for c in line.strip("|").split(" | ")]]}


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False, dtype=str)


def _one_error_line(result, code: int, *words: str) -> str:
    """The CLI answered with one ``Error:`` line (no traceback) and ``code``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == code, result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# -- merging runs checks dataset fingerprints ---------------------------------------------------
def _crop(run: Path, colour: tuple[int, int, int]) -> None:
    """One visual crop of ``photos/im0`` (same box in every run), as runs write them."""
    (run / "visuals").mkdir()
    Image.new("RGB", (8, 8), colour).save(run / "visuals" / "im0_bicubic.png")
    entry = {"setting": "x2", "quality": None, "dataset": "photos", "image": "im0",
             "box": [0, 0, 8, 8], "crops": {"bicubic": "im0_bicubic.png"}}
    (run / "visuals" / "index.json").write_text(json.dumps([entry]))


@pytest.fixture
def two_photos(tmp_path) -> tuple[Path, Path]:
    """Two runs on different folders both named ``photos`` (the issue's 32.26 vs 16.58)."""
    a = _folder(tmp_path / "a", _rows("bicubic", [31.26, 32.26, 33.26]), FP_A)
    b = _folder(tmp_path / "b", _rows("bicubic", [15.58, 16.58, 17.58], first=3), FP_B)
    _crop(a, (255, 0, 0))
    _crop(b, (0, 0, 255))
    return a, b


def test_same_name_different_fingerprints_are_kept_apart(two_photos):
    blended = (32.26 * 3 + 16.58 * 3) / 6
    md = export_report(list(two_photos), "md")
    assert "### rescale x2 · photos (aaaaaaaa)" in md and "### rescale x2 · photos (bbbbbbbb)" in md
    assert "32.26" in md and "16.58" in md and f"{blended:.2f}" not in md
    assert "names different image sets" in md
    df = _csv(export_report(list(two_photos), "csv"))
    measured = df[df["source"] == "measured"]
    assert dict(zip(measured["dataset"], measured["psnr_y"].astype(float), strict=True)) == \
        pytest.approx({"photos (aaaaaaaa)": 32.26, "photos (bbbbbbbb)": 16.58})
    ctx = build_context(load_runs(list(two_photos)))
    assert sorted(t["dataset"] for t in ctx["leaderboards"]) == ["photos (aaaaaaaa)",
                                                                 "photos (bbbbbbbb)"]
    assert "photos (aaaaaaaa) (3 images)" in ctx["runs"][0]["datasets"]
    (group,) = ctx["visuals"]  # each run's crop in its own row, never side by side
    assert sorted(v["dataset"] for v in group["items"]) == ["photos (aaaaaaaa)",
                                                            "photos (bbbbbbbb)"]
    result = CliRunner().invoke(cli, ["report", *map(str, two_photos), "--format", "md"])
    assert result.exit_code == 0 and "photos (bbbbbbbb)" in result.output


def test_same_name_same_fingerprint_still_merges(tmp_path):
    a = _folder(tmp_path / "a", _rows("bicubic", [31.0, 32.0, 33.0]), FP_A)
    b = _folder(tmp_path / "b", _rows("tar", [33.0, 34.0, 35.0]), FP_A)
    rows = _md_rows(export_report([a, b], "md"))
    assert "bicubic" in rows and "tar" in rows  # one table, both methods
    assert "(aaaaaaaa)" not in export_report([a, b], "md")


# -- non-finite metrics ---------------------------------------------------------------------
@pytest.fixture
def broken_run(tmp_path) -> Path:
    """``broken`` has the best numbers but a NaN on one image; ``gone`` NaN on every image;
    ``sunk`` −inf on one; ``good`` and ``fair`` are fine."""
    rows = (_rows("good", [30.0, 31.0, 32.0]) + _rows("fair", [29.0, 30.0, 31.0])
            + _rows("broken", [40.0, 0.0, 41.0]) + _rows("gone", [0.0, 0.0, 0.0])
            + _rows("sunk", [35.0, -math.inf, 36.0]))
    return _folder(tmp_path / "nan", rows, nan={("broken", "psnr_y"): [1],
                                                 ("gone", "psnr_y"): [0, 1, 2]})


BAD = ("broken", "gone", "sunk")


def test_nan_is_na_with_a_footnote_in_markdown(broken_run):
    md = export_report([broken_run], "md")
    rows = _md_rows(md)
    col = rows["Method"].index("PSNR-Y")
    delta = next(i for i, c in enumerate(rows["Method"]) if c.startswith("Δ PSNR-Y"))
    mark = re.fullmatch(r"n/a \[(\d)\]", rows["broken"][col]).group(1)
    assert f"- [{mark}] {NA_NOTE}" in md
    for name in BAD:
        assert rows[name][col] == f"n/a [{mark}]" and rows[name][delta] == ""
    assert [n for n in rows if n != "Method"][-3:] == list(BAD)  # ranked last
    assert "40.50" not in md and not any("∞" in c for r in rows.values() for c in r)


def test_nan_is_na_never_bold_in_latex(broken_run):
    tex = export_report([broken_run], "latex")
    psnr = {cells[0]: cells[2] for ln in tex.splitlines() if " & " in ln
            for cells in [ln.split(" & ")]}  # Method & Weights & PSNR-Y & …
    assert psnr["good"].startswith(r"\textbf{31.00") and psnr["fair"].startswith(r"\underline{")
    for name in BAD:
        assert psnr[name] == "n/a [1]"
    assert "[1]~n/a: not a finite number" in tex


def test_nan_is_na_in_csv_without_rank(broken_run):
    df = _csv(export_report([broken_run], "csv"))
    m = df[df["source"] == "measured"].set_index("label")
    assert m.loc["good", "rank"] == "1" and m.loc["fair", "rank"] == "2"
    for name in BAD:
        assert m.loc[name, "psnr_y"] == "n/a" and m.loc[name, "not_finite"] == "psnr_y"
        assert m.loc[name, "rank"] == "" and m.loc[name, "psnr_y_lo"] == ""
        assert m.loc[name, "diff"] == ""
    assert m.loc["good", "not_finite"] == "" and float(m.loc["good", "psnr_y"]) == 31.0
    # pandas reads "n/a" back as a missing number
    assert pd.read_csv(io.StringIO(export_report([broken_run], "csv")))["psnr_y"].dtype == float


def test_nan_is_na_in_the_html_report(broken_run, tmp_path):
    (table,) = build_context(load_runs([broken_run]))["leaderboards"]
    col = [c["key"] for c in table["columns"]].index("psnr_y")
    rows = {r["method"]: r for r in table["rows"]}
    assert rows["good"]["cells"][col]["bold"]
    for name in BAD:
        cell = rows[name]["cells"][col]
        assert cell["text"] == "n/a" and not cell["bold"] and cell["sort"] == ""
        assert table["footnotes"][cell["fn"] - 1] == NA_NOTE
        assert rows[name]["values"]["psnr_y"] is None
    assert [r["method"] for r in table["rows"]][-3:] == list(BAD)
    html = render_report([broken_run], tmp_path / "r.html").read_text()
    assert "n/a<sup" in html and "40.50" not in html and "e+308" not in html


def test_plus_inf_is_a_real_value_and_huge_numbers_stay_short(tmp_path):
    """+inf (an exact copy's PSNR) is ∞ and may be best; 1e300 is written 1.00e+300."""
    rows = _rows("copy", [math.inf] * 3) + _rows("good", [30.0, 31.0, 32.0])
    rows += _rows("huge", [1e300, 1e300, 1e300])
    run = _folder(tmp_path / "inf", rows)
    md = export_report([run], "md")
    col = _md_rows(md)["Method"].index("PSNR-Y")
    assert _md_rows(md)["copy"][col] == "∞" and _md_rows(md)["huge"][col].startswith("1.00e+300 ")
    assert max(len(c) for r in _md_rows(md).values() for c in r) < 80
    tex = export_report([run], "latex")
    assert r"\textbf{$\infty$}" in tex


# -- user text is escaped in Markdown and LaTeX ---------------------------------------------
def test_markup_in_labels_is_escaped_in_markdown_and_latex(tmp_path):
    evil = "<script>alert(1)</script>"
    rows = _rows(evil, [30.0, 31.0, 32.0]) + _rows("[x](javascript:alert(1))", [29.0, 30.0, 31.0])
    run = _folder(tmp_path / "evil", rows, protocol="<b>bold</b> *protocol*")
    md = export_report([run], "md")
    assert "<script>" not in md and "<b>" not in md and "[x](javascript" not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md
    assert r"\[x\](javascript:alert(1))" in md and r"\*protocol\*" in md
    tex = export_report([run], "latex")
    assert "<" not in tex and r"\textless{}script\textgreater{}" in tex


# -- unreadable results.json ----------------------------------------------------------------
@pytest.mark.parametrize("content, why", [
    ('{"meta": {}, "rows": [{"source": "meas', "truncated or not JSON"),
    ("[]", "holds a JSON list"),
    ("{}", 'has no "rows" list'),
    ('{"rows": [1]}', "row 0 is a JSON int"),
    ('{"meta": 3, "rows": []}', '"meta" is not an object'),
], ids=["truncated", "empty-list", "empty-object", "bad-row", "bad-meta"])
@pytest.mark.parametrize("fmt", ["html", "md"])
def test_unreadable_results_json_is_one_line(tmp_path, content, why, fmt):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(content)
    result = CliRunner().invoke(cli, ["report", str(run), "--format", fmt])
    line = _one_error_line(result, 1, why)
    assert str(run / "results.json") in line


# -- devices --------------------------------------------------------------------------------
def _images(tmp_path: Path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (32, 32), (10, 200, 30)).save(folder / "a.png")
    return folder


def _run_args(tmp_path: Path, *extra: str) -> list[str]:
    return ["run", "--task", "rescale", "--scale", "2", "--datasets", str(_images(tmp_path)),
            "--draws", "1", "--quiet", "--out", str(tmp_path / "out"), *extra]


@pytest.mark.skipif(bool(getattr(torch.backends, "mps", None))
                    and torch.backends.mps.is_available(), reason="this machine has MPS")
def test_device_mps_without_mps_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, _run_args(tmp_path, "--plugins", "bicubic",
                                               "--device", "mps"))
    _one_error_line(result, 2, "--device", "'mps'")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, words", [
    ("cuda:7", ("'cuda:7'", "1 CUDA device")),
    ("meta", ("'meta' is not supported",)),
    ("garbage", ("unknown device 'garbage'",)),
])
def test_other_devices_are_checked(tmp_path, monkeypatch, name, words):
    """A one-GPU machine (CUDA faked): cuda:7 is refused; unsupported and unknown types too."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(InvalidSetting):
        resolve_device(name)
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    result = CliRunner().invoke(cli, _run_args(tmp_path, "--plugins", "bicubic",
                                               "--device", name))
    _one_error_line(result, 2, "--device", *words)


# -- tiles ----------------------------------------------------------------------------------
def test_tiny_tiles_are_refused_through_run(tmp_path):
    result = CliRunner().invoke(cli, _run_args(tmp_path, "--plugins", "irn",
                                               "--option", "tile=2"))
    _one_error_line(result, 2, "option 'tile' is 2", "at least 64")
    assert not (tmp_path / "out").exists()
    irn = get_method_class("irn")
    for ok in ("64", "512", "0", "-1"):  # the bound, and the automatic / never meanings
        assert irn.parse_options({"tile": ok})[0].tile == int(ok)
    presets = CliRunner().invoke(cli, ["presets", "irn"])
    assert "at least 64" in presets.output
