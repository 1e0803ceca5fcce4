"""The same encoder, two runtimes: Resemblyzer's VoiceEncoder (PyTorch) vs its ge2e_jax import.

Both embed the same utterances with the same weights (resemblyzer's ``pretrained.pt``, read
by ``ge2e_jax.pretrained`` without torch for ours) and the same partial windows:
Resemblyzer with ``VoiceEncoder.embed_utterance`` per utterance (its API; torch with its
default threads), ge2e_jax with ``Embedder.embed_prepared`` over all of them (windows of
all utterances batched through the jitted encoder in power-of-two buckets). Each side: one
untimed call (jit compiles, torch warms up), then the median of ``--repeats`` timed calls.
Also reports how far apart the d-vectors are. Needs the bench extra (torch, resemblyzer).

  python -m benchmarks.pretrained_inference [--utterances 32] [--seconds 4] [--repeats 3]
"""

import argparse
import json
import os
import platform
import statistics
import time

import jax
import numpy as np
# Optional (the bench extra): the reference runtime being compared against.
import resemblyzer
import torch

from ge2e_jax import inference, pretrained
from ge2e_jax.features import SAMPLE_RATE


def median_seconds(fn, repeats: int) -> tuple[float, float]:
  """(median of ``repeats`` timed calls, seconds of the first untimed call)."""
  start = time.perf_counter()
  fn()
  first = time.perf_counter() - start
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times), first


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--utterances", type=int, default=32)
  parser.add_argument("--seconds", type=float, default=4.0, help="length of each utterance")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--max_windows", type=int, default=256, help="Embedder chunk size")
  parser.add_argument("--torch_threads", type=int, action="append", default=[],
                      help="also time Resemblyzer with this many torch threads (repeatable)")
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args()
  weights = os.path.join(os.path.dirname(resemblyzer.__file__), "pretrained.pt")
  print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores; "
        f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads")

  rs = np.random.RandomState(0)
  wavs = [(0.1 * rs.randn(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
          for _ in range(args.utterances)]
  reference = resemblyzer.VoiceEncoder("cpu", verbose=False, weights_fpath=weights)
  config, params = pretrained.load(weights, "resemblyzer")
  embedder = inference.Embedder(config, params, trim=inference.TrimOptions(enabled=False),
                                max_windows=args.max_windows, source=weights)
  windows = sum(inference.num_windows(len(w), config=config) for w in wavs)

  default_threads = torch.get_num_threads()
  cases = [(f"resemblyzer VoiceEncoder.embed_utterance (torch, {default_threads} threads: "
            "default)", default_threads)]
  cases += [(f"resemblyzer VoiceEncoder.embed_utterance (torch, {n} threads)", n)
            for n in args.torch_threads]
  rows = []
  for name, threads in cases:
    torch.set_num_threads(threads)
    median, first = median_seconds(
        lambda: np.stack([reference.embed_utterance(w) for w in wavs]), args.repeats)
    rows.append({"runtime": name, "median_s": median, "first_call_s": first})
  torch.set_num_threads(default_threads)
  median, first = median_seconds(lambda: embedder.embed_prepared(wavs), args.repeats)
  rows.append({"runtime": "ge2e_jax Embedder.embed_prepared (imported weights)",
               "median_s": median, "first_call_s": first})
  for row in rows:
    row.update(utterances_per_s=args.utterances / row["median_s"],
               windows_per_s=windows / row["median_s"])
  ours, theirs = embedder.embed_prepared(wavs), np.stack([reference.embed_utterance(w)
                                                          for w in wavs])
  ratio = rows[-1]["utterances_per_s"] / rows[0]["utterances_per_s"]
  print(f"{args.utterances} utterances of {args.seconds:g} s, {windows} partial windows of 160 "
        f"frames; median of {args.repeats}")
  print("| runtime | utterances/s | windows/s | median s | first call s |")
  print("|---|---:|---:|---:|---:|")
  for row in rows:
    print(f"| {row['runtime']} | {row['utterances_per_s']:.1f} | {row['windows_per_s']:.0f} | "
          f"{row['median_s']:.3f} | {row['first_call_s']:.1f} |")
  print(f"ge2e_jax / resemblyzer (default threads) throughput: {ratio:.2f}x; d-vectors: max |diff| "
        f"{np.max(np.abs(ours - theirs)):.2e}, min cosine {np.min(np.sum(ours * theirs, 1)):.6f}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"rows": rows, "ratio": ratio, "utterances": args.utterances,
                 "seconds": args.seconds, "windows": int(windows)}, f, indent=1)


if __name__ == "__main__":
  main()
