"""Spectral clustering of d-vectors with the affinity refinements of Wang et al. 2018.

"Speaker Diarization with LSTM" (Wang, Downey, Wan, Mansfield, Lopez Moreno; ICASSP 2018),
§2.3: the cosine affinity of the segment d-vectors goes through a sequence of refinements
that denoise it and sharpen its block structure before the eigen-decomposition:

  affinity        A_ij = (1 + cos(d_i, d_j)) / 2, its diagonal cropped to each row's
                  largest off-diagonal value (a window is not "more itself" than its
                  neighbours)
  Gaussian blur   smooths A (neighbouring windows tend to share a speaker)
  row threshold   in each row, values below the row's p-percentile are multiplied by a
                  small factor (zeroing them is the paper's hard variant)
  symmetrise      Y = max(X, X^T)
  diffuse         Y Y^T (two-step similarity: sharpens the blocks)
  row-max norm    X_ij / max_k X_ik

The refined matrix is D^-1 S with S symmetric and D positive diagonal, so its eigenvalues
are real. The number of speakers is the k in [min_speakers, max_speakers] with the largest
eigen-gap ratio lambda_k / lambda_{k+1} (eigenvalues in descending order), unless given.
Each window's spectral embedding is its row of the top-k eigenvectors, L2-normalised, and
k-means (k-means++ starts, a fixed seed, the best of ``kmeans_restarts`` runs) labels it.
Only NumPy and SciPy: float64 throughout.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage

from ge2e_jax.normalize import l2_normalize_np


@dataclasses.dataclass(frozen=True)
class ClusteringOptions:
  """Settings of the refinements, the speaker-count search and k-means."""
  blur_sigma: float = 1.0         # Gaussian blur's standard deviation, in windows (0: off)
  # Row threshold: values below this quantile of their row are multiplied by soft_multiplier
  # (0: the hard threshold). The paper's 0.95 suits long recordings of many short segments;
  # with tens of windows per speaker it keeps too few neighbours per row. This default was
  # chosen on conversations of held-out dev speakers (RESULTS.md, "Diarization").
  p_percentile: float = 0.7
  soft_multiplier: float = 0.01
  min_speakers: int = 1           # eigen-gap search range when the count is not given
  max_speakers: int = 8
  kmeans_restarts: int = 10       # k-means runs from different k-means++ starts; best kept
  kmeans_iterations: int = 300
  seed: int = 0

  def __post_init__(self):
    if not (self.blur_sigma >= 0 and 0 <= self.p_percentile <= 1
            and 0 <= self.soft_multiplier <= 1):
      raise ValueError(f"clustering: need blur_sigma >= 0, p_percentile and soft_multiplier "
                       f"in [0, 1]; got {self.blur_sigma}, {self.p_percentile}, "
                       f"{self.soft_multiplier}")
    if not 1 <= self.min_speakers <= self.max_speakers:
      raise ValueError(f"clustering: need 1 <= min_speakers <= max_speakers, got "
                       f"{self.min_speakers}, {self.max_speakers}")
    if self.kmeans_restarts < 1 or self.kmeans_iterations < 1:
      raise ValueError("clustering: kmeans_restarts and kmeans_iterations must be >= 1")


def cosine_affinity(embeddings) -> np.ndarray:
  """(n, D) -> (n, n) (1 + cosine) / 2, diagonal = the row's largest off-diagonal value."""
  x = l2_normalize_np(embeddings)
  affinity = (1.0 + x @ x.T) / 2.0
  n = len(affinity)
  if n > 1:
    off = affinity.copy()
    np.fill_diagonal(off, -np.inf)
    affinity[np.arange(n), np.arange(n)] = off.max(axis=1)
  return affinity


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
  """2-D Gaussian smoothing (edges mirrored, kernel truncated at 4 sigma)."""
  return scipy.ndimage.gaussian_filter(x, sigma, mode="reflect") if sigma > 0 else x


def row_threshold(x: np.ndarray, p_percentile: float, multiplier: float) -> np.ndarray:
  """Values below their row's ``p_percentile`` quantile (linear interpolation) x ``multiplier``."""
  cut = np.quantile(x, p_percentile, axis=1, keepdims=True)
  return np.where(x < cut, x * multiplier, x)


def symmetrize(x: np.ndarray) -> np.ndarray:
  return np.maximum(x, x.T)


def diffuse(x: np.ndarray) -> np.ndarray:
  return x @ x.T


def row_max_normalize(x: np.ndarray) -> np.ndarray:
  return x / x.max(axis=1, keepdims=True)


def refine(affinity: np.ndarray, options: ClusteringOptions = ClusteringOptions()) -> np.ndarray:
  """The paper's refinement sequence, in its order."""
  x = gaussian_blur(np.asarray(affinity, np.float64), options.blur_sigma)
  x = row_threshold(x, options.p_percentile, options.soft_multiplier)
  return row_max_normalize(diffuse(symmetrize(x)))


def eigen(refined: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(eigenvalues, eigenvectors as columns) of the refined matrix, eigenvalues descending.

  Real in exact arithmetic (see the module docstring); rounding's imaginary parts are dropped.
  """
  values, vectors = np.linalg.eig(refined)
  order = np.argsort(-values.real, kind="stable")
  return values.real[order], vectors.real[:, order]


def eigengap_count(eigenvalues: np.ndarray, min_speakers: int = 1, max_speakers: int = 8) -> int:
  """argmax over k in [min_speakers, max_speakers] of lambda_k / lambda_{k+1} (1-based).

  k stays below the number of eigenvalues (the ratio needs lambda_{k+1}); a single
  eigenvalue gives 1.
  """
  n = len(eigenvalues)
  if n < 2:
    return 1
  high = min(max_speakers, n - 1)
  low = min(min_speakers, high)
  values = np.maximum(np.asarray(eigenvalues, np.float64), np.finfo(np.float64).tiny)
  ks = np.arange(low, high + 1)
  return int(ks[np.argmax(values[ks - 1] / values[ks])])


def kmeans(points: np.ndarray, k: int, *, seed: int = 0, restarts: int = 10,
           iterations: int = 300) -> np.ndarray:
  """(n,) labels of Lloyd's k-means from k-means++ starts; the lowest inertia of ``restarts``.

  Deterministic for a given seed. An emptied cluster takes the point farthest from its centre.
  """
  points = np.asarray(points, np.float64)
  n = len(points)
  k = min(k, n)
  rng = np.random.default_rng(seed)
  best, best_inertia = None, np.inf
  for _ in range(restarts):
    centres = _kmeans_plus_plus(points, k, rng)
    labels = None
    for _ in range(iterations):
      distances = ((points[:, None, :] - centres[None]) ** 2).sum(-1)
      new = distances.argmin(axis=1)
      for c in np.setdiff1d(np.arange(k), new):  # an empty cluster takes the worst-fit point
        new[distances[np.arange(n), new].argmax()] = c
      if labels is not None and np.array_equal(new, labels):
        break
      labels = new
      centres = np.stack([points[labels == c].mean(0) for c in range(k)])
    inertia = ((points - centres[labels]) ** 2).sum()
    if inertia < best_inertia - 1e-12:
      best, best_inertia = labels, inertia
  return best


def _kmeans_plus_plus(points, k, rng):
  centres = [points[rng.integers(len(points))]]
  for _ in range(1, k):
    d2 = ((points[:, None, :] - np.stack(centres)[None]) ** 2).sum(-1).min(axis=1)
    total = d2.sum()
    pick = rng.choice(len(points), p=d2 / total) if total > 0 else rng.integers(len(points))
    centres.append(points[pick])
  return np.stack(centres)


def first_appearance_order(labels: np.ndarray) -> np.ndarray:
  """Relabels so that labels are 0, 1, ... in order of first appearance."""
  labels = np.asarray(labels)
  _, first = np.unique(labels, return_index=True)
  mapping = np.zeros(labels.max() + 1 if labels.size else 0, np.int64)
  mapping[labels[np.sort(first)]] = np.arange(len(first))
  return mapping[labels]


def cluster(embeddings, num_speakers: int | None = None,
            options: ClusteringOptions = ClusteringOptions()) -> np.ndarray:
  """(n, D) d-vectors -> (n,) speaker labels, numbered by first appearance.

  ``num_speakers`` fixes k (capped at n); otherwise the eigen-gap picks it.
  """
  embeddings = np.asarray(embeddings, np.float64)
  n = len(embeddings)
  if num_speakers is not None and num_speakers < 1:
    raise ValueError(f"num_speakers must be >= 1, got {num_speakers}")
  if n == 0:
    return np.zeros(0, np.int64)
  if n == 1 or num_speakers == 1:
    return np.zeros(n, np.int64)
  values, vectors = eigen(refine(cosine_affinity(embeddings), options))
  k = min(num_speakers or eigengap_count(values, options.min_speakers, options.max_speakers), n)
  if k == 1:
    return np.zeros(n, np.int64)
  labels = kmeans(l2_normalize_np(vectors[:, :k]), k, seed=options.seed,
                  restarts=options.kmeans_restarts, iterations=options.kmeans_iterations)
  return first_appearance_order(labels)
