"""The speaker encoder: log-mel -> 3 LSTMP layers -> last frame -> L2 norm (Wan et al. 2018, §3).

Variants are fields of ``EncoderConfig``, not other modules: LSTM layers without projection
(``projection=0``), a dense + ReLU head after the last frame (``head``), mel power instead
of log-mel, librosa's Slaney filters and n_fft, no per-utterance feature normalisation, volume
normalisation and Resemblyzer's partial-utterance windows (``window_rule``, used by
``ge2e_jax.inference``). The defaults are the paper's; ``RESEMBLYZER`` is the encoder of
Resemblyzer / Real-Time-Voice-Cloning (``experiments/import_encoder.py`` fills its weights).

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

from ge2e_jax import features, lstmp, settings
from ge2e_jax.normalize import l2_normalize


WINDOW_RULES = ("overlap", "overlap_padded", "partials")


@dataclasses.dataclass(frozen=True)
class EncoderConfig:
  """Shape of the encoder and its frontend; ``td`` and ``ti`` are the paper's presets.

  Each field carries its check and help (``ge2e_jax.settings``): ``config.model`` of a run
  and ``config_checks`` read them from here.
  """
  cells: int = settings.required(settings.integer(1), "LSTM cells per layer")
  projection: int = settings.required(
      settings.integer(0, note="0: LSTM layers without projection"),
      "LSTMP projection per layer; 0: plain LSTM layers (their output is the cells)")
  layers: int = settings.setting(3, settings.integer(1), "stacked LSTM(P) layers")
  n_mels: int = settings.setting(features.N_MELS, settings.integer(1), "mel bands")
  forget_bias: float = settings.setting(1.0, settings.number(), "initial forget-gate bias")
  scan_unroll: int = settings.setting(1, settings.integer(1),
                                      "time steps per iteration of the recurrence's scan")
  head: int = settings.setting(0, settings.integer(0, note="0: no dense head"),
                               "> 0: a dense layer of this many units + ReLU after the last frame")
  n_fft: int = settings.setting(features.N_FFT, settings.integer(400, note="the window"),
                                "FFT size of the mel frontend (>= the 400-sample window)")
  mel_scale: str = settings.setting("htk", settings.one_of(*features.MEL_SCALES),
                                    "'htk' or librosa's 'slaney' mel filters")
  log_mel: bool = settings.setting(True, settings.boolean(), "log-mel (else mel power)")
  normalize_features: bool = settings.setting(
      True, settings.boolean(), "per-utterance mean/variance normalisation over time")
  target_dbfs: float | None = settings.setting(
      None, settings.optional(settings.number(high=0, high_open=True, note="dB full scale")),
      "utterances are scaled up to this RMS level first (None: as they are)")
  window_rule: str = settings.setting(
      "overlap", settings.one_of(*WINDOW_RULES),
      "how ge2e_jax.inference cuts an utterance into windows: 'overlap' (50 %, an "
      "end-aligned last window, short input repeated), 'overlap_padded' (the same, but "
      "short input ends its window, zeros before it) or 'partials' (Resemblyzer's: a window "
      "every SAMPLE_RATE / partial_rate samples on the 10 ms grid, frames centred on it, zero "
      "padding, the last window only if it covers min_coverage of a window with audio)")
  partial_rate: float = settings.setting(1.3, settings.number(0, low_open=True,
                                                              note="windows per second"),
                                         "'partials': windows per second")
  min_coverage: float = settings.setting(0.75, settings.number(0, 1, low_open=True),
                                         "'partials': the last window's least audio fraction")

  def __post_init__(self):
    settings.check(self, "model")


def embedding_dim(config: EncoderConfig) -> int:
  """Size of the d-vector: the head's, else the projection's, else the cells'."""
  return config.head or config.projection or config.cells


def config_to_dict(config: EncoderConfig) -> dict:
  return dataclasses.asdict(config)


def config_from_dict(values: dict) -> EncoderConfig:
  """Inverse of ``config_to_dict`` (a config.json's ``model``); names every unknown key and
  bad value as ``config.model.x``. Keys it lacks (an older version's) take their defaults."""
  return settings.build(EncoderConfig, values, "model")


PRESETS = {
    "td": EncoderConfig(cells=128, projection=64),
    "ti": EncoderConfig(cells=768, projection=256),
}
# Resemblyzer's VoiceEncoder (hparams.py, voice_encoder.py, audio.py of resemblyzer 0.1.4):
# 3 x LSTM(256), Linear(256, 256) + ReLU on the last frame; librosa mel power (n_fft 400,
# 25 ms / 10 ms, 40 Slaney mels), volume to -30 dBFS, 160-frame partials at 1.3 per second.
RESEMBLYZER = EncoderConfig(cells=256, projection=0, head=256, forget_bias=0.0, n_fft=400,
                            mel_scale="slaney", log_mel=False, normalize_features=False,
                            target_dbfs=-30.0, window_rule="partials")


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


class LSTM(nn.Module):
  """One LSTM layer without projection, time-major: (time, batch, features) -> (time, batch, cells).

  The parameters are LSTMP's without ``projection_kernel`` (gate order i, f, g, o, as in
  ``torch.nn.LSTM``; its two biases summed into ``bias``).
  """
  cells: int
  forget_bias: float = 1.0
  scan_unroll: int = 1

  @nn.compact
  def __call__(self, x):
    h = self.cells
    w_in = self.param("input_kernel", nn.initializers.glorot_uniform(), (x.shape[-1], 4 * h))
    w_rec = self.param("recurrent_kernel", _stacked_orthogonal(4), (h, 4 * h))
    bias = self.param("bias", _lstm_bias(self.forget_bias), (4 * h,))
    dtype = jnp.promote_types(x.dtype, jnp.float32)
    steps, batch, _ = x.shape
    x_gates = (x.astype(dtype).reshape(steps * batch, -1) @ w_in + bias).reshape(steps, batch, -1)
    return lstmp.lstm_recurrence(x_gates, w_rec, self.scan_unroll)


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
    if cfg.projection:
      self.lstms = [LSTMP(cfg.cells, cfg.projection, cfg.forget_bias, cfg.scan_unroll,
                          name=f"lstmp_{i}") for i in range(cfg.layers)]
    else:
      self.lstms = [LSTM(cfg.cells, cfg.forget_bias, cfg.scan_unroll, name=f"lstm_{i}")
                    for i in range(cfg.layers)]
    self.head = nn.Dense(cfg.head, name="head") if cfg.head else None

  def __call__(self, audio):
    cfg = self.config
    return self.embed_features(features.mel_spectrogram(
        audio, n_mels=cfg.n_mels, n_fft=cfg.n_fft, mel_scale=cfg.mel_scale, log=cfg.log_mel))

  def embed_features(self, mel):
    """(..., frames, n_mels) features -> (..., embedding_dim) unit d-vectors."""
    lead = mel.shape[:-2]
    x = mel.reshape((-1,) + mel.shape[-2:])
    if self.config.normalize_features:
      x = normalize_features(x)
    x = x.swapaxes(0, 1)
    for lstm in self.lstms:
      x = lstm(x)
    x = x[-1]
    if self.head is not None:
      x = nn.relu(self.head(x))
    emb = l2_normalize(x)
    return emb.reshape(lead + (emb.shape[-1],))


@functools.partial(jax.jit, static_argnums=1)  # one compile, not one per initialiser op
def init_encoder_params(rng, config: EncoderConfig):
  """A fresh params pytree of ``SpeakerEncoder(config)`` (the initialisers are on ``LSTMP``)."""
  dummy = jnp.zeros((1, 8, config.n_mels), jnp.float32)
  return SpeakerEncoder(config).init(rng, dummy, method=SpeakerEncoder.embed_features)["params"]

