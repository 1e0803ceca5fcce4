"""ge2e_jax.metrics against hand-worked cases and brute-force loops written here."""

import numpy as np
import pytest

from ge2e_jax import metrics


def brute_force_roc(scores, labels):
  """(far, frr, threshold) at every distinct score and at +inf, one threshold at a time."""
  targets, nontargets = scores[labels == 1], scores[labels == 0]
  points = []
  for t in sorted(set(scores.tolist())) + [np.inf]:
    far = np.count_nonzero(nontargets >= t) / len(nontargets)
    frr = np.count_nonzero(targets < t) / len(targets)
    points.append((far, frr, t))
  return points


def brute_force_eer(scores, labels):
  points = brute_force_roc(scores, labels)
  for (far0, frr0, t0), (far1, frr1, t1) in zip(points, points[1:]):
    if far1 <= frr1:  # first point past the crossing; the previous one has far > frr
      # Intersect FAR(a) = far0 + a (far1 - far0) with FRR(a) = frr0 + a (frr1 - frr0).
      a = (far0 - frr0) / ((frr1 - frr0) - (far1 - far0))
      t1 = t0 if t1 == np.inf else t1
      return far0 + a * (far1 - far0), t0 + a * (t1 - t0)
  raise AssertionError("FAR never fell to FRR")


def brute_force_min_dcf(scores, labels, p_target, c_miss=1.0, c_fa=1.0):
  costs = [c_miss * p_target * frr + c_fa * (1 - p_target) * far
           for far, frr, _ in brute_force_roc(scores, labels)]
  return min(costs) / min(c_miss * p_target, c_fa * (1 - p_target))


def gaussian_trials(n_target, n_nontarget, seed, decimals=None):
  rng = np.random.default_rng(seed)
  scores = np.concatenate([rng.normal(1.0, 1.0, n_target),
                           rng.normal(-1.0, 1.0, n_nontarget)])
  if decimals is not None:
    scores = np.round(scores, decimals)  # creates many ties
  labels = np.r_[np.ones(n_target, int), np.zeros(n_nontarget, int)]
  order = rng.permutation(len(scores))
  return scores[order], labels[order]


# Targets {0.8, 0.4}, non-targets {0.6, 0.2, 0.1}. Accepting score >= t:
#   t    0.1   0.2   0.4   0.6   0.8   inf
#   FAR  1     2/3   1/3   1/3   0     0
#   FRR  0     0     0     1/2   1/2   1
# FAR - FRR changes sign between t = 0.4 (+1/3) and t = 0.6 (-1/6): a = (1/3) / (1/2) = 2/3,
# EER = 1/3 + a * 0 = 0 + a * 1/2 = 1/3 at t = 0.4 + a * 0.2 = 8/15.
# The nearest ROC points give 1/3 vs 0 and 1/3 vs 1/2, so only interpolation yields 1/3 with
# threshold 8/15.
SMALL_SCORES = np.array([0.8, 0.6, 0.4, 0.2, 0.1])
SMALL_LABELS = np.array([1, 0, 1, 0, 0])


def test_eer_hand_computed_interpolation():
  rate, threshold = metrics.eer(SMALL_SCORES, SMALL_LABELS)
  assert rate == pytest.approx(1 / 3, abs=1e-15)
  assert threshold == pytest.approx(8 / 15, abs=1e-15)


def test_eer_hand_computed_ties():
  # Targets {0.9, 0.5}, non-targets {0.5, 0.1}; the tie at 0.5 is one ROC point:
  #   t    0.1   0.5   0.9   inf
  #   FAR  1     1/2   0     0
  #   FRR  0     0     1/2   1
  # Crossing between 0.5 (+1/2) and 0.9 (-1/2): a = 1/2, EER = 1/2 - 1/4 = 1/4, t = 0.7.
  rate, threshold = metrics.eer([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0])
  assert rate == pytest.approx(0.25, abs=1e-15)
  assert threshold == pytest.approx(0.7, abs=1e-15)
  # All scores tied: FAR 1 -> 0 while FRR 0 -> 1 in one step, EER 1/2 at that score.
  assert metrics.eer([0.3, 0.3, 0.3], [1, 0, 1]) == pytest.approx((0.5, 0.3), abs=1e-15)


def test_eer_separable_and_inverted():
  rate, threshold = metrics.eer([0.9, 0.7, 0.3, 0.1], [1, 1, 0, 0])
  assert rate == 0.0 and threshold == pytest.approx(0.7)  # lowest target still accepted
  rate, threshold = metrics.eer([0.9, 0.7, 0.3, 0.1], [0, 0, 1, 1])
  assert rate == 1.0 and threshold == pytest.approx(0.7)


def test_det_curve_hand_computed():
  far, frr, thresholds = metrics.det_curve(SMALL_SCORES, SMALL_LABELS)
  np.testing.assert_allclose(far, [1, 2 / 3, 1 / 3, 1 / 3, 0, 0], atol=1e-15)
  np.testing.assert_allclose(frr, [0, 0, 0, 0.5, 0.5, 1], atol=1e-15)
  np.testing.assert_array_equal(thresholds, [0.1, 0.2, 0.4, 0.6, 0.8, np.inf])


@pytest.mark.parametrize("decimals", [None, 1])
def test_eer_matches_brute_force_on_20k_trials(decimals):
  scores, labels = gaussian_trials(4000, 16000, seed=decimals or 0, decimals=decimals)
  rate, threshold = metrics.eer(scores, labels)
  want_rate, want_threshold = brute_force_eer(scores, labels)
  assert rate == pytest.approx(want_rate, abs=1e-12)
  assert threshold == pytest.approx(want_threshold, abs=1e-12)
  assert 0.1 < rate < 0.2  # two unit Gaussians 2 apart: EER = Phi(-1) ~ 0.159


def test_det_curve_matches_brute_force_with_ties():
  scores, labels = gaussian_trials(300, 700, seed=5, decimals=1)
  far, frr, thresholds = metrics.det_curve(scores, labels)
  want = np.array(brute_force_roc(scores, labels))
  np.testing.assert_allclose(np.c_[far, frr, thresholds], want, atol=1e-15)


def test_min_dcf_hand_computed():
  # p = 0.5: cost / 0.5 = FAR + FRR over the ROC table above: min is 1/3 (t = 0.4).
  assert metrics.min_dcf(SMALL_SCORES, SMALL_LABELS, p_target=0.5) == pytest.approx(1 / 3)
  # p = 0.01: normaliser 0.01; rejecting all costs 0.01 * 1 -> 1, the floor for any
  # classifier; here FAR = 0 needs t = 0.8 (FRR 1/2): 0.01 * 0.5 / 0.01 = 0.5.
  assert metrics.min_dcf(SMALL_SCORES, SMALL_LABELS) == pytest.approx(0.5)
  assert metrics.min_dcf([0.9, 0.1], [1, 0]) == 0.0
  assert metrics.min_dcf([0.1, 0.9], [1, 0]) == pytest.approx(1.0)  # reject all


@pytest.mark.parametrize("p_target,c_miss,c_fa", [
    (0.01, 1.0, 1.0), (0.05, 1.0, 1.0), (0.5, 1.0, 1.0), (0.001, 10.0, 1.0),
    (0.3, 1.0, 5.0)])
def test_min_dcf_matches_brute_force(p_target, c_miss, c_fa):
  scores, labels = gaussian_trials(2000, 8000, seed=7, decimals=2)
  got = metrics.min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
  want = brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa)
  assert got == pytest.approx(want, abs=1e-12)
  assert 0.0 < got <= 1.0


@pytest.mark.parametrize("scores,labels,match", [
    ([], [], "empty"),
    ([0.1, 0.2], [1, 0, 1], "same shape"),
    ([0.1, 0.2], [1, 2], "labels must be 1"),
    ([0.1, 0.2], [1, 1], "both target and non-target"),
    ([0.1, 0.2], [0, 0], "both target and non-target"),
    ([np.nan, 0.2], [1, 0], "finite"),
])
def test_metric_input_errors(scores, labels, match):
  for fn in (metrics.eer, metrics.min_dcf, metrics.det_curve):
    with pytest.raises(ValueError, match=match):
      fn(scores, labels)


def test_min_dcf_argument_errors():
  with pytest.raises(ValueError, match="p_target"):
    metrics.min_dcf([0.1, 0.2], [1, 0], p_target=1.0)
  with pytest.raises(ValueError, match="c_miss"):
    metrics.min_dcf([0.1, 0.2], [1, 0], c_miss=0.0)


@pytest.fixture(scope="module")
def utterances():
  """5 speakers with 4..7 utterances each, shuffled, string speaker labels."""
  rng = np.random.default_rng(11)
  counts = {"ann": 4, "bob": 7, "cy": 5, "dee": 6, "eve": 4}
  speakers = np.array([s for s, n in counts.items() for _ in range(n)])
  order = rng.permutation(len(speakers))
  centres = {s: rng.normal(size=8) for s in counts}
  embeddings = np.stack([centres[s] + 0.5 * rng.normal(size=8) for s in speakers])
  return embeddings[order], speakers[order]


def test_speaker_trials_against_loops(utterances):
  embeddings, speakers = utterances
  trials = metrics.speaker_trials(embeddings, speakers, enroll=3, seed=0)
  n_speakers, n_test = 5, len(speakers) - 5 * 3
  assert list(trials.speakers) == ["ann", "bob", "cy", "dee", "eve"]
  assert trials.enroll_index.shape == (5, 3)
  assert trials.test_index.shape == (n_test,)
  assert trials.scores.shape == trials.labels.shape == (n_test * n_speakers,)
  assert trials.labels.sum() == n_test
  assert (trials.labels == 0).sum() == n_test * (n_speakers - 1)
  enrolled = set(trials.enroll_index.ravel().tolist())
  assert len(enrolled) == 15 and not enrolled & set(trials.test_index.tolist())
  assert enrolled | set(trials.test_index.tolist()) == set(range(len(speakers)))

  unit = lambda v: v / np.sqrt(np.sum(v * v))
  for s, name in enumerate(trials.speakers):
    assert all(speakers[i] == name for i in trials.enroll_index[s])
    model = unit(sum(unit(embeddings[i]) for i in trials.enroll_index[s]) / 3)
    for t, i in enumerate(trials.test_index):
      cosine = np.dot(embeddings[i], model) / np.sqrt(np.dot(embeddings[i], embeddings[i]))
      assert trials.scores[t * n_speakers + s] == pytest.approx(cosine, abs=1e-12)
      assert trials.labels[t * n_speakers + s] == int(speakers[i] == name)


def test_speaker_trials_deterministic_per_seed(utterances):
  embeddings, speakers = utterances
  a = metrics.speaker_trials(embeddings, speakers, enroll=2, seed=3)
  b = metrics.speaker_trials(embeddings, speakers, enroll=2, seed=3)
  np.testing.assert_array_equal(a.enroll_index, b.enroll_index)
  np.testing.assert_array_equal(a.scores, b.scores)
  seeds = {metrics.speaker_trials(embeddings, speakers, enroll=2, seed=s)
           .enroll_index.tobytes() for s in range(5)}
  assert len(seeds) > 1


def test_speaker_trials_errors(utterances):
  embeddings, speakers = utterances
  with pytest.raises(ValueError, match=r"'ann': 4.*'eve': 4"):
    metrics.speaker_trials(embeddings, speakers, enroll=4)
  with pytest.raises(ValueError, match="enroll"):
    metrics.speaker_trials(embeddings, speakers, enroll=0)
  with pytest.raises(ValueError, match="speakers"):
    metrics.speaker_trials(embeddings, speakers[:-1], enroll=1)
  with pytest.raises(ValueError, match="2 speakers"):
    metrics.speaker_trials(embeddings[:3], np.array(["a"] * 3), enroll=1)
  with pytest.raises(ValueError, match="non-zero"):
    metrics.speaker_trials(np.zeros_like(embeddings), speakers, enroll=1)


def _bootstrap_reference(trials, level, n_boot, seed):
  """The speaker bootstrap written out: copies of drawn speakers, trials listed one by one."""
  k = len(trials.speakers)
  rng = np.random.default_rng(seed)
  rates = []
  while len(rates) < n_boot:
    drawn = rng.integers(0, k, k).tolist()
    if len(set(drawn)) < 2:
      continue
    scores, labels = [], []
    for a in drawn:  # every copy of a test speaker ...
      for t in range(len(trials.test_index)):
        if trials.labels[t * k + a] != 1:
          continue  # utterance t is not speaker a's
        for b in drawn:  # ... against every copy's model
          scores.append(trials.scores[t * k + b])
          labels.append(int(a == b))
    rates.append(brute_force_eer(np.array(scores), np.array(labels))[0])
  return np.quantile(rates, [(1 - level) / 2, (1 + level) / 2])


def test_eer_interval_matches_written_out_speaker_bootstrap(utterances):
  embeddings, speakers = utterances
  trials = metrics.speaker_trials(embeddings, speakers, enroll=2, seed=0)
  low, high = metrics.eer_interval(trials, level=0.9, n_boot=40, seed=5)
  np.testing.assert_allclose([low, high], _bootstrap_reference(trials, 0.9, 40, 5), atol=1e-12)
  assert low <= metrics.eer(trials.scores, trials.labels)[0] <= high


def test_eer_interval_narrows_with_more_speakers():
  rng = np.random.default_rng(0)

  def interval(n_speakers):
    speakers = np.repeat(np.arange(n_speakers), 8)
    centres = rng.normal(size=(n_speakers, 16))
    embeddings = centres[speakers] + 0.9 * rng.normal(size=(len(speakers), 16))
    trials = metrics.speaker_trials(embeddings, speakers, enroll=3, seed=0)
    low, high = metrics.eer_interval(trials, n_boot=200)
    return high - low

  assert interval(40) < interval(5)
  with pytest.raises(ValueError, match="level"):
    metrics.eer_interval(metrics.speaker_trials(*_two_speakers(), enroll=1), level=1.5)


def _two_speakers():
  return np.eye(4)[[0, 0, 1, 1]] + 0.1, np.array([0, 0, 1, 1])
