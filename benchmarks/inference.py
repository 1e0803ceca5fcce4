"""d-vector throughput of ``ge2e_jax.inference.Embedder`` (sliding windows), no TensorFlow.

Random float32 utterances of ``--seconds`` each are embedded with freshly initialised
params of a preset (``td`` with 80-frame windows, ``ti`` with 160, as evaluation uses
them); the first call compiles, then ``--repeats`` timed calls give the median. Reported:
utterances/s and windows/s (a window is one encoder forward of ``window_frames`` frames).
Runs on whatever device jax picks (a GPU on the GPU box: ``benchmarks/gpu.sh``).

  python -m benchmarks.inference [--case td:80 --case ti:160] [--utterances 64] [--seconds 4]
"""

import argparse
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

from ge2e_jax import inference, model
from ge2e_jax.features import SAMPLE_RATE

DEFAULT_CASES = ("td:80", "ti:160")


def time_embedder(preset: str, window_frames: int, utterances: int, seconds: float,
                  repeats: int = 5, max_windows: int = 256, **overrides) -> dict:
  """Median seconds of ``embed_prepared`` over ``utterances`` random utterances."""
  config = model.preset(preset, **overrides)
  params = model.init_encoder_params(jax.random.key(0), config)
  embedder = inference.Embedder(config, params, window_frames=window_frames,
                                max_windows=max_windows, source=f"random {preset}")
  rs = np.random.RandomState(0)
  wavs = [(0.1 * rs.randn(int(seconds * SAMPLE_RATE))).astype(np.float32)
          for _ in range(utterances)]
  windows = sum(inference.num_windows(len(w), window_frames) for w in wavs)
  start = time.perf_counter()
  embedder.embed_prepared(wavs)  # compiles the window buckets it needs
  compile_s = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    embedder.embed_prepared(wavs)  # returns numpy: the device work is done
    times.append(time.perf_counter() - start)
  median = statistics.median(times)
  return {"case": f"{preset} window {window_frames}", "utterances": utterances,
          "seconds_per_utterance": seconds, "windows": int(windows), "median_s": median,
          "utterances_per_s": utterances / median, "windows_per_s": windows / median,
          "first_call_s": compile_s}


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--case", action="append", help="preset:window_frames (repeatable)")
  parser.add_argument("--utterances", type=int, default=64)
  parser.add_argument("--seconds", type=float, default=4.0, help="length of each utterance")
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--max_windows", type=int, default=256, help="Embedder chunk size")
  parser.add_argument("--cells", type=int, help="override the preset (tiny runs)")
  parser.add_argument("--projection", type=int, help="override the preset (tiny runs)")
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args()
  overrides = {k: getattr(args, k) for k in ("cells", "projection") if getattr(args, k)}
  print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}")
  rows = []
  for text in args.case or DEFAULT_CASES:
    preset, window_frames = text.split(":")
    row = time_embedder(preset, int(window_frames), args.utterances, args.seconds,
                        args.repeats, args.max_windows, **overrides)
    rows.append(row)
    print(f"{row['case']}: {row['utterances_per_s']:.1f} utt/s, {row['windows_per_s']:.0f} "
          f"windows/s (median {row['median_s']:.4f} s, first call {row['first_call_s']:.1f} s)",
          flush=True)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
