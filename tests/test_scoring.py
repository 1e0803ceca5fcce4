"""ge2e_jax.scoring against independent float64 NumPy references written here."""

import numpy as np
import pytest

from ge2e_jax import scoring


def unit(x):
  x = np.asarray(x, np.float64)
  return x / np.sqrt((x * x).sum(-1, keepdims=True))


def test_cosine_scores_match_reference():
  rng = np.random.default_rng(0)
  enrol, test = rng.normal(size=(3, 16)) * 5, rng.normal(size=(7, 16))
  model = unit(unit(enrol).sum(0))
  want = np.array([np.dot(model, t) / np.linalg.norm(t) for t in test])
  np.testing.assert_allclose(scoring.cosine_scores(enrol, test), want, rtol=1e-12)
  assert scoring.cosine_scores(enrol[0], test[0]) == pytest.approx(
      np.dot(unit(enrol[0]), unit(test[0])), rel=1e-12)
  with pytest.raises(ValueError, match="D=16"):
    scoring.cosine_scores(enrol, test[:, :8])
  with pytest.raises(ValueError, match="non-zero"):
    scoring.cosine_scores(np.zeros(16), test)


def ref_as_norm(enrol_model, test, cohort, k):
  """AS-norm1 written out trial by trial: sort each side's cohort cosines, keep the top k."""
  cohort = [c / np.linalg.norm(c) for c in cohort]
  e, t = enrol_model / np.linalg.norm(enrol_model), test / np.linalg.norm(test)
  raw = float(np.dot(e, t))

  def stats(x):
    top = sorted((float(np.dot(x, c)) for c in cohort), reverse=True)[:k]
    mean = sum(top) / len(top)
    return mean, np.sqrt(sum((v - mean) ** 2 for v in top) / len(top))

  (me, se), (mt, st) = stats(e), stats(t)
  return 0.5 * ((raw - me) / se + (raw - mt) / st)


@pytest.mark.parametrize("top_k", [5, 40, 1000])  # 1000 > cohort size: the whole cohort
def test_as_norm_matches_reference(top_k):
  rng = np.random.default_rng(1)
  models, tests = rng.normal(size=(6, 12)), rng.normal(size=(6, 12))
  cohort = rng.normal(size=(50, 12)) * rng.uniform(0.5, 2, size=(50, 1))
  raw = np.sum(unit(models) * unit(tests), axis=1)
  got = scoring.as_norm(raw, scoring.cohort_stats(models, cohort, top_k),
                        scoring.cohort_stats(tests, cohort, top_k))
  want = [ref_as_norm(m, t, cohort, top_k) for m, t in zip(models, tests)]
  np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_as_norm_refuses_a_degenerate_cohort():
  with pytest.raises(ValueError, match="top_k must be >= 2"):
    scoring.cohort_stats(np.ones((1, 4)), np.eye(4), top_k=1)
  with pytest.raises(ValueError, match=r"C >= 2, D=4"):
    scoring.cohort_stats(np.ones((1, 4)), np.ones((1, 4)))


@pytest.mark.parametrize("p_target", [0.5, 0.1])
def test_calibration_recovers_the_llr_of_known_gaussian_scores(p_target):
  """Targets ~ N(mu1, s^2), non-targets ~ N(mu0, s^2): the true log-likelihood ratio is
  linear, llr = (mu1 - mu0) / s^2 * x - (mu1^2 - mu0^2) / (2 s^2), at any prior and at any
  ratio of target to non-target counts."""
  mu1, mu0, s = 0.7, 0.2, 0.15
  a, b = (mu1 - mu0) / s ** 2, -(mu1 ** 2 - mu0 ** 2) / (2 * s ** 2)
  rng = np.random.default_rng(2)
  scores = np.concatenate([rng.normal(mu1, s, 40_000), rng.normal(mu0, s, 160_000)])
  labels = np.concatenate([np.ones(40_000, int), np.zeros(160_000, int)])
  fit = scoring.fit_calibration(scores, labels, p_target=p_target)
  assert fit.a == pytest.approx(a, rel=0.03)
  assert fit.b == pytest.approx(b, abs=0.03 * abs(b))
  np.testing.assert_allclose(fit.llr([0.3, 0.6]), a * np.array([0.3, 0.6]) + b, atol=0.1)
  assert scoring.Calibration.from_dict(fit.to_dict()) == fit


def test_calibration_refuses_separated_scores():
  with pytest.raises(ValueError, match="do not overlap"):
    scoring.fit_calibration([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0])


@pytest.mark.parametrize("far_target", [0.0, 0.01, 0.1, 0.5])
def test_threshold_at_far_is_the_lowest_meeting_the_rate(far_target):
  rng = np.random.default_rng(3)
  scores = np.round(np.concatenate([rng.normal(1, 1, 300), rng.normal(0, 1, 700)]), 2)
  labels = np.concatenate([np.ones(300, int), np.zeros(700, int)])
  nontarget, target = scores[labels == 0], scores[labels == 1]
  candidates = sorted(set(scores.tolist()))
  meeting = [t for t in candidates if np.mean(nontarget >= t) <= far_target]
  got = scoring.threshold_at_far(scores, labels, far_target)
  if meeting:
    assert got.threshold == min(meeting)
  else:  # only rejecting everything meets it
    assert got.threshold > scores.max() and np.mean(nontarget >= got.threshold) == 0
  assert got.far == np.mean(nontarget >= got.threshold) <= far_target
  assert got.frr == np.mean(target < got.threshold)


def test_summary_holds_eer_threshold_and_far_threshold():
  scores, labels = [0.9, 0.8, 0.7, 0.4, 0.6, 0.3, 0.2, 0.1], [1, 1, 1, 1, 0, 0, 0, 0]
  result = scoring.summary(scores, labels, far_target=0.25)
  assert result["far_threshold"] == 0.4 and result["far_at_threshold"] == 0.25
  assert result["frr_at_far_threshold"] == 0.0
  assert result["eer"] == pytest.approx(0.25) and result["trials"] == 8
  assert result["target_trials"] == 4 and 0.4 <= result["eer_threshold"] <= 0.6
