"""SAIN, T-IRN and T-SAIN networks against outputs of the authors' own code.

``fixtures/family_formats.json`` lists the tensor names and shapes of the seven released
checkpoints (from the official network definitions; no values). ``fixtures/family_refs/`` holds,
per file, the outputs of the official networks (CPU, float32, eval) for weights that anyone can
rebuild from that list: key ``i`` (in order) is drawn from ``torch.Generator().manual_seed(i)``,
``0.02·randn`` for every tensor except the Haar constants (kept) and SAIN's ``gmm.gmm_para``
(``[randn(K), 0.5·randn(K), 0.5·randn(K)]``). Each ref holds ``x`` (1×3×40×56), ``lr`` (the
transmitted LR before quantisation), ``y`` (its 8-bit quantisation), ``z`` (an injected latent),
``hr`` = inverse of [y | z] and ``hr_z0`` = inverse of [y | 0].
"""

from __future__ import annotations

import pytest
import torch
import torch.distributions as D
import torch.nn.functional as F
from helpers import FAMILY_FILES as FILES
from helpers import FAMILY_FORMATS as FORMATS
from helpers import T_FILES
from helpers import family_reference as reference
from helpers import family_state as released_state

import irnbench_plugins.tinvblocks.model as tmodel
from irnbench.errors import CheckpointError
from irnbench.ops import quantize
from irnbench_plugins.sain import official as sain_official
from irnbench_plugins.sain.model import GaussianMixture, SAINet
from irnbench_plugins.tinvblocks import official as t_official
from irnbench_plugins.tinvblocks.model import (
    TIRN,
    TSAIN,
    TriBranchInvBlock,
    rgb_to_ycbcr,
    ycbcr_to_rgb,
)

LR_TOL, HR_TOL = 1e-5, 1e-4

#: Released file → (keys, parameters incl. the frozen Haar constants, Haar constants), as the
#: official code counts them (``print_network``).
COUNTS = {
    "SAINx2_JPEG.pth": (292, 2_015_485, 48),
    "SAINx4_JPEG.pth": (583, 6_494_003, 240),
    "SAINx2_WebP.pth": (292, 2_015_485, 48),
    "TIRNx2.pth": (241, 1_571_109, 48),
    "TIRNx4.pth": (562, 4_673_617, 240),
    "TSAINx2.pth": (321, 2_094_796, 48),
    "TSAINx4.pth": (642, 5_449_196, 240),
}


def official_module(file: str):
    return sain_official if file.startswith("SAIN") else t_official


@pytest.fixture(scope="module")
def nets() -> dict:
    """Each released file's network, loaded through its ``official_state_dict``."""
    out = {}
    for file in FILES:
        official = official_module(file)
        net = official.build_official(file).eval()
        net.load_state_dict(official.official_state_dict(released_state(file), net))
        out[file] = net
    return out


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return ((a - ref).abs().max() / ref.abs().max()).item()


@torch.no_grad()
def run(net, ref: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """lr, y, hr (inverse of [ref y | ref z]) and hr_z0 (inverse of [ref y | 0])."""
    _, lr = net(ref["x"])
    return {"lr": lr, "y": quantize(lr),
            "hr": net.inverse(torch.cat((ref["y"], ref["z"]), 1)),
            "hr_z0": net.inverse(torch.cat((ref["y"], torch.zeros_like(ref["z"])), 1))}


def errors(out: dict[str, torch.Tensor], ref: dict[str, torch.Tensor]) -> dict[str, float]:
    return {k: rel_err(out[k], ref[k]) for k in ("lr", "hr", "hr_z0")}


# -- equivalence with the official networks ----------------------------------------------------
@pytest.mark.parametrize("file", FILES)
def test_matches_official_outputs(nets, file):
    ref = reference(file)
    out = run(nets[file], ref)
    errs = errors(out, ref)
    assert errs["lr"] <= LR_TOL, errs
    assert errs["hr"] <= HR_TOL, errs
    assert errs["hr_z0"] <= HR_TOL, errs
    # The 8-bit y equals the official one, except possibly a tie at a half step.
    differ = out["y"] != ref["y"]
    steps = (ref["lr"].clamp(0, 1) * 255)[differ]
    assert ((steps - steps.floor() - 0.5).abs() < 1e-3).all(), f"{int(differ.sum())} y differ"
    assert ((out["y"] - ref["y"]).abs() <= 1 / 255 + 1e-7).all()


def test_tirn_upscale_is_the_zero_latent_inverse(nets):
    ref = reference("TIRNx4.pth")
    with torch.no_grad():
        hr = nets["TIRNx4.pth"].upscale(ref["y"])
    assert rel_err(hr, ref["hr_z0"]) <= HR_TOL


@pytest.mark.parametrize("file", FILES)
def test_keys_shapes_and_parameter_counts(file):
    keys, params, haar = COUNTS[file]
    net = official_module(file).build_official(file)
    state = net.state_dict()
    assert len(FORMATS[file]) == keys
    assert {k: list(v.shape) for k, v in state.items()} == dict(FORMATS[file])
    assert sum(p.numel() for p in net.parameters()) == params
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) == params - haar


def test_tri_branch_block_sizes():
    """One block: 80 tensors; 523,687 parameters at C = 12, 775,579 at C = 48."""
    for channels, params in ((12, 523_687), (48, 775_579)):
        block = TriBranchInvBlock(channels)
        assert len(block.state_dict()) == 80
        assert sum(p.numel() for p in block.parameters()) == params


# -- colour conversions and their clamps ---------------------------------------------------------
def test_colour_conversions():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    rgb = rgb.reshape(3, 3, 1, 1)  # white, black, red as a batch of 1×1 images
    ycc = rgb_to_ycbcr(rgb)
    assert torch.allclose(ycc[0].flatten(), torch.tensor([1.0, 0.5, 0.5]), atol=1e-6)
    assert torch.allclose(ycc[2].flatten(), torch.tensor([0.299, 0.5 - 0.168736, 1.0]))
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert (ycbcr_to_rgb(rgb_to_ycbcr(x)) - x).abs().max() < 2e-6
    # Forward conversion: no clamp; the inverse one: always clamped to [0, 1].
    assert rgb_to_ycbcr(torch.full((1, 3, 1, 1), 2.0))[0, 0].item() == pytest.approx(2.0)
    wild = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 3
    back = ycbcr_to_rgb(wild)
    assert back.min() == 0 and back.max() == 1


def _unclamped(ycc: torch.Tensor) -> torch.Tensor:
    y, cb, cr = ycc[:, 0:1], ycc[:, 1:2] - 0.5, ycc[:, 2:3] - 0.5
    return torch.cat((y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb), 1)


#: Clamping YCbCr→RGB conversions per forward and inverse pass (the forward's last one in
#: T-SAIN makes LR̂ after the comp blocks, which only training reads).
CONVERSIONS = {"TIRNx2.pth": (1, 1), "TIRNx4.pth": (2, 2), "TSAINx2.pth": (2, 1),
               "TSAINx4.pth": (3, 2)}


@pytest.mark.parametrize("file", T_FILES)
def test_every_clamp_matters(nets, file, monkeypatch):
    """Dropping the clamp of any one conversion that feeds the LR or the HR breaks equality."""
    net, ref = nets[file], reference(file)
    calls = {"n": 0, "skip": -1}

    def convert(ycc: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return _unclamped(ycc) if calls["n"] - 1 == calls["skip"] else ycbcr_to_rgb(ycc)

    def counted(fn, skip: int = -1):
        calls.update(n=0, skip=skip)
        with torch.no_grad():
            return fn(), calls["n"]

    monkeypatch.setattr(tmodel, "ycbcr_to_rgb", convert)
    t_z = torch.cat((ref["y"], ref["z"]), 1)
    t_0 = torch.cat((ref["y"], torch.zeros_like(ref["z"])), 1)
    (_, lr), n_forward = counted(lambda: net(ref["x"]))
    hr, n_inverse = counted(lambda: net.inverse(t_z))
    assert (n_forward, n_inverse) == CONVERSIONS[file]
    assert rel_err(lr, ref["lr"]) <= LR_TOL and rel_err(hr, ref["hr"]) <= HR_TOL
    for skip in range(n_forward):
        (_, lr), _ = counted(lambda: net(ref["x"]), skip)
        training_only = file.startswith("TSAIN") and skip == n_forward - 1
        assert (rel_err(lr, ref["lr"]) <= LR_TOL) == training_only, (skip, rel_err(lr, ref["lr"]))
    for skip in range(n_inverse):
        hr, _ = counted(lambda: net.inverse(t_z), skip)
        hr_z0, _ = counted(lambda: net.inverse(t_0), skip)
        errs = (rel_err(hr, ref["hr"]), rel_err(hr_z0, ref["hr_z0"]))
        assert max(errs) > HR_TOL, (skip, errs)


# -- invertibility ---------------------------------------------------------------------------------
def test_sain_inverse_undoes_forward():
    torch.manual_seed(0)
    net = SAINet(4, e_blocks=2, v_blocks=1).eval()
    for p in net.parameters():
        if p.requires_grad:
            p.data.normal_(0, 0.02)
    x = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        out, lr = net(x)
        back = net.inverse(out)
    assert lr.shape == (1, 3, 4, 6) and out.shape == (1, 48, 4, 6)
    assert (back - x).abs().max() < 1e-5


def test_tri_branch_block_inverse_undoes_forward():
    torch.manual_seed(0)
    block = TriBranchInvBlock(12).eval()
    for p in block.parameters():
        p.data.normal_(0, 0.05)
    x = torch.randn(2, 12, 8, 8)
    with torch.no_grad():
        y = block(x)
        assert (y - x).abs().max() > 1e-2
        assert (block(y, rev=True) - x).abs().max() < 1e-5


def test_constructors_refuse_other_scales():
    for make in (lambda: TIRN(3), lambda: TSAIN(8), lambda: SAINet(3), lambda: SAINet(8),
                 lambda: SAINet(2, 0)):
        with pytest.raises(ValueError):
            make()


# -- the official mapping's checks -----------------------------------------------------------------
@pytest.mark.parametrize("file", ["SAINx2_JPEG.pth", "TSAINx2.pth"])
def test_mapping_accepts_module_prefix(file):
    official = official_module(file)
    net = official.build_official(file)
    state = {"module." + k: v for k, v in released_state(file).items()}
    mapped = official.official_state_dict(state, net)
    assert set(mapped) == set(net.state_dict())


@pytest.mark.parametrize("file", ["SAINx2_JPEG.pth", "TSAINx2.pth"])
def test_mapping_names_the_bad_keys(file):
    official = official_module(file)
    net = official.build_official(file)
    good = released_state(file)
    keys = list(good)

    wrong = dict(good)
    wrong[keys[3]] = torch.zeros(7, 7)
    with pytest.raises(CheckpointError, match=rf"wrong shape: {keys[3]} \[7, 7\]"):
        official.official_state_dict(wrong, net, source=file)

    missing = {k: v for k, v in good.items() if k != keys[5]}
    with pytest.raises(CheckpointError, match=rf"^{file} does not fit .*not filled: {keys[5]}$"):
        official.official_state_dict(missing, net, source=file)

    extra = dict(good, **{"operations.0.F.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"unused: operations\.0\.F\.conv1\.weight"):
        official.official_state_dict(extra, net)

    many = {k: v for k, v in good.items() if k not in keys[1:9]}
    with pytest.raises(CheckpointError, match=r"not filled: .*\(\+3 more\)") as info:
        official.official_state_dict(many, net)
    assert sum(k in str(info.value) for k in keys[1:9]) == 5

    quarter = dict(good, **{keys[0]: good[keys[0]] / 4})  # a Haar stored with the /4
    with pytest.raises(CheckpointError, match=rf"not the Haar constants.*{keys[0]}"):
        official.official_state_dict(quarter, net)


def test_other_releases_do_not_fit():
    """A T-IRN file is refused by T-SAIN's network of the same scale, and SAIN ×2 by ×4."""
    with pytest.raises(CheckpointError, match="not filled: comp_operations.0"):
        t_official.official_state_dict(released_state("TIRNx2.pth"),
                                       t_official.build_official("TSAINx2.pth"))
    with pytest.raises(CheckpointError, match="wrong shape"):
        sain_official.official_state_dict(released_state("SAINx2_JPEG.pth"),
                                          sain_official.build_official("SAINx4_JPEG.pth"))
    with pytest.raises(CheckpointError, match="unknown"):
        t_official.build_official("TIRNx8.pth")


# -- SAIN's Gaussian-mixture latent ----------------------------------------------------------------
def _mixture(seed: int = 0) -> GaussianMixture:
    gmm = GaussianMixture(5)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        gmm.gmm_para.copy_(torch.stack([torch.randn(5, generator=g), torch.randn(5, generator=g),
                                        0.5 * torch.randn(5, generator=g)]))
    return gmm


def test_gmm_sampling_is_seeded_and_matches_the_official_draws():
    gmm, shape = _mixture(), (2, 9, 6, 7)
    with torch.no_grad():
        a = gmm.sample(shape, torch.Generator().manual_seed(5))
        b = gmm.sample(shape, torch.Generator().manual_seed(5))
        c = gmm.sample(shape, torch.Generator().manual_seed(6))
        assert a.shape == shape and torch.equal(a, b) and not torch.equal(a, c)
        # The official sampler (torch.distributions + F.gumbel_softmax) on the global RNG.
        logits, means, logvars = gmm.gmm_para
        mix = D.Categorical(logits.softmax(dim=0))
        comp = D.Normal(means, torch.exp(0.5 * torch.clamp(logvars, -20, 20)))
        torch.manual_seed(5)
        onehot = F.gumbel_softmax(mix.probs.repeat(*shape, 1).log(), hard=True)
        official = (onehot * comp.rsample(shape)).sum(dim=-1)
    assert torch.equal(a, official)


def test_gmm_draws_follow_the_mixture():
    gmm = _mixture(1)
    with torch.no_grad():
        z = gmm.sample((1_000_000,), torch.Generator().manual_seed(0)).double()
        mean, var = (m.double() for m in gmm.moments())
        pi, mu, std = (t.double() for t in gmm.mixture())
    n = z.numel()
    assert abs(z.mean() - mean) < 5 * (var / n).sqrt()
    assert abs(z.var() / var - 1) < 0.01
    for point in (-1.0, 0.0, 0.5, 2.0):
        cdf = (pi * D.Normal(mu, std).cdf(torch.tensor(point, dtype=torch.float64))).sum()
        assert abs((z <= point).double().mean() - cdf) < 3e-3


def test_sain_latent_shape(nets):
    net = nets["SAINx4_JPEG.pth"]
    with torch.no_grad():
        z = net.sample_latent(torch.zeros(2, 3, 5, 7), torch.Generator().manual_seed(0))
    assert z.shape == (2, 45, 5, 7)
