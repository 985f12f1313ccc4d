"""Copy finished ``irnbench train`` weights into a plugin so that ``create_method`` loads them.

    python scripts/ship_weights.py RUN_DIR PLUGIN_DIR [--commit SHA] [--machine TEXT]

``RUN_DIR`` is a training run folder (``weights.safetensors`` + ``weights.json``); the weights
land in ``PLUGIN_DIR/weights/<task_key>.safetensors`` with the sidecar beside them, which
``irnbench.weights.shipped_cfgs`` turns into the method's ``PretrainedCfg``. The label written by
the trainer ("irnbench cpu preset, N steps (not the paper's model)") is kept; a fine-tune's is
rebuilt from its record by ``irnbench.training.chains.weights_label``, so it names every
preset of the chain.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from irnbench.training.chains import INIT_RECORD_KEYS, weights_label
from irnbench.weights import WeightsRecord, sha256_file, write_weights


def ship(run_dir: Path, plugin_dir: Path, commit: str = "", machine: str = "") -> Path:
    """Copy one run's weights and its sidecar (with the trainer's ≤200-step log) into a plugin."""
    meta = json.loads((run_dir / "weights.json").read_text())
    src = run_dir / "weights.safetensors"
    if sha256_file(src) != meta["sha256"]:
        raise SystemExit(f"{src} does not match the sha256 in its sidecar")
    dest_dir = plugin_dir / "weights"
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / f"{meta['task_key']}.safetensors"
    init = meta.get("init")
    old = dest.with_suffix(".json")
    if init and "commands" not in init and old.exists():
        # A fine-tune of the weights it replaces, run before the trainer kept their record:
        # take it from their sidecar (only when the sha256 says they are the same file).
        prev = json.loads(old.read_text())
        if prev.get("sha256") == init.get("sha256"):
            init.update({k: prev[k] for k in INIT_RECORD_KEYS if k in prev})
    if init:
        # Runs made before the label named the whole chain said only its last two presets.
        meta["label"] = weights_label(meta["preset"], meta["iteration"], init)
    if commit:
        meta["commit"] = commit
    if machine:
        meta["machine"] = machine
    write_weights(dest, src.read_bytes(), WeightsRecord.from_json(meta, str(run_dir)))
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("plugin_dir", type=Path)
    ap.add_argument("--commit", default="", help="commit the weights were trained with")
    ap.add_argument("--machine", default="", help="where they were trained, in words")
    args = ap.parse_args()
    dest = ship(args.run_dir, args.plugin_dir, args.commit, args.machine)
    print(f"shipped {dest} ({dest.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
