"""The ``irnbench`` command line (click). ``--help`` works on every command.

User errors (unknown names, missing weights, unusable data) print one line and exit with a
non-zero code (2 for unknown names and bad settings), never a traceback.
"""

from __future__ import annotations

import datetime as _dt
import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from irnbench import __version__
from irnbench.data.cli import datasets
from irnbench.errors import IrnbenchError, cli_errors
from irnbench.site.cli import leaderboard
from irnbench.training.allocator import keep_freed_memory
from irnbench.weights.cli import weights
from irnbench.weights.tags import DEFAULT_TRAIN_TAG

__all__ = ["RunRequest", "cli", "main"]


#: Turn irnbench's user-facing errors into a one-line message and an exit code.
_user_errors = cli_errors


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def _ints(value: str | None, flag: str) -> list[int]:
    try:
        return [int(v) for v in _split(value)]
    except ValueError as exc:
        raise click.BadParameter(f"expected comma-separated integers, got {value!r}",
                                 param_hint=flag) from exc


def _qualities(value: str | None, flag: str) -> list[int]:
    """A codec's comma-separated qualities, integers in 1..100; anything else is one
    ``Error:`` line and exit 2 (``InvalidSetting``)."""
    from irnbench.errors import InvalidSetting

    def valid(part: str) -> bool:
        try:
            return 1 <= int(part) <= 100
        except ValueError:
            return False

    parts = _split(value)
    bad = [p for p in parts if not valid(p)]
    if bad:
        raise InvalidSetting(f"{flag} takes comma-separated qualities, integers in 1..100; "
                             f"got {', '.join(repr(b) for b in bad)}")
    return [int(p) for p in parts]


def _settings(task: str, scale: str | None, jpeg: str | None,
              webp: str | None = None) -> list[dict[str, Any]]:
    from irnbench.plugins import registered_tasks

    cls = registered_tasks()[task]
    scales = _ints(scale, "--scale")
    codecs = {"jpeg": _qualities(jpeg, "--jpeg"), "webp": _qualities(webp, "--webp")}
    if scales and "scale" not in cls.setting_keys:
        raise click.BadParameter(f"task {task!r} takes no --scale", param_hint="--scale")
    for key, qualities in codecs.items():
        if qualities and key not in cls.setting_keys:
            raise click.BadParameter(f"task {task!r} takes no --{key}", param_hint=f"--{key}")
    base = [{"scale": s} for s in scales] if scales else cls.default_settings()
    for key, qualities in codecs.items():
        if qualities:
            base = [{**b, key: qualities} for b in base]
    return base


def _check_task(task: str) -> None:
    from irnbench.errors import UnknownNameError
    from irnbench.plugins import registered_tasks

    tasks = registered_tasks()
    if task not in tasks:
        raise UnknownNameError("task", task, list(tasks))


def _methods_for(task: str, plugins: str | None, settings: list[dict[str, Any]]) -> list[str]:
    """The named methods; with none named, every method of the task that has weights for every
    setting (the others are listed on stderr with the command that trains them)."""
    from irnbench.registry import (
        create_task,
        get_method_class,
        import_command,
        list_methods,
        train_command,
        weights_available,
    )

    names = list(dict.fromkeys(_split(plugins)))  # a name given twice is evaluated once
    if plugins is not None and not names:
        from irnbench.errors import InvalidSetting

        raise InvalidSetting("--plugins names no method (leave it out to run every method "
                             "with weights)")
    if not names:
        for name in list_methods(task):
            missing = [s for s in settings if not weights_available(name, task, **s)]
            if missing:
                cls, task_obj = get_method_class(name), create_task(task, **missing[0])
                how = (f"import with: {import_command(cls, task_obj)}" if cls.training_note
                       else f"train with: {train_command(name, task_obj)}")
                click.echo(f"note: skipping {name} (no weights; {how})", err=True)
            else:
                names.append(name)
        if not names:
            raise IrnbenchError(f"no installed method with weights does task {task!r}")
    for n in names:
        get_method_class(n)  # unknown → one-line error listing the known ones
    return names


def _default_out(task: str) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / f"{task}-{stamp}"


def _command_line(drop: tuple[str, ...] = ()) -> str:
    return "irnbench " + " ".join(shlex.quote(a) for a in sys.argv[1:] if a not in drop)


@click.group()
@click.version_option(__version__, prog_name="irnbench")
def cli() -> None:
    """irnbench: benchmark image degradation–restoration methods (IRN, bicubic, CAR, TAR…)."""


_NPROC = click.option(
    "--nproc", default=None, type=click.IntRange(min=1),
    help="Run as N processes on this node (one per GPU; gloo on CPU) through torchrun: the same "
         "as `torchrun --standalone --nproc-per-node N -m irnbench ...`. Several nodes: call "
         "torchrun yourself (see irnbench.distributed).")


def _maybe_relaunch(nproc: int | None) -> None:
    """``--nproc N`` (N > 1): hand the command to torchrun."""
    if nproc and nproc > 1:
        from irnbench.distributed import relaunch

        relaunch(nproc)


def _is_main_rank() -> bool:
    from irnbench.distributed import context

    return context().is_main


@dataclass(frozen=True)
class RunRequest:
    """Everything ``run`` / ``eval`` were asked for, as the command line gave it (one value
    for ``_do_run`` instead of fifteen positional arguments that are easy to swap)."""

    task: str = "rescale"
    plugins: str | None = None  #: comma-separated method specs; None: every one with weights
    scale: str | None = None  #: comma-separated scales
    jpeg: str | None = None  #: comma-separated JPEG qualities of the channel
    webp: str | None = None  #: comma-separated WebP qualities of the channel
    datasets: str = "mini"
    device: str = "auto"
    draws: int | None = None  #: None: the task's default (below 1: refused)
    weights: str | None = None
    out: str | None = None
    iqa: str | None = None
    quiet: bool = False
    nproc: int | None = None
    train_missing: bool = False
    preset: str = "cpu"
    report: bool = True
    options: tuple[str, ...] = ()  #: ``--option KEY=VALUE`` pairs
    no_download: bool = False  #: never fetch published weights (``--no-download``)
    resume: bool = False  #: continue the killed run in ``out`` (``--resume``)
    overwrite: bool = False  #: replace the run in ``out`` (``--overwrite``)


def _run_options(fn):
    opts = [
        click.option("--task", default=RunRequest.task, show_default=True,
                     help="Task name (see `irnbench tasks`)."),
        click.option("--plugins", "plugins", default=None,
                     help="Comma-separated methods, NAME or NAME.TAG, e.g. irn,car or "
                          "irn.official,irn.cpu (untagged: official if imported, else the "
                          "shipped cpu weights; default: every method that does the task)."),
        click.option("--scale", default=None, help="Scales, e.g. 2,4 (default: the task's)."),
        click.option("--jpeg", default=None,
                     help="JPEG qualities of the channel, e.g. 30,50,70,80,90."),
        click.option("--webp", default=None,
                     help="WebP qualities of the channel (rescale; Pillow, lossy, other "
                          "options default), e.g. 30,50,70,80,90; with --jpeg, both."),
        click.option("--datasets", default=RunRequest.datasets, show_default=True,
                     help="Comma-separated dataset names or image folders."),
        click.option("--device", default=RunRequest.device, show_default=True,
                     help="auto (cuda > mps > cpu), cpu, cuda, cuda:1, mps."),
        click.option("--draws", default=None, type=int,
                     help="z draws per image for stochastic methods (default: the task's, "
                          "from its source protocol; the report's protocol text states it)."),
        click.option("--weights", default=None, type=click.Path(dir_okay=False),
                     help="Weights file for a single method (overrides cache and shipped)."),
        click.option("--out", default=None, type=click.Path(file_okay=False),
                     help="Run folder (default: runs/TASK-TIMESTAMP)."),
        click.option("--iqa", default=None,
                     help="Extra perceptual metrics through pyiqa, e.g. lpips,dists (needs the "
                          "`iqa` extra; weights download on first use)."),
        click.option("--quiet", is_flag=True, help="No progress bars."),
        click.option("--resume", is_flag=True,
                     help="Continue the killed run in --out: only the units not on file are "
                          "computed (the same request, or it is refused)."),
        click.option("--overwrite", is_flag=True,
                     help="Replace the run in --out (removes its own files, nothing else)."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
                     help="A method option, e.g. --option tile=512 (repeatable; every named "
                          "method must take it; `irnbench presets METHOD` lists them)."),
        click.option("--no-download", is_flag=True,
                     help="Never download published weights: a method that would fetch its "
                          "authors' checkpoint stops with the `irnbench weights fetch` and "
                          "`weights import` commands instead."),
        _NPROC,
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def _iqa_names(value: str | None) -> list[str]:
    from irnbench.results import IQA_METRICS

    names = _split(value)
    for n in names:
        if n not in IQA_METRICS:
            raise click.BadParameter(f"{n!r} is not one of {', '.join(IQA_METRICS)}",
                                     param_hint="--iqa")
    return names


def _check_device(device: str) -> None:
    """An unusable --device (unknown, or absent here: cuda without CUDA, cuda:7 on one GPU, mps
    off macOS) is one ``Error:`` line and exit 2, before any work."""
    from irnbench.device import resolve_device
    from irnbench.errors import InvalidSetting

    try:
        resolve_device(device)
    except (ValueError, RuntimeError) as exc:
        raise InvalidSetting(f"--device: {str(exc).splitlines()[0]}") from None


def _method_options(req: RunRequest, methods: list[str]) -> dict[str, str]:
    """``--option`` pairs, checked against every method before any work (InvalidSetting)."""
    from irnbench.options import parse_pairs
    from irnbench.registry import get_method_class

    options = parse_pairs(req.options)
    for name in methods:
        get_method_class(name).parse_options(options)
    return options


def _do_run(req: RunRequest):
    from irnbench.runfolder import check_run

    out_dir = Path(req.out) if req.out else _default_out(req.task)
    # --out, the dataset list and --draws before any work (one line, exit 2, nothing changed)
    check_run(out_dir, _split(req.datasets), req.draws, req.resume, req.overwrite)
    from irnbench.runner import run_benchmark

    # Bit-identical results, fewer page faults (1.3× faster IRN inference on a 2-core CPU).
    # Evaluation only: `train` keeps glibc's default heap (see irnbench.training.allocator).
    keep_freed_memory()
    _check_device(req.device)
    _check_task(req.task)
    settings = _settings(req.task, req.scale, req.jpeg, req.webp)
    methods = _methods_for(req.task, req.plugins, settings)
    if req.weights and len(methods) != 1:
        raise click.BadParameter("--weights needs exactly one method in --plugins",
                                 param_hint="--weights")
    options = _method_options(req, methods)
    _maybe_relaunch(req.nproc)
    command = _command_line(drop=("--resume", "--overwrite"))  # the run they make
    res = run_benchmark(req.task, methods, settings, _split(req.datasets), out_dir,
                        device=req.device, draws=req.draws, weights=req.weights,
                        train_missing=req.train_missing, preset=req.preset, command=command,
                        report=req.report, progress=not req.quiet, iqa=_iqa_names(req.iqa),
                        options=options, download=not req.no_download, resume=req.resume,
                        overwrite=req.overwrite, announce=lambda s: click.echo(s, err=True))
    if not _is_main_rank():
        return res
    from irnbench.report.console import print_leaderboard

    print_leaderboard(res.df)
    click.echo(f"\nresults: {res.run_dir / 'results.csv'}")
    if res.report:
        click.echo(f"report:  {res.report}")
    return res


@cli.command()
@_run_options
@click.option("--train-missing", is_flag=True,
              help="Train methods that have no weights for a setting (with --preset).")
@click.option("--preset", default=RunRequest.preset, show_default=True,
              help="Training preset used by --train-missing.")
@_user_errors
def run(**params):
    """Evaluate methods on a task, write results + an HTML report, print the leaderboard."""
    _do_run(RunRequest(**params, report=True))


@cli.command(name="eval")
@_run_options
@_user_errors
def eval_(**params):
    """Evaluate only: like `run`, without training or a report."""
    _do_run(RunRequest(**params, train_missing=False, report=False))


@cli.command()
@click.option("--plugin", "method", required=True, help="The method to train, e.g. irn.")
@click.option("--task", default="rescale", show_default=True)
@click.option("--scale", default=None, type=int, help="Scale of a rescaling task.")
@click.option("--preset", default="cpu", show_default=True,
              help="A preset of the method (see `irnbench presets METHOD`): paper = the "
                   "published schedule, cpu = irnbench's CPU budget, smoke = seconds.")
@click.option("--datasets", default="mini-train", show_default=True,
              help="Training set: a dataset name or an image folder.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Run folder for checkpoints (default: in the user cache).")
@click.option("--resume", is_flag=True,
              help="Continue from the checkpoint in --out (the same weights as an uninterrupted "
                   "run bit-for-bit on CPU with OMP_NUM_THREADS=1; see the README).")
@click.option("--overwrite", is_flag=True,
              help="Start again in an --out that holds a training run (removes its checkpoint "
                   "and weights files, nothing else).")
@click.option("--iterations", default=None, type=int,
              help="Total steps (overrides the preset, e.g. to continue training longer).")
@click.option("--init", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Start from these weights (a fine-tune: fresh optimiser, the preset's "
                   "schedule); chain-step presets need it. The run records the file's sha256.")
@click.option("--init-sha256", default=None, metavar="HEX",
              help="Refuse --init unless its sha256 starts with HEX (12-64 hex digits); "
                   "recorded commands carry it, so a replayed chain checks every step.")
@click.option("--device", default="auto", show_default=True)
@click.option("--amp", type=click.Choice(["off", "bf16", "fp16", "auto"]), default=None,
              help="Autocast the forward pass: bf16; fp16 with a GradScaler; auto = bf16 on a "
                   "GPU that has it, fp16 on an older GPU, off (fp32) on CPU. Default: off.")
@click.option("--bf16", is_flag=True, help="The same as --amp bf16 (faster on recent CPUs and "
                                           "GPUs).")
@click.option("--channels-last", is_flag=True, help="channels_last memory format.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile the training loss (a one-off compile of a minute or more; "
                   "pays on long GPU runs).")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--tag", default=DEFAULT_TRAIN_TAG, show_default=True,
              help="Install the final weights under this tag (run them as METHOD.TAG; an "
                   "untagged name never picks them).")
@click.option("--no-install", is_flag=True,
              help="Do not install the final weights in the user cache (smoke presets never "
                   "install).")
@click.option("--replace", is_flag=True,
              help="Replace other weights installed under --tag (else refused before "
                   "training, exit 2).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--workers", default=None, type=click.IntRange(min=0),
              help="DataLoader processes that sample crops ahead of the steps (default: 0 on "
                   "CPU, else up to 2); results do not depend on it.")
@_NPROC
@_user_errors
def train(method, task, scale, preset, datasets, out, resume, overwrite, iterations, init,
          init_sha256, device, amp, bf16, channels_last, compile_, seed, tag, no_install, replace,
          quiet, workers, nproc):
    """Train one method on one task setting with one of its presets.

    Data-parallel on N GPUs (or N CPU processes): `--nproc N`, or
    `torchrun --nproc-per-node N -m irnbench train ...` (several nodes: torchrun's rendezvous
    flags). The preset's batch size is the global batch, split over the processes.
    """
    from irnbench.training import train_method

    _check_device(device)
    _check_task(task)
    _maybe_relaunch(nproc)
    setting = {"scale": scale} if scale is not None else {}
    res = train_method(method, task, preset=preset, datasets=datasets, out=out, device=device,
                       resume=resume, overwrite=overwrite, iterations=iterations, bf16=bf16,
                       amp=amp,
                       channels_last=channels_last, compile=compile_, seed=seed,
                       install=not no_install, progress=not quiet, command=_command_line(),
                       init=init, init_sha256=init_sha256, tag=tag, workers=workers,
                       replace=replace, **setting)
    if not _is_main_rank():
        return
    click.echo(f"weights: {res.weights} ({res.iterations} steps, {res.wall_seconds:.0f} s)")
    if res.installed:
        click.echo(f"installed: {res.installed} (run it as {method}.{tag})")
    elif not no_install:
        click.echo(f"not installed: the {preset!r} preset never installs (use --weights "
                   f"{res.weights} to evaluate it)")


@cli.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(exists=True,
                                                                     file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["html", "md", "latex", "csv"]),
              default="html", show_default=True,
              help="html: the self-contained page; md, latex: one table per leaderboard "
              "(mean ± bootstrap half-width, Δ vs the reference); csv: the flat set-level table.")
@click.option("--baseline", default=None, metavar="NAME",
              help="Reference method of the Δ column, as tables name it (irn.cpu) or as the "
              "run did (irn); default: the best method of each table. md, latex, csv only.")
@click.option("--out", default=None, type=click.Path(dir_okay=False),
              help="Output file (html default: RUN_DIR/report.html, or merged-report.html for "
              "several; md, latex, csv default: print to stdout).")
@_user_errors
def report(run_dirs, fmt, baseline, out):
    """Re-render the report of one run folder, or merge several runs into one report.

    `--format md|latex|csv` exports the leaderboards for a README, a paper or a spreadsheet
    instead of the HTML page (LaTeX needs \\usepackage{booktabs}).
    """
    from irnbench.report import export_report, render_report

    dirs = [Path(d) for d in run_dirs]
    for d in dirs:
        if not (d / "results.json").exists():
            raise IrnbenchError(f"{d} is not an irnbench run folder (no results.json)")
    if fmt == "html" and baseline is not None:
        raise click.BadParameter("applies to --format md, latex and csv only",
                                 param_hint="--baseline")
    try:  # an unreadable results.json is one UnreadableRun line (irnbench.report.runs)
        if fmt != "html":
            text = export_report(dirs, fmt, out=out, baseline=baseline)
            click.echo(f"report: {out}" if out else text, nl=bool(out))
            return
        target = Path(out) if out else (dirs[0] / ("report.html" if len(dirs) == 1 else
                                                   "merged-report.html"))
        click.echo(f"report: {render_report(dirs, target)}")
    except OSError as exc:  # e.g. --out in a folder that cannot be written
        where = f"{exc.filename}: " if exc.filename else ""
        raise IrnbenchError(f"{where}{exc.strerror or exc}") from None


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@_user_errors
def plugins(as_json):
    """List loaded plugins, their versions, and what each registers."""
    from dataclasses import asdict

    from irnbench.plugins import plugin_infos

    infos = plugin_infos()
    if as_json:
        click.echo(json.dumps([asdict(i) for i in infos], indent=2))
        return
    for i in infos:
        kind = "core" if i.core else "plugin"
        click.echo(f"{i.name} {i.version or ''} ({kind}, {i.module})")
        for label, items in (("methods", i.methods), ("tasks", i.tasks),
                             ("datasets", i.datasets), ("commands", i.commands)):
            if items:
                click.echo(f"  {label}: {', '.join(items)}")


@cli.command()
@_user_errors
def tasks():
    """List the tasks, their settings and the methods that do each."""
    from irnbench.plugins import registered_tasks
    from irnbench.registry import list_methods

    for name, cls in sorted(registered_tasks().items()):
        click.echo(f"{name}: {cls.description}")
        click.echo(f"  settings: {', '.join(cls.setting_keys) or '-'}")
        click.echo(f"  methods: {', '.join(list_methods(name)) or '-'}")


@cli.command(name="new-plugin")
@click.argument("name")
@click.option("--out", "out_dir", default=".", show_default=True,
              type=click.Path(file_okay=False),
              help="Folder in which to create irnbench-NAME/.")
@_user_errors
def new_plugin(name, out_dir):
    """Create a method-plugin project, irnbench-NAME/, from irnbench's template.

    NAME is the method's name (lower-case letters, digits and '-'). The project holds a
    working method (bicubic with an unsharp mask), its entry point, a README and tests.
    """
    from irnbench.scaffold import write_plugin

    folder, files = write_plugin(name, out_dir)
    click.echo(f"created {folder}/")
    for rel in files:
        click.echo(f"  {rel}")
    click.echo(f"next: cd {folder} && pip install -e . && irnbench run --plugins "
               f"{name},bicubic && pytest")


@cli.command()
@click.argument("method")
@_user_errors
def presets(method):
    """List a method's training presets (for `irnbench train --preset`) and their settings,
    and the method's options (for `irnbench run --option KEY=VALUE`)."""
    from irnbench.options import format_options
    from irnbench.registry import get_method_class
    from irnbench.scaffold import describe_presets

    cls = get_method_class(method)
    for line in [*describe_presets(cls), *format_options(cls.Options, cls.name)]:
        click.echo(line)


cli.add_command(weights)
cli.add_command(datasets)
cli.add_command(leaderboard)


def _register_plugin_commands() -> None:
    from irnbench.plugins import load_plugins

    load_plugins().hook.irnbench_register_commands(cli=cli)


_register_plugin_commands()


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="irnbench")


if __name__ == "__main__":
    main()
