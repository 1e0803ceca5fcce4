"""Why the speaker cache and not TFDS array_record: random-access crop reads, side by side.

The same corpus (`benchmarks.scale_noise`, `--hours`) prepared by TFDS as `array_record`
(random access through `tfds.data_source`) and as a speaker cache. One td batch (64 x 10
crops of 80 frames, the same random utterances and hop-aligned starts for both) is read
  array_record  `source[i]` per utterance (the whole record is read and decoded), then cropped
  cache         `DiskRows.crops`: one pread of the crop's bytes per utterance
on one thread, page cache dropped before each timed batch (posix_fadvise on the files).
Prints the median seconds per batch and the bytes each reads per batch.

  python -m benchmarks.storage_formats --work_dir /tmp/ge2e_formats [--hours 1] [--batches 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time

import numpy as np
import tensorflow_datasets as tfds

from benchmarks import scale, scale_noise  # pylint: disable=unused-import  # registers it
from data_pipelines import speaker_cache as sc
from ge2e_jax.features import HOP_LENGTH, samples_for_frames

N, M = 64, 10


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default="/tmp/ge2e_formats")
  parser.add_argument("--hours", type=float, default=1)
  parser.add_argument("--batches", type=int, default=5)
  parser.add_argument("--keep", action="store_true")
  args = parser.parse_args()
  name = scale.corpus_name(args.hours)
  try:
    data_dir = os.path.join(args.work_dir, "array_record")
    start = time.perf_counter()
    builder = tfds.builder(name, data_dir=data_dir)
    builder.download_and_prepare(file_format="array_record")
    print(f"array_record corpus: {scale._tree_bytes(builder.data_dir) / 1e9:.2f} GB in "
          f"{time.perf_counter() - start:.0f} s")
    corpus = scale.prepare(args.hours, args.work_dir)  # tfrecord corpus + its speaker cache
    print(f"speaker cache: {corpus['cache_bytes'] / 1e9:.2f} GB, built in "
          f"{corpus['cache_build_s']:.0f} s from the tfrecord corpus")
    source = tfds.data_source(name, split="train", data_dir=data_dir)
    cache = sc.open_cache(corpus["cache_dir"], name, "train", data_dir=corpus["data_dir"])
    disk = sc.DiskRows(cache.audio_path, cache.manifest["num_rows"])
    # Record i of the array_record source -> its position in the cache (by utterance name).
    names = cache.utterance_names(range(cache.manifest["num_utterances"]))
    position = {n: k for k, n in enumerate(names)}
    order = [position[source[i]["utterance"].decode()] for i in range(len(source))]
    lengths, rows = cache.index["utterance_length"], cache.index["utterance_row"]
    length = samples_for_frames(80)
    rng = np.random.default_rng(0)
    times = {"array_record": [], "cache": []}
    bytes_read = {"array_record": [], "cache": []}
    for _ in range(args.batches):
      records = rng.choice(len(source), size=(N, M), replace=False)
      utts = np.array(order)[records]
      starts = (rng.random(utts.shape) * np.maximum((lengths[utts] - length) // HOP_LENGTH + 1,
                                                      1)).astype(np.int64)
      for path in (builder.data_dir, cache.path):
        scale._drop_page_cache(path)
      t = time.perf_counter()
      crops = np.empty((N, M, length), np.int16)
      for at in np.ndindex(N, M):
        audio = source[int(records[at])]["audio"]
        begin = int(starts[at]) * HOP_LENGTH
        crops[at] = np.resize(audio[begin:begin + length], length)
      times["array_record"].append(time.perf_counter() - t)
      bytes_read["array_record"].append(int(lengths[utts].sum()) * 2)
      t = time.perf_counter()
      from_cache = disk.crops(rows[utts] + starts, rows[utts], lengths[utts], length)
      times["cache"].append(time.perf_counter() - t)
      bytes_read["cache"].append(int(np.minimum(lengths[utts], length).sum()) * 2)
      np.testing.assert_array_equal(crops, from_cache)
    print(f"\none td batch ({N}x{M} crops of 80 frames), cold page cache, one thread, "
          f"{args.hours:g} h corpus, median of {args.batches}:")
    print("| format | s per batch | batches/s | MB read per batch (audio payload) |\n|---|---|---|---|")
    for fmt in times:
      s = statistics.median(times[fmt])
      print(f"| {fmt} | {s:.3f} | {1 / s:.1f} | {statistics.median(bytes_read[fmt]) / 1e6:.1f} |")
  finally:
    if not args.keep:
      shutil.rmtree(args.work_dir, ignore_errors=True)


if __name__ == "__main__":
  main()
