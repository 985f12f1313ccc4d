"""The measurement protocol's constants, in one place.

Every number here follows the official IRN test code (pkuxmq/Invertible-Image-Rescaling,
``codes/test.py``).
Metrics, ops, tasks and reports import these; nothing else restates them.
"""

from __future__ import annotations

#: The version of this protocol that a run records (``meta["protocol_version"]``, written by
#: ``irnbench.results.save_run``); raise it when a change here moves a measured number, so that a
#: leaderboard never ranks numbers of two protocols together. A run that records none is 1.
PROTOCOL_VERSION: int = 1

# --- colour (BT.601, "MATLAB rgb2ycbcr", R,G,B in [0, 255]) -----------------------------------
#: Y = Y_OFFSET + (Y_WEIGHTS · RGB) / 255, float, not re-rounded.
Y_WEIGHTS: tuple[float, float, float] = (65.481, 128.553, 24.966)
Y_OFFSET: float = 16.0
#: Decolorization guide (OpenCV BGR2GRAY coefficients on float RGB in [0, 1]).
GREY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

# --- quantisation ---------------------------------------------------------------------------
#: Images travel through the channel as 8-bit integers.
PIXEL_MAX: float = 255.0

# --- PSNR / SSIM ------------------------------------------------------------------------------
#: SSIM: Gaussian window, valid region (BasicSR ``calculate_ssim`` / MATLAB ``ssim_index``).
SSIM_WINDOW: int = 11
SSIM_SIGMA: float = 1.5
SSIM_K1: float = 0.01
SSIM_K2: float = 0.03

# --- evaluation -----------------------------------------------------------------------------
#: Stochastic methods (IRN): mean over this many z ~ N(0, 1) draws (IRN Table 1 caption).
#: The default of ``Task.default_draws``: rescaling, and decolorization (whose IRN-Color is
#: deterministic, so it takes one draw whatever this says).
STOCHASTIC_DRAWS: int = 5
#: Compression: the official IRN-CRM test code samples z once per image (``compress`` task).
COMPRESS_DRAWS: int = 1
#: Default sampling temperature of z at test time (IRN ``gaussian_scale`` = 1).
DEFAULT_TEMPERATURE: float = 1.0
#: Base seed of the z draws; draw d uses seed DRAW_SEED + d.
DRAW_SEED: int = 0
#: Decolorization and compression metrics crop this many pixels (IRN-Color / CRM test configs).
DECOLORIZE_CROP: int = 2
#: IRN-Color's test config sets ``scale: 2``, used only to modcrop the GT to a multiple of 2.
DECOLORIZE_MODCROP: int = 2
#: Grey fidelity (method's uint8 grey vs the uint8-rounded guide) is scored without a border
#: crop, as the rescale task's LR fidelity; the IRN-Color test code's crop here is unconfirmed.
DECOLORIZE_GREY_CROP: int = 0
COMPRESS_CROP: int = 2
#: The ``compress`` task's default JPEG qualities (its setting's ``jpeg``).
COMPRESS_QUALITIES: tuple[int, ...] = (30, 50, 70, 80, 90)

# --- compression (IRN-CRM, IJCV 2022, arXiv:2210.04188) --------------------
#: Scale of the rescaling that precedes JPEG (only ×2 configs ship with the official code).
COMPRESS_SCALE: int = 2
#: Pillow JPEG options of the channel: 4:2:0 chroma subsampling (Pillow's ``subsampling=2``),
#: Huffman optimisation off, baseline. The IRN code encoded with OpenCV's ``imencode`` instead.
JPEG_SUBSAMPLING: int = 2
JPEG_OPTIMIZE: bool = False
#: Qualities the plain-JPEG codec curve sweeps in ``compress`` (besides the task's own), so that
#: its rate and PSNR ranges cover those of the ×2 rescaling methods (their LR has 1/4 the pixels).
JPEG_ANCHOR_QUALITIES: tuple[int, ...] = (5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 95)
#: BD-rate: cubic fit of log10(rate) against PSNR needs at least this many points per curve.
BD_MIN_POINTS: int = 4


def rescale_crop_border(scale: int) -> int:
    """Rescaling metrics crop ``scale`` pixels on each side (IRN test yml ``crop_border: ~``)."""
    return int(scale)


def modcrop_multiple(scale: int) -> int:
    """HR images are cropped to a multiple of the scale before degradation."""
    return int(scale)


def draws_text(draws: int) -> str:
    """How a protocol paragraph states a default number of z draws ("mean over 5 z draws")."""
    return "one z draw per image" if draws == 1 else f"mean over {draws} z draws"


def _jpeg_channel_text() -> str:
    """The Pillow JPEG options as the protocol paragraphs state them ("4:2:0, optimise off")."""
    chroma = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JPEG_SUBSAMPLING,
                                                     f"subsampling {JPEG_SUBSAMPLING}")
    return f"{chroma}, optimise {'on' if JPEG_OPTIMIZE else 'off'}"


def _webp_channel_text(libwebp: str | None) -> str:
    """The WebP channel (``rescale --webp``, SAIN's WebP test) as the protocol states it: Pillow,
    lossy, every option but the quality at Pillow's defaults (``irnbench.ops.webp``)."""
    lib = f"libwebp {libwebp}" if libwebp else "libwebp version in the run metadata"
    return f"lossy, quality Q, other options default, {lib}"


def _y_text() -> str:
    """BT.601 Y as the paragraphs state it: "16 + (65.481R + 128.553G + 24.966B)/255"."""
    r, g, b = Y_WEIGHTS
    return f"{Y_OFFSET:g} + ({r:g}R + {g:g}G + {b:g}B)/{PIXEL_MAX:g}"


def _ssim_text() -> str:
    """The SSIM window as the paragraphs state it: "Gaussian 11/1.5, valid region"."""
    return f"SSIM Gaussian {SSIM_WINDOW}/{SSIM_SIGMA:g}, valid region"


def protocol_text(libwebp: str | None = None) -> dict[str, str]:
    """Each task's protocol paragraph, built from this module's constants as they are now;
    ``libwebp``: the libwebp version the WebP paragraph names (``RescaleTask.protocol`` passes
    Pillow's)."""
    grey_crop = f"crop {DECOLORIZE_GREY_CROP} px." if DECOLORIZE_GREY_CROP else "no crop."
    return {
        "rescale": (
            "HR modcropped to a multiple of s; reference LR = MATLAB-bicubic imresize(HR, 1/s) "
            "(float); the method's LR is clamped and rounded to uint8 by the harness before "
            f"restore; output clamped and rounded to uint8. PSNR/SSIM on Y of BT.601 ({_y_text()}"
            f", float), crop s px; PSNR per image, mean over the set; {_ssim_text()}. Stochastic "
            f"methods: {draws_text(STOCHASTIC_DRAWS)} (temperature {DEFAULT_TEMPERATURE:g}), std "
            "of the set mean over draws. LR fidelity: Y-PSNR of the method's uint8 LR vs the "
            "uint8 bicubic LR, no crop."
        ),
        "decolorize": (
            f"HR modcropped to a multiple of {DECOLORIZE_MODCROP} (IRN-Color test config); guide "
            f"= {GREY_WEIGHTS[0]}R + {GREY_WEIGHTS[1]}G + {GREY_WEIGHTS[2]}B of the float HR "
            "(OpenCV BGR2GRAY coefficients, not rounded); the method's 1-channel grey image is "
            "clamped and rounded to uint8 by the harness before restore; output clamped and "
            "rounded to uint8. PSNR/SSIM on RGB (SSIM: mean over the channels) and PSNR on Y of "
            f"BT.601, crop {DECOLORIZE_CROP} px; PSNR per image, mean over the set; "
            f"{_ssim_text()}. Deterministic methods (IRN-Color restores with z = 0): one row per "
            f"image; stochastic ones: {draws_text(STOCHASTIC_DRAWS)}. Grey fidelity: PSNR of the "
            f"method's uint8 grey vs the uint8-rounded guide, {grey_crop}"
        ),
        "rescale+jpeg": (
            "As rescale, but the method's uint8 LR is JPEG-coded with Pillow "
            f"({_jpeg_channel_text()}) at each quality before restore (SAIN robustness protocol)."
        ),
        "rescale+webp": (
            "As rescale, but the method's uint8 LR is WebP-coded with Pillow "
            f"({_webp_channel_text(libwebp)}) at each quality Q, decoded to RGB uint8 and "
            "restored (SAIN's WebP test); bpp = WebP file bytes × 8 / (H_HR × W_HR)."
        ),
        "compress": (
            "HR modcropped to a multiple of s; the method's degraded image (×s LR, or the HR "
            "itself for plain JPEG) is clamped and rounded to uint8 by the harness, really "
            f"JPEG-encoded with Pillow ({_jpeg_channel_text()}, baseline; libjpeg version in the "
            "run metadata; the IRN code used OpenCV's encoder, so its byte counts may differ) at "
            "each quality, decoded and restored; output clamped and rounded to uint8. bpp = JPEG "
            "file bytes × 8 / (H_HR × W_HR), headers included. PSNR/SSIM on Y of BT.601 and on "
            f"RGB, crop {COMPRESS_CROP} px; per image, mean over the set (bpp too). Stochastic "
            f"methods: {draws_text(COMPRESS_DRAWS)} (temperature {DEFAULT_TEMPERATURE:g}), as the "
            "official IRN compression test samples z once. BD-rate: Bjøntegaard, cubic fit of "
            "log10(bpp) vs set-mean PSNR over the common PSNR range, against plain JPEG."
        ),
    }


#: The protocol paragraphs of the constants above (``protocol_text()`` rebuilds them).
PROTOCOL_TEXT: dict[str, str] = protocol_text()
