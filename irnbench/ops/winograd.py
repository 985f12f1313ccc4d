"""3x3 convolutions by Winograd's F(2x2, 3x3) on x86-64 CPUs with AVX-512, fp32.

Direct convolution (oneDNN) already runs at the core's FMA peak, so a 3x3 conv gets faster
only with fewer multiplications: F(2x2, 3x3) (Lavin & Gray, CVPR 2016) needs 16 per 2x2 output
tile and channel pair instead of 36. The kernel (``csrc/winograd_f23.c``) reads several
channels_last inputs as one concatenated input, so a densely connected block never copies
its earlier feature maps. Its outputs differ from a direct convolution's only by fp32
rounding (about 1e-7 relative; ``tests/test_winograd.py``).

The C source is compiled once per machine with the system C compiler (``$CC``, else ``cc``)
into ``$IRNBENCH_HOME/kernels`` (a temporary folder for the process where that cannot be
written) and loaded with ctypes. Where that fails (no compiler, no
AVX-512, another OS) or ``IRNBENCH_WINOGRAD=0`` is set, ``available()`` is False and callers
keep their oneDNN path; ``unavailable_reason()`` says why.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["WinogradWeights", "available", "unavailable_reason", "transform_weights", "conv3x3",
           "kernel_path"]

_SOURCE = Path(__file__).with_name("csrc") / "winograd_f23.c"
_FLAGS = ("-O3", "-std=c11", "-mavx512f", "-mfma", "-fopenmp", "-shared", "-fPIC")
_COMPILE_TIMEOUT = 120.0  #: seconds

# F(2x2, 3x3)'s filter transform G (the input and output transforms live in the C source).
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))

_lock = threading.RLock()
_state: dict[str, object] = {}  # "fn": the loaded C function, or "reason": why there is none


@dataclass(frozen=True)
class WinogradWeights:
    """A 3x3 conv's weights transformed for given input pieces: ``u`` is [16][Cp][Kp] fp32."""

    u: torch.Tensor
    pieces: tuple[int, ...]  # input channels of each piece, in order (their sum is C)
    out_channels: int


def available() -> bool:
    """Whether the kernel is built, loaded and checked on this machine (built on first call)."""
    return _function() is not None


def unavailable_reason() -> str | None:
    """Why ``available()`` is False (None when it is True)."""
    if _disabled():
        return "disabled by IRNBENCH_WINOGRAD=0"
    _function()
    reason = _state.get("reason")
    return None if reason is None else str(reason)


def kernel_path() -> Path:
    """Where this source, compiler and flags build to (the name holds their hash)."""
    from irnbench.weights.store import user_home  # lazily: weights imports ops

    compiler = _compiler() or "cc"
    digest = hashlib.sha256()
    for part in (_SOURCE.read_bytes(), " ".join(_FLAGS).encode(), _compiler_version(compiler),
                 platform.machine().encode()):
        digest.update(part)
    return user_home() / "kernels" / f"winograd_f23-{digest.hexdigest()[:16]}.so"


def transform_weights(weight: torch.Tensor, pieces: Sequence[int]) -> WinogradWeights:
    """G g Gᵀ of every (output, input) pair of an O×C×3×3 weight, computed in float64, as
    [16][C rounded up to 16][O rounded up to 16]; ``pieces`` splits C into the inputs the
    kernel will be given."""
    k, c = weight.shape[:2]
    if tuple(weight.shape[2:]) != (3, 3) or sum(pieces) != c:
        raise ValueError(f"need O×{sum(pieces)}×3×3 weights, got {tuple(weight.shape)}")
    g = torch.tensor(_G, dtype=torch.float64)
    full = torch.einsum("ai,kcij,bj->abck", g, weight.detach().double().cpu(), g)
    u = torch.zeros(16, _pad16(c), _pad16(k), dtype=torch.float64)
    u[:, :c, :k] = full.reshape(16, c, k)
    return WinogradWeights(u.float().contiguous(), tuple(int(p) for p in pieces), int(k))


def conv3x3(pieces: Sequence[torch.Tensor], weights: WinogradWeights,
            bias: torch.Tensor | None = None, leaky_slope: float | None = None) -> torch.Tensor:
    """conv2d(cat(pieces, 1), w, bias, padding=1), then LeakyReLU(``leaky_slope`` in [0, 1])
    if given.

    Pieces are B×Cᵢ×H×W fp32 CPU tensors; the result is channels_last. Call only when
    ``available()``; runs on ``torch.get_num_threads()`` threads."""
    fn = _function()
    if fn is None:
        raise RuntimeError(f"the Winograd kernel is unavailable: {unavailable_reason()}")
    return _conv(fn, pieces, weights, bias, leaky_slope)


def _conv(fn, pieces: Sequence[torch.Tensor], weights: WinogradWeights,
          bias: torch.Tensor | None, leaky_slope: float | None) -> torch.Tensor:
    first = pieces[0]
    b, _, h, w = first.shape
    chans = tuple(int(p.shape[1]) for p in pieces)
    if chans != weights.pieces:
        raise ValueError(f"pieces of {chans} channels, weights for {weights.pieces}")
    srcs = [p.contiguous(memory_format=torch.channels_last) for p in pieces]
    for p in srcs:
        if p.dtype != torch.float32 or p.device.type != "cpu" or p.shape[0] != b \
                or tuple(p.shape[2:]) != (h, w):
            raise ValueError("pieces must be fp32 CPU tensors of one batch and size")
    k = weights.out_channels
    if bias is not None and bias.numel() != k:
        raise ValueError(f"a bias of {bias.numel()} values for {k} output channels")
    if leaky_slope is not None and not 0.0 <= leaky_slope <= 1.0:
        raise ValueError(f"LeakyReLU slope {leaky_slope} outside [0, 1]")
    out = torch.empty(b, k, h, w, memory_format=torch.channels_last)
    bias = None if bias is None else bias.detach().float().cpu().contiguous()
    ptrs = (ctypes.c_void_p * len(srcs))(*[p.data_ptr() for p in srcs])
    cs = (ctypes.c_int * len(srcs))(*chans)
    if fn(len(srcs), ptrs, cs, b, h, w, weights.u.data_ptr(), weights.u.shape[1], k,
          None if bias is None else bias.data_ptr(), int(leaky_slope is not None),
          float(leaky_slope or 0.0), out.data_ptr(), torch.get_num_threads()):
        raise MemoryError("the Winograd kernel could not allocate its scratch buffers")
    return out


def _pad16(n: int) -> int:
    return -(-n // 16) * 16


# -- build and load -------------------------------------------------------------------------------
def _disabled() -> bool:
    return os.environ.get("IRNBENCH_WINOGRAD", "1").strip().lower() in ("0", "false", "no", "off")


def _function():
    """The checked C function, or None with ``_state["reason"]`` set; built once per process."""
    if _disabled():
        return None
    with _lock:
        if "fn" not in _state and "reason" not in _state:
            try:
                _state["fn"] = _load()
            except Exception as e:  # noqa: BLE001 - any failure to build, load or check: fall back
                _state["reason"] = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
    return _state.get("fn")


def _load():
    if platform.machine().lower() not in ("x86_64", "amd64") or not sys.platform.startswith(
            "linux"):
        raise RuntimeError(f"the kernel is built for x86-64 Linux, not {platform.machine()} "
                           f"{sys.platform}")
    if torch.backends.cpu.get_cpu_capability() not in ("AVX512", "AMX"):
        raise RuntimeError("this CPU has no AVX-512 (PyTorch reports "
                           f"{torch.backends.cpu.get_cpu_capability()})")
    path = kernel_path()
    try:
        if not path.is_file():
            _build(path)
    except OSError:  # the cache cannot be written: build into a private temporary folder
        path = Path(tempfile.mkdtemp(prefix="irnbench-kernel-")) / path.name
        atexit.register(shutil.rmtree, path.parent, True)
        _build(path)
    try:
        lib = ctypes.CDLL(str(path))
    except OSError:  # a damaged or foreign file under the kernel's name: build it again
        _build(path)
        lib = ctypes.CDLL(str(path))
    fn = lib.irnbench_winograd_f23
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_int, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_int),
                   ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                   ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_float, ctypes.c_void_p,
                   ctypes.c_int]
    _probe(fn)
    return fn


def _build(path: Path) -> None:
    """Compile to a temporary file beside ``path``, then rename: concurrent builds each
    produce the same file and never expose a partial one."""
    compiler = _compiler()
    if compiler is None:
        raise RuntimeError("no C compiler (set $CC or install cc/gcc)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        done = subprocess.run([compiler, *_FLAGS, "-o", tmp, str(_SOURCE)], capture_output=True,
                              text=True, timeout=_COMPILE_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"{compiler} failed: {done.stderr.strip() or done.returncode}")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _probe(fn) -> None:
    """The built kernel against torch's conv2d on odd sizes, channel and output tails."""
    g = torch.Generator().manual_seed(0)
    pieces = [torch.randn(2, c, 5, 7, generator=g) for c in (3, 17)]
    w, b = torch.randn(19, 20, 3, 3, generator=g), torch.randn(19, generator=g)
    out = _conv(fn, pieces, transform_weights(w, (3, 17)), b, 0.2)
    ref = torch.nn.functional.leaky_relu(
        torch.nn.functional.conv2d(torch.cat(pieces, 1), w, b, padding=1), 0.2)
    if not torch.allclose(out, ref, rtol=0, atol=1e-4):
        raise RuntimeError("the built kernel disagrees with torch's conv2d")


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc"):
        if name and shutil.which(name):
            return name
    return None


def _compiler_version(compiler: str) -> bytes:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True,
                              timeout=_COMPILE_TIMEOUT).stdout
    except (OSError, subprocess.SubprocessError):
        return b""
