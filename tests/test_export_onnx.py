"""The ONNX export: run by onnxruntime, it must give the JAX Embedder's d-vectors within 1e-4
on real (espeak-ng) and random windows, for the td and ti presets and a trained td model
exported by the CLI; docs/onnx.md's verify snippet must run with neither jax nor TensorFlow."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest

from data_pipelines.builders import espeak
from experiments import export_onnx
from ge2e_jax import audio, checkpoint, features, inference, model, model_card, optim, train_step

MISSING = [name for name in export_onnx.PACKAGES if importlib.util.find_spec(name) is None]
needs_onnx = pytest.mark.skipif(bool(MISSING), reason=f"the ONNX export needs {MISSING}: "
                                f"{export_onnx.INSTALL}")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY = 1e-4
VOICES = ("en-us+m3", "en-gb+f2", "en-gb-scotland+m1", "en-us+f4")
LINES = ("the quick brown fox jumps over the lazy dog", "open the window and let the air in")
WINDOW_FRAMES = {"td": 80, "ti": 160, "resemblyzer": 160}  # their eval.window_frames; else 80
ENCODERS = {**model.PRESETS, "resemblyzer": model.RESEMBLYZER}  # an imported encoder too
ROWS = {"td": 2}  # td: 5 rows run as 3 steps of 2, the last one padded; else 1 row per step
NO_TRIM = inference.TrimOptions(enabled=False)


@pytest.fixture(scope="module")
def speech():
  """{voice: [16 kHz utterance per line]} of espeak-ng speech."""
  out = {}
  for k, voice in enumerate(VOICES):
    out[voice] = [audio.resample(*espeak.synthesize(voice, line, espeak.Prosody(pitch=30 + 9 * k)),
                                 16000).astype(np.float32) for line in LINES]
  return out


def real_windows(speech, samples: int, n: int) -> np.ndarray:
  """n windows of ``samples`` samples from different voices, each from a different offset."""
  utterances = [u for voice in VOICES for u in speech[voice]]
  return np.stack([np.resize(utterances[k][2000 * k:], samples) for k in range(n)])


def random_windows(samples: int, n: int, seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).uniform(-0.5, 0.5, (n, samples)).astype(np.float32)


@pytest.fixture(scope="module", params=sorted(ENCODERS))
def converted(request, tmp_path_factory):
  """(config, params, window_frames, onnxruntime fn) of a freshly initialised encoder: every
  preset and the imported encoders' variant must export the same way."""
  config, window_frames = ENCODERS[request.param], WINDOW_FRAMES.get(request.param, 80)
  params = jax.device_get(train_step.init_params(jax.random.key(3), config)["encoder"])
  path = tmp_path_factory.mktemp("onnx") / "m.onnx"
  path.write_bytes(export_onnx.convert(config, params, window_frames=window_frames,
                                       rows=ROWS.get(request.param, 1)))
  return config, params, window_frames, export_onnx.load(os.fspath(path))


@needs_onnx
def test_onnx_matches_the_jax_embedder_on_real_and_random_windows(converted, speech):
  config, params, window_frames, run = converted
  samples = features.samples_for_frames(window_frames)
  waveform = np.concatenate([real_windows(speech, samples, 3), random_windows(samples, 2)])
  want = inference.Embedder(config, params, window_frames=window_frames,
                            trim=NO_TRIM).embed_prepared(list(waveform))
  for rows in (waveform, waveform[:1]):  # the batch is dynamic
    got = run(rows)
    assert got.shape == (len(rows), model.embedding_dim(config)) and got.dtype == np.float32
    np.testing.assert_allclose(got, want[:len(rows)], atol=PARITY)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
  assert np.abs(want[0] - want[3]).max() > 100 * PARITY  # rows differ: the check can fail


@needs_onnx
def test_onnx_rejects_another_row_length(converted):
  *_, window_frames, run = converted
  with pytest.raises(ValueError, match=r"takes waveform of shape \(batch, \d+\)"):
    run(np.zeros((1, features.samples_for_frames(window_frames) + 160), np.float32))


@pytest.fixture(scope="module")
def trained_workdir(tmp_path_factory, speech):
  """A td workdir after a few demo-like steps (td_demo's Adam) on the espeak speakers, with a
  held-out evaluation recorded for its step as the trainer does."""
  config, steps, frames = model.preset("td"), 3, WINDOW_FRAMES["td"]
  samples = features.samples_for_frames(frames)
  mesh = train_step.make_mesh(jax.devices()[:1])
  batch = {"audio": np.stack([[np.resize(u, samples) for u in speech[v]] for v in VOICES]),
           "speaker": np.arange(len(VOICES), dtype=np.int32)}
  batch = jax.device_put(batch, train_step.batch_sharding(mesh))
  opt = optim.make_optimizer(learning_rate=1e-3, kind="adam")
  state = train_step.init_state(train_step.init_params(jax.random.key(0), config), opt)
  step_fn = train_step.make_train_step(config, opt, mesh)
  for step in range(steps):
    state, _ = step_fn(state, batch, jax.random.key(step))
  path = tmp_path_factory.mktemp("trained")
  run_config = {"model": model.config_to_dict(config), "eval": {"window_frames": frames},
                "data": {"sources": "espeak:test"}}
  checkpoint.write_config(os.fspath(path), run_config)
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(steps, state, {"step": steps})
  ck.close()
  model_card.record_training_eval(
      os.fspath(path), run_config, steps,
      {"eer": 0.25, "threshold": 0.6, "far_threshold": 0.9, "far_target": 0.01,
       "min_dcf": 0.5, "trials": 40, "target_trials": 10}, "test split")
  return path


@pytest.fixture(scope="module")
def onnx_export(trained_workdir):
  out = trained_workdir / "export"
  result = subprocess.run(
      [sys.executable, "-m", "experiments.export", f"--model={trained_workdir}",
       f"--output={out}", "--platforms=cpu", "--onnx", "--onnx_rows=4"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  return out


@pytest.mark.slow
@needs_onnx
def test_export_cli_writes_the_onnx_model_of_a_trained_run(onnx_export, speech):
  with open(onnx_export / "config.json") as f:
    described = json.load(f)["export"]["onnx"]
  samples = features.samples_for_frames(WINDOW_FRAMES["td"])
  assert (described["file"], described["samples"], described["rows"]) == ("d_vector.onnx",
                                                                      samples, 4)
  assert model_card.read(onnx_export)["files"]["onnx"] == described
  waveform = np.concatenate([real_windows(speech, samples, 4), random_windows(samples, 2, 1)])
  embedder = inference.load(onnx_export, trim=NO_TRIM)
  assert embedder.step == 3
  want = embedder.embed_prepared(list(waveform))
  got = export_onnx.load(os.fspath(onnx_export / "d_vector.onnx"))(waveform)
  np.testing.assert_allclose(got, want, atol=PARITY)


def docs_snippet() -> str:
  with open(os.path.join(REPO, "docs", "onnx.md")) as f:
    (code,) = re.findall(r"```python\n(.*?)```", f.read(), re.S)
  return code


@pytest.mark.slow
@needs_onnx
def test_docs_verify_snippet_runs_without_jax_or_tensorflow(onnx_export, speech, tmp_path):
  """docs/onnx.md's snippet, as written, in a fresh interpreter: the score is the JAX one."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  enrol, test = speech[VOICES[0]][0], speech[VOICES[1]][1]
  for name, wav in (("enrol.wav", enrol), ("test.wav", test)):
    sf.write(tmp_path / name, audio.to_int16(wav), 16000, subtype="PCM_16")
  (tmp_path / "runs" / "demo").mkdir(parents=True)
  (tmp_path / "runs" / "demo" / "export").symlink_to(onnx_export)
  check = "\nimport sys\nassert not {'jax', 'tensorflow'} & set(sys.modules), sorted(sys.modules)\n"
  result = subprocess.run([sys.executable, "-c", docs_snippet() + check], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-3000:]
  score = float(re.search(r"score (-?[\d.]+)", result.stdout).group(1))
  embedder = inference.load(onnx_export, trim=NO_TRIM)
  wavs = [audio.from_int16(audio.to_int16(w)) for w in (enrol, test)]
  want = float(np.dot(*embedder.embed_prepared(wavs)))
  assert abs(score - want) < 1e-3, (result.stdout, want)  # printed with 4 decimals
  assert "threshold 0.6000" in result.stdout


@pytest.mark.slow
def test_export_without_the_onnx_packages_says_what_to_install(tmp_path):
  """Checked before any artifact is written: one line, nothing left behind."""
  out = tmp_path / "export"
  script = ("import sys\n"
            "sys.modules['jax2onnx'] = None  # as if not installed\n"
            "from experiments import export\n"
            f"sys.argv = ['export', '--model={tmp_path}', '--output={out}', '--onnx']\n"
            "export.run()\n")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1].startswith(
      "export failed: --onnx needs jax2onnx"), result.stderr[-2000:]
  assert "Traceback" not in result.stderr and not out.exists()
