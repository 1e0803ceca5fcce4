"""The speaker encoder: log-mel -> 3 LSTMP layers -> last frame -> L2 norm (Wan et al. 2018, §3).

LSTMP is an LSTM whose output h_t = o_t * tanh(c_t) is projected to a smaller r_t = h_t W_p,
and r_t (not h_t) is what the next time step and the next layer see -- as in the paper and
in ``torch.nn.LSTM(proj_size=...)``. The input-to-gates matmul of all frames is done once,
outside the time loop; only the recurrence (r_{t-1} W_r) is scanned (``ge2e_jax.lstmp``,
whose backward pass also keeps the weight gradients out of the loop).
"""

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

from ge2e_jax import features, lstmp
from ge2e_jax.normalize import l2_normalize


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Shape of the encoder; ``td`` and ``ti`` are the paper's presets."""
  cells: int
  projection: int
  layers: int = 3
  n_mels: int = features.N_MELS
  forget_bias: float = 1.0
  scan_unroll: int = 1


def config_to_dict(config: EncoderConfig) -> dict:
  return dataclasses.asdict(config)


def config_from_dict(values: dict) -> EncoderConfig:
  """Inverse of ``config_to_dict``; names the unknown keys of a bad dict."""
  known = {f.name for f in dataclasses.fields(EncoderConfig)}
  unknown = sorted(set(values) - known)
  if unknown:
    raise ValueError(f"unknown encoder config keys {unknown}; expected a subset of {sorted(known)}")
  return EncoderConfig(**values)


PRESETS = {
    "td": EncoderConfig(cells=128, projection=64),
    "ti": EncoderConfig(cells=768, projection=256),
}


def preset(name: str, **overrides) -> EncoderConfig:
  if name not in PRESETS:
    raise ValueError(f"unknown encoder preset {name!r}; expected one of {sorted(PRESETS)}")
  return dataclasses.replace(PRESETS[name], **overrides)


class LSTMP(nn.Module):
  """One LSTM-with-projection layer, time-major: (time, batch, features) -> (time, batch, proj).

  Time-major end to end, and every matmul is a plain 2-D one over (time x batch) rows:
  XLA:CPU ran the same contractions written as 3-D einsums slower (BENCHMARKS.md).

  Initialisation: Glorot-uniform input weights, orthogonal recurrent and projection
  weights, forget-gate bias ``forget_bias`` -- so that different utterances give clearly
  different outputs at step 0 instead of saturating towards one shared vector.
  """
  cells: int
  projection: int
  forget_bias: float = 1.0
  scan_unroll: int = 1

  @nn.compact
  def __call__(self, x):
    h, p = self.cells, self.projection
    w_in = self.param("input_kernel", nn.initializers.glorot_uniform(), (x.shape[-1], 4 * h))
    w_rec = self.param("recurrent_kernel", _stacked_orthogonal(4), (p, 4 * h))
    bias = self.param("bias", _lstm_bias(self.forget_bias), (4 * h,))
    w_proj = self.param("projection_kernel", nn.initializers.orthogonal(), (h, p))
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    steps, batch, _ = x.shape
    x_gates = (x.astype(dtype).reshape(steps * batch, -1) @ w_in + bias).reshape(steps, batch, -1)
    return lstmp.lstmp_recurrence(x_gates, w_rec, w_proj, self.scan_unroll)


def _stacked_orthogonal(n_gates: int):
  """Orthogonal init per gate block of a (p, n_gates * h) recurrent matrix."""
  def init(key, shape, dtype=jnp.float32):
    rows, cols = shape
    keys = jax.random.split(key, n_gates)
    block = nn.initializers.orthogonal()
    return jnp.concatenate([block(k, (rows, cols // n_gates), dtype) for k in keys], axis=1)
  return init


def _lstm_bias(forget_bias: float):
  def init(key, shape, dtype=jnp.float32):
    del key
    h = shape[0] // 4
    return jnp.zeros(shape, dtype).at[h:2 * h].set(forget_bias)  # gate order i, f, g, o
  return init


FEATURE_VARIANCE_FLOOR = 1e-2


def normalize_features(logmel):
  """Per-utterance mean and variance normalisation of log-mel over time.

  Removes the channel/loudness offset (log-mel values sit around -5 with a spread of a
  few units) so the LSTM starts in its responsive range. The variance floor (a standard
  deviation of 0.1 nats, far below speech's 1-3) keeps a band that hardly changes, e.g.
  under a steady tone, from magnifying float32 rounding into the embedding.
  """
  mean = logmel.mean(axis=-2, keepdims=True)
  var = jnp.square(logmel - mean).mean(axis=-2, keepdims=True)
  return (logmel - mean) * jax.lax.rsqrt(var + FEATURE_VARIANCE_FLOOR)


class SpeakerEncoder(nn.Module):
  """Raw 16 kHz audio (..., samples) -> L2-normalised d-vectors (..., projection)."""
  config: EncoderConfig

  def setup(self):
    cfg = self.config
    self.lstms = [LSTMP(cfg.cells, cfg.projection, cfg.forget_bias, cfg.scan_unroll,
                        name=f"lstmp_{i}") for i in range(cfg.layers)]

  def __call__(self, audio):
    return self.embed_features(features.log_mel(audio, n_mels=self.config.n_mels))

  def embed_features(self, logmel):
    """(..., frames, n_mels) log-mel -> (..., projection) unit d-vectors."""
    lead = logmel.shape[:-2]
    x = normalize_features(logmel.reshape((-1,) + logmel.shape[-2:])).swapaxes(0, 1)
    for lstm in self.lstms:
      x = lstm(x)
    emb = l2_normalize(x[-1])
    return emb.reshape(lead + (emb.shape[-1],))


@functools.partial(jax.jit, static_argnums=1)  # one compile, not one per initialiser op
def init_encoder_params(rng, config: EncoderConfig):
  """A fresh params pytree of ``SpeakerEncoder(config)`` (the initialisers are on ``LSTMP``)."""
  dummy = jnp.zeros((1, 8, config.n_mels), jnp.float32)
  return SpeakerEncoder(config).init(rng, dummy, method=SpeakerEncoder.embed_features)["params"]

