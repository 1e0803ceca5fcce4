"""L2 normalisation, defined once: ``l2_normalize`` (jnp, traced code) and ``l2_normalize_np``
(NumPy float64, host code). Both floor the squared norm at ``EPS``, so an all-zero vector
stays zero instead of becoming NaN."""

import jax
import jax.numpy as jnp
import numpy as np

EPS = 1e-12


def l2_normalize(x, axis: int = -1):
  """x / ||x|| along ``axis`` in jnp (one rsqrt)."""
  return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(jnp.square(x), axis=axis, keepdims=True), EPS))


def l2_normalize_np(x, axis: int = -1) -> np.ndarray:
  """x / ||x|| along ``axis`` in float64 NumPy."""
  x = np.asarray(x, np.float64)
  return x / np.sqrt(np.maximum(np.sum(np.square(x), axis=axis, keepdims=True), EPS))
