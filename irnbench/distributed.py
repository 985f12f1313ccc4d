"""Distributed runs on PyTorch's own engine: ``torch.distributed``, launched by ``torchrun``.

irnbench reads its place in the job from the environment that ``torchrun`` sets (``RANK``,
``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``) and joins the process group with
``gloo`` on CPU and ``nccl`` on CUDA (rank ``LOCAL_RANK`` uses ``cuda:LOCAL_RANK``). Without those
variables (or with ``WORLD_SIZE=1``) everything runs in one process, as before.

One node, N GPUs (or N CPU processes with gloo)::

    torchrun --standalone --nproc-per-node N -m irnbench train --plugin irn --scale 4 --preset paper
    irnbench train --nproc N --plugin irn --scale 4 --preset paper      # the same, launched for you
    torchrun --standalone --nproc-per-node N -m irnbench run --plugins irn,bicubic --datasets set5

Several nodes: run the same command on every node with torchrun's standard rendezvous flags,
e.g. two nodes of 8 GPUs with the c10d rendezvous (any node's address as the endpoint)::

    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-backend c10d --rdzv-endpoint HOST0:29400 \\
        --rdzv-id irn-x4 -m irnbench train --plugin irn --scale 4 --preset paper --out /shared/run

or the static form: ``--nnodes 2 --node-rank R --master-addr HOST0 --master-port 29500``. Every
node needs the training data and irnbench with the same plugins; ``--out`` (checkpoints, for
``--resume``) only has to exist on the node of rank 0, which alone writes; on resume rank 0 reads
the checkpoint and broadcasts it. ``run --train-missing`` across nodes needs ``IRNBENCH_HOME`` on a
shared filesystem, because the other nodes load the weights that rank 0 installs there.

What is distributed:

* ``train``: each rank takes a contiguous block of every global batch (the preset's
  ``batch_size`` must be divisible by the world size). Samples (image, crop, flips) and the
  training noise (``batch["randn"]``) are pure functions of (seed, global sample index), and the
  gradients are averaged over ranks before clipping, so the run follows the single-process run
  with the same global batch up to floating-point reduction order. Losses are logged as global
  means; the NaN/Inf guard decides on all ranks together; rank 0 alone writes checkpoints,
  logs, progress and weights.
* ``run``/``eval``: images are split across ranks (rank r takes every world-th image), the rows
  are gathered and put back in the single-process order; each rank appends its finished units
  to its own file in the run folder (so a killed run keeps every shard's work), and rank 0 alone
  writes the results and report.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from irnbench.device import resolve_device
from irnbench.errors import IrnbenchError

__all__ = ["DistContext", "setup", "context", "torchrun_command", "relaunch"]

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- collectives (no-ops in one process) -------------------------------------------------
    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_sum(self, t: torch.Tensor) -> torch.Tensor:
        """Sum ``t`` over ranks, in place."""
        if self.enabled:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        """Replace each gradient by its mean over ranks (one flat all-reduce per dtype).

        Every rank must hold gradients for the same parameters (the same code path runs on all).
        """
        if not self.enabled:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for p in params:
            if p.grad is not None:
                by_dtype.setdefault(p.grad.dtype, []).append(p.grad)
        for grads in by_dtype.values():
            flat = torch.cat([g.reshape(-1) for g in grads])
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            flat.div_(self.world)
            offset = 0
            for g in grads:
                n = g.numel()
                g.copy_(flat[offset : offset + n].view_as(g))
                offset += n

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Rank 0's parameters and buffers to every rank."""
        if self.enabled:
            with torch.no_grad():
                for t in module.state_dict().values():
                    dist.broadcast(t, src=0)

    def broadcast_object(self, obj: T) -> T:
        """Rank 0's ``obj`` (picklable) on every rank."""
        if not self.enabled:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def on_main(self, fn: Callable[[], T], what: str) -> T | None:
        """Run ``fn`` on rank 0 only; every rank waits for it and raises if it failed.

        Returns ``fn``'s result on rank 0 and ``None`` elsewhere. Without this, a rank that went
        on (or exited) while rank 0 writes could have torchrun stop rank 0 mid-write, and a
        failure on rank 0 would leave the others waiting in the next collective.
        """
        result, error = None, None
        if self.is_main:
            try:
                result = fn()
            except BaseException as exc:
                error = f"{type(exc).__name__}: {exc}"
                self.broadcast_object(error)
                raise
        error = self.broadcast_object(error)
        if error is not None:
            raise IrnbenchError(f"rank 0 failed while {what}: {error}")
        return result


def context() -> DistContext:
    """The current process group's context (rank 0 of 1 when none is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(),
                           int(os.environ.get("LOCAL_RANK", 0)))
    return DistContext()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    try:
        return int(value) if value not in (None, "") else default
    except ValueError as exc:
        raise IrnbenchError(f"{name}={value!r} is not an integer") from exc


def setup(device: str | torch.device | None = "auto") -> tuple[DistContext, torch.device]:
    """Join the process group that torchrun describes in the environment (if any).

    Returns the context and this rank's device: ``auto``/``cuda`` become ``cuda:LOCAL_RANK``
    under a distributed launch. Idempotent: a group that is already initialised is reused.
    """
    world = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device)
    if world > 1 and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if dev.type == "cuda" and world > 1:
        if dev.index >= torch.cuda.device_count():
            raise IrnbenchError(
                f"local rank {local_rank} has no GPU: this node has {torch.cuda.device_count()}; "
                "start at most that many processes per node"
            )
        torch.cuda.set_device(dev)
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistContext(), dev
    if not dist.is_available():
        raise IrnbenchError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    if not dist.is_initialized():
        for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
            if var not in os.environ:
                raise IrnbenchError(
                    f"WORLD_SIZE={world} but {var} is not set: launch with torchrun "
                    "(or `irnbench train --nproc N`)"
                )
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        atexit.register(_destroy)
    return context(), dev


def _destroy() -> None:
    """Tear the process group down at exit, after every rank has got there.

    Without the barrier a gloo rank could tear down while a peer still used the connection:
    once in CI rank 0 aborted at exit ("terminate called without an active exception") after
    writing its weights. The barrier is bounded (a failed peer is killed by torchrun anyway).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    if dist.get_backend() == "gloo":
        try:
            dist.monitored_barrier(timeout=timedelta(seconds=60))
        except RuntimeError:
            pass  # a peer already gone: tear down what is left
    dist.destroy_process_group()


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """The command that runs ``irnbench ARGS`` in ``nproc`` processes on this node."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", str(nproc), "-m", "irnbench", *args]


def strip_option(argv: Sequence[str], flag: str) -> list[str]:
    """``argv`` without ``flag VALUE`` / ``flag=VALUE``."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == flag:
            skip = True
            continue
        if a.startswith(flag + "="):
            continue
        out.append(a)
    return out


def relaunch(nproc: int, argv: Sequence[str] | None = None) -> None:
    """Replace this process by torchrun running the same irnbench command in ``nproc`` ranks."""
    if _env_int("WORLD_SIZE", 1) > 1:
        raise IrnbenchError("--nproc cannot be used inside a torchrun launch")
    args = strip_option(list(sys.argv[1:] if argv is None else argv), "--nproc")
    cmd = torchrun_command(nproc, args)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(cmd[0], cmd)
