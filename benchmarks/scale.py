"""Corpus size and host count against start-up, reads, RAM and throughput: in-RAM vs cache.

Synthetic noise corpora of `--hours` (default 1, 10, 50) are prepared as real TFDS datasets
(`benchmarks/scale_noise.py`: noise-like int16 audio, 16 utterances per speaker, >= 64 speakers)
and as speaker caches (`data_pipelines.speaker_cache.write_cache`) from the same records.
For every corpus, P in `--hosts` (default 1, 4, 16) simulated hosts (host 0 of P, via
process_index/process_count; hosts are symmetric) and every storage path
  tfds-ram    `storage="memory"`, no cache: the shard loaded from the TFDS split (2 passes)
  cache-ram   `storage="memory"` with a cache: the host's byte ranges copied into RAM
  cache-disk  `storage="cache"`: crops read per batch from the cache file
a fresh subprocess (page cache of the corpus files dropped first with posix_fadvise) measures
start-up seconds (shard load), bytes read (/proc/self/io: rchar = read syscalls,
read_bytes = from the block device), peak RSS (VmHWM) and batches/s of host 0's
N/P x M batches at td and ti (N x M = 64 x 10; median of windows). `--train_steps` also runs
the trainer (`experiments.training_loop`, td 64 x 10, storage="cache") on the largest corpus for a
few steps, once per `--encoder_chunks` value, and reports its peak RSS and seconds. Corpora
are deleted afterwards unless --keep.

  python -m benchmarks.scale --work_dir /tmp/ge2e_scale [--hours 1,10,50] [--hosts 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import tensorflow as tf
import tensorflow_datasets as tfds

from benchmarks import scale_noise
from data_pipelines import speaker_batches as sb
from data_pipelines import speaker_cache as sc
from experiments import training_loop
from experiments.configs import td

N, M = 64, 10
STORAGES = ("tfds-ram", "cache-ram", "cache-disk")


def corpus_name(hours: float) -> str:
  return f"scale_noise/h{hours:g}"  # a builder config of benchmarks.scale_noise


def builder(hours: float, data_dir: str):
  if hours not in scale_noise.HOURS:
    raise ValueError(f"--hours must be among {scale_noise.HOURS}; got {hours:g}")
  return tfds.builder(corpus_name(hours), data_dir=data_dir)


def open_split(hours: float, data_dir: str, with_audio: bool = True):
  """The split as `corpus.open_split` gives it (this builder is not one it adapts)."""
  decoders = None if with_audio else tfds.decode.PartialDecoding(
      {"speaker": True, "utterance": True, "text": True})
  return builder(hours, data_dir).as_dataset(split="train", decoders=decoders)


def prepare(hours: float, work_dir: str) -> dict:
  """TFDS corpus + speaker cache of `hours`; their sizes and build seconds."""
  data_dir, cache_dir = os.path.join(work_dir, "tfds"), os.path.join(work_dir, "cache")
  start = time.perf_counter()
  found = builder(hours, data_dir)
  found.download_and_prepare()
  tfds_s = time.perf_counter() - start

  def examples():
    for ex in open_split(hours, data_dir).as_numpy_iterator():
      yield ex["speaker"].decode(), ex["utterance"].decode(), ex["audio"]

  identity = sc.corpus_identity(found)
  identity["name"] = corpus_name(hours)
  path = sc.cache_path(cache_dir, corpus_name(hours), "train")
  if os.path.exists(path):
    manifest = sc.open_cache(cache_dir, corpus_name(hours), "train", data_dir=data_dir).manifest
  else:
    manifest = sc.write_cache(examples(), path, corpus=identity, split="train")
  return {"hours": hours, "speakers": manifest["num_speakers"],
          "utterances": manifest["num_utterances"], "tfds_bytes": _tree_bytes(found.data_dir),
          "cache_bytes": _tree_bytes(path), "tfds_build_s": tfds_s,
          "cache_build_s": manifest["build_seconds"], "data_dir": data_dir,
          "cache_dir": cache_dir, "tfds_path": str(found.data_dir), "cache_path": path}


def _tree_bytes(path) -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def _drop_page_cache(path) -> None:
  """Evicts `path`'s files from the page cache (this process's own files only)."""
  for d, _, files in os.walk(path):
    for f in files:
      fd = os.open(os.path.join(d, f), os.O_RDONLY)
      try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
      finally:
        os.close(fd)


def peak_rss() -> int:
  """This process's peak resident set in bytes (VmHWM: unlike ru_maxrss, not inherited from
  the parent across fork + exec)."""
  with open("/proc/self/status") as f:
    return 1024 * int(next(line for line in f if line.startswith("VmHWM")).split()[1])


def _io() -> dict[str, int]:
  with open("/proc/self/io") as f:
    return {k: int(v) for k, v in (line.split(": ") for line in f)}


def _rate(dataset, windows: int, per_window: int, warmup: int = 3) -> float:
  """Median batches/s over `windows` windows of `per_window` batches after `warmup`."""
  it = dataset.as_numpy_iterator()
  for _ in range(warmup):
    next(it)
  rates = []
  for _ in range(windows):
    start = time.perf_counter()
    for _ in range(per_window):
      next(it)
    rates.append(per_window / (time.perf_counter() - start))
  return statistics.median(rates)


def measure(args) -> dict:
  """One (corpus, P, storage) case for host 0, in this (fresh) process."""
  tf.constant(0)  # TF's own start-up is not the pipeline's
  rss_before = peak_rss()
  io, start = _io(), time.perf_counter()
  host = dict(min_utterances=M, process_index=0, process_count=args.P)
  name = corpus_name(args.hours)
  if args.storage == "tfds-ram":
    source = sb.split_examples(lambda with_audio: open_split(args.hours, args.data_dir,
                                                             with_audio), what=name)
  else:
    source = sc.open_cache(args.cache_dir, name, "train", data_dir=args.data_dir)
  shard = sb.load_shard(source, in_memory=args.storage != "cache-disk", what=name, **host)
  startup_s = time.perf_counter() - start
  after = _io()
  rss_loaded = peak_rss()
  out = {"startup_s": startup_s, "rchar": after["rchar"] - io["rchar"],
         "read_bytes": after["read_bytes"] - io["read_bytes"], "rss_after_tf": rss_before,
         "rss_after_load": rss_loaded}
  for crop in ("td", "ti"):
    pipeline = sb.SpeakerBatches(shard, n_speakers=N, n_utterances=M, crop=crop, seed=0,
                                 process_count=args.P)
    out[f"{crop}_batches_per_s"] = _rate(pipeline.dataset(), args.windows, args.per_window)
  out["peak_rss"] = peak_rss()
  return out


def train(args) -> dict:
  """A few trainer steps (td 64 x 10, storage="cache", `args.encoder_chunks`) on corpus
  `args.hours`, in this process."""
  config = td.get_config()
  config.data.sources = {"scale": {"corpus": corpus_name(args.hours)}}
  config.data.data_dir, config.data.cache_dir = args.data_dir, args.cache_dir
  config.data.storage = "cache"
  config.data.n_speakers, config.data.n_utterances, config.data.crop = N, M, "td"
  # One log at the end: between logs the host runs ahead of the device (bounded by
  # training_loop.MAX_STEPS_AHEAD), as in a real run.
  config.train.num_steps, config.train.log_every = args.train_steps, args.train_steps
  config.train.encoder_chunks = int(args.encoder_chunks)
  config.eval.every = 0
  imported = peak_rss()  # TensorFlow, JAX and the trainer imported
  start = time.perf_counter()
  training_loop.train_and_evaluate(config, args.workdir)
  return {"seconds": time.perf_counter() - start, "steps": args.train_steps,
          "encoder_chunks": int(args.encoder_chunks), "rss_after_imports": imported,
          "peak_rss": peak_rss()}


def _subprocess(mode: str, **flags) -> dict:
  cmd = [sys.executable, "-m", "benchmarks.scale", f"--{mode}",
         *(f"--{k}={v}" for k, v in flags.items())]
  proc = subprocess.run(cmd, capture_output=True, text=True,
                        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
  if proc.returncode:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _gb(n) -> str:
  return f"{n / 1e9:.2f}"


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--work_dir", default="/tmp/ge2e_scale")
  parser.add_argument("--hours", default="1,10,50")
  parser.add_argument("--hosts", default="1,4,16")
  parser.add_argument("--max_ram_gb", type=float, default=4.0,
                      help="skip in-RAM cases whose shard would exceed this (shared machine)")
  parser.add_argument("--windows", type=int, default=3)
  parser.add_argument("--per_window", type=int, default=8)
  parser.add_argument("--train_steps", type=int, default=12)
  parser.add_argument("--encoder_chunks", default="1,4",
                      help="train.encoder_chunks of the trainer runs (one run each)")
  parser.add_argument("--keep", action="store_true", help="keep the generated corpora")
  # One case in a fresh process (used by the driver).
  parser.add_argument("--measure", action="store_true")
  parser.add_argument("--train", action="store_true")
  parser.add_argument("--storage", choices=STORAGES)
  parser.add_argument("--P", type=int)
  parser.add_argument("--data_dir")
  parser.add_argument("--cache_dir")
  parser.add_argument("--workdir")
  args = parser.parse_args()
  if args.measure or args.train:
    args.hours = float(args.hours)
    print(json.dumps(measure(args) if args.measure else train(args)))
    return

  start = time.perf_counter()
  corpora, rows = [], []
  try:
    for hours in (float(h) for h in args.hours.split(",")):
      corpus = prepare(hours, args.work_dir)
      corpora.append(corpus)
      print(f"corpus {hours:g} h: {corpus['speakers']} speakers, {corpus['utterances']} "
            f"utterances; TFDS {_gb(corpus['tfds_bytes'])} GB in {corpus['tfds_build_s']:.0f} "
            f"s, cache {_gb(corpus['cache_bytes'])} GB in {corpus['cache_build_s']:.0f} s",
            flush=True)
      for hosts in (int(p) for p in args.hosts.split(",")):
        for storage in STORAGES:
          row = {"hours": hours, "P": hosts, "storage": storage}
          shard_gb = corpus["cache_bytes"] / hosts / 1e9
          if storage != "cache-disk" and shard_gb > args.max_ram_gb:
            row["skipped"] = f"shard {shard_gb:.1f} GB > --max_ram_gb {args.max_ram_gb:g}"
          else:
            _drop_page_cache(corpus["tfds_path"] if storage == "tfds-ram"
                             else corpus["cache_path"])
            row.update(_subprocess("measure", hours=hours, P=hosts, storage=storage,
                                   data_dir=corpus["data_dir"], cache_dir=corpus["cache_dir"],
                                   windows=args.windows, per_window=args.per_window))
          rows.append(row)
          print(_row(row), flush=True)
    trained, corpus = [], corpora[-1]
    for chunks in [int(c) for c in args.encoder_chunks.split(",")] if args.train_steps else []:
      _drop_page_cache(corpus["cache_path"])
      run = _subprocess("train", hours=corpus["hours"], data_dir=corpus["data_dir"],
                        cache_dir=corpus["cache_dir"], train_steps=args.train_steps,
                        encoder_chunks=chunks,
                        workdir=os.path.join(args.work_dir, f"train{chunks}"))
      trained.append(run)
      print(f"\ntrainer, {corpus['hours']:g} h, storage=cache, td {N}x{M}, encoder_chunks "
            f"{chunks}: {run['steps']} steps in {run['seconds']:.1f} s (compile, checkpoint and "
            f"start-up included), peak RSS {_gb(run['peak_rss'])} GB "
            f"({_gb(run['rss_after_imports'])} GB after imports)", flush=True)
  finally:
    if not args.keep:
      shutil.rmtree(args.work_dir, ignore_errors=True)
  print(f"\n{N}x{M}, host 0 of P, {os.cpu_count()} cores; total {time.perf_counter() - start:.0f} s")
  print(HEADER)
  for row in rows:
    print(_row(row))
  with open(os.path.join(os.path.dirname(args.work_dir.rstrip("/")) or ".",
                         "ge2e_scale_results.json"), "w") as f:
    json.dump({"corpora": corpora, "rows": rows, "train": trained}, f, indent=1)


HEADER = ("| hours | P | storage | start-up s | read GB (rchar) | from disk GB | peak RSS GB | "
          "td batches/s | ti batches/s |\n|---|---|---|---|---|---|---|---|---|")


def _row(row) -> str:
  head = f"| {row['hours']:g} | {row['P']} | {row['storage']} |"
  if "skipped" in row:
    return f"{head} not run: {row['skipped']} | | | | | |"
  return (f"{head} {row['startup_s']:.1f} | {_gb(row['rchar'])} | {_gb(row['read_bytes'])} | "
          f"{_gb(row['peak_rss'])} | {row['td_batches_per_s']:.1f} | "
          f"{row['ti_batches_per_s']:.1f} |")


if __name__ == "__main__":
  main()
