"""The method interface every plugin implements, and the metadata it carries.

A method turns an image into a degraded one (``degrade``) and restores it from what came
through the harness's channel (``restore``). Paper-reported numbers travel with the method
(``paper``) in the flat results schema, never in the measured table; what the method is, where
it departs from the official code, its weights and its citation travel as its ``card``.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from irnbench import options as _options
from irnbench.tasks.base import Task
from irnbench.weights.cards import OfficialCheckpoint, PretrainedCfg

if TYPE_CHECKING:  # presets are training records: the interface names them, never imports them
    from irnbench.training.presets import Preset

__all__ = ["Method", "ModelCard", "Paper", "PaperResult", "module_fingerprint"]


@dataclass(frozen=True)
class PaperResult:
    """One published number set, in the same flat schema as measured rows."""

    label: str  #: the row's name in its source, e.g. "Bicubic & Bicubic"
    task: str
    setting: str  #: the task's ``setting_label``, e.g. "x2"
    dataset: str  #: irnbench dataset name, e.g. "set5"
    metrics: dict[str, float]  #: e.g. {"psnr_y": 33.66, "ssim_y": 0.9299}
    source: str  #: e.g. "IRN (ECCV 2020) Table 1"
    protocol: str = ""  #: set when it differs from irnbench's or is unconfirmed
    quality: int | None = None  #: JPEG quality of the channel, when there is one


@dataclass(frozen=True)
class Paper:
    """Citation and paper-reported results of a method."""

    citation: str
    url: str = ""
    results: tuple[PaperResult, ...] = ()


@dataclass(frozen=True)
class ModelCard:
    """A method's model card: the one place for what it is, where irnbench departs from the
    official code, its weights and its citation.

    The method module sets ``__doc__ = CARD.docstring()`` (so ``help()`` shows the card; a
    module of several methods joins their cards), the class sets ``card = CARD``,
    ``description = CARD.summary`` and ``paper = CARD.paper(...)``, and its published-checkpoint
    records take ``code``, ``licence`` and the citation from it.
    Text fields may be indented triple-quoted strings (``inspect.cleandoc`` is applied).
    """

    summary: str  #: one line, the method's ``description`` (reports record it)
    what: str  #: what the method is and what it was written from
    departures: str  #: where irnbench departs from the official code or paper, and why
    weights: str  #: its weights: shipped, importable (the authors' release), or none needed
    citation: str  #: the method's paper, as reports record it ("" for irnbench's own baselines)
    url: str = ""  #: the paper (arXiv or project page)
    code: str = ""  #: the official repository, e.g. ``github.com/sunwj/CAR`` ("" if none)
    licence: str = ""  #: the official code's licence and the released weights' terms
    #: Other publications some of its settings or released weights come from (full citations).
    also: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for f in ("summary", "what", "departures", "weights"):
            object.__setattr__(self, f, inspect.cleandoc(getattr(self, f)))
        if "\n" in self.summary:
            raise ValueError("ModelCard.summary is one line")

    def paper(self, *results: PaperResult) -> Paper:
        """The method's ``Paper``: the card's citation and url, with paper-reported ``results``."""
        return Paper(citation=self.citation, url=self.url, results=tuple(results))

    def docstring(self) -> str:
        """The card as a module docstring: summary, what, departures, weights, citation."""
        cite = [self.citation + (f" ({self.url})" if self.url else "")] if self.citation else []
        cite += [f"Also: {c}" for c in self.also]
        if self.code:
            cite.append(f"Official code: https://{self.code}" if "://" not in self.code
                        else f"Official code: {self.code}")
        if self.licence:
            cite.append(f"Licence: {self.licence}")
        sections = [("Departures from the official code", self.departures),
                    ("Weights", self.weights), ("Citation", "\n".join(cite))]
        parts = [self.summary, self.what]
        parts += [f"{title}\n{'-' * len(title)}\n{body}" for title, body in sections if body]
        return "\n\n".join(p for p in parts if p) + "\n"


class Method(nn.Module):
    """Base class of methods (subclasses are ``torch.nn.Module``\\ s).

    Subclasses set ``name`` and ``tasks`` and implement ``degrade`` / ``restore``. A stochastic
    method's ``restore`` takes ``temperature=`` and ``generator=``. Trainable methods add
    ``training_loss(batch, task)`` and ``presets``, and send their degraded output through
    ``task.channel(y, train=True)``.
    """

    name: ClassVar[str]
    tasks: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    stochastic: ClassVar[bool] = False
    paper: ClassVar[Paper | None] = None
    #: The method's model card (``ModelCard``): built-in methods all have one.
    card: ClassVar[ModelCard | None] = None
    presets: ClassVar[dict[str, Preset]] = {}  #: ``irnbench.training.presets.Preset`` by name
    #: Set by a method irnbench runs but does not train (e.g. from the authors' weights only):
    #: ``irnbench train`` refuses it with this text, which says where to train it instead.
    training_note: ClassVar[str] = ""
    pretrained_cfgs: ClassVar[dict[str, PretrainedCfg]] = {}
    #: The authors' published checkpoints this method imports (``irnbench weights import``),
    #: keyed by the task key of the weights they hold (e.g. ``rescale-x4``).
    official_weights: ClassVar[dict[str, OfficialCheckpoint]] = {}
    #: The method's typed constructor options: a frozen dataclass subclassing
    #: ``irnbench.options.Options`` whose fields carry a type, a default and a help text
    #: (``irnbench.options.option``). The base class has no fields: no options accepted.
    Options: ClassVar[type[_options.Options]] = _options.Options
    #: The names of ``Options``' fields (derived; declare ``Options`` instead).
    option_names: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Check the ``Options`` class and the presets' options when the class is defined."""
        super().__init_subclass__(**kwargs)
        if "option_names" in cls.__dict__:
            raise TypeError(f"{cls.__qualname__}: option_names is replaced by a nested frozen "
                            "dataclass Options (see irnbench.options)")
        if not (isinstance(cls.Options, type) and issubclass(cls.Options, _options.Options)
                and dataclasses.is_dataclass(cls.Options)
                and cls.Options.__dataclass_params__.frozen):
            raise TypeError(f"{cls.__qualname__}.Options must be a frozen dataclass "
                            "subclassing irnbench.options.Options")
        cls.option_names = tuple(f.name for f in dataclasses.fields(cls.Options))
        cls._check_declared_options()

    @classmethod
    def _check_declared_options(cls) -> None:
        """The ``options`` of the presets and published checkpoints the class declares (in any
        dict attribute: ``presets`` and per-task preset tables alike) pass ``parse_options``,
        so a misspelt or mistyped preset option fails when the plugin loads, not mid-training."""
        label = getattr(cls, "name", cls.__name__)
        for attr in vars(cls).values():
            for item in attr.values() if isinstance(attr, dict) else ():
                if isinstance(item, OfficialCheckpoint):
                    cls.parse_options(item.options, f"official checkpoint of {label!r}")
                elif dataclasses.is_dataclass(item) and isinstance(getattr(item, "options", None),
                                                                   dict):  # a Preset
                    cls.parse_options(item.options, f"preset {item.name!r} of {label!r}")

    @classmethod
    def parse_options(cls, values: dict[str, Any], owner: str | None = None
                      ) -> tuple[_options.Options, dict[str, Any]]:
        """Validate and convert ``values`` (Python values or CLI strings) into ``Options``
        (``InvalidSetting`` on an unknown name or a bad value); also the given ones, converted."""
        owner = owner or f"method {getattr(cls, 'name', cls.__name__)!r}"
        return _options.parse_options(cls.Options, values, owner)

    def __init__(self, task: Task, **options: Any):
        opts, given = self.parse_options(options)
        super().__init__()
        self.task = task
        #: The typed options (``self.opts.tile``…): every field, defaults filled in.
        self.opts = opts
        #: The options as given, converted to their types (what results and sidecars record).
        self.options: dict[str, Any] = given
        self._weights_label: str | None = None
        self.weights_source: str | None = None
        #: The name as the user gave it, ``NAME`` or ``NAME.TAG`` (``create_method`` sets it).
        self.spec: str = self.name
        self.weights_tag: str = ""  #: the tag of the loaded weights (``cpu``, ``official``…)
        self.weights_sha256: str = ""  #: sha256 of the loaded weights file
        self.weights_path: Path | None = None  #: the loaded weights file

    @property
    def weights_label(self) -> str:
        """How the weights in use are labelled in every table ("irnbench cpu preset, …")."""
        if self._weights_label is not None:
            return self._weights_label
        return "untrained" if self.needs_weights() else "none needed"

    @weights_label.setter
    def weights_label(self, value: str) -> None:
        self._weights_label = value

    # -- capability --------------------------------------------------------------------------
    @classmethod
    def supports(cls, task: Task) -> bool:
        """Whether the method can run this task setting (override for scale limits)."""
        return task.name in cls.tasks

    @classmethod
    def settings(cls, task: str) -> list[dict[str, Any]]:
        """The settings of task ``task`` this method runs (what the method contract tests).

        Default: the task's default settings and, for a task with a ``scale``, every scale
        irnbench supports, each kept where ``supports`` accepts it. Override to declare others.
        """
        from irnbench.errors import InvalidSetting
        from irnbench.plugins import registered_tasks
        from irnbench.tasks.rescale import SUPPORTED_SCALES

        task_cls = registered_tasks()[task]
        candidates = list(task_cls.default_settings())
        if "scale" in task_cls.setting_keys:
            candidates += [{"scale": s} for s in SUPPORTED_SCALES]
        out: dict[str, dict[str, Any]] = {}
        for setting in candidates:
            try:
                t = task_cls(**setting)
            except InvalidSetting:
                continue
            if t.key not in out and cls.supports(t):
                out[t.key] = dict(setting)
        return sorted(out.values(), key=lambda s: sorted(s.items()))

    @classmethod
    def weights_task(cls, task: Task) -> Task:
        """The task setting whose weights this method uses on ``task`` (default: ``task``).

        E.g. IRN on ``compress`` ×2 runs its ``rescale`` ×2 weights: lookup, the ``irnbench
        train`` command and training all follow this mapping.
        """
        return task

    @classmethod
    def official_for(cls, task: Task) -> OfficialCheckpoint | None:
        """The published checkpoint for this task setting's weights, if the authors released one."""
        return cls.official_weights.get(cls.weights_task(task).key)

    @classmethod
    def presets_for(cls, task: Task) -> dict[str, Preset]:
        """The training presets for one task setting (default: ``presets``).

        A method that does several tasks overrides this when a task needs its own budget (e.g.
        TAR's decolorization runs at full resolution, so its ``cpu`` preset uses smaller crops).
        """
        return cls.presets

    @classmethod
    def package_dir(cls) -> Path:
        """The folder of the module that defines the method (for shipped weights)."""
        import sys

        return Path(sys.modules[cls.__module__].__file__).resolve().parent

    def needs_weights(self) -> bool:
        """True when the method has trainable parameters (so ``pretrained`` must load them)."""
        return any(p.requires_grad for p in self.parameters())

    def num_parameters(self, trainable_only: bool = True) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    # -- the two halves ----------------------------------------------------------------------
    def degrade(self, x: torch.Tensor) -> torch.Tensor:
        """HR ``B×C×H×W`` in [0, 1] → degraded float image (before the channel)."""
        raise NotImplementedError

    def degrade_key(self) -> str | None:
        """An identity of this method's ``degrade``, or ``None`` (the default: never shared).

        Methods that return the same key give the same degraded image for the same input, so
        the harness runs ``degrade`` once per image for all of them (e.g. ``irn`` and
        ``irn-crm``, whose forward pass is the same IRN); each row is still charged its seconds.
        """
        return None

    def restore(self, y: torch.Tensor, **channel_info: Any) -> torch.Tensor:
        """What came through the channel (float k/255) → restored image."""
        raise NotImplementedError

    def training_inputs(self) -> dict[str, Any]:
        """Weights a training run depends on besides ``--init`` (e.g. the frozen network a
        module trains on), recorded in the run's sidecar under ``inputs`` so that a rebuild can
        check it starts from the same ones. Default: none."""
        return {}

    def training_loss(self, batch: dict[str, torch.Tensor], task: Task) -> dict[str, torch.Tensor]:
        """Loss terms of one batch; key ``total`` is optimised."""
        raise NotImplementedError(f"method {self.name!r} is not trainable")

    @classmethod
    def trainable(cls) -> bool:
        return cls.training_loss is not Method.training_loss


def module_fingerprint(module: nn.Module) -> str:
    """sha256 of a module's state (names, dtypes, shapes and values): equal states, equal hash."""
    import hashlib

    h = hashlib.sha256()
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()
