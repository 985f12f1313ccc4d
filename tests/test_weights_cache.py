"""The weights cache as one transactional unit (issue #29): concurrent imports never leave a
weights file beside another import's sidecar, replacing a tag needs ``--replace``, the same
file again is a no-op, and the one-line refusals (empty tag, unusable ``$IRNBENCH_HOME``, a
PyTorch ``.pth`` where safetensors weights are expected, an unknown method to remove)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import make_plugin
from PIL import Image

from irnbench.cli import cli
from irnbench.errors import InvalidSetting
from irnbench.methods import Method
from irnbench.registry import create_method
from irnbench.training.presets import Preset
from irnbench.weights import (
    OfficialCheckpoint,
    OfficialFile,
    WeightsRecord,
    cache_weights_path,
    read_sidecar,
    sha256_file,
    user_home,
)
from irnbench.weights.official import import_checkpoint

URL = "http://127.0.0.1:9/never/contacted.pth"  # a pinned source a refused fetch never opens


class TinyCache(Method):
    """A small rescaler with a published checkpoint of one file (and a fetchable variant)."""

    name = "test-cache"
    tasks = ("rescale",)
    official_weights = {"rescale-x2": OfficialCheckpoint(
        task="rescale", setting={"scale": 2},
        files=(OfficialFile("tiny_x2.pth", "net.", "tiny convs"),),
        rename=lambda _file, key: "net." + key, repository="example.invalid/owner/repo",
        download="https://example.invalid/owner/repo", licence="test",
        variants={"alt": OfficialFile("alt.pth", "net.", "tiny convs", url=URL, commit="c" * 40,
                                      git_blob_sha1="0" * 40)})}
    presets = {"quick": Preset("quick", iterations=2, batch_size=2, crop=16, lr=1e-2)}

    def __init__(self, task, **options):
        super().__init__(task, **options)
        self.net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1),
                                       torch.nn.Conv2d(32, 3, 3, padding=1))

    def degrade(self, x):
        return F.avg_pool2d(self.net(x), 2)

    def restore(self, y, **channel_info):
        return F.interpolate(y, scale_factor=2, mode="nearest")

    def training_loss(self, batch, task):
        rec = (self.restore(self.degrade(batch["hr"])) - batch["hr"]).abs().mean()
        return {"total": rec}


@pytest.fixture
def tiny(register_plugin):
    register_plugin(make_plugin(irnbench_register_methods=lambda register: register(TinyCache)),
                    "test-cache")
    return TinyCache


def _pth(path: Path, seed: int) -> Path:
    """A released-style checkpoint of ``TinyCache`` (``torch.save`` of a plain dict)."""
    g = torch.Generator().manual_seed(seed)
    state = {k: torch.randn(v.shape, generator=g)
             for k, v in TinyCache(_task()).net.state_dict().items()}
    torch.save(state, path)
    return path


def _task():
    from irnbench.registry import create_task

    return create_task("rescale", scale=2)


def _target(tag: str = "official") -> Path:
    return cache_weights_path("test-cache", "rescale-x2", tag)


def _cli(*args: str):
    return CliRunner().invoke(cli, list(args))


def _one_line(res) -> str:
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0]


def _pair() -> tuple[bytes, bytes]:
    return _target().read_bytes(), _target().with_suffix(".json").read_bytes()


def test_concurrent_imports_never_pair_a_file_with_another_sidecar(tiny, tmp_path):
    """50 pairs of simultaneous ``--replace`` imports of two files into one setting, while a
    reader loads and lists the weights: either import may win, but the file and its sidecar
    always come from the same one, and no reader sees a mixed pair."""
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
    files = [_pth(tmp_path / "a" / "tiny_x2.pth", 1), _pth(tmp_path / "b" / "tiny_x2.pth", 2)]
    # What each source file converts to, imported alone.
    digest_of = {}
    for f in files:
        res = import_checkpoint("test-cache", [f], scale=2, replace=True)
        digest_of[sha256_file(f)] = res.sha256
    assert len(set(digest_of.values())) == 2
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        from irnbench.weights.cli import weight_sets

        while not stop.is_set():
            try:
                model = create_method("test-cache.official", scale=2)
                assert model.weights_sha256 in digest_of.values()
                sets = [w for w in weight_sets("test-cache") if w.where == "cache"]
                assert [w.sha256 in digest_of.values() for w in sets] == [True]
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    def run(f: Path, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            import_checkpoint("test-cache", [f], scale=2, replace=True)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for _ in range(50):
            barrier = threading.Barrier(2)
            pair = [threading.Thread(target=run, args=(f, barrier)) for f in files]
            for t in pair:
                t.start()
            for t in pair:
                t.join(30)
            side = read_sidecar(_target())
            got = sha256_file(_target())
            assert got == side["sha256"], "the weights file and its sidecar differ"
            assert digest_of[side["sources"][0]["sha256"]] == got, "sidecar of the other import"
            assert not errors, errors[0]
    finally:
        stop.set()
        reader.join(30)
    assert not errors, errors[0]
    left = sorted(p.name for p in _target().parent.iterdir())
    assert left == ["rescale-x2.official.json", "rescale-x2.official.safetensors"]


def test_replacing_a_tag_needs_replace_and_changes_nothing_without(tiny, tmp_path):
    a, b = _pth(tmp_path / "tiny_x2.pth", 1), _pth(tmp_path / "other.pth", 2)
    assert _cli("weights", "import", "test-cache", str(a), "--scale", "2").exit_code == 0
    before = _pair()
    sha = json.loads(before[1])["sha256"]
    res = _cli("weights", "import", "test-cache", str(b), "--scale", "2")
    assert res.exit_code == 2
    line = _one_line(res)
    assert "test-cache.official rescale-x2 is already installed" in line
    assert "official checkpoint (tiny_x2.pth)" in line and sha[:12] in line
    assert "--replace" in line
    assert _pair() == before
    with pytest.raises(InvalidSetting, match="already installed"):
        import_checkpoint("test-cache", [b], scale=2)
    assert _pair() == before
    res = _cli("weights", "import", "test-cache", str(b), "--scale", "2", "--replace")
    assert res.exit_code == 0, res.output
    assert read_sidecar(_target())["sources"][0]["file"] == "other.pth"
    assert sha256_file(_target()) == read_sidecar(_target())["sha256"] != sha


def test_the_same_file_again_is_a_noop(tiny, tmp_path):
    a = _pth(tmp_path / "tiny_x2.pth", 1)
    assert _cli("weights", "import", "test-cache", str(a), "--scale", "2").exit_code == 0
    stamps = [p.stat().st_mtime_ns for p in (_target(), _target().with_suffix(".json"))]
    before = _pair()
    res = _cli("weights", "import", "test-cache", str(a), "--scale", "2")
    assert res.exit_code == 0, res.output
    assert "already imported from these files" in res.output and "nothing changed" in res.output
    assert _pair() == before
    assert [p.stat().st_mtime_ns for p in (_target(), _target().with_suffix(".json"))] == stamps
    # The identical weights installed again (as a training's install would be): no-op too.
    from irnbench.weights.record import install_weights

    record = WeightsRecord.from_json(json.loads(before[1]))
    res = install_weights(before[0], record.with_(label="another label"))
    assert not res.changed and _pair() == before


def test_an_empty_tag_is_refused_everywhere(tiny, tmp_path):
    a = _pth(tmp_path / "tiny_x2.pth", 1)
    for args in (["weights", "import", "test-cache", str(a), "--scale", "2", "--tag", ""],
                 ["weights", "fetch", "test-cache", "--scale", "2", "--tag", ""],
                 ["train", "--plugin", "test-cache", "--scale", "2", "--preset", "quick",
                  "--device", "cpu", "--quiet", "--out", str(tmp_path / "run"), "--tag", ""]):
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        assert "empty weights tag" in _one_line(res)
    with pytest.raises(InvalidSetting, match="empty weights tag"):
        create_method("test-cache", scale=2, tag="")
    assert not (user_home() / "weights").exists() and not (tmp_path / "run").exists()


def test_a_home_that_is_a_file_is_one_line(tiny, tmp_path, monkeypatch):
    a = _pth(tmp_path / "tiny_x2.pth", 1)
    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("IRNBENCH_HOME", str(home))
    for args in (["weights", "import", "test-cache", str(a), "--scale", "2"],
                 ["weights", "fetch", "test-cache", "--scale", "2", "--tag", "alt"],
                 ["weights", "list"],
                 ["train", "--plugin", "test-cache", "--scale", "2", "--preset", "quick",
                  "--device", "cpu", "--quiet", "--out", str(tmp_path / "run")]):
        res = _cli(*args)
        assert res.exit_code == 2, (args, res.output)
        line = _one_line(res)
        assert "$IRNBENCH_HOME" in line and f"{home} is not a folder" in line, line
    assert home.read_text() == "not a folder"


class _Marker:
    """Unpickling this would create ``marker``: a ``.pth`` must never be unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pytorch_checkpoint_where_weights_are_expected_is_one_line(tiny, tmp_path):
    marker = tmp_path / "unpickled"
    pth = tmp_path / "tiny_x2.pth"
    torch.save({"net.0.weight": torch.zeros(1), "x": _Marker(marker)}, pth)
    legacy = tmp_path / "legacy.pth"
    torch.save({"w": torch.zeros(1)}, legacy, _use_new_zipfile_serialization=False)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (16, 16), (90, 120, 200)).save(images / "im.png")
    for f in (pth, legacy):
        res = _cli("eval", "--plugins", "test-cache", "--scale", "2", "--weights", str(f),
                   "--datasets", str(images), "--out", str(tmp_path / "ev"))
        assert res.exit_code == 2, res.output
        line = _one_line(res)
        assert f"--weights {f} is a PyTorch checkpoint" in line
        assert f"irnbench weights import test-cache {f} --task rescale --scale 2" in line
        res = _cli("train", "--plugin", "test-cache", "--scale", "2", "--preset", "quick",
                   "--device", "cpu", "--quiet", "--out", str(tmp_path / "run"), "--init",
                   str(f))
        assert res.exit_code == 2, res.output
        line = _one_line(res)
        assert f"--init {f} is a PyTorch checkpoint" in line and "weights import" in line
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_removing_an_unknown_method_exits_2(tiny, tmp_path):
    res = _cli("weights", "remove", "nosuch.official")
    assert res.exit_code == 2 and "unknown method 'nosuch'" in _one_line(res)
    assert "test-cache" in res.output  # the known ones are listed
    res = _cli("weights", "remove", "test-cache.nosuch")
    assert res.exit_code == 1 and "no cached test-cache.nosuch weights" in _one_line(res)


def test_training_refuses_an_installed_tag_before_it_starts(tiny, tmp_path):
    a = _pth(tmp_path / "tiny_x2.pth", 1)
    import_checkpoint("test-cache", [a], scale=2, tag="mine")
    mine = _target("mine")
    before = (mine.read_bytes(), mine.with_suffix(".json").read_bytes())
    args = ["train", "--plugin", "test-cache", "--scale", "2", "--preset", "quick",
            "--device", "cpu", "--quiet", "--datasets", "mini-train", "--tag", "mine"]
    res = _cli(*args, "--out", str(tmp_path / "run"))
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert "test-cache.mine rescale-x2 is already installed" in line and "--replace" in line
    assert not (tmp_path / "run").exists()  # refused before training started
    assert (mine.read_bytes(), mine.with_suffix(".json").read_bytes()) == before
    res = _cli(*args, "--out", str(tmp_path / "run"), "--replace")
    assert res.exit_code == 0, res.output
    side = read_sidecar(mine)
    assert side["preset"] == "quick" and sha256_file(mine) == side["sha256"]


def test_fetch_refuses_other_weights_before_downloading(tiny, tmp_path):
    """A tag holding a training (no blob ids to compare) is refused before any download."""
    from irnbench.weights.record import install_weights

    state = TinyCache(_task()).state_dict()
    record = WeightsRecord("test-cache", "rescale", {"scale": 2}, "rescale-x2", "my training",
                           "quick", tag="alt")
    install_weights(state, record)
    before = _target("alt").read_bytes()
    res = _cli("weights", "fetch", "test-cache", "--scale", "2", "--tag", "alt")
    assert res.exit_code == 2, res.output
    line = _one_line(res)
    assert "test-cache.alt rescale-x2 is already installed (my training" in line
    assert _target("alt").read_bytes() == before
    digest = hashlib.sha256(before).hexdigest()
    assert read_sidecar(_target("alt"))["sha256"] == digest
