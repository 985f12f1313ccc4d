"""One ranking for every table: each task's ``rank_metric`` ranks its leaderboards in the HTML
report, the Markdown/LaTeX/CSV exports and ``compare`` alike (``irnbench.leaderboard``)."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image

from irnbench import compare as compare_module
from irnbench import leaderboard
from irnbench.cli import cli
from irnbench.leaderboard import (
    compare,
    lead_metric,
    leaderboards,
    rank_metric,
    summary_order,
    summary_rank,
)
from irnbench.plugins import registered_tasks
from irnbench.report import build_context, export_report, leaderboard_tables, load_runs
from irnbench.report.quality import quality_matrix_tables
from irnbench.results import METRIC_BETTER, frame, save_run, summarize
from irnbench.tasks.base import Task

# Decolorization where the two PSNRs disagree: the grey floor keeps Y almost exactly (highest
# PSNR-Y) but has no colour (lowest PSNR-RGB), as in reports/decolorize-cpu-mini.
DECOLORIZE = {  # method: per-image (psnr_y, psnr_rgb)
    "grey": [(61.0, 20.0), (62.0, 20.5), (60.5, 20.4), (61.5, 20.2)],
    "irn-color": [(33.0, 21.8), (34.0, 22.1), (33.5, 21.9), (34.2, 22.0)],
    "tar": [(39.0, 23.1), (40.0, 23.5), (39.5, 23.2), (40.5, 23.4)],
}
RGB_ORDER = ["tar", "irn-color", "grey"]


def _rows(values: dict[str, list[tuple[float, float]]], task: str = "decolorize",
          setting: str = "uint8") -> list[dict]:
    return [{"source": "measured", "method": m, "label": m, "weights": "w", "task": task,
             "setting": setting, "quality": None, "dataset": "toy", "image": f"im{i}.png",
             "draw": 0, "status": "ok", "psnr_y": y, "psnr_rgb": rgb, "ssim_rgb": 0.9,
             "params": 1000, "seconds": 0.1}
            for m, pts in values.items() for i, (y, rgb) in enumerate(pts)]


def _md_names(text: str) -> list[str]:
    return [line.split(" | ")[0].removeprefix("| ") for line in text.splitlines()
            if line.startswith("| ") and not line.startswith("| Method")]


def _tex_names(text: str) -> list[str]:
    body = text[text.index(r"\midrule"): text.index(r"\bottomrule")]
    return [line.split(" & ")[0] for line in body.splitlines() if line.endswith(r"\\")]


# -- tasks declare their metric ---------------------------------------------------------------
def test_every_task_declares_a_ranked_metric():
    tasks = registered_tasks()
    assert {"rescale", "compress", "decolorize"} <= set(tasks)
    for cls in tasks.values():
        assert METRIC_BETTER.get(cls.rank_metric) in ("higher", "lower"), cls
        assert cls.summary_rank in ("mean", "bd_rate"), cls
    assert rank_metric("rescale") == "psnr_y" and summary_rank("rescale") == "mean"
    assert rank_metric("decolorize") == "psnr_rgb"
    assert rank_metric("compress") == "psnr_y" and summary_rank("compress") == "bd_rate"
    # a task no loaded plugin registers gets the base class's metric
    assert rank_metric("no-such-task") == Task.rank_metric == "psnr_y"


def test_lead_metric_asks_the_task():
    df = frame(_rows(DECOLORIZE))
    assert lead_metric(df) == "psnr_rgb"
    assert lead_metric(frame(_rows(DECOLORIZE, task="rescale", setting="x2"))) == "psnr_y"
    # without the task's metric the table is not ranked (no other metric stands in)
    assert lead_metric(df.drop(columns=["psnr_rgb"])) is None
    with pytest.raises(ValueError, match="one table holds one task"):
        lead_metric(pd.concat([df, frame(_rows(DECOLORIZE, task="rescale"))]))


def test_compare_module_is_the_leaderboard():
    assert compare_module.compare is leaderboard.compare
    assert compare_module.lead_metric is leaderboard.lead_metric
    assert not hasattr(compare_module, "LEAD_ORDER")


# -- every output ranks decolorization by PSNR-RGB -------------------------------------------
@pytest.fixture(scope="module")
def decolorize_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("decolorize") / "run"
    save_run(out, frame(_rows(DECOLORIZE)), {"task": "decolorize",
                                             "protocol": {"uint8": "P"}})
    return out


def test_leaderboard_ranks_by_the_tasks_metric(decolorize_run):
    (board,) = leaderboards(load_runs([decolorize_run])[0].df)
    assert board.lead.key == "psnr_rgb" and board.reference == "tar"
    assert [r.name for r in board.rows] == RGB_ORDER
    deltas = {r.name: r.delta for r in board.rows}
    assert {d.metric for d in deltas.values()} == {"psnr_rgb"}
    assert deltas["grey"].diff == pytest.approx(20.275 - 23.3)
    assert deltas["grey"].distinguishable and not deltas["tar"].distinguishable


def test_html_context_ranks_by_psnr_rgb(decolorize_run):
    ctx = build_context(load_runs([decolorize_run]))
    (table,) = ctx["leaderboards"]
    assert [r["method"] for r in table["rows"]] == RGB_ORDER
    labels = [c["label"] for c in table["columns"]]
    assert "Δ PSNR-RGB vs tar" in labels and table["lead"] == "PSNR-RGB"
    assert table["reference"] == "tar"


def test_markdown_latex_csv_rank_by_psnr_rgb(decolorize_run):
    md = export_report([decolorize_run], "md")
    assert _md_names(md) == RGB_ORDER
    assert "| Δ PSNR-RGB vs tar |" in md and "Rows ranked by PSNR-RGB" in md
    tex = export_report([decolorize_run], "latex")
    assert _tex_names(tex) == RGB_ORDER and r"$\Delta$ PSNR-RGB vs tar" in tex
    csv = pd.read_csv(io.StringIO(export_report([decolorize_run], "csv")))
    assert list(csv["label"]) == RGB_ORDER and list(csv["rank"]) == [1, 2, 3]
    assert set(csv["diff_metric"]) == {"psnr_rgb"} and set(csv["diff_reference"]) == {"tar"}


def test_compare_ranks_by_psnr_rgb(decolorize_run):
    df = load_runs([decolorize_run])[0].df
    cmp = compare(df)
    assert set(cmp["metric"]) == {"psnr_rgb"} and set(cmp["reference"]) == {"tar"}
    # other metrics keep the table's reference
    both = compare(df, metrics=["psnr_y", "psnr_rgb"])
    assert set(both["reference"]) == {"tar"} and len(both) == 6
    grey_y = both[(both["label"] == "grey") & (both["metric"] == "psnr_y")]["diff"].item()
    assert grey_y == pytest.approx(61.25 - 39.75)


def test_baseline_names_the_reference(decolorize_run):
    df = load_runs([decolorize_run])[0].df
    (board,) = leaderboards(df, baseline="grey")
    assert board.reference == "grey" and [r.name for r in board.rows] == RGB_ORDER
    assert board.rows[0].delta.diff == pytest.approx(23.3 - 20.275)
    md = export_report([decolorize_run], "md", baseline="grey")
    assert "Δ PSNR-RGB vs grey" in md


def test_rescale_still_ranks_by_psnr_y():
    rows = _rows(DECOLORIZE, task="rescale", setting="x2")
    (t,) = leaderboard_tables(frame(rows))
    assert [r["method"] for r in t["rows"]] == ["grey", "tar", "irn-color"]
    assert t["lead"] == "PSNR-Y" and t["reference"] == "grey"


# -- the method × JPEG-quality summary --------------------------------------------------------
def _curves(task: str, methods: dict[str, list[tuple[int, float, float]]]) -> pd.DataFrame:
    return frame([{"source": "measured", "method": m, "label": m, "weights": "w",
                   "task": task, "setting": "x2", "quality": q, "dataset": "toy",
                   "image": "a", "draw": 0, "psnr_y": p, "psnr_rgb": p - 2, "ssim_y": 0.9,
                   "bpp": bpp, "status": "ok", "seconds": 0.1, "params": 0}
                  for m, pts in methods.items() for q, bpp, p in pts])


QS = (30, 50, 70, 80, 90)
JPEG = [(q, 0.2 + 0.1 * i, 30.0 + i) for i, q in enumerate(QS)]
# "lean" is 2 dB below "rich" at every quality but needs a quarter of the bits: better BD-rate,
# worse mean PSNR-Y
LEAN = [(q, 0.25 * b, p - 1.0) for q, b, p in JPEG]
RICH = [(q, 0.9 * b, p + 1.0) for q, b, p in JPEG]


def test_compress_summary_ranks_by_bd_rate_against_jpeg():
    df = _curves("compress", {"rich": RICH, "jpeg": JPEG, "lean": LEAN})
    meta = {"methods_info": {"jpeg": {"codec": True}}}
    (t,) = quality_matrix_tables(df, summarize(df), [meta], plots=False)
    bd = {r["method"]: r["bd"][0].get("value") for r in t["rows"]}
    assert bd["lean"] < bd["rich"] < 0  # both beat the codec, "lean" more
    assert [r["method"] for r in t["rows"]] == ["lean", "rich", "jpeg"]
    assert "BD-rate on PSNR-Y against jpeg" in t["ranked_by"]
    # each quality's own table still ranks by PSNR-Y
    for board in leaderboards(df):
        assert board.lead.key == "psnr_y" and board.rows[0].name == "rich"


def test_rescale_summary_ranks_by_mean_psnr_y():
    df = _curves("rescale", {"lean": LEAN, "rich": RICH})
    (t,) = quality_matrix_tables(df, summarize(df), [], plots=False)
    assert [r["method"] for r in t["rows"]] == ["rich", "lean"] and t["kind"] == "plain"


def test_summary_order_puts_undefined_bd_rates_last():
    far = [(q, b, p + 40) for q, b, p in JPEG]  # no PSNR overlap with the anchor
    curves = {name: [{"quality": q, "bpp": b, "psnr_y": p} for q, b, p in pts]
              for name, pts in {"far": far, "jpeg": JPEG, "lean": LEAN}.items()}
    assert summary_order("compress", curves, "jpeg") == ["lean", "jpeg", "far"]
    assert summary_order("compress", curves, None) == ["far", "jpeg", "lean"]  # by mean


# -- a real run through the CLI ---------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped_run(tmp_path_factory) -> Path:
    """`irnbench run --task decolorize --plugins irn-color,tar,grey` on two tiny images."""
    root = tmp_path_factory.mktemp("cli")
    folder = root / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:28, 0:36]
    for i in range(2):
        img = np.stack([xx * (5 + i), yy * 7, (xx + yy) * 3], -1) % 256
        img = (img + rng.integers(-20, 21, img.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img{i}.png")
    out = root / "run"
    with pytest.MonkeyPatch.context() as mp:  # module scope: before conftest's isolation
        mp.setenv("IRNBENCH_HOME", str(root / "home"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        res = CliRunner().invoke(cli, ["run", "--task", "decolorize", "--plugins",
                                       "irn-color,tar,grey", "--datasets", str(folder),
                                       "--device", "cpu", "--quiet", "--out", str(out)])
    assert res.exit_code == 0, res.output
    (out / "printed.txt").write_text(res.output)
    return out


def test_the_leaderboard_run_prints_ranks_by_psnr_rgb(shipped_run):
    df = pd.read_csv(shipped_run / "results.csv")
    order = list(df.groupby("method")["psnr_rgb"].mean().sort_values(ascending=False).index)
    printed = (shipped_run / "printed.txt").read_text()
    assert "(ranked by psnr_rgb)" in printed
    rows = [line.split()[0].split(".")[0] for line in printed.splitlines()
            if "[measured]" in line]
    assert rows == order


def test_cli_report_formats_rank_by_psnr_rgb(shipped_run):
    df = pd.read_csv(shipped_run / "results.csv")
    means = df.groupby("method")["psnr_rgb"].mean().sort_values(ascending=False)
    order, best = list(means.index), means.index[0]
    assert set(order) == {"irn-color", "tar", "grey"}
    texts = {}
    for fmt in ("md", "latex", "csv"):
        res = CliRunner().invoke(cli, ["report", str(shipped_run), "--format", fmt],
                                 catch_exceptions=False)
        assert res.exit_code == 0, res.output
        texts[fmt] = res.output
    assert [n.split(".")[0] for n in _md_names(texts["md"])] == order
    assert re.search(rf"\| Δ PSNR-RGB vs {re.escape(best)}(\.cpu)? \|", texts["md"])
    assert [n.split(".")[0] for n in _tex_names(texts["latex"])] == order
    assert r"$\Delta$ PSNR-RGB vs" in texts["latex"]
    csv = pd.read_csv(io.StringIO(texts["csv"]))
    assert list(csv["method"]) == order and set(csv["diff_metric"]) == {"psnr_rgb"}
    html = build_context(load_runs([shipped_run]))["leaderboards"][0]
    assert [r["method"] for r in html["rows"]] == order
