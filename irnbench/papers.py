"""Published sources quoted by method plugins: one place for their names and protocol notes.

Plugins attach paper-reported numbers with these helpers so that rows from the same table carry
the same source string and caveat (IRN's Table 1, ECCV 2020; SAIN's README table, AAAI 2023).
"""

from __future__ import annotations

from irnbench.methods import PaperResult

__all__ = ["IRN_TABLE1", "SAIN_README", "SAIN_PROTOCOL", "SAIN_QUALITIES", "table_rows",
           "sain_rows"]

IRN_TABLE1 = "IRN (Xiao et al., ECCV 2020) Table 1"
SAIN_README = "SAIN (Yang et al., AAAI 2023) README table"
#: SAIN's JPEG table is not on irnbench's protocol: the README does not state its channel (Y is
#: inferred), every row of it (the baselines too) is from the SAIN authors' own runs, and its
#: Bicubic & Bicubic x2 at QF 90 (31.96) exceeds IRN's clean 31.01 on the same set.
SAIN_PROTOCOL = (
    "SAIN test.py: LR JPEG-coded with PIL at QF; channel not stated (Y inferred); every row, "
    "baselines included, from the SAIN authors' own runs, whose bicubic numbers exceed IRN's "
    "clean ones, so the protocol differs from irnbench's"
)
#: The JPEG qualities (columns) of SAIN's README table, in its order.
SAIN_QUALITIES: tuple[int, ...] = (30, 50, 70, 80, 90)


def table_rows(
    label: str, source: str, table: dict[tuple[int, str], tuple[float, float]],
    task: str = "rescale",
) -> list[PaperResult]:
    """Rows of a (scale, dataset) → (PSNR-Y, SSIM-Y) table on irnbench's protocol."""
    return [
        PaperResult(label, task, f"x{s}", ds, {"psnr_y": p, "ssim_y": q}, source)
        for (s, ds), (p, q) in table.items()
    ]


def sain_rows(label: str, rows: dict[int, list[tuple[float, float]]]) -> list[PaperResult]:
    """Rows of SAIN's DIV2K-val JPEG table (scale → PSNR/SSIM at QF 30, 50, 70, 80, 90).

    Stored under the ``psnr``/``ssim`` columns, not ``psnr_y``/``ssim_y``, since the channel is
    not stated (Y is only inferred).
    """
    return [
        PaperResult(label, "rescale", f"x{s}", "div2k-val", {"psnr": p, "ssim": q}, SAIN_README,
                    SAIN_PROTOCOL, quality=qf)
        for s, vals in rows.items()
        for qf, (p, q) in zip(SAIN_QUALITIES, vals, strict=True)
    ]
