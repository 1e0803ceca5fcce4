"""Build time of the synthetic_voices corpus: procedural speakers beside stock variants.

Builds, one after the other in one run and into a fresh temporary data_dir, the demo's
corpus `td_ok_computer` (procedural speakers; train, test and test_unseen_lang) and
`td_ok_computer_stock` (the stock-variant English corpus it replaced), each `--repeats`
times, and prints the median wall seconds and milliseconds per utterance of each.
`--speakers N` times a procedural build with N train speakers instead of the demo size.

  python -m benchmarks.corpus_build [--repeats 1] [--utterances 20] [--speakers 2000]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time

import tensorflow_datasets as tfds

from data_pipelines.builders import synthetic_voices


def build_seconds(config: synthetic_voices.SyntheticVoicesConfig, data_dir: str) -> float:
  builder = tfds.builder("synthetic_voices", config=config, data_dir=data_dir)
  start = time.perf_counter()
  builder.download_and_prepare(
      download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--utterances", type=int, default=20, help="Utterances per speaker.")
  parser.add_argument("--speakers", type=int, default=0,
                      help="> 0: time only a procedural build with this many train speakers.")
  args = parser.parse_args()
  configs = {c.name: c for c in synthetic_voices.SyntheticVoices.BUILDER_CONFIGS}
  if args.speakers:
    cases = [dataclasses.replace(configs["td_ok_computer"], name=f"td_{args.speakers}",
                                 num_train_speakers=args.speakers)]
  else:
    cases = [configs["td_ok_computer"], configs["td_ok_computer_stock"]]
  # Renamed: TFDS refuses a custom config named like one of the builder's own.
  cases = [dataclasses.replace(c, name=f"bench_{c.name}", utterances_per_speaker=args.utterances)
           for c in cases]
  print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at start")
  for config in cases:
    utterances = config.utterances_per_speaker * len(synthetic_voices.speakers(config))
    times = []
    for _ in range(args.repeats):
      with tempfile.TemporaryDirectory(prefix="corpus-bench-") as data_dir:
        times.append(build_seconds(config, data_dir))
    median = statistics.median(times)
    print(f"{config.name}: {utterances} utterances, median {median:.1f} s over {len(times)} "
          f"build(s), {1000 * median / utterances:.1f} ms/utterance "
          f"(load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
  main()
