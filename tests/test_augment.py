"""Augmentation: every transform against a float64 NumPy reference, every registered kind's
declared settings, determinism, and the per-device draws inside the sharded train step."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from ge2e_jax import augment, augment_dsp, augment_kinds, rir, settings

SR = 16000
N, M, S = 4, 3, 8000  # small batches: 4 speakers x 3 utterances x 0.5 s


def speech_like(n=N, m=M, samples=S, seed=0):
  """Noise under a slow random envelope, different per utterance (float32)."""
  rs = np.random.RandomState(seed)
  envelope = np.abs(np.sin(np.linspace(0, rs.uniform(2, 6), samples)))
  return (0.1 * rs.randn(n, m, samples) * envelope).astype(np.float32)


def only(kind, **fields):
  return augment.Augmenter(augment.AugmentOptions.from_dict({kind: {"prob": 1.0, **fields}}))


def snr_db(clean, noisy):
  clean, noisy = np.asarray(clean, np.float64), np.asarray(noisy, np.float64)
  return 10 * np.log10(np.sum(clean ** 2, -1) / np.sum((noisy - clean) ** 2, -1))


def flat_params(draws, name):
  return np.asarray(draws[name]).reshape(-1)


@pytest.fixture(scope="module")
def batch():
  return speech_like()


def run(augmenter, audio, seed=0):
  """(augmented audio, draws) with the draws the augmenter used."""
  key = jax.random.key(seed)
  draws = jax.jit(augmenter.draw, static_argnums=1)(key, audio.shape[:-1])
  out = jax.jit(augmenter.__call__)(jnp.asarray(audio), key)
  return np.asarray(out), jax.tree.map(np.asarray, draws)


def test_noise_reaches_the_drawn_snr_with_the_drawn_colour(batch):
  augmenter = only("noise", snr_db=(0.0, 20.0))
  out, draws = run(augmenter, batch)
  d = draws["noise"]
  assert sorted(d["index"]) == list(range(N * M))  # prob 1: every utterance
  got = snr_db(batch.reshape(-1, S)[d["index"]], out.reshape(-1, S)[d["index"]])
  np.testing.assert_allclose(got, d["snr_db"], atol=0.02)
  assert np.ptp(d["snr_db"]) > 5  # really drawn per utterance
  # The bank's spectra: power ~ 1 / f^e, e = 0, 1, 2 (slope of log power vs log f).
  freqs = np.fft.rfftfreq(8192, 1 / SR)
  band = (freqs > 100) & (freqs < 6000)
  for color, noise in zip(("white", "pink", "brown"), augmenter.kinds["noise"].bank):
    _, power = scipy.signal.welch(np.asarray(noise, np.float64), SR, nperseg=8192)
    slope = np.polyfit(np.log(freqs[band]), np.log(power[band]), 1)[0]
    assert slope == pytest.approx(-augment_dsp.COLORS[color], abs=0.1), color


def test_babble_is_other_speakers_at_the_drawn_snr(batch):
  augmenter = only("babble", snr_db=(5.0, 15.0), speakers=(1, 3))
  out, draws = run(augmenter, batch, seed=3)
  d = draws["babble"]
  flat = batch.reshape(-1, S).astype(np.float64)
  for k, u in enumerate(d["index"]):
    speaker = u // M
    mix = np.zeros(S)
    for j in range(d["count"][k]):
      source = (speaker + d["speaker_offset"][k, j]) % N
      assert source != speaker
      shift = int(np.floor(np.float32(d["shift"][k, j]) * np.float32(S)))
      mix += np.roll(flat[source * M + d["utterance"][k, j]], -shift)
    added = out.reshape(-1, S)[u] - flat[u]
    scale = np.dot(added, mix) / np.dot(mix, mix)  # added must be a multiple of the mix
    np.testing.assert_allclose(added, scale * mix, atol=1e-5)
    assert snr_db(flat[u], out.reshape(-1, S)[u]) == pytest.approx(d["snr_db"][k], abs=0.02)
  assert set(d["count"]) <= {1, 2, 3} and len(set(d["count"])) > 1


def edc_rt60(rir):
  """RT60 from the Schroeder backward integral's slope between -5 and -25 dB (T20 x 3)."""
  energy = np.cumsum(np.asarray(rir, np.float64)[::-1] ** 2)[::-1]
  edc = 10 * np.log10(energy / energy[0])
  fit = (edc <= -5) & (edc >= -25)
  slope = np.polyfit(np.flatnonzero(fit) / SR, edc[fit], 1)[0]
  return -60 / slope


def test_synthetic_rirs_decay_at_the_drawn_rt60():
  bank = rir.build_rir_bank(augment_kinds.Reverb.Options(
      prob=1.0, rt60_s=(0.2, 0.7), rir_seconds=1.0, bank_size=8, bank_seed=5))
  assert bank.rirs.shape == (8, SR) and not bank.image_method.any()
  np.testing.assert_allclose(np.sum(bank.rirs.astype(np.float64) ** 2, -1), 1.0, rtol=1e-5)
  measured = [edc_rt60(r) for r in bank.rirs]
  np.testing.assert_allclose(measured, bank.rt60_s, rtol=0.1)
  assert np.ptp(bank.rt60_s) > 0.2


def test_image_method_rirs_when_pyroomacoustics_is_installed():
  pytest.importorskip("pyroomacoustics", reason="the augment extra is not installed")
  options = augment_kinds.Reverb.Options(prob=1.0, rt60_s=(0.3, 0.4), rir_seconds=0.8,
                                         bank_size=2, image_method=1.0, bank_seed=1)
  bank = rir.build_rir_bank(options)
  assert bank.image_method.all() and bank.rirs.shape == (2, 12800)
  for response, rt60 in zip(bank.rirs, bank.rt60_s):
    assert np.argmax(np.abs(response)) <= 10  # direct path moved to the start
    # Sabine's formula is approximate for the image method (measured RT60 runs 1-1.5x).
    assert 0.7 * rt60 < edc_rt60(response) < 2.0 * rt60
  np.testing.assert_array_equal(rir.build_rir_bank(options).rirs, bank.rirs)


def test_reverb_is_the_linear_convolution_with_a_bank_rir(batch):
  augmenter = only("reverb", bank_size=4, rir_seconds=0.25)
  out, draws = run(augmenter, batch)
  d = draws["reverb"]
  for k, u in enumerate(d["index"]):
    want = np.convolve(batch.reshape(-1, S)[u].astype(np.float64),
                       augmenter.kinds["reverb"].bank.rirs[d["rir"][k]].astype(np.float64))[:S]
    np.testing.assert_allclose(out.reshape(-1, S)[u], want, atol=2e-6)


def test_gain_in_db(batch):
  out, draws = run(only("gain", db=(-10.0, 10.0)), batch)
  d = draws["gain"]
  flat, got = batch.reshape(-1, S)[d["index"]], out.reshape(-1, S)[d["index"]]
  ratio = 20 * np.log10(np.linalg.norm(got, axis=-1) / np.linalg.norm(flat, axis=-1))
  np.testing.assert_allclose(ratio, d["db"], atol=1e-4)


def test_channel_band_limits_and_mu_law_matches_g711():
  white = np.random.RandomState(1).randn(2, 2, 16000).astype(np.float32) * 0.1
  out, draws = run(only("channel", mu_law_prob=0.0), white)
  d = draws["channel"]
  freqs, power_in = scipy.signal.welch(white.reshape(-1, 16000).astype(np.float64), SR,
                                       nperseg=2048, detrend=False)
  _, power_out = scipy.signal.welch(out.reshape(-1, 16000).astype(np.float64), SR,
                                    nperseg=2048, detrend=False)
  for k, u in enumerate(d["index"]):
    low, high = d["low_hz"][k], d["high_hz"][k]
    stop = (freqs < low - 300) | (freqs > high + 300)
    passing = (freqs > low + 300) & (freqs < high - 300)
    gain_db = 10 * np.log10(power_out[u] / power_in[u])
    assert np.max(gain_db[stop]) < -50, (low, high)
    assert np.all(np.abs(gain_db[passing]) < 0.5)

  x = np.linspace(-1, 1, 20001)
  mu = 255.0
  compressed = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
  q = np.round((compressed + 1) * 127.5) / 127.5 - 1
  want = np.sign(q) * ((1 + mu) ** np.abs(q) - 1) / mu
  got = np.asarray(augment_dsp.mu_law(jnp.asarray(x, jnp.float32)))
  # float32 vs float64 may round a value on a level boundary the other way: rare.
  assert np.mean(np.abs(got - want) > 1e-5) < 1e-3
  assert len(np.unique(np.round(got, 6))) <= 256


def low_pass_reference(x, cutoff_hz, taps=255):
  """float64 windowed-sinc (Blackman) low-pass, delay-compensated, zero beyond the ends."""
  k = np.arange(taps) - (taps - 1) / 2
  kernel = 2 * cutoff_hz / SR * np.sinc(2 * cutoff_hz / SR * k) * np.blackman(taps)
  return np.convolve(np.asarray(x, np.float64), kernel)[(taps - 1) // 2:][:len(x)]


def test_narrowband_low_passes_keeping_the_low_end_and_the_codec_noise_below_the_cutoff():
  white = np.random.RandomState(2).randn(2, 2, 16000).astype(np.float32) * 0.1
  out, draws = run(only("narrowband", cutoff_hz=(3000.0, 5000.0)), white)
  d = draws["narrowband"]
  for k, u in enumerate(d["index"]):
    want = low_pass_reference(white.reshape(-1, 16000)[u], d["cutoff_hz"][k])
    np.testing.assert_allclose(out.reshape(-1, 16000)[u], want, atol=2e-5)

  coded, draws = run(only("narrowband", mu_law_prob=1.0), white)
  plain, _ = run(only("narrowband"), white)
  freqs, power_in = scipy.signal.welch(white.reshape(-1, 16000).astype(np.float64), SR,
                                       nperseg=2048, detrend=False)
  _, power_out = scipy.signal.welch(coded.reshape(-1, 16000).astype(np.float64), SR,
                                    nperseg=2048, detrend=False)
  for k, u in enumerate(draws["narrowband"]["index"]):
    cutoff = draws["narrowband"]["cutoff_hz"][k]
    gain_db = 10 * np.log10(power_out[u] / power_in[u])
    assert np.max(gain_db[freqs > cutoff + 300]) < -50, cutoff  # no codec noise above it
    assert np.all(np.abs(gain_db[(freqs > 20) & (freqs < cutoff - 300)]) < 0.5)  # low end kept
  # The codec changed what is below the cutoff: 8-bit mu-law noise, about 35-40 dB down.
  assert np.all((25 < snr_db(plain, coded)) & (snr_db(plain, coded) < 50))


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_matches_numpy_resampling(factor):
  t = np.arange(S)
  freqs = (150.0, 700.0, 1900.0)
  x = sum(np.sin(2 * np.pi * f * t / SR + p) for f, p in zip(freqs, (0.1, 0.7, 2.0))) / 3
  # linear: np.interp of the periodically extended signal at (factor * t) mod S. float32
  # positions near t = 8000 are exact to ~5e-4 samples, so values to ~5e-4 * max|x'|.
  speed = jax.jit(augment_dsp.speed, static_argnums=(2, 3))
  linear = np.asarray(speed(jnp.asarray(x[None], jnp.float32), factor, "linear", 0))[0]
  want = np.interp((factor * t) % S, np.arange(S + 1), np.append(x, x[0]))
  np.testing.assert_allclose(linear, want, atol=4e-4)
  # sinc: the band-limited signal itself at factor * t (interior, away from the wrap).
  sinc = np.asarray(speed(jnp.asarray(x[None], jnp.float32), factor, "sinc", 16))[0]
  exact = sum(np.sin(2 * np.pi * f * factor * t / SR + p)
              for f, p in zip(freqs, (0.1, 0.7, 2.0))) / 3
  interior = (factor * t > 16) & (factor * t < S - 17)
  assert np.max(np.abs(sinc - exact)[interior]) < 2e-3
  assert np.max(np.abs(linear - exact)[interior]) > 5 * np.max(np.abs(sinc - exact)[interior])


def test_speed_per_speaker_resamples_whole_speakers_by_one_factor(batch):
  augmenter = only("speed", prob=0.5, per="speaker", factor=(0.8, 1.2))
  out, draws = run(augmenter, batch, seed=2)
  d = draws["speed"]
  speakers = d["index"].reshape(-1, M)[:, 0] // M
  assert len(set(speakers)) == len(speakers) == N // 2
  np.testing.assert_array_equal(d["index"], (speakers[:, None] * M + np.arange(M)).ravel())
  factors = d["factor"].reshape(-1, M)
  assert np.all(factors == factors[:, :1]) and np.ptp(factors[:, 0]) > 0.01
  flat, got, t = batch.reshape(-1, S).astype(np.float64), out.reshape(-1, S), np.arange(S)
  for u, factor in zip(d["index"], d["factor"]):
    want = np.interp((factor * t) % S, np.arange(S + 1), np.append(flat[u], flat[u, 0]))
    np.testing.assert_allclose(got[u], want, atol=2e-3)
  others = np.setdiff1d(np.arange(N * M), d["index"])
  np.testing.assert_array_equal(got[others], flat[others].astype(np.float32))
  with pytest.raises(ValueError, match="per=speaker"):
    augmenter.draw(jax.random.key(0), (N * M,))


def test_short_repeats_a_drawn_stretch_within_the_valid_samples(batch):
  augmenter = only("short", seconds=(0.05, 0.3))
  out, draws = run(augmenter, batch, seed=3)
  d, flat, t = draws["short"], batch.reshape(-1, S), np.arange(S)
  for k, u in enumerate(d["index"]):  # wav[start + j % keep], the stretch drawn anywhere
    keep = int(d["samples"][k])
    start = int(np.floor(d["start"][k] * np.float32(S - keep + 1)))
    assert 0.05 * SR - 1 <= keep <= 0.3 * SR + 1 and 0 <= start <= S - keep
    np.testing.assert_array_equal(out.reshape(-1, S)[u], flat[u, start + t % keep])
  lengths = np.array([[S, S // 4, 100]] * N)  # padded utterances: the stretch stays inside
  got = np.asarray(augmenter.apply(jnp.asarray(batch), draws, lengths=lengths)).reshape(-1, S)
  for k, u in enumerate(d["index"]):
    length = lengths.reshape(-1)[u]
    keep = min(int(d["samples"][k]), length)
    start = int(np.floor(d["start"][k] * np.float32(length - keep + 1)))
    want = np.where(t < length, flat[u, start + t % keep], 0)
    np.testing.assert_array_equal(got[u], want)


def test_short_pad_ends_the_valid_samples_with_the_stretch_after_zeros(batch):
  augmenter = only("short", seconds=(0.05, 0.3), fill="pad")
  out, draws = run(augmenter, batch, seed=3)
  d, flat, t = draws["short"], batch.reshape(-1, S), np.arange(S)
  lengths = np.array([[S, S // 4, 100]] * N)
  got = np.asarray(augmenter.apply(jnp.asarray(batch), draws, lengths=lengths)).reshape(-1, S)
  for k, u in enumerate(d["index"]):
    for total, result in ((S, out.reshape(-1, S)[u]), (lengths.reshape(-1)[u], got[u])):
      keep = min(int(d["samples"][k]), total)
      start = int(np.floor(d["start"][k] * np.float32(total - keep + 1)))
      want = np.zeros(S, np.float32)
      want[total - keep:total] = flat[u, start:start + keep]
      np.testing.assert_array_equal(result, want)
  others = np.setdiff1d(np.arange(N * M), d["index"])
  np.testing.assert_array_equal(out.reshape(-1, S)[others], flat[others])
  with pytest.raises(ValueError, match="fill"):
    only("short", fill="tile")


@pytest.fixture(scope="module")
def everything():
  options = {k: {"prob": 0.5} for k in augment.KINDS}
  options["reverb"].update(bank_size=4, rir_seconds=0.1)
  options["noise"].update(bank_seconds=2.0)
  return augment.Augmenter(augment.AugmentOptions.from_dict(options))


def test_every_kind_keeps_length_and_is_deterministic(everything, batch):
  fn = jax.jit(everything.__call__)
  key = jax.random.key(7)
  first, again = fn(batch, key), fn(batch, key)
  np.testing.assert_array_equal(first, again)
  assert first.shape == batch.shape and np.all(np.isfinite(first))
  other = np.asarray(fn(batch, jax.random.key(8)))
  assert not np.allclose(other, first)
  draws = jax.jit(everything.draw, static_argnums=1)(key, (N, M))
  assert set(draws) == set(augment.KINDS)
  for d in draws.values():  # prob 0.5: exactly half the utterances, each once
    assert len(set(np.asarray(d["index"]).tolist())) == N * M // 2
  # untouched utterances pass through bit-exactly
  touched = set(np.concatenate([np.asarray(d["index"]) for d in draws.values()]).tolist())
  for u in set(range(N * M)) - touched:
    np.testing.assert_array_equal(np.asarray(first).reshape(-1, S)[u], batch.reshape(-1, S)[u])
  stacked = np.stack([batch, batch[::-1]])[..., :800]  # MultiReader's (K, n, m, S)
  assert jax.jit(everything.__call__)(stacked, key).shape == stacked.shape


def test_config_errors_name_the_field():
  with pytest.raises(ValueError, match=r"config.augment.noise.prob=1.5: expected a number"):
    augment.AugmentOptions.from_dict({"noise": {"prob": 1.5}})
  with pytest.raises(ValueError, match=r"config.augment: unknown fields \['echo'\]"):
    augment.AugmentOptions.from_dict({"echo": {"prob": 0.5}})
  with pytest.raises(ValueError, match=r"config.augment.gain: unknown fields \['dB'\]"):
    augment.AugmentOptions.from_dict({"gain": {"dB": (1, 2)}})
  assert augment.config_problems({"noise": {"colors": "violet", "bank_seed": -1},
                                  "channel": {"low_hz": (300.0, 3500.0), "taps": 254}}) == [
      "config.augment.noise.colors='violet': expected comma-separated names from "
      "('white', 'pink', 'brown')",
      "config.augment.noise.bank_seed=-1: expected an integer >= 0",
      "config.augment.channel.taps=254: expected an odd integer >= 1"]
  # relations between a kind's fields, once each field is fine on its own
  assert augment.config_problems({"channel": {"low_hz": (300.0, 3500.0)}}) == [
      "config.augment.channel.low_hz=(300.0, 3500.0): expected a high end below high_hz's "
      "low end (3000.0)"]
  assert augment.config_problems({"narrowband": {"cutoff_hz": (3400.0, 8000.0)}}) == [
      "config.augment.narrowband.cutoff_hz=(3400.0, 8000.0): expected a high end below 8000 "
      "(Nyquist)"]
  assert augment.config_problems(augment.default_config()) == []
  assert augment.make_augmenter({k: {"prob": 0.0} for k in augment.KINDS}) is None
  with pytest.raises(ValueError, match="babble needs >= 2 speakers"):
    jax.jit(only("babble").__call__)(jnp.zeros((1, 2, 800)), jax.random.key(0))


@pytest.mark.parametrize("name", augment.KINDS)
def test_every_registered_kind_is_a_checked_config_section(name):
  """A kind's options are its config.augment section: prob first, every field checked
  (its default passing) and explained, and a bad prob named in the settings style."""
  options = augment_kinds.REGISTRY[name].Options
  fields = dataclasses.fields(options)
  assert fields[0].name == "prob" and fields[0].default == 0.0
  for f in fields:
    assert f.metadata["check"].test(f.default) and f.metadata["help"], f.name
  assert augment.default_config()[name] == settings.defaults(options)
  assert augment.config_problems({name: {"prob": 1.01}}) == [
      f"config.augment.{name}.prob=1.01: expected a number in [0, 1]"]


# ---------------------------------------------------------------- the sharded train step
@pytest.mark.slow  # an 8-device subprocess
def test_per_device_draws_are_a_pure_function_of_seed_step_and_device(tmp_path):
  """2 CPU devices: the step's loss equals an unaugmented step on a batch whose shard d was
  augmented on the host with fold_in(fold_in(fold_in(key(seed), step), STREAM), d)."""
  env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(__file__)),
             XLA_FLAGS="--xla_force_host_platform_device_count=2")
  proc = subprocess.run([sys.executable, __file__, str(tmp_path / "out.npz")], env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  result = np.load(tmp_path / "out.npz")
  np.testing.assert_allclose(result["loss_step"], result["loss_reference"], rtol=1e-6)
  assert result["loss_step"] != result["loss_plain"]
  np.testing.assert_array_equal(result["loss_step"], result["loss_step_again"])
  assert result["shards_differ"]  # the same shard content on two devices augments differently


def _sharded_worker(out_path):
  from ge2e_jax import features, model, train_step  # pylint: disable=g-import-not-at-top
  assert jax.device_count() == 2
  config = model.EncoderConfig(cells=8, projection=4, layers=1)
  mesh = train_step.make_mesh()
  options = {k: {"prob": 0.5} for k in augment.KINDS}
  options["reverb"].update(bank_size=4, rir_seconds=0.1)
  options["noise"].update(bank_seconds=2.0)
  augmenter = augment.Augmenter(augment.AugmentOptions.from_dict(options))
  samples = features.samples_for_frames(6)
  audio = speech_like(4, 3, samples)
  audio[2:] = audio[:2]  # both devices hold the same audio
  speaker = np.arange(4, dtype=np.int32)
  batch = jax.device_put({"audio": audio, "speaker": speaker}, train_step.batch_sharding(mesh))
  params = train_step.init_params(jax.random.key(0), config)
  seed, step = 11, 5
  step_rng = jax.random.fold_in(jax.random.key(seed), step)
  with_aug = jax.jit(train_step.make_loss_and_grad(config, mesh, augment=augmenter))
  plain = jax.jit(train_step.make_loss_and_grad(config, mesh))
  shards = []
  for device in range(2):
    key = jax.random.fold_in(jax.random.fold_in(step_rng, train_step.AUGMENT_STREAM), device)
    shards.append(np.asarray(jax.jit(augmenter.__call__)(audio[2 * device:2 * device + 2],
                                                         key)))
  reference = jax.device_put({"audio": np.concatenate(shards), "speaker": speaker},
                             train_step.batch_sharding(mesh))
  np.savez(out_path,
           loss_step=np.asarray(with_aug(params, batch, step_rng)[0][0]),
           loss_step_again=np.asarray(with_aug(params, batch, step_rng)[0][0]),
           loss_reference=np.asarray(plain(params, reference, step_rng)[0][0]),
           loss_plain=np.asarray(plain(params, batch, step_rng)[0][0]),
           shards_differ=not np.allclose(shards[0], shards[1]))


if __name__ == "__main__":
  _sharded_worker(sys.argv[1])
