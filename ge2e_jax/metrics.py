"""Speaker-verification metrics (Wan et al. 2018, §3), host-side NumPy in float64.

A trial scores one test utterance against one enrolled speaker; label 1 = target (same
speaker), 0 = non-target. A threshold ``t`` accepts a trial when ``score >= t``. Every
distinct score is a threshold (no fixed grid), plus one above all scores that rejects
everything; sorting once makes each metric O(n log n), fine for 10^6+ trials.
"""

from typing import NamedTuple

import numpy as np

from ge2e_jax.normalize import l2_normalize_np


def _validated(scores, labels):
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels)
  if scores.shape != labels.shape:
    raise ValueError(
        f"scores and labels must have the same shape, got {scores.shape} and "
        f"{labels.shape}")
  if scores.size == 0:
    raise ValueError("scores and labels are empty; need at least one trial")
  if not np.all(np.isfinite(scores)):
    raise ValueError("scores must be finite (found NaN or inf)")
  if not np.all((labels == 0) | (labels == 1)):
    raise ValueError(
        f"labels must be 1 (target) or 0 (non-target), got values "
        f"{np.unique(labels)[:10]}")
  labels = labels.astype(bool).ravel()
  if labels.all() or not labels.any():
    raise ValueError(
        f"need both target and non-target trials, got {labels.sum()} targets and "
        f"{(~labels).sum()} non-targets")
  return scores.ravel(), labels


def det_curve(scores, labels):
  """(far, frr, thresholds) at every distinct score, ascending, then +inf (reject all).

  ``far[i]`` is the fraction of non-targets with ``score >= thresholds[i]``, ``frr[i]`` the
  fraction of targets with ``score < thresholds[i]``. Equal scores form one point, so ties
  move FAR and FRR together.
  """
  scores, labels = _validated(scores, labels)
  order = np.argsort(scores, kind="stable")
  scores, labels = scores[order], labels[order]
  n_target, n_nontarget = labels.sum(), (~labels).sum()
  # Trials before index i all score below scores[i]: these are the rejected ones.
  targets_below = np.concatenate([[0], np.cumsum(labels)])
  nontargets_below = np.concatenate([[0], np.cumsum(~labels)])
  starts = np.flatnonzero(np.concatenate([[True], scores[1:] != scores[:-1], [True]]))
  frr = targets_below[starts] / n_target
  far = (n_nontarget - nontargets_below[starts]) / n_nontarget
  thresholds = np.concatenate([scores[starts[:-1]], [np.inf]])
  return far, frr, thresholds


def eer(scores, labels) -> tuple[float, float]:
  """Equal error rate (fraction) and its threshold, interpolated on the ROC.

  FAR - FRR falls from 1 (lowest threshold) to -1 (reject all). Between the last ROC point
  with FAR > FRR and the next one, the segment is interpolated linearly to FAR == FRR; the
  threshold is interpolated the same way. If that next point is the reject-all one, the
  threshold returned is the highest score.
  """
  far, frr, thresholds = det_curve(scores, labels)
  gap = far - frr
  i = int(np.argmax(gap <= 0))  # gap[0] == 1 and gap[-1] == -1, so 1 <= i < len.
  alpha = gap[i - 1] / (gap[i - 1] - gap[i])
  rate = far[i - 1] + alpha * (far[i] - far[i - 1])
  upper = thresholds[i] if np.isfinite(thresholds[i]) else thresholds[i - 1]
  threshold = thresholds[i - 1] + alpha * (upper - thresholds[i - 1])
  return float(rate), float(threshold)


def min_dcf(scores, labels, p_target: float = 0.01, c_miss: float = 1.0,
            c_fa: float = 1.0) -> float:
  """NIST normalised minimum detection cost over all thresholds (incl. accept/reject all).

  min_t (c_miss p Pmiss(t) + c_fa (1 - p) Pfa(t)) / min(c_miss p, c_fa (1 - p)).
  """
  if not 0.0 < p_target < 1.0:
    raise ValueError(f"p_target must be in (0, 1), got {p_target}")
  if c_miss <= 0 or c_fa <= 0:
    raise ValueError(f"c_miss and c_fa must be positive, got {c_miss} and {c_fa}")
  far, frr, _ = det_curve(scores, labels)
  cost = c_miss * p_target * frr + c_fa * (1.0 - p_target) * far
  return float(cost.min() / min(c_miss * p_target, c_fa * (1.0 - p_target)))


class Trials(NamedTuple):
  """All test-utterance x enrolled-speaker trials; trial ``t * K + s`` (``K`` speakers)
  scores utterance ``test_index[t]`` against speaker ``speakers[s]``."""
  scores: np.ndarray        # (T * K,) float64 cosine similarities.
  labels: np.ndarray        # (T * K,) int, 1 where the test utterance is from speaker s.
  speakers: np.ndarray      # (K,) sorted distinct speaker labels.
  enroll_index: np.ndarray  # (K, enroll) embedding rows used to enrol each speaker.
  test_index: np.ndarray    # (T,) embedding rows used as test utterances, ascending.


def _checked_unit(x, what):
  norms = np.linalg.norm(x, axis=-1)
  if not np.all(np.isfinite(norms)) or np.any(norms == 0):
    raise ValueError(f"{what} must be finite and non-zero to be L2-normalised")
  return l2_normalize_np(x)


def speaker_trials(embeddings, speakers, enroll: int, seed: int = 0) -> Trials:
  """Enrol every speaker on `enroll` random utterances and score all other utterances.

  A speaker's model is the L2-normalised mean of its L2-normalised enrolment d-vectors;
  every non-enrolment utterance is scored by cosine against every speaker's model
  (Wan et al. 2018, §3.2). The choice is deterministic for a seed. Every speaker needs at least
  ``enroll + 1`` utterances, otherwise this raises instead of silently dropping speakers.
  """
  embeddings = np.asarray(embeddings, np.float64)
  speakers = np.asarray(speakers)
  if embeddings.ndim != 2 or speakers.shape != embeddings.shape[:1]:
    raise ValueError(
        f"need embeddings (n, dim) and speakers (n,), got {embeddings.shape} and "
        f"{speakers.shape}")
  if enroll < 1:
    raise ValueError(f"enroll must be >= 1, got {enroll}")
  unique, speaker_of, counts = np.unique(speakers, return_inverse=True, return_counts=True)
  if unique.size < 2:
    raise ValueError(f"need at least 2 speakers for non-target trials, got {unique.size}")
  short = counts < enroll + 1
  if short.any():
    listed = ", ".join(f"{s!r}: {c}" for s, c in zip(unique[short][:10].tolist(),
                                                      counts[short][:10].tolist()))
    raise ValueError(
        f"enroll={enroll} needs >= {enroll + 1} utterances per speaker; "
        f"{short.sum()} speaker(s) have fewer ({listed})")
  rng = np.random.default_rng(seed)
  enroll_index = np.stack([
      np.sort(rng.choice(np.flatnonzero(speaker_of == k), enroll, replace=False))
      for k in range(unique.size)])
  is_test = np.ones(len(speakers), bool)
  is_test[enroll_index.ravel()] = False
  test_index = np.flatnonzero(is_test)

  unit = _checked_unit(embeddings, "embeddings")
  models = _checked_unit(unit[enroll_index].mean(axis=1), "enrolment means")
  scores = unit[test_index] @ models.T
  labels = (speaker_of[test_index, None] == np.arange(unique.size)[None, :]).astype(int)
  return Trials(scores.ravel(), labels.ravel(), unique, enroll_index, test_index)


def eer_interval(trials: Trials, level: float = 0.95, n_boot: int = 1000,
                 seed: int = 0) -> tuple[float, float]:
  """A ``level`` percentile-bootstrap confidence interval of the EER, resampling speakers.

  Trials of one speaker are not independent (its enrolment model scores every test
  utterance, its utterances are scored against every model), so the speakers are the
  sampling unit: each round draws the K speakers with replacement, and trial
  (utterance of speaker a, model of speaker b) counts n_a * n_b times, n = the draws of
  each. Rounds with fewer than 2 distinct speakers (no non-target trial) are drawn again.
  """
  if not 0.0 < level < 1.0 or n_boot < 1:
    raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got {level} and {n_boot}")
  k = trials.speakers.size
  scores = np.asarray(trials.scores, np.float64).reshape(-1, k)
  labels = np.asarray(trials.labels).reshape(-1, k)
  utterance_speaker = labels.argmax(axis=1)
  rng = np.random.default_rng(seed)
  rates = []
  while len(rates) < n_boot:
    draws = np.bincount(rng.integers(0, k, k), minlength=k)
    if np.count_nonzero(draws) < 2:
      continue
    weight = (draws[utterance_speaker, None] * draws[None, :]).ravel()
    rates.append(eer(np.repeat(scores.ravel(), weight), np.repeat(labels.ravel(), weight))[0])
  low, high = np.quantile(rates, [(1.0 - level) / 2, (1.0 + level) / 2])
  return float(low), float(high)
