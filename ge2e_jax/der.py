"""Diarization error rate (NIST md-eval's definition), exact on segment boundaries.

DER = (missed speech + false alarm + speaker confusion) / reference speech, over the scored
time: the ``uem`` (default: from the earliest to the latest segment of either side) less
``collar`` seconds on EACH side of every reference segment boundary (md-eval's ``-c 0.25``
is ``collar=0.25`` here and ``collar=0.5`` in pyannote.metrics, which counts the collar's
full width). Reference and hypothesis speakers are mapped one-to-one to maximise the time
they share in the scored region (Hungarian algorithm). At each instant with R reference and
H hypothesis speakers active, C of them mapped pairs: missed max(0, R - H), false alarm
max(0, H - R), confusion min(R, H) - C, reference R (overlapped speech counts once per
speaker). Segments are anything with ``start``, ``end``, ``speaker`` (``Segment``;
``read_rttm`` reads them from RTTM lines). NumPy and SciPy only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.optimize


class Segment(NamedTuple):
  """A stretch of one speaker's speech, in seconds from the start of the recording."""
  start: float
  end: float
  speaker: str


class DerResult(NamedTuple):
  """Seconds of each error and of scored reference speech; ``der`` is their ratio."""
  der: float
  missed: float
  false_alarm: float
  confusion: float
  reference: float
  mapping: dict  # reference speaker -> hypothesis speaker


def _activity(segments, speakers, bounds):
  """(intervals, speakers) bool: speaker active on each elementary interval."""
  mids = (bounds[:-1] + bounds[1:]) / 2
  active = np.zeros((len(mids), len(speakers)), bool)
  index = {s: i for i, s in enumerate(speakers)}
  for seg in segments:
    active[(mids >= seg.start) & (mids < seg.end), index[seg.speaker]] = True
  return active


def diarization_error_rate(reference, hypothesis, collar: float = 0.25,
                           uem: tuple[float, float] | None = None) -> DerResult:
  """DER of ``hypothesis`` against ``reference`` (sequences of segments); see module doc."""
  reference = [s for s in reference if s.end > s.start]
  hypothesis = [s for s in hypothesis if s.end > s.start]
  if collar < 0:
    raise ValueError(f"collar must be >= 0, got {collar}")
  everything = reference + hypothesis
  if uem is None:
    uem = ((min(s.start for s in everything), max(s.end for s in everything))
           if everything else (0.0, 0.0))
  edges = np.array([t for s in reference for t in (s.start, s.end)], np.float64)
  points = [uem[0], uem[1], *[t for s in everything for t in (s.start, s.end)],
            *(edges - collar), *(edges + collar)]
  bounds = np.unique(np.clip(np.array(points, np.float64), uem[0], uem[1]))
  if len(bounds) < 2:
    return DerResult(0.0, 0.0, 0.0, 0.0, 0.0, {})
  durations = np.diff(bounds)
  mids = (bounds[:-1] + bounds[1:]) / 2
  scored = np.ones(len(mids), bool)
  for t in edges:
    scored &= np.abs(mids - t) >= collar
  ref_names = sorted({s.speaker for s in reference})
  hyp_names = sorted({s.speaker for s in hypothesis})
  ref = _activity(reference, ref_names, bounds)[scored]
  hyp = _activity(hypothesis, hyp_names, bounds)[scored]
  durations = durations[scored]
  shared = (ref.T.astype(np.float64) * durations) @ hyp.astype(np.float64)
  rows, cols = scipy.optimize.linear_sum_assignment(shared, maximize=True)
  pairs = [(r, c) for r, c in zip(rows, cols) if shared[r, c] > 0]
  correct = np.zeros(len(durations))
  for r, c in pairs:
    correct += ref[:, r] & hyp[:, c]
  n_ref, n_hyp = ref.sum(1), hyp.sum(1)
  missed = float(durations @ np.maximum(0, n_ref - n_hyp))
  false_alarm = float(durations @ np.maximum(0, n_hyp - n_ref))
  confusion = float(durations @ (np.minimum(n_ref, n_hyp) - correct))
  total = float(durations @ n_ref)
  errors = missed + false_alarm + confusion
  der = errors / total if total > 0 else (0.0 if errors == 0 else float("inf"))
  return DerResult(der, missed, false_alarm, confusion, total,
                   {ref_names[r]: hyp_names[c] for r, c in pairs})


def read_rttm(lines) -> dict[str, list[Segment]]:
  """{file id: its Segments in time order} from the SPEAKER lines of an RTTM.

  ValueError naming the line for a SPEAKER line without a numeric onset and duration.
  """
  files = {}
  for number, line in enumerate(lines, 1):
    fields = line.split()
    if not fields or fields[0] != "SPEAKER":
      continue
    try:
      onset, duration, speaker = float(fields[3]), float(fields[4]), fields[7]
    except (IndexError, ValueError):
      raise ValueError(f"RTTM line {number}: expected 'SPEAKER file channel onset duration "
                       f"<NA> <NA> speaker <NA> <NA>', got {line.strip()!r}") from None
    files.setdefault(fields[1], []).append(Segment(onset, onset + duration, speaker))
  return {name: sorted(segments) for name, segments in files.items()}
