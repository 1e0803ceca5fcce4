"""The TFLite (LiteRT) export: run by the LiteRT interpreter, it must give the d-vectors of
ge2e_jax.inference within 1e-4, on one window, several windows and a short utterance."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import soundfile as sf

from experiments import export_tflite
from ge2e_jax import audio, checkpoint, export_io, inference, model, optim, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.preset("td")  # the paper's on-device TD-SV size
PARITY = 1e-4


@pytest.fixture(scope="module")
def encoder_params():
  return jax.device_get(train_step.init_params(jax.random.key(3), CONFIG)["encoder"])


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
  """3.5 s of espeak-ng speech at 16 kHz."""
  path = tmp_path_factory.mktemp("speech") / "s.wav"
  text = "the quick brown fox jumps over the lazy dog near the old river bank"
  subprocess.run(["espeak-ng", "-v", "en-us+m3", "-w", path, text], check=True)
  wav, sr = sf.read(path, dtype="float32")
  wav = audio.resample(wav, sr, 16000)
  assert len(wav) >= 56000
  return wav


# (batch, samples, window_frames): one 80-frame window; 160-frame windows with an
# end-aligned last one, batch 2; a short utterance (one repeat-padded window).
CASES = [(1, 0, 80), pytest.param(2, 50000, 160, marks=pytest.mark.slow),
         pytest.param(1, 6000, 160, marks=pytest.mark.slow)]


@pytest.mark.parametrize("batch, samples, window_frames", CASES)
def test_tflite_matches_the_jax_d_vector(encoder_params, speech, tmp_path, batch, samples,
                                         window_frames):
  samples = export_tflite.input_samples(samples, window_frames)
  path = tmp_path / "m.tflite"
  path.write_bytes(export_tflite.convert(CONFIG, encoder_params, window_frames=window_frames,
                                         samples=samples, batch=batch))
  waveform = np.stack([speech[3000 * k:3000 * k + samples] for k in range(batch)])
  got = export_tflite.load(os.fspath(path))(waveform)
  embedder = inference.Embedder(CONFIG, encoder_params, window_frames=window_frames,
                                trim=inference.TrimOptions(enabled=False))
  want = embedder.embed_prepared(list(waveform))
  assert got.shape == (batch, CONFIG.projection) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, atol=PARITY)
  np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_tflite_rejects_another_shape_and_bad_sizes(encoder_params, tmp_path):
  path = tmp_path / "m.tflite"
  path.write_bytes(export_tflite.convert(CONFIG, encoder_params, window_frames=80))
  run = export_tflite.load(os.fspath(path))
  with pytest.raises(ValueError, match=r"takes waveform of shape \(1, 13040\)"):
    run(np.zeros((1, 16000), np.float32))
  with pytest.raises(ValueError, match="need at least 400"):
    export_tflite.input_samples(399, 80)


@pytest.mark.slow
def test_export_cli_writes_the_tflite_model_and_describes_it(tmp_path):
  tiny = model.EncoderConfig(cells=16, projection=8)
  params = train_step.init_params(jax.random.key(1), tiny)
  checkpoint.write_config(os.fspath(tmp_path), {"model": model.config_to_dict(tiny),
                                                "eval": {"window_frames": 80}})
  ck = checkpoint.Checkpointer(os.fspath(tmp_path))
  ck.save(0, train_step.init_state(params, optim.make_optimizer()), {"step": 0})
  ck.close()
  out = tmp_path / "export"
  result = subprocess.run(
      [sys.executable, "-m", "experiments.export", f"--workdir={tmp_path}", f"--output={out}",
       "--platforms=cpu", "--tflite", "--tflite_batch=2"],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  with open(out / export_io.CONFIG_FILE) as f:
    described = json.load(f)["export"]["tflite"]
  assert described["file"] == "d_vector.tflite"
  assert (described["batch"], described["samples"], described["window_frames"]) == (2, 13040, 80)
  waveform = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 13040)).astype(np.float32)
  want = inference.load(out, trim=inference.TrimOptions(enabled=False)).embed_prepared(
      list(waveform))
  np.testing.assert_allclose(export_tflite.load(os.fspath(out / "d_vector.tflite"))(waveform),
                             want, atol=PARITY)
