"""Weights tags (timm's ``arch.tag``) and method specs ``NAME[.TAG]``.

``cpu`` is irnbench's own shipped CPU-preset weights (in the plugin package), ``official`` a
published checkpoint imported or fetched by the user, and any other name the user's own
(``irnbench train --tag NAME``, default ``local``).
"""

from __future__ import annotations

from irnbench.errors import InvalidSetting

__all__ = ["SHIPPED_TAG", "OFFICIAL_TAG", "DEFAULT_TRAIN_TAG", "RESOLUTION_ORDER", "check_tag",
           "parse_spec", "format_spec"]

#: The tag of the weights shipped in a plugin package (irnbench's CPU-preset trainings).
SHIPPED_TAG = "cpu"
#: The tag of an imported published checkpoint.
OFFICIAL_TAG = "official"
#: The tag ``irnbench train`` installs under unless ``--tag`` names another.
DEFAULT_TRAIN_TAG = "local"
#: What an untagged method name resolves to, in this order: the user's own trainings are used
#: only when named, so no test or smoke run changes what a later ``run`` measures.
RESOLUTION_ORDER = (OFFICIAL_TAG, SHIPPED_TAG)

_TAG_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_")


def check_tag(tag: str) -> str:
    """A tag is lower-case letters, digits, ``-`` and ``_`` (it becomes part of a file name)."""
    if not tag:
        raise InvalidSetting("empty weights tag: name one (lower-case letters, digits, '-' or "
                             "'_'), or leave the tag out for the default")
    if not set(tag) <= _TAG_CHARS or tag[0] in "-_":
        raise InvalidSetting(
            f"weights tag must be lower-case letters, digits, '-' or '_', got {tag!r}"
        )
    return tag


def parse_spec(spec: str, tag: str | None = None) -> tuple[str, str | None]:
    """``"irn.official"`` → ``("irn", "official")``; ``"irn"`` → ``("irn", tag)``.

    A ``tag=`` given beside a tagged spec must agree with it; an empty one is refused (never
    read as "no tag").
    """
    if tag is not None:
        check_tag(tag)
    name, dot, spec_tag = spec.partition(".")
    if not dot:
        return spec, tag
    check_tag(spec_tag)
    if tag is not None and tag != spec_tag:
        raise InvalidSetting(f"{spec!r} names tag {spec_tag!r} but tag={tag!r} was given")
    return name, spec_tag


def format_spec(name: str, tag: str | None) -> str:
    """``("irn", "official")`` → ``"irn.official"`` (just the name without a tag)."""
    return f"{name}.{tag}" if tag else name
