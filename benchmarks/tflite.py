"""The on-device (TFLite / LiteRT) export: file size and latency per call on this CPU.

For each case (preset, window frames, batch): converts the static-shape d-vector model
(``experiments/export_tflite.py``) from randomly initialised params -- size and speed do
not depend on the values -- and times one call (median of ``--calls`` after 5 warm-up
calls) with the LiteRT interpreter at 1 and 2 threads, beside the jitted JAX function of
the same shape on the same machine in the same run. Input: one window of the case's
frames (the default export shape).

  python -m benchmarks.tflite [--case td:80:1 --case ti:160:1] [--calls 50]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time

import jax
import numpy as np
import tensorflow as tf  # pylint: disable=unused-import  # imported here: not timed as conversion

from experiments import export_tflite
from ge2e_jax import features, inference, model, train_step


def median_ms(fn, x, calls: int, warmup: int = 5) -> float:
  for _ in range(warmup):
    fn(x)
  times = []
  for _ in range(calls):
    start = time.perf_counter()
    fn(x)
    times.append(time.perf_counter() - start)
  return 1000 * statistics.median(times)


def run_case(preset: str, window_frames: int, batch: int, calls: int) -> dict:
  config = model.preset(preset)
  params = jax.device_get(train_step.init_params(jax.random.key(0), config)["encoder"])
  samples = features.samples_for_frames(window_frames)
  start = time.perf_counter()
  blob = export_tflite.convert(config, params, window_frames=window_frames, batch=batch)
  convert_s = time.perf_counter() - start
  x = np.random.default_rng(0).uniform(-0.5, 0.5, (batch, samples)).astype(np.float32)
  row = {"case": f"{preset} {window_frames} frames x{batch}", "bytes": len(blob),
         "convert_s": convert_s}
  with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, export_tflite.TFLITE_FILE)
    with open(path, "wb") as f:
      f.write(blob)
    for threads in (1, 2):
      row[f"tflite_{threads}t_ms"] = median_ms(export_tflite.load(path, threads), x, calls)
  jitted = jax.jit(functools.partial(inference.embed_waveforms, config, params,
                                     window_frames=window_frames))
  row["jax_ms"] = median_ms(lambda w: jitted(w).block_until_ready(), x, calls)
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--case", action="append",
                      help="preset:window_frames:batch (default td:80:1, ti:160:1)")
  parser.add_argument("--calls", type=int, default=50)
  args = parser.parse_args()
  cases = args.case or ["td:80:1", "ti:160:1"]
  print("| case | .tflite MB | convert s | LiteRT 1 thread ms | LiteRT 2 threads ms "
        "| JAX jit ms |")
  print("|---|---|---|---|---|---|")
  for case in cases:
    preset, frames, batch = case.split(":")
    r = run_case(preset, int(frames), int(batch), args.calls)
    print(f"| {r['case']} | {r['bytes'] / 1e6:.2f} | {r['convert_s']:.1f} | "
          f"{r['tflite_1t_ms']:.1f} | {r['tflite_2t_ms']:.1f} | {r['jax_ms']:.1f} |", flush=True)


if __name__ == "__main__":
  main()
