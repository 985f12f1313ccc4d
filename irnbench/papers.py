"""Published sources quoted by method plugins: one place for each paper and each quoted table.

Each paper a method cites (IRN's ECCV and IJCV papers are cited by several), and each table that
rows of several methods come from (IRN's Table 1, ECCV 2020; SAIN's README table, AAAI 2023), is
written here once; the methods' model cards and paper-reported rows read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from irnbench.methods import PaperResult

__all__ = ["Publication", "IRN_ECCV", "IRN_IJCV", "CAR_TIP", "TAD_ECCV", "SAIN_AAAI",
           "TINVBLOCKS_AAAI", "IRN_TABLE1",
           "IRN_TABLE1_ROWS", "SAIN_README", "SAIN_README_ROWS", "SAIN_PROTOCOL",
           "SAIN_QUALITIES", "table_rows", "sain_rows", "irn_table1_rows", "sain_readme_rows"]


@dataclass(frozen=True)
class Publication:
    """A paper, and the three ways irnbench writes it (full, short, inline)."""

    authors: tuple[str, ...]  #: surnames, in the paper's order
    title: str
    venue: str  #: e.g. "ECCV", "IEEE TIP"
    year: int
    url: str = ""
    pages: str = ""  #: volume and pages where the venue is a journal, e.g. "29:4027-4040"

    @property
    def _venue_year(self) -> str:
        return f"{self.venue} {self.pages}, {self.year}" if self.pages else \
            f"{self.venue} {self.year}"

    @property
    def citation(self) -> str:
        """``Xiao, Zheng, …, 'Invertible Image Rescaling', ECCV 2020`` (what reports record)."""
        return f"{', '.join(self.authors)}, '{self.title}', {self._venue_year}"

    @property
    def first_author(self) -> str:
        """``Xiao et al.``, ``Sun & Chen`` or the one author."""
        if len(self.authors) > 2:
            return f"{self.authors[0]} et al."
        return " & ".join(self.authors)

    @property
    def short(self) -> str:
        """``Xiao et al., 'Invertible Image Rescaling', ECCV 2020``."""
        return f"{self.first_author}, '{self.title}', {self.venue} {self.year}"

    @property
    def inline(self) -> str:
        """``Xiao et al., ECCV 2020``: the form in parentheses after a method's name."""
        return f"{self.first_author}, {self.venue} {self.year}"


IRN_ECCV = Publication(
    ("Xiao", "Zheng", "Liu", "Wang", "He", "Ke", "Bian", "Lin", "Liu"),
    "Invertible Image Rescaling", "ECCV", 2020, "https://arxiv.org/abs/2005.05650")
#: The journal extension: ×3/×8, IRN-Color (decolorization) and IRN-CRM (compression).
IRN_IJCV = Publication(
    ("Xiao", "Zheng", "Liu", "Lin", "Liu"), "Invertible Rescaling Network and Its Extensions",
    "IJCV", 2022, "https://arxiv.org/abs/2210.04188")
CAR_TIP = Publication(
    ("Sun", "Chen"), "Learned Image Downscaling for Upscaling using Content Adaptive Resampler",
    "IEEE TIP", 2020, "https://arxiv.org/abs/1907.12904", pages="29:4027-4040")
TAD_ECCV = Publication(
    ("Kim", "Choi", "Lim", "Lee"), "Task-Aware Image Downscaling", "ECCV", 2018,
    "https://cv.snu.ac.kr/research/taid/")
SAIN_AAAI = Publication(
    ("Yang", "Guo", "Zhao", "Li", "Zhang"),
    "Self-Asymmetric Invertible Network for Compression-Aware Image Rescaling", "AAAI", 2023,
    "https://arxiv.org/abs/2303.02353")
#: T-IRN and T-SAIN.
TINVBLOCKS_AAAI = Publication(
    ("Bao", "Hao", "Xu", "Sun", "Zhou", "Zhu"),
    "Plug-and-Play Tri-Branch Invertible Block for Image Rescaling", "AAAI", 2025,
    "https://arxiv.org/abs/2412.13508")

IRN_TABLE1 = f"IRN ({IRN_ECCV.inline}) Table 1"
#: IRN's Table 1 as published, by row label: (scale, dataset) → (PSNR-Y, SSIM-Y); the TAD & TAU
#: row gives PSNR-Y only. IRN's rows are the mean over 5 z draws; the CAR and TAD rows are those
#: papers' numbers as IRN quotes them.
IRN_TABLE1_ROWS: dict[str, dict[tuple[int, str], tuple[float, ...]]] = {
    "Bicubic & Bicubic": {
        (2, "set5"): (33.66, 0.9299), (2, "set14"): (30.24, 0.8688),
        (2, "b100"): (29.56, 0.8431), (2, "urban100"): (26.88, 0.8403),
        (2, "div2k-val"): (31.01, 0.9393),
        (4, "set5"): (28.42, 0.8104), (4, "set14"): (26.00, 0.7027),
        (4, "b100"): (25.96, 0.6675), (4, "urban100"): (23.14, 0.6577),
        (4, "div2k-val"): (26.66, 0.8521),
    },
    "CAR & EDSR": {
        (2, "set5"): (38.94, 0.9658), (2, "set14"): (35.61, 0.9404),
        (2, "b100"): (33.83, 0.9262), (2, "urban100"): (35.24, 0.9572),
        (2, "div2k-val"): (38.26, 0.9599),
        (4, "set5"): (33.88, 0.9174), (4, "set14"): (30.31, 0.8382),
        (4, "b100"): (29.15, 0.8001), (4, "urban100"): (29.28, 0.8711),
        (4, "div2k-val"): (32.82, 0.8837),
    },
    "TAD & TAU": {
        (2, "set5"): (38.46,), (2, "set14"): (35.52,), (2, "b100"): (36.68,),
        (2, "urban100"): (35.03,), (2, "div2k-val"): (39.01,),
        (4, "set5"): (31.81,), (4, "set14"): (28.63,), (4, "b100"): (28.51,),
        (4, "urban100"): (26.63,), (4, "div2k-val"): (31.16,),
    },
    "IRN": {
        (2, "set5"): (43.99, 0.9871), (2, "set14"): (40.79, 0.9778),
        (2, "b100"): (41.32, 0.9876), (2, "urban100"): (39.92, 0.9865),
        (2, "div2k-val"): (44.32, 0.9908),
        (4, "set5"): (36.19, 0.9451), (4, "set14"): (32.67, 0.9015),
        (4, "b100"): (31.64, 0.8826), (4, "urban100"): (31.41, 0.9157),
        (4, "div2k-val"): (35.07, 0.9318),
    },
}

SAIN_README = f"SAIN ({SAIN_AAAI.inline}) README table"
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
#: SAIN's README JPEG table (DIV2K val) as published, by row label: scale → (PSNR, SSIM) at
#: each of ``SAIN_QUALITIES``.
SAIN_README_ROWS: dict[str, dict[int, list[tuple[float, float]]]] = {
    "Bicubic & Bicubic": {
        2: [(29.38, 0.8081), (30.19, 0.8339), (30.91, 0.8560), (31.38, 0.8703), (31.96, 0.8878)],
        4: [(26.27, 0.6945), (26.81, 0.7140), (27.28, 0.7326), (27.57, 0.7456), (27.90, 0.7618)],
    },
    "CAR & EDSR": {
        2: [(27.83, 0.7602), (28.66, 0.7903), (29.44, 0.8165), (30.07, 0.8347), (31.31, 0.8648)],
        4: [(25.25, 0.6610), (25.76, 0.6827), (26.22, 0.7037), (26.69, 0.7214), (27.91, 0.7604)],
    },
    "IRN": {
        2: [(29.24, 0.8051), (30.20, 0.8342), (31.14, 0.8604), (31.86, 0.8783), (32.91, 0.9023)],
        4: [(25.98, 0.6867), (26.62, 0.7096), (27.24, 0.7328), (27.72, 0.7508), (28.42, 0.7777)],
    },
    "SAIN": {
        2: [(31.47, 0.8747), (33.17, 0.9082), (34.73, 0.9296), (35.46, 0.9374), (35.96, 0.9419)],
        4: [(27.90, 0.7745), (29.05, 0.8088), (29.83, 0.8272), (30.13, 0.8331), (30.31, 0.8367)],
    },
}


def table_rows(
    label: str, source: str, table: dict[tuple[int, str], tuple[float, ...]],
    task: str = "rescale", protocol: str = "",
) -> list[PaperResult]:
    """Rows of a (scale, dataset) → (PSNR-Y[, SSIM-Y]) table on irnbench's protocol."""
    return [
        PaperResult(label, task, f"x{s}", ds, dict(zip(("psnr_y", "ssim_y"), v, strict=False)),
                    source, protocol)
        for (s, ds), v in table.items()
    ]


def irn_table1_rows(label: str, source: str = IRN_TABLE1, protocol: str = "") -> list[PaperResult]:
    """The ``label`` row of IRN's Table 1 (``source``: how the row is attributed, e.g. "CAR paper
    as quoted by IRN …")."""
    return table_rows(label, source, IRN_TABLE1_ROWS[label], protocol=protocol)


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


def sain_readme_rows(label: str) -> list[PaperResult]:
    """The ``label`` row of SAIN's README JPEG table."""
    return sain_rows(label, SAIN_README_ROWS[label])
