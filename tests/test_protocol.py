"""The protocol's constants have one home: its paragraphs and the tasks read them from there."""

from __future__ import annotations

import pytest

import irnbench
from irnbench import protocol


def test_protocol_text_is_built_from_the_constants(monkeypatch):
    """Change every constant a paragraph states: the rebuilt text follows (none is hand-kept)."""
    for name, value in [("SSIM_WINDOW", 7), ("SSIM_SIGMA", 2.5), ("Y_WEIGHTS", (1.5, 2.5, 3.5)),
                        ("Y_OFFSET", 8.0), ("STOCHASTIC_DRAWS", 3), ("COMPRESS_DRAWS", 2),
                        ("COMPRESS_CROP", 6), ("DECOLORIZE_CROP", 5), ("DEFAULT_TEMPERATURE", 0.5),
                        ("JPEG_SUBSAMPLING", 0), ("JPEG_OPTIMIZE", True)]:
        monkeypatch.setattr(protocol, name, value)
    text = protocol.protocol_text()
    for task in ("rescale", "decolorize"):
        assert "SSIM Gaussian 7/2.5, valid region" in text[task]
        assert "11/1.5" not in text[task]
        assert "mean over 3 z draws" in text[task]
    assert "8 + (1.5R + 2.5G + 3.5B)/255" in text["rescale"]
    assert "65.481" not in text["rescale"] and "temperature 0.5" in text["rescale"]
    assert "crop 5 px" in text["decolorize"]
    assert "crop 6 px" in text["compress"] and "crop 2 px" not in text["compress"]
    assert "mean over 2 z draws (temperature 0.5)" in text["compress"]
    for task in ("rescale+jpeg", "compress"):
        assert "4:4:4, optimise on" in text[task] and "4:2:0" not in text[task]


def test_protocol_text_states_the_current_constants():
    text = protocol.PROTOCOL_TEXT
    assert text == protocol.protocol_text()
    w = f"{protocol.SSIM_WINDOW}/{protocol.SSIM_SIGMA:g}"
    assert w in text["rescale"] and w in text["decolorize"]
    assert all(f"{c:g}" in text["rescale"] for c in protocol.Y_WEIGHTS)


@pytest.mark.parametrize("task, setting", [("rescale", {"scale": 2}), ("compress", {}),
                                           ("decolorize", {})])
def test_min_size_follows_the_ssim_window(monkeypatch, task, setting):
    """Each task's smallest image leaves room for the SSIM window after its crop."""
    module = __import__(f"irnbench.tasks.{task}", fromlist=["SSIM_WINDOW"])
    t = irnbench.create_task(task, **setting)
    before = t.min_size()
    monkeypatch.setattr(module, "SSIM_WINDOW", protocol.SSIM_WINDOW + 40)
    assert t.min_size() == 2 * t.crop_border + protocol.SSIM_WINDOW + 40 > before
