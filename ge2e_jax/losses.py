"""GE2E, TE2E and speaker-softmax losses as pure functions (Wan et al. 2018, §1.2 and §2).

Every loss takes the batch's embeddings as an (N, M, D) array: N speakers x M utterances.
Passing ``axis_name`` (inside ``jax.shard_map``) makes the same function work on a
speaker shard: each device holds n = N/d speakers, the centroids are all-gathered so
every utterance is scored against all N speakers, and the returned loss is the
all-reduced value of the whole batch -- bit-for-bit the quantity one device would
compute on the full batch, up to float summation order.

Arithmetic runs in float32 at least (bfloat16 embeddings are promoted), softmax uses
log-sum-exp, and nothing loops over speakers or utterances in Python.
"""

from typing import Literal

import jax
import jax.numpy as jnp
import optax

from ge2e_jax.normalize import l2_normalize

Centroids = Literal["exclusive", "inclusive", "split"]
Reduction = Literal["sum", "mean"]

def _compute_dtype(x):
  return jnp.promote_types(x.dtype, jnp.float32)


def _check_batch(emb, centroids: str, name: str = "emb"):
  if emb.ndim != 3:
    raise ValueError(
        f"{name} must have shape (N speakers, M utterances, D), got shape {emb.shape}")
  _, m, _ = emb.shape
  if centroids not in ("exclusive", "inclusive", "split"):
    raise ValueError(
        f"centroids must be 'exclusive', 'inclusive' or 'split', got {centroids!r}")
  if centroids == "exclusive" and m < 2:
    raise ValueError(
        f"exclusive (leave-one-out) centroids need M >= 2 utterances per speaker, got M={m}")
  if centroids == "split" and m % 2:
    raise ValueError(f"split centroids need an even M, got M={m}")


def _check_speakers(n_total: int):
  if n_total < 2:
    raise ValueError(f"GE2E needs N >= 2 speakers in the batch, got N={n_total}")


def _axis_size(axis_name):
  return 1 if axis_name is None else jax.lax.axis_size(axis_name)


def _gather_speakers(x, axis_name):
  """(n, ...) local speakers -> (N, ...) all speakers, in global speaker order."""
  if axis_name is None:
    return x
  return jax.lax.all_gather(x, axis_name, tiled=True)


def _speaker_offset(n_local: int, axis_name):
  """Global index of this shard's first speaker."""
  if axis_name is None:
    return 0
  return jax.lax.axis_index(axis_name) * n_local


def _reduce(per_row, reduction: str, n_rows_total, axis_name):
  total = jnp.sum(per_row)
  if axis_name is not None:
    total = jax.lax.psum(total, axis_name)
  if reduction == "sum":
    return total
  if reduction == "mean":
    return total / n_rows_total
  raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


def _own_speaker_mask(n: int, n_total: int, axis_name):
  rows = jnp.arange(n) + _speaker_offset(n, axis_name)
  return rows[:, None] == jnp.arange(n_total)  # (n, N)


def _cosine_similarity(emb, centroids: str, axis_name):
  """cos(e_ji, c_k) of shape (n, M, N) with the paper's (§2.1) true-speaker centroid on k == j."""
  n, m, _ = emb.shape
  e = l2_normalize(emb.astype(_compute_dtype(emb)))
  if centroids == "split":
    # Even utterances are scored against the odd halves' centroids and vice versa, so a
    # row never sees itself and every row of the batch is scored.
    halves = jnp.stack([e[:, 0::2].mean(1), e[:, 1::2].mean(1)])  # (2, n, D)
    halves = l2_normalize(_gather_speakers(halves.swapaxes(0, 1), axis_name))  # (N, 2, D)
    other_half = jnp.arange(m) % 2 == 0  # even rows use half 1, odd rows half 0
    cos = jnp.einsum("nmd,khd->nmkh", e, halves)
    return jnp.where(other_half[None, :, None], cos[..., 1], cos[..., 0])
  sums = e.sum(axis=1)  # (n, D)
  all_centroids = l2_normalize(_gather_speakers(sums, axis_name))  # (N, D)
  cos = jnp.einsum("nmd,kd->nmk", e, all_centroids)
  if centroids == "inclusive":
    return cos
  # Leave-one-out centroid of the true speaker: (sum - e_ji) / (M - 1); the 1/(M-1)
  # scale drops out of the cosine.
  loo = l2_normalize(sums[:, None, :] - e)
  own = jnp.sum(e * loo, axis=-1)  # (n, M)
  n_total = all_centroids.shape[0]
  is_own = _own_speaker_mask(n, n_total, axis_name)[:, None, :]
  return jnp.where(is_own, own[..., None], cos)


def similarity_matrix(emb, w, b, centroids: Centroids = "exclusive", *, axis_name=None):
  """S_ji,k = w * cos(e_ji, c_k) + b, shape (N, M, N) (local (n, M, N) under axis_name).

  ``centroids``: "exclusive" uses the leave-one-out centroid c_j^(-i) for the true speaker
  (the paper); "inclusive" the plain mean; "split" scores even utterances against the
  odd utterances' centroids and odd against even.
  """
  _check_batch(emb, centroids)
  _check_speakers(emb.shape[0] * _axis_size(axis_name))
  cos = _cosine_similarity(emb, centroids, axis_name)
  dtype = cos.dtype
  return jnp.asarray(w, dtype) * cos + jnp.asarray(b, dtype)


def ge2e_loss(emb, w, b, kind: Literal["softmax", "contrast"] = "softmax",
              centroids: Centroids = "exclusive", reduction: Reduction = "sum", *,
              axis_name=None):
  """GE2E loss over a batch of N speakers x M utterances (Wan et al. 2018, §2.1).

  softmax:  L(e_ji) = -S_ji,j + log sum_k exp(S_ji,k)
  contrast: L(e_ji) = 1 - sigmoid(S_ji,j) + max_{k != j} sigmoid(S_ji,k)
  "sum" returns sum_{j,i} L(e_ji) (the paper's L_G); "mean" divides it by N*M.
  """
  if kind == "softmax":
    # b shifts every logit of a row equally and cancels from the softmax, so it is left
    # out here: its gradient is then exactly zero instead of float32 round-off.
    b = 0.0
  s = similarity_matrix(emb, w, b, centroids, axis_name=axis_name)
  n, m, n_total = s.shape
  own = _own_speaker_mask(n, n_total, axis_name)[:, None, :]  # (n, 1, N)
  s_own = jnp.sum(jnp.where(own, s, 0.0), axis=-1)  # (n, M)
  if kind == "softmax":
    per_row = jax.nn.logsumexp(s, axis=-1) - s_own
  elif kind == "contrast":
    # sigmoid is monotone, so the hardest negative is sigmoid of the largest logit.
    hardest = jnp.max(jnp.where(own, -jnp.inf, s), axis=-1)
    per_row = 1.0 - jax.nn.sigmoid(s_own) + jax.nn.sigmoid(hardest)
  else:
    raise ValueError(f"kind must be 'softmax' or 'contrast', got {kind!r}")
  return _reduce(per_row, reduction, n_total * m, axis_name)


def te2e_loss(emb, w, b, negative_shift=1, reduction: Reduction = "sum", *, axis_name=None):
  """Tuple-based end-to-end (TE2E) baseline loss (Wan et al. 2018, §1.2) from an N x M batch.

  Utterance 0 of every speaker j is the evaluation utterance e_j~; utterances 1..M-1 of
  a speaker are its enrollment set, whose normalised mean is the centroid c_k. Each
  speaker gives two tuples: a target one (k = j) and a non-target one with
  k = (j + negative_shift) mod N, so the batch holds N target and N non-target tuples
  (the sampler shuffles speakers, so the pairing is random across batches; pass a
  random shift in [1, N-1] to vary it within the epoch too).

  L_T = delta(j,k) (1 - sigmoid(s)) + (1 - delta(j,k)) sigmoid(s),  s = w cos(e_j~, c_k) + b.
  "mean" divides the sum by the 2N tuples.
  """
  _check_batch(emb, "exclusive")
  n, _, _ = emb.shape
  n_total = n * _axis_size(axis_name)
  _check_speakers(n_total)
  e = l2_normalize(emb.astype(_compute_dtype(emb)))
  evaluation = e[:, 0]  # (n, D)
  all_centroids = l2_normalize(_gather_speakers(e[:, 1:].sum(axis=1), axis_name))  # (N, D)
  rows = jnp.arange(n) + _speaker_offset(n, axis_name)
  negative = (rows + jnp.asarray(negative_shift) % n_total) % n_total
  # A shift that is a multiple of N would pair a speaker with itself; use the next one.
  negative = jnp.where(negative == rows, (rows + 1) % n_total, negative)
  dtype = e.dtype
  w, b = jnp.asarray(w, dtype), jnp.asarray(b, dtype)
  s_target = w * jnp.sum(evaluation * all_centroids[rows], axis=-1) + b
  s_nontarget = w * jnp.sum(evaluation * all_centroids[negative], axis=-1) + b
  per_tuple = (1.0 - jax.nn.sigmoid(s_target)) + jax.nn.sigmoid(s_nontarget)
  return _reduce(per_tuple, reduction, 2 * n_total, axis_name)


def speaker_softmax_loss(logits, labels, reduction: Reduction = "sum", *, axis_name=None):
  """Speaker-classification cross-entropy (the softmax baseline).

  logits: (..., C) over all training speakers; labels: (...) integer speaker indices.
  """
  if logits.ndim != labels.ndim + 1 or logits.shape[:-1] != labels.shape:
    raise ValueError(
        f"logits must have shape labels.shape + (num_speakers,); got logits {logits.shape}"
        f" and labels {labels.shape}")
  logits = logits.astype(_compute_dtype(logits))
  per_row = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
  n_rows = labels.size * _axis_size(axis_name)
  return _reduce(per_row, reduction, n_rows, axis_name)


def multireader_loss(loss_fn, emb, weights, *per_source_args):
  """MultiReader (Wan et al. 2018, §2.3): sum_k alpha_k L_k over a stacked (K, N, M, D) batch.

  ``loss_fn(emb_k, *args_k) -> scalar`` is applied to each source separately (``args_k``:
  entry k of each of ``per_source_args``, e.g. the source's speaker ids and RNG key), so
  speakers of different sources never share a similarity matrix. Returns (total,
  per-source (K,)).
  """
  if emb.ndim != 4:
    raise ValueError(f"a MultiReader batch must have shape (K, N, M, D), got {emb.shape}")
  weights = jnp.asarray(weights)
  if weights.shape != emb.shape[:1]:
    raise ValueError(
        f"weights must have one entry per source, shape ({emb.shape[0]},), got {weights.shape}")
  per_source = jax.vmap(loss_fn)(emb, *per_source_args)
  return jnp.sum(weights.astype(per_source.dtype) * per_source), per_source
