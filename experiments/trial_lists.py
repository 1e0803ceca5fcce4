"""Scoring the user's own audio: trial lists, speaker-folder trees and AS-norm cohorts.

Used by ``experiments/evaluate.py`` (--trials, --speaker_dir, --cohort) and
``experiments/verify.py`` (--cohort). No TensorFlow and no flags here.

- A trial list has one trial per line, VoxCeleb style: ``label enrol_path test_path`` with
  label 1 (target, same speaker) or 0 (non-target); ``target``/``nontarget`` also work. Paths
  are relative to an audio root (or absolute); blank lines and lines starting with ``#``
  are skipped.
- A speaker-folder tree has one folder per speaker under the root, audio files anywhere
  below it; trials enrol every speaker on ``enroll`` random utterances and score all other
  utterances against every speaker (``ge2e_jax.metrics.speaker_trials``).
- A cohort is an npz with ``embeddings`` (as ``experiments.embed`` writes) or a folder of
  audio files (one cohort d-vector per file): speakers who are in no trial.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

import numpy as np

from ge2e_jax import audio, metrics, progress, scoring

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
LABELS = {"1": 1, "0": 0, "target": 1, "nontarget": 0}
MAX_LISTED = 10


class Trial(NamedTuple):
  label: int
  enrol: str
  test: str


def read_trials(path: str, audio_root: str | None = None) -> list[Trial]:
  """Trials of a list file; raises ValueError listing every bad line by its number."""
  trials, bad = [], []
  with open(path) as f:
    for number, line in enumerate(f, 1):
      fields = line.split()
      if not fields or fields[0].startswith("#"):
        continue
      if len(fields) != 3 or fields[0].lower() not in LABELS:
        bad.append(f"{path}:{number}: {line.strip()[:80]!r}")
        continue
      enrol, test = (os.path.join(audio_root, p) if audio_root else p for p in fields[1:])
      trials.append(Trial(LABELS[fields[0].lower()], enrol, test))
  if bad:
    raise ValueError(f"{path}: {len(bad)} line(s) are not 'label enrol_path test_path' with "
                     f"label 1/0 (or target/nontarget): " + "; ".join(bad[:MAX_LISTED])
                     + (" ..." if len(bad) > MAX_LISTED else ""))
  if not trials:
    raise ValueError(f"{path}: holds no trials")
  return trials


def list_audio(folder: str) -> list[str]:
  """Audio files under ``folder`` (sorted walk)."""
  found = []
  for root, dirs, files in os.walk(folder):
    dirs.sort()
    found.extend(os.path.join(root, f) for f in sorted(files)
                 if f.lower().endswith(AUDIO_EXTENSIONS))
  return found


def speaker_folders(root: str) -> tuple[list[str], list[str]]:
  """(audio paths, speaker of each) of a tree with one folder per speaker under ``root``."""
  if not os.path.isdir(root):
    raise FileNotFoundError(f"--speaker_dir {root} is not a directory")
  paths, speakers = [], []
  for speaker in sorted(os.listdir(root)):
    if os.path.isdir(os.path.join(root, speaker)):
      found = list_audio(os.path.join(root, speaker))
      paths.extend(found)
      speakers.extend([speaker] * len(found))
  if not paths:
    raise ValueError(f"{root}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in speaker "
                     "folders; expected <root>/<speaker>/.../<file>")
  return paths, speakers


def embed_unique(embedder, paths, skip_unreadable: bool, batch_files: int = 32):
  """({path: row}, (rows, D) d-vectors, {skipped path: reason}) of the distinct ``paths``.

  Reads and embeds ``batch_files`` files at a time. An unreadable file raises
  ``audio.AudioReadError`` unless ``skip_unreadable``.
  """
  unique = list(dict.fromkeys(paths))
  rows, blocks, skipped = {}, [], {}
  with progress.Progress("embed", total=len(unique)) as bar:
    for first in range(0, len(unique), batch_files):
      wavs = []
      for path in unique[first:first + batch_files]:
        try:
          wavs.append(embedder.read(path))
          rows[path] = len(rows)
        except audio.AudioReadError as err:
          if not skip_unreadable:
            raise
          skipped[path] = err.reason
      blocks.append(embedder.embed_prepared(wavs))
      bar.advance(len(unique[first:first + batch_files]))
  return rows, np.concatenate(blocks), skipped


def report_skipped(skipped: dict, what: str):
  if skipped:
    print(f"skipped {len(skipped)} unreadable {what} file(s):", file=sys.stderr)
    for path, reason in skipped.items():
      print(f"  {path}: {reason}", file=sys.stderr)


def load_cohort(embedder, path: str, batch_files: int = 32) -> tuple[np.ndarray, str]:
  """((C, D) cohort d-vectors, description) from an npz or a folder of audio files."""
  if os.path.isdir(path):
    files = list_audio(path)
    if len(files) < 2:
      raise ValueError(f"cohort folder {path} holds {len(files)} audio files; AS-norm needs >= 2")
    _, cohort, skipped = embed_unique(embedder, files, skip_unreadable=True,
                                      batch_files=batch_files)
    report_skipped(skipped, "cohort")
  elif os.path.isfile(path):
    try:
      with np.load(path) as npz:
        cohort = np.asarray(npz["embeddings"], np.float64)
    except (OSError, ValueError, KeyError) as err:
      raise ValueError(f"cohort {path}: expected an npz with 'embeddings' (experiments.embed "
                       f"writes one): {err}") from err
  else:
    raise FileNotFoundError(f"cohort {path} is neither an npz file nor a folder of audio files")
  if cohort.ndim != 2 or cohort.shape[0] < 2 or cohort.shape[1] != embedder.dim:
    raise ValueError(f"cohort {path}: expected (C >= 2, {embedder.dim}) d-vectors of this model, "
                     f"got shape {cohort.shape}")
  return cohort, f"{path} ({cohort.shape[0]} d-vectors)"


class Scored(NamedTuple):
  """Scores of a set of trials, with what they came from."""
  scores: np.ndarray  # (n,) float64, AS-normed when a cohort was given
  labels: np.ndarray  # (n,) int 1/0
  enrol: list         # (n,) enrolment file (trial list) or speaker (speaker folders)
  test: list          # (n,) test file
  data: str           # description of the trials
  skipped: dict       # unreadable file -> reason


def score_trial_list(embedder, trials: list[Trial], data: str, *, cohort=None,
                     top_k: int = scoring.DEFAULT_TOP_K, skip_unreadable: bool = False,
                     batch_files: int = 32) -> Scored:
  """Scores every trial (one enrolment file each); trials with a skipped file are dropped."""
  rows, dvectors, skipped = embed_unique(
      embedder, [p for t in trials for p in (t.enrol, t.test)], skip_unreadable, batch_files)
  kept = [t for t in trials if t.enrol in rows and t.test in rows]
  if not kept:
    raise ValueError(f"{data}: no trial has both files readable")
  unit = scoring.unit(dvectors)
  enrol_rows = np.array([rows[t.enrol] for t in kept])
  test_rows = np.array([rows[t.test] for t in kept])
  scores = np.sum(unit[enrol_rows] * unit[test_rows], axis=1)
  if cohort is not None:
    stats = scoring.cohort_stats(unit, cohort, top_k)
    scores = scoring.as_norm(scores, _take(stats, enrol_rows), _take(stats, test_rows))
  dropped = f", {len(trials) - len(kept)} dropped for unreadable files" if skipped else ""
  return Scored(scores, np.array([t.label for t in kept]), [t.enrol for t in kept],
                [t.test for t in kept], f"{data} ({len(kept)} trials{dropped})", skipped)


def score_speaker_folders(embedder, root: str, *, enroll: int, seed: int = 0, cohort=None,
                          top_k: int = scoring.DEFAULT_TOP_K, skip_unreadable: bool = False,
                          batch_files: int = 32) -> Scored:
  """All test-utterance x speaker trials of a speaker-folder tree (speakers with more than
  ``enroll`` readable files; the others are left out and reported)."""
  paths, speakers = speaker_folders(root)
  rows, dvectors, skipped = embed_unique(embedder, paths, skip_unreadable, batch_files)
  speaker_of = dict(zip(paths, speakers))
  order = list(rows)  # readable paths in row order
  counts = {s: 0 for s in speakers}
  for path in order:
    counts[speaker_of[path]] += 1
  too_few = sorted(s for s, c in counts.items() if c <= enroll)
  if too_few:
    print(f"left out {len(too_few)} speaker(s) with <= enroll={enroll} readable files: "
          f"{', '.join(too_few[:MAX_LISTED])}", file=sys.stderr)
  keep = [i for i, p in enumerate(order) if speaker_of[p] not in too_few]
  labels_of = np.array([speaker_of[order[i]] for i in keep])
  if len(set(labels_of)) < 2:
    raise ValueError(f"{root}: {len(set(labels_of))} speaker folder(s) have more than "
                     f"enroll={enroll} readable audio files; need at least 2")
  trials = metrics.speaker_trials(dvectors[keep], labels_of, enroll=enroll, seed=seed)
  scores = trials.scores
  if cohort is not None:
    unit = scoring.unit(dvectors[keep])
    models = scoring.unit(unit[trials.enroll_index].mean(axis=1))
    n_speakers, n_tests = len(trials.speakers), len(trials.test_index)  # trial t * K + s
    model_stats = scoring.cohort_stats(models, cohort, top_k)
    test_stats = scoring.cohort_stats(unit[trials.test_index], cohort, top_k)
    scores = scoring.as_norm(scores, _take(model_stats, np.tile(np.arange(n_speakers), n_tests)),
                             _take(test_stats, np.repeat(np.arange(n_tests), n_speakers)))
  test_paths = [order[keep[i]] for i in trials.test_index]
  data = (f"speaker folders {root} ({len(trials.speakers)} speakers, {len(keep)} files, "
          f"enroll={enroll}, seed={seed})")
  return Scored(scores, trials.labels, list(trials.speakers) * len(test_paths),
                [p for p in test_paths for _ in trials.speakers], data, skipped)


def _take(stats: scoring.CohortStats, index) -> scoring.CohortStats:
  return scoring.CohortStats(stats.mean[index], stats.std[index])
