"""Scoring d-vectors for verification: cosine, AS-norm, logistic calibration, thresholds.

Host-side NumPy in float64 (no jax): it runs wherever d-vectors are, e.g. on an npz.

- A speaker's model is the L2-normalised mean of its L2-normalised enrolment d-vectors and a
  trial's score is its cosine with the test d-vector (Wan et al. 2018, section 3).
- Adaptive symmetric score normalisation (AS-norm1; Matejka et al., Interspeech 2017;
  Cumani et al., Odyssey 2011): each side of a trial is scored against a cohort of other
  speakers' d-vectors, only its ``top_k`` most similar cohort scores are kept, and
  ``0.5 ((s - mu_e) / sigma_e + (s - mu_t) / sigma_t)`` removes the part of a score that
  comes from the enrolment or test side alone (population standard deviations).
- Calibration maps a score to a log-likelihood ratio ``llr = a * score + b`` fitted by
  prior-weighted logistic regression (Bruemmer's linear calibration; at ``p_target = 0.5``
  the objective is Cllr), so the llr does not depend on the target share of the trials.
- Thresholds: the EER threshold (``metrics.eer``) and the lowest threshold whose false-accept
  rate is at most a chosen rate.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.optimize
import scipy.special

from ge2e_jax import metrics

DEFAULT_TOP_K = 200


def unit(x, what: str = "d-vectors") -> np.ndarray:
  """float64 rows scaled to unit L2 norm; refuses zero or non-finite rows."""
  x = np.asarray(x, np.float64)
  norms = np.linalg.norm(x, axis=-1, keepdims=True)
  if not np.all(np.isfinite(norms)) or np.any(norms == 0):
    raise ValueError(f"{what} must be finite and non-zero to be L2-normalised")
  return x / norms


def speaker_model(enrolment) -> np.ndarray:
  """(D,) speaker d-vector: ``enrolment`` is one (D,) d-vector or (n, D) utterance d-vectors."""
  enrolment = np.asarray(enrolment, np.float64)
  if enrolment.ndim not in (1, 2) or enrolment.size == 0:
    raise ValueError(f"enrolment must be (D,) or (n, D) d-vectors, got shape {enrolment.shape}")
  if enrolment.ndim == 1:
    return unit(enrolment, "the enrolment d-vector")
  return unit(unit(enrolment, "enrolment d-vectors").mean(0), "the enrolment mean")


def cosine_scores(enrolment, test):
  """Cosine of the speaker model of ``enrolment`` with ``test``: (D,) -> float, (m, D) -> (m,)."""
  model = speaker_model(enrolment)
  test = np.asarray(test, np.float64)
  if test.ndim not in (1, 2) or test.shape[-1] != model.shape[0]:
    raise ValueError(f"test must be (D,) or (m, D) d-vectors with D={model.shape[0]}, got "
                     f"shape {test.shape}")
  scores = unit(test, "test d-vectors") @ model
  return float(scores) if test.ndim == 1 else scores


class CohortStats(NamedTuple):
  """Mean and (population) standard deviation of each row's top-k cohort cosines."""
  mean: np.ndarray  # (n,)
  std: np.ndarray   # (n,)


def cohort_stats(embeddings, cohort, top_k: int = DEFAULT_TOP_K) -> CohortStats:
  """Top-k cohort statistics of (n, D) d-vectors (speaker models or test utterances).

  ``top_k`` larger than the cohort uses the whole cohort.
  """
  cohort = unit(cohort, "cohort d-vectors")
  embeddings = unit(np.atleast_2d(embeddings))
  if cohort.ndim != 2 or cohort.shape[0] < 2 or cohort.shape[1] != embeddings.shape[1]:
    raise ValueError(f"cohort must be (C >= 2, D={embeddings.shape[1]}) d-vectors, got shape "
                     f"{cohort.shape}")
  if top_k < 2:
    raise ValueError(f"top_k must be >= 2 (a standard deviation needs two scores), got {top_k}")
  k = min(top_k, cohort.shape[0])
  scores = embeddings @ cohort.T
  top = -np.partition(-scores, k - 1, axis=1)[:, :k]
  std = top.std(axis=1)
  if np.any(std == 0):
    raise ValueError("a d-vector scores identically against its whole top-k cohort; the cohort "
                     "needs distinct d-vectors")
  return CohortStats(top.mean(axis=1), std)


def as_norm(scores, enrolment_stats: CohortStats, test_stats: CohortStats) -> np.ndarray:
  """AS-norm1 of raw ``scores`` (n,) given each trial's enrolment- and test-side statistics."""
  scores = np.asarray(scores, np.float64)
  return 0.5 * ((scores - enrolment_stats.mean) / enrolment_stats.std
                + (scores - test_stats.mean) / test_stats.std)


class Calibration(NamedTuple):
  """``llr = a * score + b``, fitted with target prior ``p_target``."""
  a: float
  b: float
  p_target: float = 0.5

  def llr(self, scores):
    return self.a * np.asarray(scores, np.float64) + self.b

  def to_dict(self) -> dict:
    return {"a": self.a, "b": self.b, "p_target": self.p_target}

  @classmethod
  def from_dict(cls, values: dict) -> "Calibration":
    return cls(float(values["a"]), float(values["b"]), float(values.get("p_target", 0.5)))


def fit_calibration(scores, labels, p_target: float = 0.5) -> Calibration:
  """Prior-weighted logistic regression of labels on scores (scipy BFGS, float64).

  Minimises ``p / N_t sum_t log(1 + e^-(llr_t + L)) + (1 - p) / N_n sum_n log(1 + e^(llr_n + L))``
  with ``L = logit(p)``: targets and non-targets weigh ``p`` and ``1 - p`` whatever their
  counts. Perfectly separated scores have no finite fit and are refused.
  """
  metrics.det_curve(scores, labels)  # validates: same shape, finite, 0/1, both classes
  scores, labels = np.asarray(scores, np.float64).ravel(), np.asarray(labels).astype(bool).ravel()
  if not 0.0 < p_target < 1.0:
    raise ValueError(f"p_target must be in (0, 1), got {p_target}")
  if scores[labels].min() > scores[~labels].max():
    raise ValueError("target and non-target scores do not overlap: a logistic calibration has no "
                     "finite fit; calibrate on a larger or harder development list")
  sign = np.where(labels, -1.0, 1.0)  # loss log(1 + e^(sign * (llr + L)))
  weight = np.where(labels, p_target / labels.sum(), (1.0 - p_target) / (~labels).sum())
  offset = scipy.special.logit(p_target)
  scale = max(scores.std(), 1e-12)  # fit on standardised scores: a well-conditioned problem
  centre = scores.mean()
  x = (scores - centre) / scale

  def loss_and_grad(theta):
    z = sign * (theta[0] * x + theta[1] + offset)
    d = weight * sign * scipy.special.expit(z)  # d loss / d (llr)
    return np.sum(weight * np.logaddexp(0.0, z)), np.array([np.sum(d * x), np.sum(d)])

  result = scipy.optimize.minimize(loss_and_grad, np.zeros(2), jac=True, method="BFGS",
                                   options={"gtol": 1e-10})
  if not np.all(np.isfinite(result.x)):
    raise ValueError(f"calibration fit failed: {result.message}")
  a = result.x[0] / scale
  return Calibration(float(a), float(result.x[1] - a * centre), float(p_target))


class FarThreshold(NamedTuple):
  threshold: float
  far: float  # achieved false-accept rate (<= the target)
  frr: float  # false-reject rate at that threshold


def threshold_at_far(scores, labels, far_target: float) -> FarThreshold:
  """The lowest threshold (accept ``score >= t``) whose false-accept rate is <= ``far_target``.

  When only rejecting everything gets there, the threshold is just above the highest score.
  """
  if not 0.0 <= far_target < 1.0:
    raise ValueError(f"far_target must be in [0, 1), got {far_target}")
  far, frr, thresholds = metrics.det_curve(scores, labels)
  i = int(np.argmax(far <= far_target))  # far falls to 0 at the reject-all threshold
  threshold = thresholds[i]
  if not np.isfinite(threshold):
    threshold = np.nextafter(np.max(np.asarray(scores, np.float64)), np.inf)
  return FarThreshold(float(threshold), float(far[i]), float(frr[i]))


def summary(scores, labels, far_target: float = 0.01, p_target: float = 0.01) -> dict:
  """EER, its threshold, minDCF(p_target), the threshold at ``far_target`` and trial counts."""
  eer, eer_threshold = metrics.eer(scores, labels)
  at_far = threshold_at_far(scores, labels, far_target)
  labels = np.asarray(labels)
  return {"eer": eer, "eer_threshold": eer_threshold,
          "min_dcf": metrics.min_dcf(scores, labels, p_target=p_target), "p_target": p_target,
          "far_target": far_target, "far_threshold": at_far.threshold,
          "far_at_threshold": at_far.far, "frr_at_far_threshold": at_far.frr,
          "trials": int(labels.size), "target_trials": int(labels.sum())}
