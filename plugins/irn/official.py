"""The authors' released IRN-family checkpoints and how their tensors map to irnbench's.

pkuxmq/Invertible-Image-Rescaling saves ``network.state_dict()`` unwrapped: an InvRescaleNet
holds ``operations.N.*`` in forward order, exactly irnbench's ``InvRescaleNet`` (so the names
only gain the method's ``net.`` prefix). The compression release adds ESRGAN's RRDBNet as the
CRM (``conv_first``, ``RRDB_trunk.i.RDBj.conv1..5``, ``trunk_conv``, ``conv_last``).
"""

from __future__ import annotations

import re

from irnbench.plugin import IRN_IJCV, ModelCard, OfficialCheckpoint, OfficialFile, task_key

__all__ = ["irn_official", "irn_crm_official", "DOWNLOAD"]

#: Where the README of the repository's ``codes/`` links the pretrained models.
DOWNLOAD = ("https://drive.google.com/drive/folders/1ym6DvYNQegDrOy_4z733HxrULa1XIN92 "
            "(Google Drive) or https://pan.baidu.com/s/14OvTiJNhFpHHN2yU-h7vDg (Baidu Drive, "
            "code rx0z), linked from codes/README.md of "
            "https://github.com/pkuxmq/Invertible-Image-Rescaling")


def _irn_rename(prefix: str):
    def rename(_file: str, key: str) -> str | None:
        return prefix + key if key.startswith("operations.") else None

    return rename


def _irn(card: ModelCard, scale: int) -> OfficialCheckpoint:
    what = f"IRN ×{scale} InvRescaleNet"
    return OfficialCheckpoint(
        task="rescale", setting={"scale": scale},
        files=(OfficialFile(f"IRN_x{scale}.pth", "net.", what),),
        rename=_irn_rename("net."), repository=card.code, download=DOWNLOAD,
        licence=card.licence,
        paper=card.citation if scale in (2, 4) else IRN_IJCV.citation,  # ×3, ×8: the extension
        variants={"plus": OfficialFile("IRN+_x4.pth", "net.", "IRN+: the ×4 network GAN "
                                        "fine-tuned")} if scale == 4
        else {},
    )


def irn_official(card: ModelCard) -> dict[str, OfficialCheckpoint]:
    """IRN ×2, ×3, ×4 and ×8 (``IRN+_x4.pth`` has the ×4 tensors: import it with ``--tag
    plus``); repository, licence and paper from the method's card."""
    return {task_key("rescale", scale=s): _irn(card, s) for s in (2, 3, 4, 8)}


_RDB = re.compile(r"^RRDB_trunk\.(\d+)\.RDB([123])\.(conv[1-5]\.(?:weight|bias))$")
_CRM_DIRECT = {f"{n}.{p}" for n in ("conv_first", "trunk_conv", "conv_last")
               for p in ("weight", "bias")}


def _crm_rename(file: str, key: str) -> str | None:
    """IRN_x2_finetune.pth → ``irn.net.*``; CRM_x2_q90.pth (RRDBNet) → ``crm.*``."""
    if file.startswith("IRN"):
        return "irn.net." + key if key.startswith("operations.") else None
    if key in _CRM_DIRECT:
        return "crm." + key
    m = _RDB.match(key)
    if m:
        block, rdb, rest = m.groups()
        return f"crm.body.{block}.dense.{int(rdb) - 1}.{rest}"
    return None


def irn_crm_official(card: ModelCard) -> dict[str, OfficialCheckpoint]:
    """IRN ×2 fine-tuned for compression + the q = 90 CRM (the released IJCV compression
    model); repository, licence and paper from the method's card."""
    return {
        task_key("compress", scale=2): OfficialCheckpoint(
            task="compress", setting={"scale": 2},
            files=(OfficialFile("IRN_x2_finetune.pth", "irn.", "IRN ×2 fine-tuned for JPEG"),
                   OfficialFile("CRM_x2_q90.pth", "crm.",
                                "compression restoration module, q = 90")),
            rename=_crm_rename, repository=card.code, download=DOWNLOAD, licence=card.licence,
            paper=card.citation, options={"config": "official"}, config_keys=("arch",),
            note="CRM trained at q = 90",
        )
    }
