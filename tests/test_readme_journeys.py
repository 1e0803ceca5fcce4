"""The README's journeys, run as written: its own-data lines (folder -> corpus -> train ->
evaluate -> verify) on a tiny espeak-ng speaker tree, its export line, then its serving lines
(``ge2e-embed``, ``ge2e-verify``) in the base install (``pip install .``, no TensorFlow).

The commands are read from README.md. What the test changes: paths (``runs/``,
``my_speakers``, ``who.wav``, ``recordings/``, ``a.wav``...) point into a temporary folder,
``python`` is this interpreter, and the train line gets a few-step budget and a tiny model
(``SMALL_RUN``), so that the run takes seconds instead of minutes.
"""

import json
import os
import re
import shlex
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from data_pipelines.builders import common, espeak
from ge2e_jax import audio

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_RUN = ["--config.train.num_steps=4", "--config.data.n_speakers=4",
             "--config.data.n_utterances=3", "--config.model.cells=16",
             "--config.model.projection=8", "--config.train.log_every=2",
             "--config.train.checkpoint_every=2", "--config.eval.every=4"]
LINES = ["the cat sat on the mat", "a quiet river runs by", "open the window please",
         "seven green apples fell", "we met at noon today"]
VOICES = ["en-us+m3", "en-gb+f2", "en-gb-scotland+m1", "en-us+f4", "en-029+m5", "en-gb-x-rp+f1",
          "en-us+m1", "en-gb+f4"]


def readme_block(heading: str) -> list[list[str]]:
  """The commands (continuation lines joined, comments dropped) of the first ```sh block
  after ``heading`` in README.md, each split as a shell would."""
  with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
    text = f.read()
  block = re.search(r"```sh\n(.*?)```", text[text.index(heading):], re.S).group(1)
  commands = []
  for line in block.replace("\\\n", " ").splitlines():
    words = shlex.split(line, comments=True)
    if words:
      commands.append(words)
  return commands


def speaker_names() -> list[str]:
  """alice plus speakers of both splits, as the builder's hash (10 % test) puts them."""
  names, test, train = ["alice"], 0, 0
  for n in range(200):
    name = f"spk{n:03d}"
    split = common.split_of_speaker(name, 10.0)
    if (split == "test" and test < 2) or (split == "train" and train < 5):
      names.append(name)
      test, train = test + (split == "test"), train + (split == "train")
  return names


@pytest.fixture(scope="module")
def place(tmp_path_factory):
  """A temporary folder holding my_speakers/<speaker>/<n>.wav (espeak-ng) and who.wav."""
  root = tmp_path_factory.mktemp("journey")
  for k, name in enumerate(speaker_names()):
    (root / "my_speakers" / name).mkdir(parents=True)
    for n, line in enumerate(LINES, 1):
      wav, sr = espeak.synthesize(VOICES[k % len(VOICES)], line,
                                  espeak.Prosody(pitch=25 + 6 * k))
      sf.write(root / "my_speakers" / name / f"{n}.wav", audio.resample(wav, sr, 16000),
               16000, subtype="PCM_16")
  os.link(root / "my_speakers" / "alice" / "3.wav", root / "who.wav")
  return root


def localise(words: list[str], root) -> list[str]:
  """Paths of the README into ``root``; ``python`` -> this interpreter."""
  out = [sys.executable if words[0] == "python" else words[0]]
  for word in words[1:]:
    for path in ("runs/", "my_speakers", "who.wav", "recordings/", "a.wav", "b.wav", "c.wav",
                 "d.npz"):
      word = re.sub(rf"(^|=|\"){re.escape(path)}", rf"\g<1>{root}/{path}", word)
    out.append(word)
  return out


def run(words, **kwargs):
  proc = subprocess.run(words, cwd=REPO, capture_output=True, text=True, timeout=600,
                        env=dict(os.environ, PYTHONPATH=REPO), **kwargs)
  assert proc.returncode == 0, (words, proc.stdout[-2000:], proc.stderr[-3000:])
  return proc


@pytest.fixture(scope="module")
def own_data_run(place):
  """Runs the own-data journey; the verify step's stdout."""
  commands = readme_block("<!-- journey:own-data")
  tools = [c[2] for c in commands]
  assert tools == ["data_pipelines.builders.tfds_build", "experiments.train",
                   "experiments.evaluate", "experiments.verify"], commands
  outputs = []
  for words in commands:
    words = localise(words, place)
    if words[2] == "experiments.train":
      words += SMALL_RUN
    outputs.append(run(words))
  return outputs


@pytest.mark.slow
def test_own_data_journey_runs_as_written(own_data_run, place):
  build, train, evaluate, verify = own_data_run
  report = place / "runs" / "tfds" / "speaker_folders" / "mine"
  assert report.is_dir(), build.stderr[-2000:]
  assert (place / "runs" / "mine" / "model_card.json").is_file()
  assert evaluate.stdout.startswith("EER "), evaluate.stdout
  (line,) = [json.loads(x) for x in verify.stdout.splitlines()]
  assert line["test"].endswith("who.wav") and isinstance(line["accept"], bool)
  assert -1.0 <= line["score"] <= 1.0
  assert "verify: 2 enrolment file(s), 1 test file(s)" in verify.stderr


def base_python() -> str:
  venv = os.environ.get("GE2E_BASE_VENV") or os.path.join(REPO, ".venv-base")
  python = os.path.join(venv, "bin", "python")
  if not os.path.exists(python):
    if os.environ.get("GE2E_BASE_VENV"):
      pytest.fail(f"GE2E_BASE_VENV={venv} has no bin/python; `make setup` creates it")
    pytest.skip(f"no base-install venv at {venv} (`make setup` creates it; "
                "GE2E_BASE_VENV=<venv> names another)")
  return python


@pytest.mark.slow
def test_export_then_serve_from_the_base_install(own_data_run, place):
  """The README's export line, then its serving lines in a venv without TensorFlow."""
  python = base_python()
  no_tf = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True)
  assert no_tf.returncode == 1 and "No module named 'tensorflow'" in no_tf.stderr
  export, _, *serving = readme_block("## Export for serving")
  assert export[2] == "experiments.export" and [s[0] for s in serving] == [
      "ge2e-embed", "ge2e-verify"], serving
  run(localise(export, place))
  (place / "recordings").mkdir()
  names = {"a.wav": "alice/1.wav", "b.wav": "alice/2.wav", "c.wav": "spk000/1.wav"}
  for new, old in names.items():
    os.link(place / "my_speakers" / old, place / new)
    os.link(place / "my_speakers" / old, place / "recordings" / new)
  for words in serving:  # the checkout's modules, run by the base install's interpreter
    words = localise(words, place)
    tool = words[0].removeprefix("ge2e-")
    proc = subprocess.run([python, "-m", f"experiments.{tool}", *words[1:]], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, (words, proc.stderr[-3000:])
    if tool == "embed":
      with np.load(place / "d.npz") as npz:
        assert len(npz["paths"]) == 3 and npz["embeddings"].shape == (3, 8)
        np.testing.assert_allclose(np.linalg.norm(npz["embeddings"], axis=1), 1.0, atol=1e-5)
    else:
      (line,) = [json.loads(x) for x in proc.stdout.splitlines()]
      assert line["test"].endswith("c.wav") and "threshold" in line
