"""The LSTMP encoder against an independent float64 NumPy recurrence."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ge2e_jax import features, lstmp, model


def ref_sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def ref_lstmp(x, p):
  """One LSTMP layer, time step by time step: r_t = (o * tanh(c_t)) W_p feeds step t+1."""
  w_in, w_rec, bias, w_proj = (np.asarray(p[k], np.float64) for k in
                               ("input_kernel", "recurrent_kernel", "bias", "projection_kernel"))
  h = w_proj.shape[0]
  batch, steps, _ = x.shape
  c = np.zeros((batch, h))
  r = np.zeros((batch, w_proj.shape[1]))
  out = []
  for t in range(steps):
    z = x[:, t] @ w_in + r @ w_rec + bias
    i, f, g, o = z[:, :h], z[:, h:2 * h], z[:, 2 * h:3 * h], z[:, 3 * h:]
    c = ref_sigmoid(f) * c + ref_sigmoid(i) * np.tanh(g)
    r = (ref_sigmoid(o) * np.tanh(c)) @ w_proj
    out.append(r)
  return np.stack(out, axis=1)


def ref_encoder(logmel, params, layers):
  x = np.asarray(logmel, np.float64)
  x = (x - x.mean(1, keepdims=True)) / np.sqrt(x.var(1, keepdims=True) + 1e-2)
  for i in range(layers):
    x = ref_lstmp(x, params[f"lstmp_{i}"])
  last = x[:, -1]
  return last / np.linalg.norm(last, axis=1, keepdims=True)


def harmonic_voice(f0, tilt, seed, samples):
  """A vowel-like harmonic complex with vibrato and a little noise: a stand-in 'speaker'."""
  rs = np.random.RandomState(seed)
  t = np.arange(samples) / features.SAMPLE_RATE
  freq = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t + rs.rand()))
  phase = 2 * np.pi * np.cumsum(freq) / features.SAMPLE_RATE
  x = sum(h ** -tilt * np.sin(h * phase) for h in range(1, 30) if h * f0 < 7500)
  return (0.3 * x / np.abs(x).max() + 0.01 * rs.randn(samples)).astype(np.float32)


SMALL = model.EncoderConfig(cells=12, projection=5, layers=3, n_mels=features.N_MELS)


@pytest.fixture(scope="module")
def small_encoder():
  enc = model.SpeakerEncoder(SMALL)
  params = enc.init(jax.random.key(0), jnp.zeros((1, 7, SMALL.n_mels)),
                    method=model.SpeakerEncoder.embed_features)["params"]
  return enc, params


def test_encoder_matches_float64_reference(small_encoder):
  enc, params = small_encoder
  logmel = np.random.RandomState(0).randn(4, 9, SMALL.n_mels).astype(np.float32) * 2 - 5
  got = enc.apply({"params": params}, jnp.asarray(logmel), method=model.SpeakerEncoder.embed_features)
  np.testing.assert_allclose(got, ref_encoder(logmel, params, SMALL.layers), atol=2e-5)


def test_encoder_batches_over_leading_axes_and_audio(small_encoder):
  enc, params = small_encoder
  audio = np.random.RandomState(1).randn(2, 3, features.samples_for_frames(10)).astype(np.float32)
  emb = enc.apply({"params": params}, jnp.asarray(audio) * 0.1)
  assert emb.shape == (2, 3, SMALL.projection)
  np.testing.assert_allclose(np.linalg.norm(emb, axis=-1), 1.0, rtol=1e-5)
  logmel = np.asarray(features.log_mel(jnp.asarray(audio) * 0.1)).reshape(6, 10, -1)
  np.testing.assert_allclose(np.asarray(emb).reshape(6, -1),
                             ref_encoder(logmel, params, SMALL.layers), atol=2e-5)


def test_torch_lstm_with_proj_size_agrees(small_encoder):
  """The same weights in torch.nn.LSTM(proj_size=...) give the same outputs (bench extra)."""
  torch = pytest.importorskip("torch")
  _, params = small_encoder
  lstm = torch.nn.LSTM(SMALL.n_mels, SMALL.cells, num_layers=1, batch_first=True,
                       proj_size=SMALL.projection).double()
  p = params["lstmp_0"]
  with torch.no_grad():
    lstm.weight_ih_l0.copy_(torch.from_numpy(np.asarray(p["input_kernel"], np.float64).T))
    lstm.weight_hh_l0.copy_(torch.from_numpy(np.asarray(p["recurrent_kernel"], np.float64).T))
    lstm.bias_ih_l0.copy_(torch.from_numpy(np.asarray(p["bias"], np.float64)))
    lstm.bias_hh_l0.zero_()
    lstm.weight_hr_l0.copy_(torch.from_numpy(np.asarray(p["projection_kernel"], np.float64).T))
  x = np.random.RandomState(2).randn(3, 6, SMALL.n_mels)
  want = lstm(torch.from_numpy(x))[0].detach().numpy()
  np.testing.assert_allclose(ref_lstmp(x, p), want, atol=1e-10)
  time_major = jnp.asarray(x.swapaxes(0, 1), jnp.float32)
  got = model.LSTMP(SMALL.cells, SMALL.projection).apply({"params": p}, time_major)
  np.testing.assert_allclose(np.asarray(got).swapaxes(0, 1), want, atol=2e-5)


@pytest.mark.parametrize("name,cells,projection", [("td", 128, 64), ("ti", 768, 256)])
def test_presets_have_the_papers_shapes(name, cells, projection):
  cfg = model.preset(name)
  shapes = jax.eval_shape(
      lambda: model.SpeakerEncoder(cfg).init(jax.random.key(0), jnp.zeros((1, 5, 40)),
                                             method=model.SpeakerEncoder.embed_features))
  layers = shapes["params"]
  assert sorted(layers) == ["lstmp_0", "lstmp_1", "lstmp_2"]
  assert layers["lstmp_0"]["input_kernel"].shape == (40, 4 * cells)
  assert layers["lstmp_1"]["input_kernel"].shape == (projection, 4 * cells)
  assert layers["lstmp_2"]["recurrent_kernel"].shape == (projection, 4 * cells)
  assert layers["lstmp_2"]["projection_kernel"].shape == (cells, projection)
  with pytest.raises(ValueError, match="unknown encoder preset"):
    model.preset("xl")


@pytest.mark.parametrize("fields, message", [
    (dict(cells=0), "config.model.cells=0: expected an integer >= 1"),
    (dict(projection=-1), "config.model.projection=-1: expected an integer >= 0 (0: LSTM"),
    (dict(mel_scale="bark"), "config.model.mel_scale='bark': expected one of ('htk', 'slaney')"),
    (dict(target_dbfs=3.0), "config.model.target_dbfs=3.0: expected None or a finite number < 0"),
    (dict(min_coverage=0.0), "config.model.min_coverage=0.0: expected a number in (0, 1]"),
    (dict(n_fft=256), "config.model.n_fft=256: expected an integer >= 400 (the window)"),
])
def test_encoder_fields_are_checked_where_they_are_defined(fields, message):
  with pytest.raises(ValueError) as err:
    model.preset("td", **fields)
  assert message in str(err.value)


def test_lstmp_output_depends_only_on_past_frames(small_encoder):
  """Frame t's output is that of frames 0..t alone: changing later frames leaves it as is."""
  _, params = small_encoder
  x = np.random.RandomState(3).randn(9, 2, SMALL.n_mels).astype(np.float32)
  changed = x.copy()
  changed[5:] += 1.0
  layer = model.LSTMP(SMALL.cells, SMALL.projection)
  out, out_changed = (np.asarray(layer.apply({"params": params["lstmp_0"]}, v))
                      for v in (x, changed))
  np.testing.assert_allclose(out_changed[:5], out[:5], rtol=0, atol=1e-6)
  assert np.abs(out_changed[5:] - out[5:]).max() > 1e-3


@pytest.mark.parametrize("name", ["td", pytest.param("ti", marks=pytest.mark.slow)])
def test_initial_embeddings_do_not_collapse(name):
  """Different voices must start far apart (a default-init LSTMP gave cosines ~0.9995)."""
  samples = features.samples_for_frames(80)
  audio = np.stack([harmonic_voice(80 + 25 * i, 0.5 + 0.15 * (i % 5), i, samples)
                    for i in range(10)])
  config = model.preset(name)
  params = model.init_encoder_params(jax.random.key(0), config)  # as training starts
  emb = np.asarray(jax.jit(model.SpeakerEncoder(config).apply)({"params": params}, audio),
                   np.float64)
  cos = emb @ emb.T
  pairs = cos[np.triu_indices(10, 1)]
  assert pairs.mean() < 0.5, pairs.mean()
  assert pairs.max() < 0.95, pairs.max()


def plain_scan_lstmp(x_gates, w_rec, w_proj):
  """The recurrence written naively, for autodiff to differentiate step by step."""
  cells = w_proj.shape[0]

  def step(carry, xg):
    c, r = carry
    z = xg + r @ w_rec
    i, f, g, o = (z[:, k * cells:(k + 1) * cells] for k in range(4))
    c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
    r = (jax.nn.sigmoid(o) * jnp.tanh(c)) @ w_proj
    return (c, r), r

  init = (jnp.zeros(x_gates.shape[1:2] + (cells,), x_gates.dtype),
          jnp.zeros(x_gates.shape[1:2] + (w_proj.shape[1],), x_gates.dtype))
  return jax.lax.scan(step, init, x_gates)[1]


@pytest.mark.parametrize("unroll", [1, 3])
def test_hand_written_backward_matches_autodiff_and_finite_differences(unroll):
  with jax.enable_x64(True):
    rs = np.random.RandomState(3)
    t, b, h, p = 7, 3, 5, 4
    args = (jnp.asarray(rs.randn(t, b, 4 * h)), jnp.asarray(0.5 * rs.randn(p, 4 * h)),
            jnp.asarray(0.5 * rs.randn(h, p)))
    probe = jnp.asarray(rs.randn(t, b, p))  # a random linear readout of every output
    ours = lambda *a: jnp.sum(probe * lstmp.lstmp_recurrence(*a, unroll=unroll))
    naive = lambda *a: jnp.sum(probe * plain_scan_lstmp(*a))
    np.testing.assert_allclose(ours(*args), naive(*args), rtol=1e-12)
    got = jax.grad(ours, argnums=(0, 1, 2))(*args)
    ours_jit = jax.jit(ours)
    want = jax.grad(naive, argnums=(0, 1, 2))(*args)
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    eps = 1e-6
    for which in range(3):
      flat = np.asarray(args[which]).ravel()
      for idx in rs.choice(flat.size, 4, replace=False):
        bumped = [np.array(flat), np.array(flat)]
        bumped[0][idx] += eps
        bumped[1][idx] -= eps
        vals = [ours_jit(*[jnp.asarray(v.reshape(args[which].shape)) if k == which else a
                       for k, a in enumerate(args)]) for v in bumped]
        numeric = float(vals[0] - vals[1]) / (2 * eps)
        np.testing.assert_allclose(np.asarray(got[which]).ravel()[idx], numeric, rtol=1e-6,
                                   atol=1e-9)
