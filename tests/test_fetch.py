"""``irnbench weights fetch`` / ``sources`` and the run-time fetch (issue #28), through the real
download code against a loopback HTTP server (127.0.0.1, stopped by each test's teardown).

A test-only method (one 1×1 conv) publishes a checkpoint whose ``OfficialFile`` points at the
loopback server and pins the git blob SHA-1 of the served bytes; the server can serve the
file whole, cut short, slowly, or stall after a few bytes, and counts the requests.
"""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from conftest import make_plugin
from PIL import Image

from irnbench.cli import cli
from irnbench.errors import WeightsNotFound
from irnbench.methods import Method
from irnbench.registry import create_method
from irnbench.weights import OfficialCheckpoint, OfficialFile, read_sidecar, user_home
from irnbench.weights import fetch as fetch_mod
from irnbench.weights.fetch import FetchUnavailable, fetch_weights, git_blob_sha1

COMMIT = "0123456789abcdef0123456789abcdef01234567"
FILE = "weights/tiny_x2.pth"
FETCH_CMD = "irnbench weights fetch test-fetch --task rescale --scale 2"
IMPORT_CMD = "irnbench weights import test-fetch tiny_x2.pth --task rescale --scale 2"


# ------------------------------------------------------------------------------------------
# the loopback server and the test-only method


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        srv = self.server
        srv.hits.append(self.path)
        kind, data = srv.routes.get(self.path, ("missing", b""))
        if kind == "missing":
            self.send_error(404)
            return
        srv.stop.wait(srv.delay)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if kind == "ok":
            self.wfile.write(data)
        elif kind == "short":  # announce every byte, send half, close
            self.wfile.write(data[: len(data) // 2])
        elif kind == "stall":  # a few bytes, then silence until the test ends (at most 10 s)
            self.wfile.write(data[:16])
            self.wfile.flush()
            srv.stop.wait(10)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(monkeypatch):
    """A loopback HTTP server: ``routes`` path → (kind, bytes), ``hits`` the paths asked."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.routes, srv.hits, srv.delay, srv.stop = {}, [], 0.0, threading.Event()
    srv.base = f"http://127.0.0.1:{srv.server_address[1]}"
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05},
                     daemon=True).start()
    yield srv
    srv.stop.set()
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def silent_server():
    """A TCP server that accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    conns = []

    def accept() -> None:
        while True:
            try:
                conns.append(srv.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    srv.close()
    for c in conns:
        c.close()


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


class TinyFetch(Method):
    """A one-conv rescaler whose published checkpoint is served on loopback."""

    name = "test-fetch"
    tasks = ("rescale",)

    def __init__(self, task, **options):
        super().__init__(task, **options)
        self.net = torch.nn.Conv2d(3, 3, 1)

    def degrade(self, x):
        return F.avg_pool2d(self.net(x), self.task.setting["scale"])

    def restore(self, y, **channel_info):
        return F.interpolate(y, scale_factor=self.task.setting["scale"], mode="nearest")


def _checkpoint(seed: int = 0) -> tuple[dict[str, torch.Tensor], bytes]:
    g = torch.Generator().manual_seed(seed)
    state = {"weight": torch.randn(3, 3, 1, 1, generator=g), "bias": torch.randn(3, generator=g)}
    buf = io.BytesIO()
    torch.save(state, buf)
    return state, buf.getvalue()


@pytest.fixture
def publish(register_plugin, server):
    """``publish(kind="ok", blob=None)``: serve the checkpoint (and an ``alt`` variant) and
    register ``test-fetch`` pinning them; returns the served state, bytes and URL."""

    def _publish(kind: str = "ok", blob: str | None = None, url: str | None = None) -> dict:
        state, data = _checkpoint()
        alt_state, alt = _checkpoint(seed=1)
        path, alt_path = f"/owner/repo/raw/{COMMIT}/{FILE}", f"/owner/repo/raw/{COMMIT}/alt.pth"
        server.routes[path] = (kind, data)
        server.routes[alt_path] = ("ok", alt)
        url = url or server.base + path
        files = (OfficialFile("tiny_x2.pth", "net.", "tiny conv", url=url, commit=COMMIT,
                              git_blob_sha1=blob or git_blob_sha1(data)),)
        variant = OfficialFile("alt.pth", "net.", "tiny conv, other values",
                               url=server.base + alt_path, commit=COMMIT,
                               git_blob_sha1=git_blob_sha1(alt))
        official = OfficialCheckpoint(
            task="rescale", setting={"scale": 2}, files=files,
            rename=lambda _file, key: "net." + key, repository="example.invalid/owner/repo",
            download="https://example.invalid/owner/repo", licence="test",
            variants={"alt": variant})
        cls = type("TinyFetchServed", (TinyFetch,), {"official_weights": {"rescale-x2": official}})
        register_plugin(make_plugin(irnbench_register_methods=lambda register: register(cls)),
                        "test-fetch")
        return {"state": state, "data": data, "url": url, "alt_state": alt_state}

    return _publish


def _cache_files() -> list[str]:
    root = user_home()
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _one_error_line(res) -> str:
    """The run's one ``Error:`` line, after at most the lines announcing downloads."""
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert lines and lines[-1].startswith("Error:"), res.output
    assert all(x.startswith("fetching ") for x in lines[:-1]), res.output
    return lines[-1]


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "imgs"
    folder.mkdir()
    arr = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(arr, "RGB").save(folder / "a.png")
    return folder


# ------------------------------------------------------------------------------------------
# weights fetch


def test_git_blob_sha1_is_git_hash_object():
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_fetch_verifies_imports_and_records_the_source(publish, server, online):
    pub = publish()
    runner = CliRunner()
    res = runner.invoke(cli, ["weights", "fetch", "test-fetch", "--scale", "2"])
    assert res.exit_code == 0, res.output
    assert f"fetching test-fetch.official rescale x2: tiny_x2.pth from {pub['url']}" in res.output
    assert "fetched test-fetch.official" in res.output
    path = user_home() / "weights" / "test-fetch" / "rescale-x2.official.safetensors"
    side = read_sidecar(path)
    (src,) = side["sources"]
    assert src["url"] == pub["url"] and src["commit"] == COMMIT
    assert src["git_blob_sha1"] == git_blob_sha1(pub["data"])
    assert src["sha256"] == hashlib.sha256(pub["data"]).hexdigest()
    assert src["file"] == "tiny_x2.pth" and src["bytes"] == len(pub["data"])
    assert side["tag"] == "official" and side["label"] == "official checkpoint (tiny_x2.pth)"
    assert _cache_files() == ["weights/test-fetch/rescale-x2.official.json",
                              "weights/test-fetch/rescale-x2.official.safetensors"]
    listed = runner.invoke(cli, ["weights", "list", "test-fetch"])
    assert "test-fetch.official" in listed.output and "rescale-x2" in listed.output
    model = create_method("test-fetch", scale=2)  # untagged: official, from the cache
    assert model.weights_tag == "official"
    assert torch.equal(model.net.weight, pub["state"]["weight"])
    again = runner.invoke(cli, ["weights", "fetch", "test-fetch", "--scale", "2"])
    assert again.exit_code == 0 and "already fetched" in again.output
    assert len(server.hits) == 1  # the second fetch downloaded nothing
    alt = runner.invoke(cli, ["weights", "fetch", "test-fetch.alt", "--scale", "2"])
    assert alt.exit_code == 0, alt.output
    assert torch.equal(create_method("test-fetch.alt", scale=2).net.bias,
                       pub["alt_state"]["bias"])


@pytest.mark.parametrize("kind", ["wrong-blob", "short", "missing"])
def test_a_bad_download_is_deleted_with_one_line(publish, server, online, kind):
    if kind == "wrong-blob":
        publish(blob="f" * 40)
    elif kind == "short":
        publish(kind="short")
    else:
        publish(url=server.base + "/owner/repo/raw/nothing-here.pth")
    res = CliRunner().invoke(cli, ["weights", "fetch", "test-fetch", "--scale", "2"])
    assert res.exit_code == 1
    line = _one_error_line(res)
    expected = {"wrong-blob": f"git blob SHA-1 mismatch: expected {'f' * 40}, got ",
                "short": "cut short", "missing": "HTTP 404"}[kind]
    assert expected in line and "nothing was installed" in line
    assert _cache_files() == []


def test_a_silent_server_times_out_clearly(publish, silent_server, online, monkeypatch):
    monkeypatch.setattr(fetch_mod, "CONNECT_TIMEOUT", 1.0)
    publish(url=silent_server + "/tiny_x2.pth")
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, ["weights", "fetch", "test-fetch", "--scale", "2"])
    assert time.monotonic() - t0 < 4
    assert res.exit_code == 1
    line = _one_error_line(res)
    assert "did not answer: no answer within 1 s" in line
    assert FETCH_CMD in line and IMPORT_CMD in line
    assert _cache_files() == []


def test_a_download_that_stalls_times_out(publish, online, monkeypatch):
    monkeypatch.setenv("IRNBENCH_FETCH_TIMEOUT", "1")
    publish(kind="stall")
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, ["weights", "fetch", "test-fetch", "--scale", "2"])
    assert time.monotonic() - t0 < 4
    assert res.exit_code == 1
    assert "stalled for 1 s after 16 bytes" in _one_error_line(res)
    assert _cache_files() == []


def test_concurrent_fetches_download_once(publish, server, online):
    pub = publish()
    server.delay = 0.5  # the first holds the lock while the second waits
    out, errors = [], []

    def go() -> None:
        try:
            out.append(fetch_weights("test-fetch", scale=2, progress=False))
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not errors and len(out) == 2
    assert sorted(r.downloaded for r in out) == [False, True]
    assert len(server.hits) == 1 and out[0].sha256 == out[1].sha256
    assert _cache_files() == ["weights/test-fetch/rescale-x2.official.json",
                              "weights/test-fetch/rescale-x2.official.safetensors"]
    assert torch.equal(create_method("test-fetch", scale=2).net.bias, pub["state"]["bias"])


def test_manual_files_name_the_import_command():
    res = CliRunner().invoke(cli, ["weights", "fetch", "irn", "--scale", "4"])
    assert res.exit_code == 2
    line = _one_error_line(res)
    assert "drive.google.com" in line and "irnbench weights import irn IRN_x4.pth" in line


# ------------------------------------------------------------------------------------------
# the run-time fetch


def test_run_fetches_an_untagged_method_when_online(publish, server, online, images, tmp_path):
    pub = publish()
    res = CliRunner().invoke(cli, ["eval", "--plugins", "test-fetch", "--scale", "2",
                                   "--datasets", str(images), "--quiet",
                                   "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert f"fetching test-fetch.official rescale x2: tiny_x2.pth from {pub['url']}" in res.output
    assert "weights: test-fetch" in res.output and "official checkpoint" in res.output
    assert len(server.hits) == 1


@pytest.mark.parametrize("how", ["offline", "no-download"])
def test_run_without_download_stops_with_both_commands(publish, server, images, tmp_path,
                                                        monkeypatch, how):
    publish()
    flags = []
    if how == "no-download":
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        flags = ["--no-download"]
    t0 = time.monotonic()
    res = CliRunner().invoke(cli, ["eval", "--plugins", "test-fetch", "--scale", "2",
                                   "--datasets", str(images), "--quiet", *flags,
                                   "--out", str(tmp_path / "run")])
    assert time.monotonic() - t0 < 10
    assert res.exit_code == 1
    line = _one_error_line(res)
    assert FETCH_CMD in line and IMPORT_CMD in line
    assert ("HF_HUB_OFFLINE" if how == "offline" else "download refused: --no-download") in line
    assert server.hits == [] and _cache_files() == []


def test_the_python_api_never_downloads_unless_asked(publish, server, online):
    pub = publish()
    with pytest.raises(FetchUnavailable, match="download refused") as err:
        create_method("test-fetch", scale=2)
    assert isinstance(err.value, WeightsNotFound) and "irnbench train" in err.value.train_command
    assert server.hits == [] and _cache_files() == []
    model = create_method("test-fetch", scale=2, download=True)
    assert model.weights_tag == "official"
    assert torch.equal(model.net.weight, pub["state"]["weight"])


# ------------------------------------------------------------------------------------------
# weights sources


def test_sources_json_lists_fetchable_and_manual_files(publish):
    pub = publish()
    res = CliRunner().invoke(cli, ["weights", "sources", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    for r in rows:
        assert {"method", "tag", "task", "scale", "file"} <= r.keys()
        assert ({"url", "commit", "git_blob_sha1"} <= r.keys()) != ("manual_download" in r)
    mine = {r["tag"]: r for r in rows if r["method"] == "test-fetch"}
    assert mine["official"]["url"] == pub["url"] and mine["official"]["scale"] == 2
    assert mine["official"]["git_blob_sha1"] == git_blob_sha1(pub["data"])
    assert mine["alt"]["file"] == "alt.pth"
    irn = [r for r in rows if r["method"] == "irn"]
    assert irn and all("drive.google.com" in r["manual_download"] for r in irn)
    assert any(r["method"] == "car" and r["file"] == "4x/kgn.pth" for r in rows)
    text = CliRunner().invoke(cli, ["weights", "sources", "test-fetch"])
    assert "test-fetch.official" in text.output and "fetch" in text.output
