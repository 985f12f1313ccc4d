#!/usr/bin/env bash
# One-shot check of irnbench on a lent GPU, in under 8 minutes (docs/performance.md, "Checking
# a GPU"). Run from anywhere:
#
#   scripts/gpu_check.sh [--dry-run] [--out DIR] [--skip-install] [--eval-datasets mini]
#
# 1. installs irnbench (pip install -e the repository; nothing else, no extras: the machine
#    may have no network, so torch must already be there);
# 2. prints the device;
# 3. times IRN x4 `paper`-preset training steps: fp32, AMP (bf16 where the GPU has it, else
#    fp16 with a GradScaler), fp16, AMP + channels_last, AMP + torch.compile
#    (benchmarks/bench_train_step.py);
# 4. trains 300 `paper`-preset steps on mini-train with --amp auto, as 200 steps and a
#    --resume to 300;
# 5. trains with --nproc 2 when there are two GPUs;
# 6. evaluates the 300-step weights on mini (--eval-datasets: other names or image folders);
# 7. prints one summary table (also DIR/summary.txt; every step's log is in DIR/logs).
#
# Nothing it trains is installed: every run is --no-install with --out under DIR, and
# IRNBENCH_HOME is DIR/home, so the shipped weights and the user cache stay as they were.
# --dry-run does the same steps on CPU with the `smoke` preset and without the install: a
# wiring check that the test suite runs (there, on one small image instead of mini; compile
# is left out: inductor takes minutes on a small CPU, tests/test_train_accel.py checks it).
# A failed step is reported and the next one runs (the device time is scarce); the exit status
# is 1 if any step failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DRY=0
INSTALL=1
OUT=""
EVAL_SETS=mini
PY="${PYTHON:-python3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) DRY=1; INSTALL=0 ;;
    --skip-install) INSTALL=0 ;;
    --out) OUT="$2"; shift ;;
    --eval-datasets) EVAL_SETS="$2"; shift ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
               exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
OUT="${OUT:-$ROOT/gpu-check-$(date -u +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT/logs" "$OUT/runs" "$OUT/home"
OUT="$(cd "$OUT" && pwd)"
export IRNBENCH_HOME="$OUT/home" PYTHONUNBUFFERED=1
cd "$ROOT" || exit 2

if [ "$DRY" = 1 ]; then
  DEVICE=cpu PRESET=smoke FIRST=3 TOTAL=6 STEPS=1 WARMUP=1
  MODES="off,bf16+cl"  # fp16 autocast is not accelerated on CPU (about 7x slower)
  LIMIT=600
else
  DEVICE=cuda PRESET=paper FIRST=200 TOTAL=300 STEPS=20 WARMUP=5
  MODES="off,auto,fp16,auto+cl,auto+compile"
  LIMIT=240
fi
SUMMARY="$OUT/summary.txt"
printf '%-22s %-8s %8s  %s\n' step status seconds note > "$SUMMARY"
FAILED=0

# step NAME NOTE-COMMAND -- COMMAND...: run COMMAND (log in logs/NAME.log, at most $LIMIT s),
# then NOTE-COMMAND (its output is the note) when it succeeded.
step() {
  local name="$1" note_cmd="$2" t0 rc note
  shift 3
  echo "== $name: $*"
  t0=$(date +%s.%N)
  if command -v timeout >/dev/null; then
    timeout "$LIMIT" "$@" > "$OUT/logs/$name.log" 2>&1
  else
    "$@" > "$OUT/logs/$name.log" 2>&1
  fi
  rc=$?
  local secs
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  if [ $rc = 0 ]; then
    note=$(eval "$note_cmd" 2>/dev/null | tr '\n' ' ')
    printf '%-22s %-8s %8s  %s\n' "$name" ok "$secs" "$note" >> "$SUMMARY"
  else
    FAILED=1
    note=$(tail -n 3 "$OUT/logs/$name.log" | tr '\n' ' ' | cut -c1-160)
    printf '%-22s %-8s %8s  %s\n' "$name" "FAIL($rc)" "$secs" "$note" >> "$SUMMARY"
  fi
  tail -n 5 "$OUT/logs/$name.log"
}

skip() {
  printf '%-22s %-8s %8s  %s\n' "$1" skipped - "$2" >> "$SUMMARY"
}

# The note of a training run: steps, wall time and final validation from the weights' sidecar.
run_note() {
  "$PY" - "$1" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
val = {k: round(v, 2) for k, v in s.items() if k.startswith("final_val")}
print(f"{s['iteration']} steps, {s['wall']:.0f} s training, amp {s['amp']}, {val}")
EOF
}

if [ "$INSTALL" = 1 ]; then
  # No build isolation: the build backend comes from this Python, not from the network.
  step install "echo pip install -e ." -- bash -c \
    "'$PY' -m pip install --no-build-isolation -e . || '$PY' -m pip install -e ."
else
  skip install "$([ "$DRY" = 1 ] && echo 'dry run' || echo '--skip-install')"
fi

step device "cat '$OUT/logs/device.log'" -- "$PY" - <<'EOF'
import torch
import irnbench
print(f"irnbench {irnbench.__version__}, torch {torch.__version__}, CUDA {torch.version.cuda}")
n = torch.cuda.device_count() if torch.cuda.is_available() else 0
for i in range(n):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, bf16 "
          f"{'yes' if torch.cuda.is_bf16_supported() else 'no'}")
if n == 0:
    print("no CUDA device")
EOF
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)" 2>/dev/null || echo 0)
if [ "$DRY" = 0 ] && [ "$GPUS" = 0 ]; then
  skip rest "no CUDA device: use --dry-run on a CPU"
  cat "$SUMMARY"
  exit 1
fi

step timing "echo see the timing rows below" -- "$PY" benchmarks/bench_train_step.py \
  --scale 4 --preset "$PRESET" --device "$DEVICE" --modes "$MODES" --steps "$STEPS" \
  --warmup "$WARMUP" --json "$OUT/timing.jsonl"

TRAIN=("$PY" -m irnbench train --plugin irn --scale 4 --preset "$PRESET" --datasets mini-train
       --device "$DEVICE" --amp auto --no-install --quiet --out "$OUT/runs/x4")
step "train-$FIRST" "run_note '$OUT/runs/x4/weights.json'" -- "${TRAIN[@]}" --iterations "$FIRST"
step "resume-to-$TOTAL" "run_note '$OUT/runs/x4/weights.json'" -- "${TRAIN[@]}" --resume \
  --iterations "$TOTAL"

if [ "$GPUS" -ge 2 ] 2>/dev/null; then
  step nproc-2 "run_note '$OUT/runs/x4-nproc2/weights.json'" -- "$PY" -m irnbench train \
    --plugin irn --scale 4 --preset "$PRESET" --datasets mini-train --device "$DEVICE" \
    --amp auto --no-install --quiet --iterations 50 --nproc 2 --out "$OUT/runs/x4-nproc2"
else
  skip nproc-2 "$GPUS GPU(s): needs 2"
fi

# The note of the evaluation: mean PSNR over the images of each dataset, from results.csv.
eval_note() {
  "$PY" - "$1" <<'EOF'
import csv, sys
from collections import defaultdict
sets = defaultdict(list)
for r in csv.DictReader(open(sys.argv[1])):
    if r["status"] == "ok":
        sets[r["dataset"]].append((float(r["psnr_y"]), float(r["psnr_rgb"])))
for name, v in sets.items():
    print(f"{name}: {len(v)} images, PSNR-Y {sum(a for a, _ in v) / len(v):.2f} dB, "
          f"RGB {sum(b for _, b in v) / len(v):.2f} dB (1 draw);")
EOF
}

step eval "eval_note '$OUT/eval/results.csv'" \
  -- "$PY" -m irnbench eval --plugins irn --scale 4 --datasets "$EVAL_SETS" --device "$DEVICE" \
  --weights "$OUT/runs/x4/weights.safetensors" --draws 1 --quiet --out "$OUT/eval"

{
  echo
  if [ -s "$OUT/timing.jsonl" ]; then
    "$PY" - "$OUT/timing.jsonl" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
print(f"{'timing: ' + rows[0]['preset'] + ' x4, mode':<30}{'amp':<6}{'s/step':>9}"
      f"{'first steps s':>15}{'preset h':>10}{'peak GiB':>10}")
for r in rows:
    peak = "-" if r["peak_gib"] is None else f"{r['peak_gib']:.1f}"
    print(f"{r['mode']:<30}{r['amp']:<6}{r['s_per_step']:>9.4f}{r['warmup_s']:>15.1f}"
          f"{r['preset_hours']:>10.1f}{peak:>10}")
EOF
  fi
} >> "$SUMMARY"
echo
echo "== summary ($OUT)"
cat "$SUMMARY"
exit $FAILED
