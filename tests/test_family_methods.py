"""The ``sain``, ``tirn`` and ``tsain`` methods run from imported official checkpoints.

Each released file is rebuilt from the manifest (``helpers.family_state``, the same weights
whose official-network outputs are in ``fixtures/family_refs/``), saved with ``torch.save`` as
the authors did, imported through the CLI and run; the imported method must reproduce the
official LR and HR. Registration, options and shapes are covered by the contract test over
every registered method.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from helpers import FAMILY_FILES, family_reference, family_state
from PIL import Image

from irnbench.cli import cli
from irnbench.registry import create_method, create_task, find_weights, get_method_class

#: Released file → (method, scale, tag).
RELEASES = {
    "SAINx2_JPEG.pth": ("sain", 2, "official"),
    "SAINx4_JPEG.pth": ("sain", 4, "official"),
    "SAINx2_WebP.pth": ("sain", 2, "webp"),
    "TIRNx2.pth": ("tirn", 2, "official"),
    "TIRNx4.pth": ("tirn", 4, "official"),
    "TSAINx2.pth": ("tsain", 2, "official"),
    "TSAINx4.pth": ("tsain", 4, "official"),
}
LR_TOL, HR_TOL = 1e-5, 1e-4


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def _save(file: str, folder: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / file
    torch.save(family_state(file) if state is None else state, path)
    return path


def _import(path: Path, method: str, scale: int, tag: str = "official"):
    args = ["weights", "import", method, str(path), "--task", "rescale", "--scale", str(scale)]
    return _cli(*args, *(["--tag", tag] if tag != "official" else []))


def _one_line(res) -> str:
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    return lines[0]


def _stored(method: str, scale: int):
    """Where ``method``'s resolved rescale ×``scale`` weights are (``None``: none installed)."""
    return find_weights(get_method_class(method), create_task("rescale", scale=scale))


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Two tiny images whose sides are multiples of 4."""
    folder = tmp_path_factory.mktemp("two")
    g = torch.Generator().manual_seed(3)
    for i, (h, w) in enumerate([(32, 40), (40, 32)]):
        x = torch.nn.functional.interpolate(torch.rand(1, 3, h // 4, w // 4, generator=g),
                                            size=(h, w), mode="bilinear")
        arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(arr).save(folder / f"im{i}.png")
    return folder


@pytest.mark.parametrize("file", FAMILY_FILES)
def test_import_run_and_match_the_official_outputs(file, tmp_path, images):
    method, scale, tag = RELEASES[file]
    res = _import(_save(file, tmp_path / "dl"), method, scale, tag)
    assert res.exit_code == 0, res.output
    assert f"imported {method}.{tag}: official checkpoint ({file})" in res.output
    run = _cli("run", "--task", "rescale", "--scale", str(scale), "--plugins", f"{method}.{tag}",
               "--datasets", str(images), "--jpeg", "75", "--webp", "75", "--draws", "1",
               "--quiet", "--out", str(tmp_path / "run"))
    assert run.exit_code == 0, run.output
    assert f"tag {tag} · official checkpoint ({file})" in run.output
    assert "JPEG q75" in run.output and "WebP q75" in run.output
    meta = json.loads((tmp_path / "run" / "meta.json").read_text())
    (info,) = meta["weights"][f"{method}.{tag}"].values()
    assert [s["file"] for s in info["sources"]] == [file]  # the run says where they came from
    assert f"{method}.{tag}" in run.output

    m = create_method(f"{method}.{tag}", "rescale", scale=scale).eval()
    ref = family_reference(file)
    with torch.no_grad():
        assert rel_err(m.degrade(ref["x"]), ref["lr"]) <= LR_TOL
        assert rel_err(m.restore_with_z(ref["y"], ref["z"]), ref["hr"]) <= HR_TOL
    if tag == "official":  # an untagged name resolves to the import
        assert _stored(method, scale).tag == "official"


@pytest.mark.parametrize("file", ["SAINx2_JPEG.pth", "TSAINx4.pth"])
def test_wrong_haar_weights_are_refused(file, tmp_path):
    method, scale, _ = RELEASES[file]
    state = family_state(file)
    key = next(k for k in state if k.endswith("haar_weights"))
    state[key] = state[key] / 4  # the Haar with its /4 folded in: not the released constants
    res = _import(_save(file, tmp_path, state), method, scale)
    assert res.exit_code != 0
    assert "not the Haar constants" in _one_line(res) and key in res.output
    assert _stored(method, scale) is None


@pytest.mark.parametrize(("file", "method", "scale", "what"), [
    ("SAINx4_JPEG.pth", "sain", 2, "sain's rescale x4 file SAINx4_JPEG.pth"),
    ("TIRNx2.pth", "tirn", 4, "tirn's rescale x2 file TIRNx2.pth"),
    ("TIRNx2.pth", "tsain", 2, "tirn's rescale x2 file TIRNx2.pth"),
])
def test_a_file_of_another_release_is_refused(file, method, scale, what, tmp_path):
    res = _import(_save(file, tmp_path), method, scale)
    assert res.exit_code != 0
    assert what in _one_line(res)
    assert _stored(method, scale) is None


@pytest.mark.parametrize(("method", "repository"), [
    ("sain", "https://github.com/yang-jin-hai/SAIN"),
    ("tirn", "https://github.com/Jingwei-Bao/T-InvBlocks"),
    ("tsain", "https://github.com/Jingwei-Bao/T-InvBlocks"),
])
def test_training_is_refused_in_one_line(method, repository):
    res = _cli("train", "--plugin", method, "--scale", "2", "--preset", "smoke", "--quiet")
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert f"does not train {method!r}" in line and "official code" in line
    assert repository in line


def _loaded(file: str, **options):
    """The method of a released file with the rebuilt weights, without an import."""
    method, scale, _ = RELEASES[file]
    m = create_method(method, "rescale", scale=scale, pretrained=False, **options).eval()
    m.net.load_state_dict(family_state(file))
    return m


@torch.no_grad()
def test_sain_restore_is_seeded_and_temperature_scales_z():
    m, ref = _loaded("SAINx2_JPEG.pth"), family_reference("SAINx2_JPEG.pth")
    y = ref["y"]

    def draw(seed: int, temperature: float = 1.0) -> torch.Tensor:
        return m.restore(y, temperature=temperature, generator=torch.Generator().manual_seed(seed))

    a, b, c = draw(7), draw(7), draw(8)
    assert torch.equal(a, b) and not torch.equal(a, c)
    z = m.net.sample_latent(y, torch.Generator().manual_seed(7))
    assert torch.equal(a, m.restore_with_z(y, z))
    assert torch.allclose(draw(7, 0.5), m.restore_with_z(y, 0.5 * z))
    assert torch.allclose(draw(7, 0.0), m.restore_with_z(y, torch.zeros_like(z)))
    assert rel_err(draw(7, 0.0), ref["hr_z0"]) <= HR_TOL


@pytest.mark.parametrize("file", ["TIRNx2.pth", "TSAINx2.pth"])
@torch.no_grad()
def test_tri_branch_restore_ignores_the_generator(file):
    m, ref = _loaded(file), family_reference(file)
    assert not m.stochastic
    a = m.restore(ref["y"], generator=torch.Generator().manual_seed(1))
    b = m.restore(ref["y"], generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and torch.equal(a, m.restore(ref["y"]))
    assert rel_err(a, ref["hr_z0"]) <= HR_TOL


@pytest.mark.parametrize("file", ["SAINx2_JPEG.pth", "TIRNx2.pth"])
@torch.no_grad()
def test_tiles_see_the_whole_image_z_and_scale(file):
    """With tiles smaller than the image but context covering it, tiling changes nothing."""
    m, ref = _loaded(file), family_reference(file)
    t = _loaded(file, tile=32)  # 40×56 HR: 2×2 tiles, each with 32 LR px of context
    assert torch.allclose(t.degrade(ref["x"]), m.degrade(ref["x"]), atol=1e-6)
    assert torch.allclose(t.restore_with_z(ref["y"], ref["z"]),
                          m.restore_with_z(ref["y"], ref["z"]), atol=1e-6)


def test_paper_rows():
    from irnbench.papers import SAIN_README

    rows = get_method_class("sain").paper.results
    assert len(rows) == 10 and {r.source for r in rows} == {SAIN_README}
    assert {(r.setting, r.quality): r.metrics["psnr"] for r in rows}[("x2", 30)] == 31.47
    assert {(r.setting, r.quality): r.metrics["ssim"] for r in rows}[("x4", 90)] == 0.8367
    assert "Y inferred" in rows[0].protocol and "own runs" in rows[0].protocol
    for name in ("tirn", "tsain"):
        assert get_method_class(name).paper.results == ()


def test_sains_table_stands_beside_a_div2k_val_run(tmp_path, images):
    """SAIN's README table shows as labelled paper rows next to measured rows on ``div2k-val``
    (here a stand-in folder of that name), and only there; IRN's clean Table 1 rows stay out."""
    import shutil

    import pandas as pd

    from irnbench.papers import SAIN_README
    from irnbench.report import build_context, load_runs

    stand_in = tmp_path / "div2k-val"
    shutil.copytree(images, stand_in)
    assert _import(_save("SAINx2_JPEG.pth", tmp_path / "dl"), "sain", 2, "official"
                   ).exit_code == 0
    run = _cli("run", "--task", "rescale", "--scale", "2", "--plugins", "sain.official,bicubic",
               "--datasets", str(stand_in), "--jpeg", "30,90", "--draws", "1", "--quiet",
               "--out", str(tmp_path / "run"))
    assert run.exit_code == 0, run.output
    df = pd.read_csv(tmp_path / "run" / "results.csv")
    papers = df[df["source"] == "paper-reported"]
    sain = papers[papers["reference"] == SAIN_README]
    assert set(sain["dataset"]) == {"div2k-val"} and set(sain["quality"]) >= {30, 90}
    assert {"SAIN", "Bicubic & Bicubic"} <= set(sain["label"])
    ctx = build_context(load_runs([tmp_path / "run"]))
    q30 = [t for t in ctx["leaderboards"] if t["quality"] == 30 and t["dataset"] == "div2k-val"]
    assert len(q30) == 1
    assert {r["method"] for r in q30[0]["rows"] if r["kind"] == "paper"} == {"sain", "bicubic"}

