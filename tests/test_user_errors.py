"""One line for every user error: embed and verify on a workdir without a
usable step, a non-finite --threshold, and a NumPy masked array handed to the Embedder."""

import os

import jax
import numpy as np
import pytest
import soundfile as sf

from ge2e_jax import checkpoint, inference, model, optim, train_step
import cli_cases  # tests/cli_cases.py (pytest puts tests/ on sys.path)

CONFIG = model.EncoderConfig(cells=8, projection=4)


@pytest.fixture(scope="module")
def params():
  return train_step.init_params(jax.random.key(0), CONFIG)


@pytest.fixture(scope="module")
def damaged_workdir(tmp_path_factory, params):
  """config.json and one step whose array data has 64 bytes overwritten: no usable step."""
  path = tmp_path_factory.mktemp("run")
  checkpoint.write_config(os.fspath(path), {"model": model.config_to_dict(CONFIG)})
  ck = checkpoint.Checkpointer(os.fspath(path))
  ck.save(1, train_step.init_state(params, optim.make_optimizer()), {"data_step": 1, "seed": 0})
  ck.close()
  state_dir = path / "checkpoints" / "1" / "state"
  data = max((os.path.join(r, f) for r, _, fs in os.walk(state_dir) for f in fs),
             key=os.path.getsize)
  with open(data, "r+b") as f:
    f.seek(os.path.getsize(data) // 2)
    f.write(b"\xff" * 64)
  return path


@pytest.fixture(scope="module")
def wav(tmp_path_factory):
  path = tmp_path_factory.mktemp("audio") / "a.wav"
  sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32),
           16000)
  return os.fspath(path)


THRESHOLDS = ["nan", "inf", "-inf"]


@pytest.fixture(scope="module")
def results(damaged_workdir, wav, tmp_path_factory):
  """{case: (exit status, stdout, stderr)}: embed's and verify's cases, one process each."""
  out = tmp_path_factory.mktemp("out") / "o.npz"
  embed = cli_cases.start("ge2e-embed", [[f"--model={damaged_workdir}", f"--output={out}", wav]])
  verify = cli_cases.start("ge2e-verify", [
      [f"--model={damaged_workdir}", "--enroll", wav, "--test", wav],
      *[["--model=/nowhere", "--enroll", wav, "--test", wav, f"--threshold={value}"]
        for value in THRESHOLDS]])
  (embed_result,), embed_exit = cli_cases.finish(embed)
  verify_results, verify_exit = cli_cases.finish(verify)
  return {"embed": embed_result, "verify": verify_results[0],
          **dict(zip(THRESHOLDS, verify_results[1:]))}, embed_exit + verify_exit


@pytest.mark.slow
@pytest.mark.parametrize("command", ["embed", "verify"])
def test_a_workdir_without_a_usable_step_is_one_line(damaged_workdir, results, command):
  (code, _, stderr), at_exit = results[0][command], results[1]
  assert code == 1
  last = stderr.strip().splitlines()[-1]
  assert last.startswith(f"{command}: cannot load --model") and "no usable checkpoint" in last
  assert "Traceback" not in stderr + at_exit and "Event loop is closed" not in stderr + at_exit


@pytest.mark.slow
@pytest.mark.parametrize("value", THRESHOLDS)
def test_verify_threshold_must_be_finite(results, value):
  code, _, stderr = results[0][value]
  assert code == 2
  (line,) = stderr.strip().splitlines()
  assert line.startswith("verify: ") and "--threshold must be a finite number" in line


def test_embedder_refuses_masked_arrays_and_non_finite_thresholds(params):
  embedder = inference.Embedder(CONFIG, params["encoder"], window_frames=40)
  wav = (0.1 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
  masked = np.ma.masked_array(wav, mask=np.arange(8000) > 4000)
  with pytest.raises(ValueError, match="clip: a NumPy masked array"):
    embedder.prepare(masked, 16000, name="clip")
  with pytest.raises(ValueError, match="waveform 0: a NumPy masked array"):
    embedder.embed_utterances([masked], 16000)
  with pytest.raises(ValueError, match="waveform 1: a NumPy masked array"):
    embedder.embed_prepared([wav, masked])
  assert embedder.embed_prepared([masked.compressed()]).shape == (1, CONFIG.projection)
  with pytest.raises(ValueError, match="threshold must be a finite number"):
    embedder.threshold(threshold=float("nan"))
