"""No CLI overwrites what the user gave: an output that is an input, lies inside an
input folder or a model, or exists and is audio or another kind of file is refused in one
line before any work, and the file is left as it was."""

import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import soundfile as sf

from experiments import output_paths

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def files(tmp_path):
  """An audio folder, a workdir and an export (their own files only), an npz and an RTTM."""
  speakers = tmp_path / "speakers" / "alice"
  speakers.mkdir(parents=True)
  rng = np.random.default_rng(0)
  sf.write(speakers / "a.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
  sf.write(tmp_path / "no_extension", np.zeros(800, np.float32), 16000, format="WAV")
  workdir = tmp_path / "run"
  (workdir / "checkpoints" / "5").mkdir(parents=True)
  (workdir / "config.json").write_text("{}")
  export = tmp_path / "export"
  export.mkdir()
  (export / "d_vector.onnx").write_bytes(b"onnx")
  (export / "checksums.json").write_text(json.dumps(
      {"format": "ge2e_jax.checksums/1", "files": {"d_vector.onnx": {"sha256": "0", "bytes": 4}}}))
  np.savez(tmp_path / "old.npz", x=np.zeros(1))
  (tmp_path / "old.rttm").write_text("SPEAKER f 1 0.00 1.00 <NA> <NA> s0 <NA> <NA>\n")
  return tmp_path


@pytest.mark.parametrize("output, inputs, models, message", [
    ("speakers/alice/a.wav", ["speakers/alice/a.wav"], [], "is also an input"),
    ("speakers", ["speakers/alice/a.wav"], [], "holds the input"),
    ("speakers/alice/new.npz", ["speakers"], [], "lies inside the input folder"),
    ("run/config.json", [], ["run"], "part of the model"),
    ("run/checkpoints/5/x", [], ["run"], "part of the model"),
    ("export/d_vector.onnx", [], ["export"], "part of the model"),  # listed in checksums.json
    ("speakers/alice/a.wav", [], [], "exists and is audio"),
    ("no_extension", [], [], "exists and is audio"),  # found by its content
    ("run/config.json", [], [], "exists and is not an npz file"),
])
def test_refused(files, output, inputs, models, message):
  with pytest.raises(ValueError, match=message) as err:
    output_paths.check("--output", str(files / output), [str(files / i) for i in inputs],
                       [str(files / m) for m in models], zipfile.is_zipfile, "an npz file")
  assert "\n" not in str(err.value) and str(err.value).startswith(f"--output={files / output}")


def test_allowed(files):
  for output in ("new.npz", "old.npz", "run/export/d.npz", "export/eval_test/x.npz"):
    output_paths.check("--output", str(files / output), [str(files / "speakers")],
                       [str(files / "run"), str(files / "export")], zipfile.is_zipfile)
  output_paths.check("--output", str(files / "old.rttm"), same_kind=output_paths.is_rttm)
  with pytest.raises(ValueError, match="not an RTTM file"):
    output_paths.check("--output", str(files / "old.npz"), same_kind=output_paths.is_rttm,
                       kind="an RTTM file")


def run_cli(module, *args):
  return subprocess.run([sys.executable, "-m", f"experiments.{module}", *map(str, args)],
                        cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("command", ["embed", "diarize"])
def test_cli_never_replaces_its_input_audio(files, command):
  wav = files / "speakers" / "alice" / "a.wav"
  before = wav.read_bytes()
  result = run_cli(command, f"--model={files / 'run'}", f"--output={wav}", wav)
  assert result.returncode != 0
  (line,) = result.stderr.strip().splitlines()
  assert line == (f"{command}: --output={wav} is also an input ({wav}); choose another path "
                  "(nothing was written)")
  assert wav.read_bytes() == before


@pytest.mark.slow
def test_evaluate_never_writes_into_its_speaker_folders(files):
  speakers = files / "speakers"
  result = run_cli("evaluate", f"--model={files / 'run'}", f"--speaker_dir={speakers}",
                   f"--output_dir={speakers / 'alice'}", "--noplots")
  assert result.returncode == 1
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith(f"evaluate: --output_dir={speakers / 'alice'} lies inside the input "
                         f"folder {speakers}")
  assert sorted(os.listdir(speakers / "alice")) == ["a.wav"]
