"""Input pipeline throughput beside the train step's consumption rate, measured in one run.

For the paper's td (64 x 10, 80 frames) and ti (64 x 10, 140-180 frames) shapes: batches/s
and audio-seconds/s of `speaker_batches` (median of timed windows after warm-up), with all
cores and with one tf.data thread, next to `benchmarks.train_step.time_train_step` on the
same machine. The pipeline should outrun the step by >= 2x (td, 2 cores).

Corpora: synthetic_voices (espeak-ng) built once into the cache dir
(`--cache_dir`, else $GE2E_BENCH_DATA, else ~/.cache/ge2e_jax/bench).

  python -m benchmarks.input_pipeline [--windows 5] [--window_batches 10] [--skip_train_step]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from benchmarks.train_step import time_train_step
from data_pipelines import speaker_batches as sb
from data_pipelines.builders import synthetic_voices
from ge2e_jax.features import SAMPLE_RATE

N, M = 64, 10
# (preset, corpus config, crop, frames the train step is timed at: the crop's mean for ti).
CASES = (
    ("td", dict(name="bench_td", phrase="ok computer"), "td", 80),
    ("ti", dict(name="bench_ti"), "ti", 160),
)


def build_corpus(cache_dir: str, speakers: int, utterances: int, **config) -> str:
  """Prepares a synthetic_voices config (cached) and returns its TFDS name."""
  cfg = synthetic_voices.SyntheticVoicesConfig(
      num_train_speakers=speakers, num_test_speakers=4, num_unseen_lang_speakers=0,
      utterances_per_speaker=utterances,
      **config)
  builder = tfds.builder("synthetic_voices", config=cfg, data_dir=cache_dir)
  start = time.perf_counter()
  builder.download_and_prepare()
  print(f"corpus {cfg.name}: ready in {time.perf_counter() - start:.1f} s "
        f"({speakers} train speakers x {utterances} utterances) under {cache_dir}")
  return f"synthetic_voices/{cfg.name}"


def time_pipeline(dataset: tf.data.Dataset, windows: int, window_batches: int,
                  warmup: int = 5) -> dict[str, float]:
  """Median batches/s and audio-seconds/s over `windows` windows after `warmup` batches."""
  it = dataset.as_numpy_iterator()
  for _ in range(warmup):
    next(it)
  rates, audio_rates = [], []
  for _ in range(windows):
    start, audio_s = time.perf_counter(), 0.0
    for _ in range(window_batches):
      audio_s += next(it)["audio"].size / SAMPLE_RATE
    elapsed = time.perf_counter() - start
    rates.append(window_batches / elapsed)
    audio_rates.append(audio_s / elapsed)
  return {"batches_per_s": statistics.median(rates),
          "audio_s_per_s": statistics.median(audio_rates)}


def one_thread(dataset: tf.data.Dataset) -> tf.data.Dataset:
  """The pipeline confined to one thread (what it costs a core of the training host)."""
  options = tf.data.Options()
  options.threading.private_threadpool_size = 1
  options.threading.max_intra_op_parallelism = 1
  return dataset.with_options(options)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cache_dir", default=os.environ.get(
      "GE2E_BENCH_DATA", os.path.expanduser("~/.cache/ge2e_jax/bench")))
  parser.add_argument("--speakers", type=int, default=N)
  parser.add_argument("--utterances", type=int, default=12)
  parser.add_argument("--windows", type=int, default=5)
  parser.add_argument("--window_batches", type=int, default=10)
  parser.add_argument("--train_steps", type=int, default=5)
  parser.add_argument("--skip_train_step", action="store_true")
  args = parser.parse_args()

  rows = []
  for preset, config, crop, frames in CASES:
    name = build_corpus(args.cache_dir, args.speakers, args.utterances, **config)
    pipeline = sb.speaker_batches(name, "train", data_dir=args.cache_dir, n_speakers=N,
                                  n_utterances=M, crop=crop, seed=0)
    print(f"{preset}: padding stats {pipeline.stats}")
    row = {"preset": preset,
           "all": time_pipeline(pipeline.dataset(), args.windows, args.window_batches),
           "one": time_pipeline(one_thread(pipeline.dataset()), args.windows,
                                args.window_batches)}
    if not args.skip_train_step:
      row["step"] = time_train_step(preset, N, M, frames, steps=args.train_steps)
    rows.append(row)

  print(f"\ninput pipeline vs train step, N x M = {N} x {M}, {os.cpu_count()} cores"
        f" (tf {tf.__version__})")
  print(f"{'preset':6} {'pipeline b/s':>12} {'audio s/s':>10} {'1-thread b/s':>12} "
        f"{'step s':>8} {'step b/s':>9} {'pipeline/step':>13}")
  for row in rows:
    step = row.get("step")
    step_s = f"{step['median_s']:8.3f}" if step else f"{'-':>8}"
    step_bps = f"{1 / step['median_s']:9.2f}" if step else f"{'-':>9}"
    ratio = f"{row['all']['batches_per_s'] * step['median_s']:12.1f}x" if step else f"{'-':>13}"
    print(f"{row['preset']:6} {row['all']['batches_per_s']:12.2f} "
          f"{row['all']['audio_s_per_s']:10.0f} {row['one']['batches_per_s']:12.2f} "
          f"{step_s} {step_bps} {ratio}")


if __name__ == "__main__":
  main()
