"""The train step's memory on a CPU host: XLA:CPU's schedulers, and the encoder in chunks.

Arms:
  xla-default       XLA:CPU's default scheduler, which places the zero-filled output buffers
                    of every `lax.scan` (the LSTMP layers' stacked gates and their gradients)
                    at the start of the program, so all of them are live at once
  memory-optimised  `xla_cpu_scheduler_type` memory-optimised, which `train_step.make_train_step`
                    passes on CPU meshes (`train_step.CPU_COMPILER_OPTIONS`): each buffer is
                    allocated when its loop runs
  + 4 chunks        and `train.encoder_chunks=4`: the encoder's backward pass over 4 chunks
                    of the utterances in turn, after the loss's gradient with respect to the
                    embeddings (`train_step.make_loss_and_grad`)
Each (case, arm) runs in its own subprocess, alternating over `--rounds`; reported: XLA's
temp buffer size for the step (`memory_analysis`), the process's peak RSS after the steps
(VmHWM: JAX, params, batch and step; no TensorFlow is imported) and the median step time.

  python -m benchmarks.step_memory                     # td 64x10x80 and ti_cpu 16x6x180
  python -m benchmarks.step_memory --case td:64:10:80 --rounds 3 --steps 8
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

from benchmarks import train_step as step_timer
from ge2e_jax import model, train_step

ARMS = ("xla-default", "memory-optimised", "memory-optimised + 4 chunks")
DEFAULT_CASES = ("td:64:10:80", "ti_cpu:16:6:180")


def measure(case: str, arm: str, steps: int) -> dict:
  """One case with one arm, in this process."""

  name, n, m, frames = case.split(":")
  config = (model.preset("ti", cells=256, projection=128) if name == "ti_cpu"
            else model.preset(name))
  result = step_timer.time_train_step(
      config, int(n), int(m), int(frames), steps=steps,
      compiler_options={} if arm == "xla-default" else train_step.CPU_COMPILER_OPTIONS,
      encoder_chunks=4 if arm.endswith("chunks") else 1)
  return {"temp_bytes": result["temp_bytes"], "peak_rss": _vm_hwm(),
          "median_s": result["median_s"], "compile_s": result["compile_s"]}


def _vm_hwm() -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith("VmHWM:"):
        return int(line.split()[1]) * 1024
  raise RuntimeError("no VmHWM in /proc/self/status")


def _subprocess(case: str, arm: str, steps: int) -> dict:
  cmd = [sys.executable, "-m", "benchmarks.step_memory", "--measure", case, "--arm", arm,
         "--steps", str(steps)]
  proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--case", action="append",
                      help="preset:N:M:frames, preset td, ti or ti_cpu (repeatable)")
  parser.add_argument("--steps", type=int, default=6)
  parser.add_argument("--rounds", type=int, default=2, help="alternating subprocess rounds")
  parser.add_argument("--measure", help=argparse.SUPPRESS)
  parser.add_argument("--arm", choices=ARMS, help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.measure:
    print(json.dumps(measure(args.measure, args.arm, args.steps)))
    return
  print(f"| case | arm | XLA temp MB | peak RSS GB | median step s | compile s |\n"
        f"|---|---|---|---|---|---|  ({os.cpu_count()} cores, {args.rounds} rounds)")
  for case in args.case or DEFAULT_CASES:
    runs = {name: [] for name in ARMS}
    for _ in range(args.rounds):
      for name in ARMS:
        runs[name].append(_subprocess(case, name, args.steps))
    for name, results in runs.items():
      med = lambda key, rs=results: statistics.median(r[key] for r in rs)
      print(f"| {case} | {name} | {med('temp_bytes') / 1e6:.0f} | "
            f"{med('peak_rss') / 1e9:.2f} | {med('median_s'):.3f} | {med('compile_s'):.1f} |",
            flush=True)


if __name__ == "__main__":
  main()
