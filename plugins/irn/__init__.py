"""IRN plugin: methods ``irn`` (``method``) and ``irn-crm`` (``crm``); their module docstrings
are their model cards.

``blocks`` holds the invertible building blocks shared with the IRN family (Haar downsampling,
the sigmoid-clamped affine coupling, the DenseBlock subnet), ``model`` the network and
``method`` the irnbench ``Method``; ``crm`` the IJCV compression variant ``irn-crm`` (IRN + a JPEG
compression restoration module).
"""

from __future__ import annotations

from irnbench.plugin import hookimpl

from .blocks import DenseBlock, HaarDownsampling, InvBlockExp
from .crm import IRNCRM
from .method import IRN
from .model import InvRescaleNet

__all__ = ["IRN", "IRNCRM", "InvRescaleNet", "HaarDownsampling", "InvBlockExp", "DenseBlock"]


@hookimpl
def irnbench_register_methods(register):
    register(IRN)
    register(IRNCRM)
