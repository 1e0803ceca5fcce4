"""Builds the speaker cache of one corpus split (`data_pipelines.speaker_cache`), once.

  python -m data_pipelines.build_cache --corpus=synthetic_voices/td_ok_computer \
      --split=train --data_dir=runs/tfds --cache_dir=runs/cache [--overwrite]
  python -m data_pipelines.build_cache ... --verify   # re-read a cache (e.g. after copying it)

Multi-host jobs: run it once, before the job, where every host can read the result (a shared
file system, or build on one machine and copy the directory; `--verify` checks the copy).
Training opens the cache read-only and never builds it: a missing, stale or truncated cache is
an error that prints this command.
"""

import argparse
import logging

from data_pipelines import speaker_cache
from ge2e_jax import progress


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--corpus", required=True, help="TFDS name, e.g. synthetic_voices/ti")
  parser.add_argument("--split", required=True, choices=("train", "test"))
  parser.add_argument("--data_dir", default="", help="TFDS data_dir; '' = TFDS default")
  parser.add_argument("--cache_dir", required=True)
  parser.add_argument("--overwrite", action="store_true", help="replace an existing cache")
  parser.add_argument("--verify", action="store_true",
                      help="check an existing cache (manifest, index, size, audio CRC-32)")
  parser.add_argument("--quiet", action="store_true", help="no progress bar or lines")
  args = parser.parse_args(argv)
  progress.set_quiet(args.quiet)
  logging.basicConfig(level=logging.INFO, format="%(message)s")
  data_dir = args.data_dir or None
  if not args.verify:
    speaker_cache.build_from_corpus(args.corpus, args.split, args.cache_dir, data_dir,
                                    overwrite=args.overwrite)
  cache = speaker_cache.open_cache(args.cache_dir, args.corpus, args.split, data_dir=data_dir)
  if args.verify:
    speaker_cache.verify_audio(cache)
  m = cache.manifest
  print(f"{cache.path}: {m['num_speakers']} speakers, {m['num_utterances']} utterances, "
        f"{m['num_samples'] / m['sample_rate'] / 3600:.2f} h, {m['audio_bytes']} bytes"
        f"{', audio CRC-32 ok' if args.verify else ''}")


if __name__ == "__main__":
  main()
