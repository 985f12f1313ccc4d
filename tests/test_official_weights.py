"""Importing the authors' checkpoints: every released file kind, the refusals, the round trip.

The files are synthetic: built here from the tensor names and shapes of the released files
(``fixtures/official_formats.json``, listed from the official code; no values) with random
values, and saved with ``torch.save`` as the authors did.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

import irnbench
from irnbench.cli import cli
from irnbench.errors import CheckpointError, InvalidSetting
from irnbench.registry import create_task, get_method_class
from irnbench.weights.official import load_checkpoint

FORMATS = json.loads((Path(__file__).parent / "fixtures" / "official_formats.json").read_text())

#: (method, released files as (manifest entry, file name), task, scale, tag, flags of `run`)
KINDS = {
    "irn-x2": ("irn", [("IRN_x2.pth", "IRN_x2.pth")], "rescale", 2, "official", []),
    "irn-x3": ("irn", [("IRN_x3.pth", "IRN_x3.pth")], "rescale", 3, "official", []),
    "irn-x4": ("irn", [("IRN_x4.pth", "IRN_x4.pth")], "rescale", 4, "official", []),
    "irn-x8": ("irn", [("IRN_x8.pth", "IRN_x8.pth")], "rescale", 8, "official", []),
    "irn-plus-x4": ("irn", [("IRN+_x4.pth", "IRN+_x4.pth")], "rescale", 4, "plus", []),
    "irn-color": ("irn-color", [("IRN_color.pth", "IRN_color.pth")], "decolorize", None,
                  "official", []),
    "irn-crm": ("irn-crm", [("IRN_x2_finetune.pth", "IRN_x2_finetune.pth"),
                            ("CRM_x2_q90.pth", "CRM_x2_q90.pth")], "compress", 2, "official",
                ["--jpeg", "90"]),
    "car-x2": ("car", [("CAR_2x_kgn.pth", "2x/kgn.pth"), ("CAR_2x_usn.pth", "2x/usn.pth")],
               "rescale", 2, "official", []),
    "car-x4": ("car", [("CAR_4x_kgn.pth", "4x/kgn.pth"), ("CAR_4x_usn.pth", "4x/usn.pth")],
               "rescale", 4, "official", []),
}


def official_file(entry: str, path: Path, seed: int = 0, prefix: str = "",
                  drop: int = 0, extra: bool = False) -> Path:
    """A synthetic released checkpoint: the manifest's names and shapes, random values."""
    g = torch.Generator().manual_seed(seed)
    names = FORMATS["files"][entry]
    state = {prefix + k: torch.randn(shape, generator=g) * 0.02 for k, shape in names}
    for k in list(state)[len(state) - drop:] if drop else []:
        del state[k]
    if extra:
        state["something.else"] = torch.zeros(3)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def _files(kind: str, root: Path) -> list[Path]:
    _, files, *_ = KINDS[kind]
    return [official_file(entry, root / name, seed=i) for i, (entry, name) in enumerate(files)]


def _import_args(kind: str, files: list[Path]) -> list[str]:
    method, _, task, scale, tag, _ = KINDS[kind]
    args = ["weights", "import", method, *map(str, files), "--task", task]
    if scale:
        args += ["--scale", str(scale)]
    if tag != "official":
        args += ["--tag", tag]
    return args


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """Two small photos-like images whose sides are multiples of 8 and 3 (every scale)."""
    folder = tmp_path_factory.mktemp("two")
    g = torch.Generator().manual_seed(1)
    for i, (h, w) in enumerate([(48, 72), (72, 48)]):
        x = torch.rand(1, 3, h // 8, w // 8, generator=g)
        x = torch.nn.functional.interpolate(x, size=(h, w), mode="bilinear")
        arr = (x[0].permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(arr).save(folder / f"im{i}.png")
    return folder


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_file_kind_imports_and_runs(kind, tmp_path, images):
    method, files_spec, task, scale, tag, flags = KINDS[kind]
    files = _files(kind, tmp_path / "dl")
    res = _cli(*_import_args(kind, files))
    assert res.exit_code == 0, res.output
    released = " + ".join(name for _, name in files_spec)
    assert f"imported {method}.{tag}: official checkpoint ({released}" in res.output
    listed = _cli("weights", "list", method)
    assert f"{method}.{tag}" in listed.output and "official checkpoint" in listed.output
    args = ["run", "--task", task, "--plugins", f"{method}.{tag}", "--datasets", str(images),
            "--out", str(tmp_path / "run"), "--draws", "1", "--quiet", *flags]
    if scale:
        args += ["--scale", str(scale)]
    run = _cli(*args)
    assert run.exit_code == 0, run.output
    assert f"{method}.{tag}" in run.output and f"tag {tag} · official checkpoint" in run.output
    df = irnbench.results.load_run(tmp_path / "run")[0]
    rows = df[df["source"] == "measured"]
    assert set(rows["tag"]) == {tag} and set(rows["label"]) == {f"{method}.{tag}"}
    assert rows["weights"].str.startswith(f"official checkpoint ({released}").all()
    assert rows["psnr_rgb"].notna().all()
    html = (tmp_path / "run" / "report.html").read_text()
    assert f"{method}.{tag}" in html and "official checkpoint" in html


@pytest.mark.parametrize("kind", list(KINDS))
def test_round_trip_maps_each_tensor_once_with_equal_values(kind, tmp_path):
    method, files_spec, task, scale, tag, _ = KINDS[kind]
    files = _files(kind, tmp_path / "dl")
    setting = {"scale": scale} if scale else {}
    out = irnbench.weights.official.import_checkpoint(method, files, task, tag=tag, **setting)
    saved = load_file(str(out.path))
    cls = get_method_class(method)
    official = cls.official_for(create_task(task, **setting))
    targets = set()
    for (_, released), path in zip(files_spec, files, strict=True):
        for key, value in load_checkpoint(path).items():
            target = official.rename(released, key)
            assert target not in targets, f"{key} maps onto a tensor already filled"
            targets.add(target)
            assert torch.equal(saved[target], value), key
    assert targets == set(saved) - set(official.config_keys)
    side = json.loads(out.path.with_suffix(".json").read_text())
    assert side["tag"] == tag and side["sha256"] == out.sha256
    assert [s["file"] for s in side["sources"]] == [p.name for p in files]
    assert side["sources"][0]["sha256"] == irnbench.weights.sha256_file(files[0])
    assert side["origin"]["repository"].startswith("github.com/")
    assert "licence" in side and side["label"] == out.label
    # and it loads as the method's weights for that tag
    model = irnbench.create_method(f"{method}.{tag}", task=task, **setting)
    assert model.weights_tag == tag and model.weights_sha256 == out.sha256


def test_module_prefix_is_stripped(tmp_path):
    path = official_file("IRN_x2.pth", tmp_path / "ddp.pth", prefix="module.")
    assert all(k.startswith("operations.") for k in load_checkpoint(path))
    res = _cli("weights", "import", "irn", str(path), "--task", "rescale", "--scale", "2")
    assert res.exit_code == 0, res.output


class _Payload:
    """Unpickling this runs code: it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_pickle_with_code_is_refused_and_not_run(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "IRN_x2.pth"
    torch.save({"operations.0.haar_weights": torch.zeros(12, 1, 2, 2),
                "evil": _Payload(marker)}, path)
    res = _cli("weights", "import", "irn", str(path), "--task", "rescale", "--scale", "2")
    assert res.exit_code == 2
    assert "refused IRN_x2.pth: unpickling it needs code" in res.output
    assert "nothing in it was run" in res.output
    assert not marker.exists()
    assert len(res.output.strip().splitlines()) == 1


def test_x2_file_for_x4_fails_with_one_clear_line(tmp_path):
    path = official_file("IRN_x2.pth", tmp_path / "IRN_x2.pth")
    res = _cli("weights", "import", "irn", str(path), "--task", "rescale", "--scale", "4")
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    assert "IRN_x2.pth is irn's rescale x2 file IRN_x2.pth" in lines[0]
    assert "--scale 2" in lines[0] and "not irn rescale x4" in lines[0]


def test_car_file_for_irn_says_what_it_is(tmp_path):
    path = official_file("CAR_4x_kgn.pth", tmp_path / "kgn.pth")
    with pytest.raises(CheckpointError, match=r"kgn.pth is car's rescale x4 file 4x/kgn.pth .*"
                                               r"not irn rescale x4"):
        irnbench.weights.official.import_checkpoint("irn", [path], "rescale", scale=4)


def test_truncated_file_is_one_clear_error(tmp_path):
    good = official_file("IRN_x4.pth", tmp_path / "good.pth")
    cut = tmp_path / "IRN_x4.pth"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    res = _cli("weights", "import", "irn", str(cut), "--task", "rescale", "--scale", "4")
    assert res.exit_code == 2
    assert "IRN_x4.pth is not a readable PyTorch checkpoint (truncated or corrupt?)" in res.output


def test_missing_second_file_is_named(tmp_path):
    kgn = official_file("CAR_2x_kgn.pth", tmp_path / "2x" / "kgn.pth")
    res = _cli("weights", "import", "car", str(kgn), "--task", "rescale", "--scale", "2")
    assert res.exit_code == 2
    assert "car rescale x2 needs 2 files" in res.output
    assert "missing: 2x/usn.pth (EDSR ×2 upscaler)" in res.output
    crm = official_file("CRM_x2_q90.pth", tmp_path / "CRM_x2_q90.pth")
    with pytest.raises(CheckpointError, match="missing: IRN_x2_finetune.pth"):
        irnbench.weights.official.import_checkpoint("irn-crm", [crm], "compress", scale=2)


def test_unused_and_unfilled_tensors_are_named(tmp_path):
    extra = official_file("IRN_x2.pth", tmp_path / "a.pth", extra=True)
    with pytest.raises(CheckpointError, match=r"unused: something\.else"):
        irnbench.weights.official.import_checkpoint("irn", [extra], "rescale", scale=2)
    short = official_file("IRN_x2.pth", tmp_path / "b.pth", drop=2)
    with pytest.raises(CheckpointError, match=r"not filled: net\.operations\.8\.H\.conv5\.weight"):
        irnbench.weights.official.import_checkpoint("irn", [short], "rescale", scale=2)


def test_no_checkpoint_for_the_setting_and_reserved_tag(tmp_path):
    path = official_file("IRN_x2.pth", tmp_path / "IRN_x2.pth")
    with pytest.raises(CheckpointError, match="tar has no published checkpoint"):
        irnbench.weights.official.import_checkpoint("tar", [path], "rescale", scale=2)
    with pytest.raises(CheckpointError, match="'cpu' is irnbench's shipped weights"):
        irnbench.weights.official.import_checkpoint("irn", [path], "rescale", tag="cpu", scale=2)


def test_untagged_resolves_to_official_then_shipped_and_two_rows(tmp_path, images):
    shipped = irnbench.create_method("irn", scale=2)
    assert shipped.weights_tag == "cpu"
    path = official_file("IRN_x2.pth", tmp_path / "IRN_x2.pth")
    irnbench.weights.official.import_checkpoint("irn", [path], "rescale", scale=2)
    assert irnbench.create_method("irn", scale=2).weights_tag == "official"
    assert irnbench.create_method("irn", scale=2, tag="cpu").weights_sha256 == \
        shipped.weights_sha256
    with pytest.raises(InvalidSetting, match="names tag 'official' but tag='cpu'"):
        irnbench.create_method("irn.official", scale=2, tag="cpu")
    res = _cli("run", "--plugins", "irn.official,irn.cpu,bicubic", "--scale", "2",
               "--datasets", str(images), "--out", str(tmp_path / "run"), "--draws", "1",
               "--quiet")
    assert res.exit_code == 0, res.output
    summary = irnbench.results.summarize(irnbench.results.load_run(tmp_path / "run")[0])
    assert list(summary["label"]) == ["irn.official", "irn.cpu", "bicubic"]
    assert "irn.official [measured]" in res.output and "irn.cpu [measured]" in res.output
    removed = _cli("weights", "remove", "irn.official")
    assert removed.exit_code == 0 and "removed irn.official rescale-x2" in removed.output
    assert irnbench.create_method("irn", scale=2).weights_tag == "cpu"
    assert _cli("weights", "remove", "irn.cpu").exit_code == 2


def test_a_named_tag_without_weights_lists_what_there_is():
    with pytest.raises(irnbench.errors.WeightsNotFound) as err:
        irnbench.create_method("irn.official", scale=4)
    msg = str(err.value)
    assert "no 'official' weights for 'irn' on rescale x4. Available: irn.cpu." in msg
    assert "irnbench weights import irn IRN_x4.pth --task rescale --scale 4" in msg


def test_legacy_cache_file_is_local(tmp_path):
    """A file installed before tags (``<task_key>.safetensors``) keeps working as ``local``."""
    src = irnbench.create_method("irn", scale=2)
    legacy = irnbench.weights.legacy_cache_path("irn", "rescale-x2")
    legacy.parent.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(legacy))
    assert irnbench.create_method("irn", scale=2).weights_tag == "cpu"  # never picked untagged
    local = irnbench.create_method("irn.local", scale=2)
    assert local.weights_tag == "local" and local.weights_label == "trained locally"
    assert "irn.local" in _cli("weights", "list", "irn").output


def test_smoke_training_never_installs(tmp_path):
    """A wiring check cannot change what a later untagged run measures."""
    before = irnbench.create_method("irn", scale=2)
    res = _cli("train", "--plugin", "irn", "--scale", "2", "--preset", "smoke", "--iterations",
               "2", "--device", "cpu", "--quiet", "--out", str(tmp_path / "run"))
    assert res.exit_code == 0, res.output
    assert "not installed: the 'smoke' preset never installs" in res.output
    assert not list(irnbench.weights.cache_weights_dir().rglob("*.safetensors"))
    after = irnbench.create_method("irn", scale=2)
    assert (after.weights_tag, after.weights_sha256) == ("cpu", before.weights_sha256)


def test_own_training_installs_under_its_tag_used_only_when_named(register_plugin, tmp_path):
    from conftest import make_plugin
    from helpers import TINY, TinyAE

    from irnbench.training import train_method
    from irnbench.training.presets import Preset

    class Quick(TinyAE):
        name = "test-quick-ae"
        presets = {"quick": Preset("quick", iterations=2, batch_size=2, crop=16, lr=1e-2)}

    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(Quick)),
                    "test-quick")
    opts = {**TINY, "install": True}
    res = train_method("test-quick-ae", "rescale", scale=2, preset="quick", out=tmp_path / "a",
                       tag="mine", **opts)
    assert res.installed.name == "rescale-x2.mine.safetensors"
    with pytest.raises(irnbench.errors.WeightsNotFound, match="Available: test-quick-ae.mine"):
        irnbench.create_method("test-quick-ae", scale=2)
    model = irnbench.create_method("test-quick-ae.mine", scale=2)
    assert model.weights_tag == "mine" and model.spec == "test-quick-ae.mine"
    assert json.loads(res.installed.with_suffix(".json").read_text())["tag"] == "mine"
    for reserved in ("official", "cpu"):
        with pytest.raises(InvalidSetting, match="reserved"):
            train_method("test-quick-ae", "rescale", scale=2, preset="quick",
                         out=tmp_path / "b", tag=reserved, **opts)

