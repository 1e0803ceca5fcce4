"""ONNX Runtime (CPU, default threads) against the JAX Embedder on the same utterances.

For each preset: converts ``embed_waveforms`` of randomly initialised params -- speed does
not depend on the values -- with ``experiments/export_onnx.py`` for each ``--rows`` (rows per
step of the graph's outer loop; conversion time and file size), then embeds the same
utterances (seeded noise of 1.5-6 s) with both, side by side in each repeat: the Embedder
as it is (windows batched, at most 64 per jitted call, after one warm-up), and onnxruntime
on the same windows (``inference.window_indices``, 64 rows per call), averaged and
normalised per utterance as the Embedder does. Prints medians over ``--repeats``, the ratio,
the largest d-vector difference, and the time per call for one window (each utterance's
first) alone. Needs onnxruntime and (to convert) jax2onnx; no
TensorFlow.

  python -m benchmarks.onnx_inference [--preset td --preset ti] [--rows 1,8] [--utterances 16]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time

import jax
import numpy as np

from experiments import export_onnx
from ge2e_jax import inference, model, train_step
from ge2e_jax.features import SAMPLE_RATE
from ge2e_jax.normalize import l2_normalize_np

WINDOW_FRAMES = {"td": 80, "ti": 160}  # the presets' configs' eval.window_frames
BATCH = 64  # the Embedder's default max_windows


def utterances(n: int, seed: int = 0) -> list[np.ndarray]:
  rng = np.random.default_rng(seed)
  return [rng.uniform(-0.5, 0.5, int(rng.uniform(1.5, 6.0) * SAMPLE_RATE)).astype(np.float32)
          for _ in range(n)]


def onnx_embed(run, wavs, window_frames: int) -> np.ndarray:
  """(B, D) d-vectors: each utterance's Embedder windows through ``run``, averaged."""
  windows = [w[inference.window_indices(len(w), window_frames=window_frames)] for w in wavs]
  stacked = np.concatenate(windows)
  rows = np.concatenate([run(stacked[i:i + BATCH]) for i in range(0, len(stacked), BATCH)])
  starts = np.cumsum([0] + [len(w) for w in windows[:-1]])
  return l2_normalize_np(np.add.reduceat(rows.astype(np.float64), starts, axis=0))


def seconds(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def run_preset(preset: str, rows_options, wavs, repeats: int) -> list[dict]:
  config, window_frames = model.preset(preset), WINDOW_FRAMES[preset]
  params = jax.device_get(train_step.init_params(jax.random.key(0), config)["encoder"])
  embedder = inference.Embedder(config, params, window_frames=window_frames,
                                trim=inference.TrimOptions(enabled=False))
  want = embedder.embed_prepared(wavs)  # warm-up: compiles the Embedder's buckets
  n_windows = sum(inference.num_windows(len(w), window_frames) for w in wavs)
  results = []
  with tempfile.TemporaryDirectory() as tmp:
    for rows in rows_options:
      path = os.path.join(tmp, f"{rows}.onnx")
      start = time.perf_counter()
      blob = export_onnx.convert(config, params, window_frames=window_frames, rows=rows)
      convert_s = time.perf_counter() - start
      with open(path, "wb") as f:
        f.write(blob)
      run = export_onnx.load(path)
      got = onnx_embed(run, wavs, window_frames)  # and warm-up
      fns = {"onnx": lambda: onnx_embed(run, wavs, window_frames),
             "jax": lambda: embedder.embed_prepared(wavs)}
      times = {name: [] for name in fns}
      for k in range(repeats):  # alternate which goes first
        for name in (("onnx", "jax") if k % 2 else ("jax", "onnx")):
          times[name].append(seconds(fns[name]))
      one = [w[inference.window_indices(len(w), window_frames=window_frames)][:1] for w in wavs]
      latency = {"onnx": lambda: [run(x) for x in one],
                 "jax": lambda: [embedder.embed_prepared(list(x)) for x in one]}
      for name in latency:
        latency[name]()  # warm-up: the Embedder compiles its smallest bucket
        latency[name] = 1000 * statistics.median(seconds(latency[name]) for _ in range(repeats))
        latency[name] /= len(one)
      results.append({
          "preset": preset, "window_frames": window_frames, "rows": rows, "windows": n_windows,
          "mb": len(blob) / 1e6, "convert_s": convert_s, "onnx_s": statistics.median(times["onnx"]),
          "jax_s": statistics.median(times["jax"]), "onnx_1_ms": latency["onnx"],
          "jax_1_ms": latency["jax"], "diff": float(np.abs(got - want).max())})
  return results


def machine() -> str:
  model_name = platform.processor() or "unknown CPU"
  if os.path.exists("/proc/cpuinfo"):
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    model_name = names[0] if names else model_name
  import onnxruntime  # pylint: disable=g-import-not-at-top  # optional: the onnx extra
  return (f"{model_name}, {os.cpu_count()} cores visible; onnxruntime {onnxruntime.__version__}"
          f" (CPU, default threads), jax {jax.__version__} on {jax.devices()[0].platform}")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--preset", action="append", choices=sorted(WINDOW_FRAMES),
                      help="default: td and ti")
  parser.add_argument("--rows", default="1,8", help="rows per loop step of the ONNX graph")
  parser.add_argument("--utterances", type=int, default=16)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  wavs = utterances(args.utterances)
  print(f"{machine()}; {args.utterances} utterances, {sum(map(len, wavs)) / SAMPLE_RATE:.1f} s "
        f"of audio, medians of {args.repeats}")
  import jax2onnx  # pylint: disable=g-import-not-at-top,unused-import  # not timed as conversion
  print("| preset | windows | ONNX rows per step | .onnx MB | convert s | onnxruntime s "
        "| JAX Embedder s | onnxruntime / JAX | one window: onnxruntime ms | JAX ms "
        "| max abs diff |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for preset in args.preset or ["td", "ti"]:
    for r in run_preset(preset, [int(v) for v in args.rows.split(",")], wavs, args.repeats):
      print(f"| {r['preset']} ({r['window_frames']} frames) | {r['windows']} | {r['rows']} | "
            f"{r['mb']:.2f} | {r['convert_s']:.1f} | {r['onnx_s']:.3f} | {r['jax_s']:.3f} | "
            f"{r['onnx_s'] / r['jax_s']:.1f} | {r['onnx_1_ms']:.1f} | {r['jax_1_ms']:.1f} | "
            f"{r['diff']:.1e} |", flush=True)


if __name__ == "__main__":
  main()
