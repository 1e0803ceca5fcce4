#!/usr/bin/env bash
# The accelerator check: one command on a GPU host with jax, flax, optax, orbax and torch
# (no TensorFlow, no network), from a copy of this tree:
#
#   benchmarks/gpu.sh            # the paper's shapes, within 10 minutes
#   benchmarks/gpu.sh --tiny     # tiny td shapes (or GE2E_GPU_TINY=1): checks the script on a CPU
#
# Runs, each with its own time limit and log under $OUT (default: a new temporary folder):
#   1. benchmarks/train_step.py  td 64x10x80 and ti 64x10x160, JAX vs PyTorch cuDNN
#   2. benchmarks/inference.py   d-vector throughput of ge2e_jax.inference (td and ti windows)
#   3. a train step with augmentation on (benchmarks/train_step.py --augment 0.5)
# and prints one short table last. A part that fails or is skipped says so in the table.
set -uo pipefail
cd "$(dirname "$0")/.."
TINY=${GE2E_GPU_TINY:-0}
for arg in "$@"; do
  case "$arg" in
    --tiny) TINY=1 ;;
    *) echo "usage: benchmarks/gpu.sh [--tiny]" >&2; exit 2 ;;
  esac
done
OUT=${OUT:-$(mktemp -d -t ge2e_gpu.XXXXXX)}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if [[ "$TINY" == 1 ]]; then
  CASES=(--case td:4:2:20) STEPS=2 LIMIT=240
  INFER=(--case td:20 --utterances 4 --seconds 0.5 --repeats 2 --max_windows 8 --cells 16
         --projection 8)
else
  CASES=(--case td:64:10:80 --case ti:64:10:160) STEPS=10 LIMIT=360
  INFER=(--case td:80 --case ti:160)
fi
TORCH=()
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  TORCH=(--no-torch)
  echo "torch is not installed: the PyTorch side of the train step is skipped" \
    | tee "$OUT/torch_missing.txt"
fi

status() {  # name, exit code -> a line in $OUT/status.txt
  local what="ok"
  [[ "$2" == 124 ]] && what="timed out" || { [[ "$2" != 0 ]] && what="failed (exit $2)"; }
  echo "$1 $what" >> "$OUT/status.txt"
}
: > "$OUT/status.txt"

echo "== 1/3 train step (logs: $OUT/train_step.log)"
timeout "$LIMIT" "$PY" -m benchmarks.train_step "${CASES[@]}" --steps "$STEPS" \
  --cpu_devices 1 "${TORCH[@]}" --json "$OUT/train_step.json" > "$OUT/train_step.log" 2>&1
status train_step $?

echo "== 2/3 inference (logs: $OUT/inference.log)"
timeout 120 "$PY" -m benchmarks.inference "${INFER[@]}" --json "$OUT/inference.json" \
  > "$OUT/inference.log" 2>&1
status inference $?

echo "== 3/3 train step with augmentation (logs: $OUT/augment.log)"
# Every augmentation kind at p = 0.5, timed alternately with the plain step.
timeout 120 "$PY" -m benchmarks.train_step "${CASES[@]:0:2}" --steps "$STEPS" \
  --cpu_devices 1 --no-torch --augment 0.5 --json "$OUT/augment.json" > "$OUT/augment.log" 2>&1
status augment $?

"$PY" - "$OUT" <<'SUMMARY'
import json, os, sys
out = sys.argv[1]
def load(name):
  path = os.path.join(out, name)
  return json.load(open(path)) if os.path.exists(path) else None
print(f"\nge2e_jax accelerator check; logs and JSON in {out}")
print("| benchmark | case | JAX | PyTorch | JAX / PyTorch |")
print("|---|---|---|---|---|")
for row in load("train_step.json") or []:
  jax_row = next(iter(row["jax"].values()))
  torch_row = row["torch"]
  torch_ups = f"{torch_row['utterances_per_s']:.0f} utt/s" if torch_row else "-"
  ratio = (f"{jax_row['utterances_per_s'] / torch_row['utterances_per_s']:.2f}x"
           if torch_row else "-")
  print(f"| train step | {row['case']} | {jax_row['utterances_per_s']:.0f} utt/s | "
        f"{torch_ups} | {ratio} |")
for row in load("augment.json") or []:
  timing = next(iter(row["augmented"].values()))
  plain, augmented = timing["plain"]["median_s"], timing["augmented"]["median_s"]
  print(f"| train step, augmentation p=0.5 | {row['case']} | {plain:.4f} s -> "
        f"{augmented:.4f} s per step ({augmented / plain - 1:+.0%}) | - | - |")
for row in load("inference.json") or []:
  print(f"| inference | {row['case']} | {row['utterances_per_s']:.1f} utt/s, "
        f"{row['windows_per_s']:.0f} windows/s | - | - |")
for line in open(os.path.join(out, "status.txt")):
  if not line.rstrip().endswith(" ok"):
    print(f"| {line.split()[0]} | {line.strip()} | | | |")
SUMMARY
! grep -Eq "failed|timed out" "$OUT/status.txt"  # exit status: 1 if any part failed
