"""IRN-Color plugin: invertible decolorization–colorization as method ``irn-color`` (model card:
``method``).

``model`` holds ``InvGreyNet`` (the invertible 1×1 colour transform and the couplings, built
from the IRN plugin's shared blocks), ``method`` the irnbench ``Method``.
"""

from __future__ import annotations

from irnbench.plugin import hookimpl

from .method import IRNColor
from .model import RGB_TO_YUV, InvertibleConv1x1, InvGreyNet

__all__ = ["IRNColor", "InvGreyNet", "InvertibleConv1x1", "RGB_TO_YUV"]


@hookimpl
def irnbench_register_methods(register):
    register(IRNColor)
