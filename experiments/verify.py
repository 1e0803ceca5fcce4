"""Verify test recordings against an enrolled speaker: one JSON line per test file.

  python -m experiments.verify --model=runs/td/export --enroll a.wav b.wav --test c.wav d.wav
  python -m experiments.verify --model=runs/td --enroll_dir=alice/ tests/*.wav
  python -m experiments.verify --model=runs/td --enroll=a.wav --enroll=b.wav --test=c.wav

``--enroll``/``--test`` take the files after them up to the next flag, or one file per
repeated ``--enroll=a.wav``; files after the flags (or after ``--``) are test files. A
space list given last must be ``--test``: ``--enroll a.wav b.wav c.wav`` with no test file
stops and names the files ``--enroll`` took. One stderr line says how many files of each
kind were read.

``--model`` is a training workdir or an export dir. The speaker d-vector is the normalised
mean of the enrolment files' d-vectors; each test file's score is its cosine with it
(``ge2e_jax.inference.Embedder.verify_d_vectors``), AS-normalised with --score_norm=asnorm
--cohort=<npz or folder>. The threshold comes from the model's ``model_card.json`` (the EER
threshold of the evaluation marked as its operating point, or with --operating_point=far the
threshold at the card's false-accept rate; one stderr line says what it was measured on),
unless --threshold is given. Each line: test, score, threshold, accept, llr (when the card
holds a calibration, else null), score_norm, threshold_from. A test file that cannot be
read gives a line with "error" and exit status 1; an unreadable enrolment file stops the run.
"""

import json
import math
import os
import sys

from absl import app, flags

from experiments import cli, trial_lists
from ge2e_jax import audio, inference, progress, scoring

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Training workdir or export dir.")
flags.DEFINE_enum("which", "best", ["best", "latest"], "Checkpoint of a workdir to use.")
flags.DEFINE_multi_string("enroll", [], "Enrolment audio files (--enroll a.wav b.wav works).")
flags.DEFINE_string("enroll_dir", None, "A folder whose audio files are all enrolment files.")
flags.DEFINE_multi_string("test", [], "Test audio files or folders (positional arguments too).")
flags.DEFINE_float("threshold", None, "Accept when score >= this (default: the model card's).")
flags.register_validator("threshold", lambda v: v is None or math.isfinite(v),
                         "--threshold must be a finite number (a score, e.g. 0.7)")
flags.DEFINE_enum("operating_point", "eer", ["eer", "far"],
                  "Model-card threshold: at the equal error rate, or at its false-accept rate.")
flags.DEFINE_enum("score_norm", "none", ["none", "asnorm"], "Score normalisation.")
flags.DEFINE_string("cohort", None, "AS-norm cohort: an npz with 'embeddings' or a folder.")
flags.DEFINE_integer("top_k", None, "AS-norm: cohort scores kept per side (default: the "
                     f"model card's, else {scoring.DEFAULT_TOP_K}).")
flags.DEFINE_bool("trim_silence", True, "Cut leading and trailing silence (energy VAD).")
flags.DEFINE_integer("batch_files", 32, "Test files read and embedded together.", lower_bound=1)
flags.mark_flag_as_required("model")
cli.define_quiet_flag()

LIST_FLAGS = ("enroll", "test")


def expand_lists(argv):
  """``--enroll a.wav b.wav`` -> ``--enroll=a.wav --enroll=b.wav`` (likewise --test)."""
  expanded, current = [argv[0]], None
  for i, arg in enumerate(argv[1:], 1):
    if arg == "--":
      expanded.extend(argv[i:])
      break
    if arg.startswith("--") and arg[2:] in LIST_FLAGS:
      current = arg[2:]
      continue
    if current is not None and not arg.startswith("-"):
      expanded.append(f"--{current}={arg}")
      continue
    current = None
    expanded.append(arg)
  return expanded


def _files(inputs):
  found = []
  for path in inputs:
    found.extend(trial_lists.list_audio(path) if os.path.isdir(path) else [path])
  return found


def main(argv):
  enroll = _files(FLAGS.enroll + ([FLAGS.enroll_dir] if FLAGS.enroll_dir else []))
  tests = _files(FLAGS.test + argv[1:])
  if not enroll:
    raise app.UsageError("no enrolment files: give --enroll a.wav [b.wav ...] or --enroll_dir")
  if not tests:
    took = f" (--enroll took {' '.join(FLAGS.enroll)})" if FLAGS.enroll else ""
    raise app.UsageError(f"no test files{took}: give them after --test, e.g. --enroll a.wav "
                         "b.wav --test c.wav")
  if (FLAGS.score_norm == "asnorm") != (FLAGS.cohort is not None):
    raise app.UsageError("--score_norm=asnorm and --cohort=<npz or folder> go together")
  try:
    embedder = inference.load(FLAGS.model, FLAGS.which,
                              trim=inference.TrimOptions(enabled=FLAGS.trim_silence))
    cohort = None
    if FLAGS.cohort:
      cohort, _ = trial_lists.load_cohort(embedder, FLAGS.cohort, FLAGS.batch_files)
  except cli.user_errors() as err:  # NoUsableCheckpointError and damaged exports included
    sys.exit(f"verify: cannot load --model/--cohort: {' '.join(str(err).split())}")
  try:
    speaker = embedder.embed_files(enroll)
  except audio.AudioReadError as err:
    sys.exit(f"verify: cannot read enrolment file {err.path}: {err.reason}")
  try:
    threshold, threshold_from = embedder.threshold(FLAGS.score_norm, FLAGS.operating_point,
                                                   FLAGS.threshold)
  except ValueError as err:
    sys.exit(f"verify: {err}")
  print(f"verify: {len(enroll)} enrolment file(s), {len(tests)} test file(s); threshold "
        f"{threshold:.4f} ({threshold_from}); model {embedder.source}", file=sys.stderr)
  options = dict(threshold=FLAGS.threshold, operating_point=FLAGS.operating_point,
                 cohort=cohort, top_k=FLAGS.top_k)
  failed = 0
  with progress.Progress("verify", total=len(tests)) as bar:
    for start in range(0, len(tests), FLAGS.batch_files):
      batch, wavs, lines = tests[start:start + FLAGS.batch_files], [], {}
      for path in batch:
        try:
          wavs.append(embedder.read(path))
        except audio.AudioReadError as err:
          lines[path], failed = {"test": path, "error": err.reason}, failed + 1
      readable = [p for p in batch if p not in lines]
      if readable:
        results = embedder.verify_d_vectors(speaker, embedder.embed_prepared(wavs), **options)
        lines.update({p: {"test": p, **r} for p, r in zip(readable, results)})
      for path in batch:
        print(json.dumps(lines[path]), flush=True)
      bar.advance(len(batch))
  if failed:
    sys.exit(f"verify: {failed} test file(s) could not be read (see their 'error')")


def run():
  """The ``ge2e-verify`` console script (setup.cfg), with ``--enroll a.wav b.wav`` lists."""
  cli.run(main, "verify", expand_argv=expand_lists)


if __name__ == "__main__":
  run()
