"""The method contract: every registered method, on every task setting it declares
(``Method.settings``), meets the same checks, so a method added later (built in, installed, or
made by ``irnbench new-plugin``) is covered without new test code.

Per case (method × task × setting), built with ``pretrained=False`` and the method's ``smoke``
preset options when it has them (its small wiring-check configuration):

* ``create_method`` builds it in eval mode for that setting;
* ``degrade`` is deterministic, batch-independent, finite, of the input's dtype and leaves its
  input alone; what comes through the harness's channel is k/255 in [0, 1]; ``restore`` of it
  has the HR's shape and dtype, is finite and leaves its input alone (and, for a method that
  needs no weights, restores the image);
* a stochastic method restores the same image from the same seeded generator and another from
  another seed; any other method restores deterministically;
* the evaluator (``irnbench.evaluate``) scores it on one tiny image: every row ok, every metric
  of the task filled;
* its options round-trip: the declared defaults written as command-line strings parse back to
  the same typed values, and ``m.options`` (as given) parses back to ``m.opts``;
* a trainable method has the ``cpu`` preset ``irnbench train`` names, and one training step's
  loss is finite and reaches its parameters;
* shipped weights of the setting load, match their sidecar's sha256 and restore the tiny image.

Per method: paper-reported rows resolve to registered datasets and to settings the method runs;
the model card (``ModelCard``) is what the module docstring, ``description``, ``paper`` and the
weights records say; every weights key (shipped or published) is a setting it runs. Across
methods: methods with one ``degrade_key`` degrade alike, built-in entry points register them
all, the published reports record the cards' citations, and docs/weights.md agrees with the
cards and papers.py.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

import irnbench
from irnbench.data.loading import resolve_dataset
from irnbench.evaluate import evaluate
from irnbench.methods import Method, ModelCard
from irnbench.metrics import psnr
from irnbench.ops.quantize import to_uint8
from irnbench.options import describe_options
from irnbench.papers import IRN_TABLE1_ROWS, SAIN_README_ROWS
from irnbench.plugins import registered_datasets
from irnbench.registry import create_task, get_method_class
from irnbench.results import METRIC_COLUMNS
from irnbench.tasks.base import Task
from irnbench.weights import SHIPPED_TAG, read_sidecar, sha256_file

ROOT = Path(__file__).resolve().parents[1]
#: Y-PSNR (dB) a method must beat restoring the tiny image with the weights it ships, or with
#: none when it needs none (an untrained network is only checked for shape, dtype, finiteness).
MIN_RESTORED_PSNR = 15.0


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One intra-op thread: tiny images gain nothing from more, and on a busy 2-core machine
    two spin-waiting threads per process make a small IRN pass many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    built.cache_clear()


# -- the cases --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    """One method on one task setting."""

    method: str
    task: str
    setting: tuple[tuple[str, Any], ...]  #: the setting's items (hashable)

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.setting)

    def task_obj(self) -> Task:
        return create_task(self.task, **self.kwargs)

    @property
    def id(self) -> str:
        return f"{self.method}-{self.task_obj().key}"


def contract_cases(names: Iterable[str] | None = None) -> list[Case]:
    """Every (method, task, setting) the named methods (default: all registered) declare."""
    out = []
    for name in names if names is not None else irnbench.list_methods():
        cls = get_method_class(name)
        for task in cls.tasks:
            out += [Case(name, task, tuple(sorted(s.items()))) for s in cls.settings(task)]
    return out


def contract_options(cls: type[Method], task: Task) -> dict[str, Any]:
    """The options a case builds the method with: its ``smoke`` preset's (its small
    wiring-check configuration), or none."""
    smoke = cls.presets_for(task).get("smoke")
    return dict(smoke.options) if smoke is not None else {}


def tiny_image(task: Task, seed: int = 0) -> torch.Tensor:
    """A smooth, lightly noisy 1×3×H×W image in k/255, H ≠ W, the smallest the task scores (a
    multiple of twice its scale, at least 16)."""
    step = 2 * int(task.setting.get("scale", 1))
    h = step * math.ceil(max(task.min_size(), 16) / step)
    w = h + step
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    base = torch.stack([0.2 + 0.6 * xx, 0.8 - 0.6 * yy, 0.3 + 0.3 * (xx + yy) / 2])
    noise = torch.rand(3, h, w, generator=torch.Generator().manual_seed(seed)) * 0.08
    return task.prepare(torch.round((base + noise).clamp(0, 1)[None] * 255) / 255)


def draw_kwargs(method: Method, seed: int) -> dict[str, Any]:
    """What the evaluator passes a stochastic method's ``restore`` for one draw."""
    if not method.stochastic:
        return {}
    return {"temperature": 1.0, "generator": torch.Generator().manual_seed(seed)}


@functools.cache
def built(case: Case) -> Method:
    """The case's method, built once per session (checks only read it)."""
    cls = get_method_class(case.method)
    task = case.task_obj()
    torch.manual_seed(0)
    return irnbench.create_method(case.method, task=case.task, pretrained=False, **case.kwargs,
                                  **contract_options(cls, task))


def _restore_once(m: Method, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    task = m.task
    with torch.no_grad():
        tr = task.transmit(m.degrade(x), **task.conditions_for(m)[0])
        return m.restore(tr.y, **tr.info, **draw_kwargs(m, seed))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """Y-PSNR of two images in [0, 1] after the protocol's uint8 rounding, no crop."""
    return float(psnr(to_uint8(a), to_uint8(b), 0, y_channel=True)[0])


# -- per-case checks ---------------------------------------------------------------------------
def check_create(case: Case) -> Method:
    """``create_method(..., pretrained=False)`` builds the method, in eval mode, for the case."""
    cls = get_method_class(case.method)
    task = case.task_obj()
    assert cls.supports(task), f"{case.id}: declared by settings() but not supports()"
    m = built(case)
    assert isinstance(m, cls) and isinstance(m, Method) and m.name == case.method
    assert not m.training, f"{case.id}: create_method must return the method in eval mode"
    assert m.task.key == task.key and m.spec == case.method
    assert m.weights_label in ("untrained", "none needed")
    return m


def check_degrade_restore(m: Method) -> None:
    """Shapes, dtype and range through the harness's channel, on one tiny image."""
    task, label = m.task, f"{m.name} on {m.task!r}"
    x = tiny_image(task)
    x_before = x.clone()
    with torch.no_grad():
        y = m.degrade(x)
        assert torch.equal(x, x_before), f"{label}: degrade changed its input"
        assert isinstance(y, torch.Tensor) and y.dim() == 4 and y.shape[0] == 1, label
        assert y.dtype == x.dtype and torch.isfinite(y).all(), f"{label}: degrade output"
        assert torch.equal(m.degrade(x), y), f"{label}: degrade is not deterministic"
        pair = m.degrade(torch.cat([x, tiny_image(task, seed=1)]))
        torch.testing.assert_close(pair[:1], y, rtol=0, atol=1e-5,
                                   msg=f"{label}: degrade mixes the images of a batch")
        for cond in task.conditions_for(m)[:2]:
            tr = task.transmit(y, **cond)
            sent = task.channel(y, **cond)
            assert torch.equal(sent, tr.y), f"{label}: channel() and transmit() differ"
            levels = sent * 255
            assert sent.min() >= 0 and sent.max() <= 1, f"{label}: channel output range"
            assert (levels - levels.round()).abs().max() < 1e-4, f"{label}: not k/255"
            sent_before = tr.y.clone()
            out = m.restore(tr.y, **tr.info, **draw_kwargs(m, 0))
            assert torch.equal(tr.y, sent_before), f"{label}: restore changed its input"
            assert isinstance(out, torch.Tensor) and out.shape == x.shape, \
                f"{label}: restore gave {tuple(out.shape)} for an HR of {tuple(x.shape)}"
            assert out.dtype == x.dtype and torch.isfinite(out).all(), f"{label}: restore output"
            if not m.needs_weights():  # nothing to train: it must restore already
                assert _psnr(out, x) > MIN_RESTORED_PSNR, f"{label}: restores no image"


def check_draws(m: Method) -> None:
    """Stochastic: the same seed, the same restoration; another seed, another. Otherwise:
    ``restore`` is deterministic."""
    task, label = m.task, f"{m.name} on {m.task!r}"
    x = tiny_image(task)
    with torch.no_grad():
        tr = task.transmit(m.degrade(x), **task.conditions_for(m)[0])
        a = m.restore(tr.y, **tr.info, **draw_kwargs(m, 0))
        b = m.restore(tr.y, **tr.info, **draw_kwargs(m, 0))
        assert torch.equal(a, b), f"{label}: the same draw restores differently"
        if m.stochastic:
            c = m.restore(tr.y, **tr.info, **draw_kwargs(m, 1))
            assert not torch.equal(a, c), f"{label}: another seed restores the same image"


def check_evaluator(m: Method, folder: Path) -> None:
    """``irnbench.evaluate`` scores the method on one tiny image (at the task's first two JPEG
    qualities, when it has several): every row ok, every metric of the task filled, one row per
    channel condition and draw."""
    task = m.task
    if len(task.setting.get("jpeg", ())) > 2:
        task = type(task)(**{**task.setting, "jpeg": task.setting["jpeg"][:2]})
    x = tiny_image(task)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(x)[0].permute(1, 2, 0).numpy()).save(folder / "tiny.png")
    draws = 2
    res = evaluate([m], task, [resolve_dataset(str(folder))], device="cpu", draws=draws,
                   visual_images=0, progress=False)
    df = res.df
    assert (df["status"] == "ok").all(), df.get("error")
    per_condition = draws if m.stochastic else 1
    assert len(df) == len(task.conditions_for(m)) * per_condition
    for col in task.metrics:
        assert df[col].notna().all(), f"{m.name} on {task!r}: no {col}"


def check_training(case: Case) -> None:
    """A trainable method, on a setting it trains (its weights task), gives a finite ``total``
    loss on a tiny batch whose gradient reaches its parameters; the ``cpu`` preset that
    ``irnbench train`` and the missing-weights message name exists."""
    cls = get_method_class(case.method)
    task = case.task_obj()
    if not cls.trainable() or cls.weights_task(task).key != task.key:
        return
    assert "cpu" in cls.presets_for(task), f"{case.id}: no cpu preset (train_command names it)"
    m = built(case)
    hr = torch.cat([tiny_image(task), tiny_image(task, seed=1)])
    try:
        m.train()
        losses = m.training_loss({"hr": hr, "lr_ref": task.reference(hr),
                                  "generator": torch.Generator().manual_seed(0)}, task)
        assert torch.isfinite(losses["total"]), f"{case.id}: loss {losses}"
        losses["total"].backward()
        grads = [p.grad for p in m.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), f"{case.id}: no gradient"
    finally:
        m.zero_grad(set_to_none=True)
        m.eval()


def _as_cli(value: Any) -> str:
    """An option value as ``--option KEY=VALUE`` writes it."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def check_options(m: Method) -> None:
    """The declared defaults, written as command-line strings, parse back to themselves; the
    options the method was given parse back to its ``opts``; every option has a help text."""
    cls = type(m)
    defaults = cls.Options()
    fields = [f.name for f in dataclasses.fields(cls.Options)]
    assert tuple(fields) == cls.option_names
    opts, given = cls.parse_options({k: _as_cli(getattr(defaults, k)) for k in fields})
    assert opts == defaults and given == {k: getattr(defaults, k) for k in fields}
    assert all(o.help for o in describe_options(cls.Options)), f"{cls.name}: an option lacks help"
    assert set(m.options) <= set(fields)
    assert cls.parse_options(m.options)[0] == m.opts
    assert cls.parse_options({k: _as_cli(v) for k, v in m.options.items()})[0] == m.opts
    assert all(getattr(m.opts, k) == v for k, v in m.options.items())


def check_shipped_weights(case: Case) -> bool:
    """The shipped weights of the case's setting (if any) match their sidecar's sha256, load
    strictly and restore the tiny image. Returns whether there were any."""
    cls = get_method_class(case.method)
    key = cls.weights_task(case.task_obj()).key
    cfg = cls.pretrained_cfgs.get(key)
    if cfg is None:
        return False
    path = cls.package_dir() / cfg.file
    assert path.is_file(), f"{case.method}: {cfg.file} is not shipped"
    side = read_sidecar(path)
    assert side.get("sha256") == cfg.sha256 == sha256_file(path), f"{path}: sha256"
    assert side.get("method") == cls.name and side.get("task_key") == key
    m = irnbench.create_method(case.method, task=case.task, tag=SHIPPED_TAG, **case.kwargs)
    assert m.weights_sha256 == cfg.sha256 and m.weights_label == cfg.label
    x = tiny_image(m.task)
    out = _restore_once(m, x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert _psnr(out, x) > MIN_RESTORED_PSNR, f"{case.id}: the shipped weights restore no image"
    return True


# -- per-method checks -------------------------------------------------------------------------
def _setting_labels(cls: type[Method], task: str) -> set[str]:
    return {create_task(task, **s).setting_label for s in cls.settings(task)}


def check_paper_rows(cls: type[Method]) -> None:
    """Paper-reported rows: registered datasets, tasks and settings the method runs, known
    metric columns with finite values, a source, and no row twice."""
    if cls.paper is None:
        return
    datasets = registered_datasets()
    seen = set()
    for r in cls.paper.results:
        where = f"{cls.name} paper row {r.label!r} {r.task} {r.setting} {r.dataset}"
        assert r.dataset in datasets, f"{where}: unknown dataset"
        assert r.task in cls.tasks, f"{where}: a task the method does not do"
        assert r.setting in _setting_labels(cls, r.task), f"{where}: a setting it does not run"
        assert r.metrics and set(r.metrics) <= set(METRIC_COLUMNS), f"{where}: {set(r.metrics)}"
        assert all(math.isfinite(v) for v in r.metrics.values()), where
        assert r.source and r.label, where
        assert r.quality is None or 1 <= r.quality <= 100, where
        key = (r.label, r.task, r.setting, r.dataset, r.quality, r.source)
        assert key not in seen, f"{where}: twice"
        seen.add(key)


def check_card(cls: type[Method]) -> None:
    """The model card is what the module docstring, ``description``, ``paper``, the shipped
    weights' and the published checkpoints' records say (skipped for a method without one)."""
    card = cls.card
    if card is None:
        return
    assert isinstance(card, ModelCard), f"{cls.name}.card is not a ModelCard"
    assert cls.description == card.summary
    assert (cls.paper.citation if cls.paper else "") == card.citation
    assert cls.paper is None or cls.paper.url == card.url
    doc = sys.modules[cls.__module__].__doc__ or ""
    assert card.docstring() in doc, f"{cls.__module__}: set __doc__ = CARD.docstring()"
    assert card.what and card.departures and card.weights
    assert not card.code or re.fullmatch(r"[\w.-]+\.\w+/[\w.-]+/[\w.-]+", card.code), card.code
    for cfg in cls.pretrained_cfgs.values():
        assert cfg.paper == card.citation, f"{cls.name} {cfg.task_key}: shipped_cfgs(paper=...)"
    for key, ckpt in cls.official_weights.items():
        assert ckpt.repository == card.code and ckpt.licence == card.licence, f"{cls.name} {key}"
        assert ckpt.paper in (card.citation, *card.also), f"{cls.name} {key}: {ckpt.paper!r}"


def check_weights_keys(cls: type[Method]) -> None:
    """Every shipped and published weights key is the weights key of a setting it runs, and a
    method with parameters to learn can get them (it trains, ships or imports weights)."""
    keys = {cls.weights_task(create_task(t, **s)).key for t in cls.tasks for s in cls.settings(t)}
    needs = any(built(c).needs_weights() for c in contract_cases([cls.name]))
    assert not needs or cls.trainable() or cls.pretrained_cfgs or cls.official_weights, \
        f"{cls.name} has parameters to learn and no way to get them"
    for key, cfg in cls.pretrained_cfgs.items():
        assert key == cfg.task_key and key in keys, f"{cls.name}: shipped {key} runs nowhere"
    for key, ckpt in cls.official_weights.items():
        task = create_task(ckpt.task, **ckpt.setting)
        assert key == task.key and key in keys, f"{cls.name}: published {key} runs nowhere"


def run_contract(names: Iterable[str], tmp_path: Path) -> None:
    """Every check above, on every case of the named methods (for methods added at run time)."""
    names = list(names)
    for case in contract_cases(names):
        m = check_create(case)
        check_degrade_restore(m)
        check_draws(m)
        check_evaluator(m, tmp_path / case.id)
        check_options(m)
        check_training(case)
        check_shipped_weights(case)
    for name in names:
        cls = get_method_class(name)
        check_paper_rows(cls)
        check_card(cls)
        check_weights_keys(cls)


# -- the built-in and installed methods --------------------------------------------------------
CASES = contract_cases()
SHIPPED = [c for c in CASES if get_method_class(c.method).weights_task(c.task_obj()).key
           in get_method_class(c.method).pretrained_cfgs]
METHODS = irnbench.list_methods()


def test_every_method_declares_a_setting():
    assert {c.method for c in CASES} == set(METHODS)


def test_every_builtin_plugin_registers_through_its_entry_point():
    """Each built-in entry point's module registers at least one method, and every built-in
    method comes from the module of one (so the contract above sees them all)."""
    from importlib.metadata import entry_points

    modules = [ep.value for ep in entry_points(group="irnbench")
               if ep.value.startswith("irnbench_plugins.")]
    assert modules
    builtin = {name: get_method_class(name).__module__ for name in METHODS}
    for module in modules:
        assert any(m == module or m.startswith(module + ".") for m in builtin.values()), module
    for name, module in builtin.items():
        if module.startswith("irnbench_plugins."):
            assert any(module == m or module.startswith(m + ".") for m in modules), name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_creates(case):
    check_create(case)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_degrade_and_restore_through_the_channel(case):
    check_degrade_restore(check_create(case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_draws(case):
    check_draws(check_create(case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_evaluator_path(case, tmp_path):
    check_evaluator(check_create(case), tmp_path / "imgs")


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_options_round_trip(case):
    check_options(check_create(case))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_training_step(case):
    check_training(case)


def test_shared_degrade_keys_degrade_alike():
    """Methods whose ``degrade_key`` is equal give the same degraded image (the evaluator runs
    ``degrade`` once for all of them)."""
    groups: dict[tuple[str, str], list[Method]] = {}
    for case in CASES:
        m = built(case)
        key = m.degrade_key()
        if key is not None:
            groups.setdefault((m.task.key, key), []).append(m)
    assert any(len(ms) > 1 for ms in groups.values())  # irn and irn-crm share their IRN's
    for ms in groups.values():
        x = tiny_image(ms[0].task)
        with torch.no_grad():
            first = ms[0].degrade(x)
            for m in ms[1:]:
                assert torch.equal(m.degrade(x), first), f"{m.name} vs {ms[0].name}"


@pytest.mark.parametrize("case", SHIPPED, ids=lambda c: c.id)
def test_shipped_weights(case):
    assert check_shipped_weights(case)


@pytest.mark.parametrize("name", METHODS)
def test_paper_rows(name):
    check_paper_rows(get_method_class(name))


@pytest.mark.parametrize("name", METHODS)
def test_model_card(name):
    cls = get_method_class(name)
    if cls.__module__.startswith("irnbench_plugins."):
        assert isinstance(cls.card, ModelCard), f"built-in {name} has no model card"
    check_card(cls)


@pytest.mark.parametrize("name", METHODS)
def test_weights_keys(name):
    check_weights_keys(get_method_class(name))


# -- one source per fact -------------------------------------------------------------------------
def _published_methods_info() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for path in sorted((ROOT / "reports").glob("*/*.json")):
        data = json.loads(path.read_text())
        meta = data.get("meta", data) if path.name == "results.json" else data
        for spec, info in (meta.get("methods_info") or {}).items():
            out.append((path.relative_to(ROOT).as_posix(), spec, info))
    return out


def test_published_reports_record_the_cards_citation():
    """Each published report records, per method, the card's citation and summary."""
    infos = _published_methods_info()
    assert infos
    for where, spec, info in infos:
        card = get_method_class(spec).card
        assert info["citation"] == card.citation, f"{where}: {spec}"
        assert info["description"] == card.summary, f"{where}: {spec}"


def _weights_md_sections(name: str) -> str:
    """The text of docs/weights.md's sections whose heading names a weight set of ``name``."""
    text = (ROOT / "docs" / "weights.md").read_text(encoding="utf-8")
    parts = re.split(r"(?m)^(?=#{2,3} )", text)
    return "\n".join(p for p in parts if p.startswith("### ") and f"`{name}." in p.splitlines()[0])


def test_docs_weights_md_names_every_methods_card():
    """docs/weights.md: each method with published weights has a section naming its card's
    paper, code, licence and every released file; each with shipped weights is in the table."""
    text = (ROOT / "docs" / "weights.md").read_text(encoding="utf-8")
    for name in METHODS:
        cls = get_method_class(name)
        card = cls.card
        if cls.pretrained_cfgs:
            assert f"`{name}.cpu`" in text, f"docs/weights.md: {name}'s shipped weights"
        if not cls.official_weights:
            continue
        section = _weights_md_sections(name)
        assert section, f"docs/weights.md has no section for {name}.official"
        assert card.url in section, f"docs/weights.md {name}: the paper ({card.url})"
        repo = card.code.removeprefix("github.com/")
        assert repo in section, f"docs/weights.md {name}: the code ({repo})"
        for licence in re.findall(r"(?:Apache|GPL|MIT|BSD)[\w.-]*", card.licence):
            assert licence in section, f"docs/weights.md {name}: the licence ({licence})"
        for ckpt in cls.official_weights.values():
            for f in (*ckpt.files, *ckpt.variants.values()):
                assert Path(f.name).name in section, f"docs/weights.md {name}: {f.name}"


def test_docs_quote_papers_tables():
    """The rows of IRN's Table 1 and of SAIN's README table that docs/weights.md quotes are
    papers.py's (one transcription)."""
    text = (ROOT / "docs" / "weights.md").read_text(encoding="utf-8")
    cols = ("set5", "set14", "b100", "urban100", "div2k-val")
    found = 0
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 7 or cells[0] not in IRN_TABLE1_ROWS or not cells[1].startswith("x"):
            continue
        scale = int(cells[1][1:])
        for ds, cell in zip(cols, cells[2:], strict=True):
            quoted = tuple(float(v) for v in cell.split("/"))
            assert quoted == IRN_TABLE1_ROWS[cells[0]][(scale, ds)], f"{cells[0]} x{scale} {ds}"
            found += 1
    assert found == 30
    sain = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in _weights_md_sections("sain").splitlines()
            if re.match(r"\s*\| x\d \|", line)]
    assert {int(c[0][1:]): [tuple(float(v) for v in x.split("/")) for x in c[1:]]
            for c in sain} == SAIN_README_ROWS["SAIN"]


# -- a method added later -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_scaffolded_plugin_meets_the_contract(tmp_path, monkeypatch, register_plugin):
    """``irnbench new-plugin``'s project, registered as its entry point would, passes every
    check with no test code of its own."""
    from irnbench.scaffold import write_plugin

    folder, _ = write_plugin("contract-demo", tmp_path)
    monkeypatch.syspath_prepend(str(folder))
    module = importlib.import_module("irnbench_contract_demo")
    try:
        register_plugin(module, "contract-demo")
        assert "contract-demo" in irnbench.list_methods()
        assert contract_cases(["contract-demo"])
        run_contract(["contract-demo"], tmp_path / "runs")
    finally:
        sys.modules.pop("irnbench_contract_demo", None)


def test_the_contract_catches_a_broken_method(register_plugin, tmp_path):
    """A method whose restore returns the LR's size, and one whose degrade mixes the batch, fail
    the checks that name them."""
    from conftest import make_plugin

    bicubic = get_method_class("bicubic")

    class NoUpscale(bicubic):
        name = "test-no-upscale"
        card = None

        def restore(self, y, **info):
            return y

    class Mixer(bicubic):
        name = "test-mixer"
        card = None

        def degrade(self, x):
            return super().degrade(x).mean(0, keepdim=True).expand(x.shape[0], -1, -1, -1)

    register_plugin(make_plugin(irnbench_register_methods=lambda register: (
        register(NoUpscale), register(Mixer))), "test-broken")
    (case,) = [c for c in contract_cases(["test-no-upscale"]) if c.kwargs == {"scale": 2}
               and c.task == "rescale"]
    with pytest.raises(AssertionError, match="restore gave"):
        check_degrade_restore(check_create(case))
    (case,) = [c for c in contract_cases(["test-mixer"]) if c.kwargs == {"scale": 2}
               and c.task == "rescale"]
    with pytest.raises(AssertionError, match="mixes the images"):
        check_degrade_restore(check_create(case))
