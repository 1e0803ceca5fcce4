"""GE2E / TE2E / softmax losses against an independent float64 NumPy reference."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ge2e_jax import losses

SHAPES = [(2, 2, 3), (4, 6, 8), (7, 4, 16), (3, 10, 5)]
MODES = ["exclusive", "inclusive", "split"]


# ----------------------------------------------------------------- the reference (float64)
def ref_unit(v):
  return v / np.linalg.norm(v)


def ref_similarity(emb, w, b, centroids):
  """S[j, i, k] straight from Wan et al. 2018, §2.1 with explicit loops."""
  emb = np.asarray(emb, np.float64)
  n, m, _ = emb.shape
  e = np.array([[ref_unit(emb[j, i]) for i in range(m)] for j in range(n)])
  s = np.zeros((n, m, n))
  for j in range(n):
    for i in range(m):
      for k in range(n):
        if centroids == "split":
          # even utterances vs the odd half's centroid, odd ones vs the even half's.
          half = [u for u in range(m) if u % 2 != i % 2]
          c = np.mean([e[k, u] for u in half], axis=0)
        elif centroids == "exclusive" and k == j:
          c = np.mean([e[k, u] for u in range(m) if u != i], axis=0)
        else:
          c = np.mean(e[k], axis=0)
        s[j, i, k] = w * np.dot(e[j, i], ref_unit(c)) + b
  return s


def ref_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def ref_ge2e(emb, w, b, kind, centroids, reduction):
  s = ref_similarity(emb, w, b, centroids)
  n, m, _ = s.shape
  total = 0.0
  for j in range(n):
    for i in range(m):
      row = s[j, i]
      if kind == "softmax":
        top = row.max()
        total += -row[j] + top + np.log(np.sum(np.exp(row - top)))
      else:
        others = [ref_sigmoid(row[k]) for k in range(n) if k != j]
        total += 1.0 - ref_sigmoid(row[j]) + max(others)
  return total if reduction == "sum" else total / (n * m)


def ref_te2e(emb, w, b, shift, reduction):
  emb = np.asarray(emb, np.float64)
  n, m, _ = emb.shape
  total = 0.0
  for j in range(n):
    evaluation = ref_unit(emb[j, 0])
    for k, target in ((j, True), ((j + shift) % n, False)):
      c = ref_unit(np.mean([ref_unit(emb[k, u]) for u in range(1, m)], axis=0))
      s = w * np.dot(evaluation, c) + b
      total += (1.0 - ref_sigmoid(s)) if target else ref_sigmoid(s)
  return total if reduction == "sum" else total / (2 * n)


def random_batch(shape, seed=0, dtype=np.float32):
  return np.random.RandomState(seed).randn(*shape).astype(dtype)


# ----------------------------------------------------------------- values
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("centroids", MODES)
def test_similarity_matrix_matches_reference(shape, centroids):
  if centroids == "split" and shape[1] % 2:
    pytest.skip("split needs even M")
  emb = random_batch(shape, seed=sum(shape))
  got = losses.similarity_matrix(jnp.asarray(emb), 7.5, -2.25, centroids=centroids)
  assert got.shape == (shape[0], shape[1], shape[0])
  np.testing.assert_allclose(got, ref_similarity(emb, 7.5, -2.25, centroids), rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind,centroids,reduction",
                         list(itertools.product(["softmax", "contrast"], MODES, ["sum", "mean"])))
def test_ge2e_loss_matches_reference(shape, kind, centroids, reduction):
  if centroids == "split" and shape[1] % 2:
    pytest.skip("split needs even M")
  emb = random_batch(shape, seed=3 + sum(shape))
  got = losses.ge2e_loss(jnp.asarray(emb), 10.0, -5.0, kind, centroids, reduction)
  want = ref_ge2e(emb, 10.0, -5.0, kind, centroids, reduction)
  np.testing.assert_allclose(float(got), want, rtol=2e-5)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_te2e_loss_matches_reference(shape, reduction):
  emb = random_batch(shape, seed=11 + shape[0])
  n = shape[0]
  for shift in sorted({1, n - 1, n + 1}):  # n + 1 wraps around to 1
    got = losses.te2e_loss(jnp.asarray(emb), 4.0, -1.5, shift, reduction)
    np.testing.assert_allclose(float(got), ref_te2e(emb, 4.0, -1.5, shift, reduction),
                               rtol=2e-5)


def test_speaker_softmax_loss_matches_reference():
  rs = np.random.RandomState(5)
  logits = rs.randn(6, 4, 9) * 3
  labels = rs.randint(0, 9, size=(6, 4))
  want = 0.0
  for idx in np.ndindex(labels.shape):
    row = logits[idx]
    want += np.log(np.sum(np.exp(row - row.max()))) + row.max() - row[labels[idx]]
  got_sum = losses.speaker_softmax_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(labels))
  got_mean = losses.speaker_softmax_loss(jnp.asarray(logits, jnp.float32), jnp.asarray(labels),
                                         "mean")
  np.testing.assert_allclose(float(got_sum), want, rtol=1e-5)
  np.testing.assert_allclose(float(got_mean), want / labels.size, rtol=1e-5)


def test_multireader_loss_is_weighted_sum_of_separate_losses():
  emb = random_batch((3, 4, 5, 6), seed=21)
  weights = np.array([1.0, 0.25, 2.0], np.float32)
  total, per_source = losses.multireader_loss(
      lambda e: losses.ge2e_loss(e, 10.0, -5.0), jnp.asarray(emb), weights)
  want = [ref_ge2e(emb[k], 10.0, -5.0, "softmax", "exclusive", "sum") for k in range(3)]
  np.testing.assert_allclose(per_source, want, rtol=2e-5)
  np.testing.assert_allclose(float(total), np.dot(weights, want), rtol=2e-5)
  # One similarity matrix over all 12 speakers would be a different (larger) loss.
  merged = ref_ge2e(emb.reshape(12, 5, 6), 10.0, -5.0, "softmax", "exclusive", "sum")
  assert abs(merged - sum(want)) > 1.0


def test_softmax_rows_are_log_sum_exp_stable():
  emb = random_batch((5, 4, 8), seed=2)
  got = losses.ge2e_loss(jnp.asarray(emb), 1e4, 3e3, "softmax")  # logits ~ 1e4: exp overflows
  want = ref_ge2e(emb, 1e4, 3e3, "softmax", "exclusive", "sum")
  assert np.isfinite(float(got))
  np.testing.assert_allclose(float(got), want, rtol=1e-4)


def test_bfloat16_embeddings_accumulate_in_float32():
  emb = random_batch((8, 10, 64), seed=9)
  emb_bf16 = jnp.asarray(emb, jnp.bfloat16)
  got = losses.ge2e_loss(emb_bf16, 10.0, -5.0)
  assert got.dtype == jnp.float32
  assert losses.similarity_matrix(emb_bf16, 10.0, -5.0).dtype == jnp.float32
  # The only error is bf16's rounding of the inputs: the reference on the rounded values
  # is matched to float32 precision.
  rounded = np.asarray(emb_bf16.astype(jnp.float32), np.float64)
  np.testing.assert_allclose(float(got), ref_ge2e(rounded, 10.0, -5.0, "softmax", "exclusive",
                                                  "sum"), rtol=1e-5)


# ----------------------------------------------------------------- gradients and invariances
def _fd_check(fn, x, eps=1e-6, n_coords=12, seed=0):
  """Central differences in float64 on random coordinates against jax.grad."""
  grad = np.asarray(jax.grad(fn)(x))
  rs = np.random.RandomState(seed)
  flat = np.asarray(x).ravel()
  for idx in rs.choice(flat.size, size=min(n_coords, flat.size), replace=False):
    plus, minus = flat.copy(), flat.copy()
    plus[idx] += eps
    minus[idx] -= eps
    numeric = (float(fn(jnp.asarray(plus.reshape(x.shape))))
               - float(fn(jnp.asarray(minus.reshape(x.shape))))) / (2 * eps)
    np.testing.assert_allclose(grad.ravel()[idx], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.slow
@pytest.mark.parametrize("kind,centroids", list(itertools.product(["softmax", "contrast"], MODES)))
def test_ge2e_gradients_match_finite_differences(kind, centroids):
  with jax.enable_x64(True):
    emb = jnp.asarray(random_batch((4, 4, 6), seed=13), jnp.float64)
    _fd_check(lambda e: losses.ge2e_loss(e, 6.0, -2.0, kind, centroids), emb)
    wb = jnp.asarray([6.0, -2.0])
    f_wb = lambda p: losses.ge2e_loss(emb, p[0], p[1], kind, centroids)
    _fd_check(f_wb, wb, n_coords=2)


@pytest.mark.slow
def test_te2e_and_softmax_gradients_match_finite_differences():
  with jax.enable_x64(True):
    emb = jnp.asarray(random_batch((5, 4, 6), seed=17), jnp.float64)
    _fd_check(lambda e: losses.te2e_loss(e, 6.0, -2.0, 2), emb)
    logits = jnp.asarray(random_batch((5, 7), seed=19), jnp.float64)
    labels = jnp.arange(5) % 7
    _fd_check(lambda z: losses.speaker_softmax_loss(z, labels), logits)


@pytest.mark.parametrize("centroids", MODES)
def test_softmax_gradient_of_b_is_exactly_zero(centroids):
  emb = jnp.asarray(random_batch((6, 4, 8), seed=23))
  grad_b = jax.grad(lambda b: losses.ge2e_loss(emb, 10.0, b, "softmax", centroids))(-5.0)
  assert float(grad_b) == 0.0
  grad_b_contrast = jax.grad(lambda b: losses.ge2e_loss(emb, 10.0, b, "contrast", centroids))(-5.0)
  assert abs(float(grad_b_contrast)) > 1e-3  # b does matter for contrast


@pytest.mark.parametrize("kind,centroids", list(itertools.product(["softmax", "contrast"], MODES)))
def test_permuting_speakers_permutes_the_matrix_and_keeps_the_loss(kind, centroids):
  emb = random_batch((6, 4, 8), seed=29)
  perm = np.random.RandomState(1).permutation(6)
  s = np.asarray(losses.similarity_matrix(jnp.asarray(emb), 10.0, -5.0, centroids))
  s_perm = np.asarray(losses.similarity_matrix(jnp.asarray(emb[perm]), 10.0, -5.0, centroids))
  np.testing.assert_allclose(s_perm, s[perm][:, :, perm], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(losses.ge2e_loss(jnp.asarray(emb[perm]), 10.0, -5.0, kind, centroids),
                             losses.ge2e_loss(jnp.asarray(emb), 10.0, -5.0, kind, centroids),
                             rtol=1e-5)


def test_rescaling_one_embedding_changes_nothing():
  emb = random_batch((5, 4, 8), seed=31)
  scaled = emb.copy()
  scaled[2, 1] *= 37.0
  for centroids in MODES:
    np.testing.assert_allclose(
        losses.similarity_matrix(jnp.asarray(scaled), 10.0, -5.0, centroids),
        losses.similarity_matrix(jnp.asarray(emb), 10.0, -5.0, centroids), rtol=1e-5, atol=1e-5)


def test_exclusive_centroid_makes_the_true_speaker_harder_than_inclusive():
  """The leave-one-out centroid never contains the row itself, so its cosine is lower."""
  emb = random_batch((6, 5, 8), seed=37)
  excl = np.asarray(losses.similarity_matrix(jnp.asarray(emb), 1.0, 0.0, "exclusive"))
  incl = np.asarray(losses.similarity_matrix(jnp.asarray(emb), 1.0, 0.0, "inclusive"))
  own = np.arange(6)
  assert np.all(excl[own, :, own] < incl[own, :, own])
  off = ~np.eye(6, dtype=bool)[:, None, :].repeat(5, axis=1)
  np.testing.assert_array_equal(excl[off], incl[off])


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("shape,centroids,message", [
    ((1, 4, 8), "exclusive", "N >= 2"),
    ((4, 1, 8), "exclusive", "M >= 2"),
    ((4, 3, 8), "split", "even M"),
    ((4, 8), "inclusive", "shape"),
    ((2, 4, 4, 8), "inclusive", "shape"),
])
def test_bad_batches_raise_clear_errors(shape, centroids, message):
  emb = jnp.zeros(shape)
  with pytest.raises(ValueError, match=message):
    losses.ge2e_loss(emb, 10.0, -5.0, centroids=centroids)


def test_bad_options_raise_clear_errors():
  emb = jnp.asarray(random_batch((3, 4, 8)))
  with pytest.raises(ValueError, match="centroids"):
    losses.similarity_matrix(emb, 10.0, -5.0, centroids="leave_one_out")
  with pytest.raises(ValueError, match="kind"):
    losses.ge2e_loss(emb, 10.0, -5.0, kind="triplet")
  with pytest.raises(ValueError, match="reduction"):
    losses.ge2e_loss(emb, 10.0, -5.0, reduction="max")
  with pytest.raises(ValueError, match="one entry per source"):
    losses.multireader_loss(lambda e: losses.ge2e_loss(e, 10.0, -5.0), emb[None], [1.0, 2.0])
  with pytest.raises(ValueError, match="logits"):
    losses.speaker_softmax_loss(jnp.zeros((4, 3)), jnp.zeros((5,), jnp.int32))
