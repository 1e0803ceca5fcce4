"""ge2e_jax.spectral_clustering against a float64 NumPy reference written here.

Each refinement of Wang et al. 2018 is re-implemented with loops or a different route
(explicit Gaussian kernel and mirrored padding; per-row sorting for the percentile; the
eigen-decomposition through the symmetric matrix D^-1/2 S D^-1/2) and compared.
"""

import itertools

import numpy as np
import pytest

from ge2e_jax import spectral_clustering as sc


def clustered_points(seed, sizes, speakers=None, dim=16, spread=0.45):
  """d-vectors around random speaker centres in runs of ``sizes`` (turns in a recording).

  Run i belongs to speaker i % speakers (default: every run its own speaker).
  """
  rng = np.random.default_rng(seed)
  speakers = speakers or len(sizes)
  centres = rng.normal(size=(speakers, dim))
  labels = np.concatenate([np.full(n, i % speakers) for i, n in enumerate(sizes)])
  return centres[labels] + spread * rng.normal(size=(len(labels), dim)), labels


# ------------------------------------------------------------------ the reference (float64)
def ref_affinity(x):
  n = len(x)
  a = np.empty((n, n))
  for i in range(n):
    for j in range(n):
      a[i, j] = (1 + x[i] @ x[j] / np.sqrt((x[i] @ x[i]) * (x[j] @ x[j]))) / 2
  for i in range(n):
    a[i, i] = max(a[i, j] for j in range(n) if j != i)
  return a


def ref_blur(a, sigma):
  radius = int(4 * sigma + 0.5)
  offsets = np.arange(-radius, radius + 1)
  kernel = np.exp(-offsets ** 2 / (2 * sigma ** 2))
  kernel /= kernel.sum()
  padded = np.pad(a, radius, mode="symmetric")  # mirror with the edge sample repeated
  out = np.zeros_like(a)
  for di, wi in zip(offsets, kernel):
    for dj, wj in zip(offsets, kernel):
      out += wi * wj * padded[radius + di:radius + di + a.shape[0],
                              radius + dj:radius + dj + a.shape[1]]
  return out


def ref_threshold(a, p, multiplier):
  out = a.copy()
  n = a.shape[1]
  for i in range(len(a)):
    row = np.sort(a[i])
    pos = p * (n - 1)  # linear-interpolation quantile
    lo = int(np.floor(pos))
    cut = row[lo] + (pos - lo) * (row[min(lo + 1, n - 1)] - row[lo])
    for j in range(n):
      if a[i, j] < cut:
        out[i, j] = a[i, j] * multiplier
  return out


def ref_refine(a, sigma, p, multiplier):
  x = ref_threshold(ref_blur(a, sigma), p, multiplier)
  y = np.maximum(x, x.T)
  s = y @ y.T
  d = s.max(axis=1)
  return s / d[:, None], s, d


def ref_spectrum(s, d):
  """Eigenvalues (descending) and eigenvectors of D^-1 S via the symmetric D^-1/2 S D^-1/2."""
  root = 1 / np.sqrt(d)
  values, u = np.linalg.eigh(root[:, None] * s * root[None, :])
  order = np.argsort(-values)
  return values[order], root[:, None] * u[:, order]


def ref_eigengap(values, low, high):
  best, best_k = -1, None
  for k in range(low, min(high, len(values) - 1) + 1):
    ratio = values[k - 1] / values[k]
    if ratio > best:
      best, best_k = ratio, k
  return best_k


def same_partition(a, b):
  """Labels equal up to a permutation of their names."""
  return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


# ---------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def points():
  return clustered_points(0, [7, 5, 9, 4, 6, 8])


def test_affinity_matches_reference(points):
  x, _ = points
  np.testing.assert_allclose(sc.cosine_affinity(x), ref_affinity(x), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.0])
def test_blur_matches_reference(points, sigma):
  a = ref_affinity(points[0])
  np.testing.assert_allclose(sc.gaussian_blur(a, sigma), ref_blur(a, sigma), rtol=1e-12,
                             atol=1e-12)


@pytest.mark.parametrize("p,multiplier", [(0.95, 0.01), (0.5, 0.0), (0.8, 0.1)])
def test_row_threshold_matches_reference(points, p, multiplier):
  a = ref_blur(ref_affinity(points[0]), 1.0)
  got = sc.row_threshold(a, p, multiplier)
  np.testing.assert_allclose(got, ref_threshold(a, p, multiplier), rtol=1e-12, atol=1e-12)
  kept = (got == a).sum(axis=1)  # the top (1 - p) of each row survives untouched
  assert np.all(kept >= int(np.floor((1 - p) * a.shape[1])))


def test_refine_and_spectrum_match_reference(points):
  x, labels = points
  options = sc.ClusteringOptions(blur_sigma=1.0, p_percentile=0.9, soft_multiplier=0.01)
  expected, s, d = ref_refine(ref_affinity(x), 1.0, 0.9, 0.01)
  refined = sc.refine(sc.cosine_affinity(x), options)
  np.testing.assert_allclose(refined, expected, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(refined.max(axis=1), 1.0)
  values, vectors = sc.eigen(refined)
  ref_values, ref_vectors = ref_spectrum(s, d)
  np.testing.assert_allclose(values, ref_values, rtol=1e-8, atol=1e-10)
  k = 3
  # The top-k eigenvectors span the reference's subspace: projecting leaves nothing out.
  basis, _ = np.linalg.qr(ref_vectors[:, :k])
  residual = vectors[:, :k] - basis @ (basis.T @ vectors[:, :k])
  assert np.abs(residual).max() < 1e-7
  assert sc.eigengap_count(values) == ref_eigengap(ref_values, 1, 8) == len(set(labels))


@pytest.mark.parametrize("low,high", [(1, 8), (2, 2), (4, 6), (1, 100)])
def test_eigengap_bounds(low, high):
  values = np.array([5.0, 4.8, 4.6, 0.3, 0.2, 0.19, 0.01])
  assert sc.eigengap_count(values, low, high) == ref_eigengap(values, low, high)
  assert low <= sc.eigengap_count(values, low, high) <= max(low, min(high, 6))


@pytest.mark.parametrize("seed,sizes,speakers,p", [
    (1, [8, 6], 2, 0.5), (2, [12, 9, 10, 8, 11], 3, 0.5), (3, [10, 8, 12, 9, 10, 11, 9], 4, 0.7),
    (4, [15, 15, 15, 15], 4, 0.8)])
def test_cluster_recovers_speakers(seed, sizes, speakers, p):
  """Turns of one speaker's windows, each speaker back more than once: count and labels."""
  x, labels = clustered_points(seed, sizes, speakers)
  options = sc.ClusteringOptions(p_percentile=p)
  got = sc.cluster(x, options=options)
  assert same_partition(got, labels)
  assert got[0] == 0 and set(got) == set(range(speakers))  # first-appearance names
  assert same_partition(sc.cluster(x, num_speakers=speakers, options=options), labels)


def test_cluster_labels_match_reference_pipeline():
  """The whole chain against the reference chain + an exhaustive best 2-means split."""
  x, _ = clustered_points(5, [4, 3, 5], spread=0.9)
  options = sc.ClusteringOptions(p_percentile=0.8)
  _, s, d = ref_refine(ref_affinity(x), 1.0, 0.8, 0.01)
  _, vectors = ref_spectrum(s, d)
  emb = vectors[:, :2] / np.linalg.norm(vectors[:, :2], axis=1, keepdims=True)
  best, best_cost = None, np.inf
  for bits in itertools.product([0, 1], repeat=len(x) - 1):  # global 2-means optimum
    lab = np.array((0,) + bits)
    if lab.min() == lab.max():
      continue
    cost = sum(((emb[lab == c] - emb[lab == c].mean(0)) ** 2).sum() for c in (0, 1))
    if cost < best_cost:
      best, best_cost = lab, cost
  assert same_partition(sc.cluster(x, num_speakers=2, options=options), best)


def test_kmeans_is_deterministic_and_fills_every_cluster():
  rng = np.random.default_rng(0)
  points = np.concatenate([rng.normal(size=(20, 3)), [[50.0, 50.0, 50.0]]])
  a = sc.kmeans(points, 4, seed=7)
  assert np.array_equal(a, sc.kmeans(points, 4, seed=7))
  assert set(a) == set(range(4))
  assert np.sum(a == a[-1]) == 1  # the outlier is a cluster of its own


def test_edge_cases():
  assert sc.cluster(np.zeros((0, 4))).shape == (0,)
  assert sc.cluster(np.ones((1, 4))).tolist() == [0]
  x, _ = clustered_points(6, [3, 3])
  assert sc.cluster(x, num_speakers=1).tolist() == [0] * 6
  assert len(set(sc.cluster(x, num_speakers=50))) == 6  # capped at one window per speaker
  assert sc.first_appearance_order(np.array([5, 2, 5, 9])).tolist() == [0, 1, 0, 2]
  with pytest.raises(ValueError, match="num_speakers"):
    sc.cluster(x, num_speakers=0)
  with pytest.raises(ValueError, match="min_speakers"):
    sc.ClusteringOptions(min_speakers=3, max_speakers=2)
