"""Every format libsndfile reads: audio.AUDIO_EXTENSIONS follows the installed libsndfile,
read_audio decodes each (mp3 included where supported), the embed CLI finds and embeds them."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from ge2e_jax import audio, checkpoint, model, optim, train_step

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# (file name, libsndfile format, subtype, lossless)
FILES = [("a.wav", "WAV", "PCM_16", True), ("b.flac", "FLAC", "PCM_16", True),
         ("c.aiff", "AIFF", "PCM_16", True), ("d.caf", "CAF", "PCM_16", True),
         ("e.au", "AU", "PCM_16", True), ("f.ogg", "OGG", "VORBIS", False),
         ("g.opus", "OGG", "OPUS", False), ("h.mp3", "MP3", "MPEG_LAYER_III", False)]
RATE = 16000


def writable(files):
  available = sf.available_formats()
  return [f for f in files if f[1] in available and f[2] in sf.available_subtypes(f[1])]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
  """The same 1.5 s two-tone signal in every format this libsndfile writes, plus a .txt."""
  root = tmp_path_factory.mktemp("formats")
  t = np.arange(int(1.5 * RATE)) / RATE
  pcm = audio.to_int16(0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 530 * t))
  signal = audio.from_int16(pcm)
  for name, fmt, subtype, lossless in writable(FILES):
    rate = 48000 if subtype == "OPUS" else RATE  # Opus encodes 8/12/16/24/48 kHz; resampled
    # int16 into the lossless ones: every container then holds the very same samples.
    data = pcm if lossless else audio.resample(signal, RATE, rate)
    sf.write(root / name, data, rate, format=fmt, subtype=subtype)
  (root / "notes.txt").write_text("not audio")
  return root, signal


def test_extensions_follow_the_installed_libsndfile():
  available = sf.available_formats()
  assert (".mp3" in audio.AUDIO_EXTENSIONS) == ("MP3" in available)
  assert {".wav", ".flac"} <= set(audio.AUDIO_EXTENSIONS)
  assert (".ogg" in audio.AUDIO_EXTENSIONS) == ("OGG" in available)
  assert not {".raw", ".mat", ".txt"} & set(audio.AUDIO_EXTENSIONS)
  assert all(e.startswith(".") and e == e.lower() for e in audio.AUDIO_EXTENSIONS)


def test_every_written_format_reads_back(folder):
  root, signal = folder
  for name, _, _, lossless in writable(FILES):
    wav, rate = audio.read_audio(root / name)
    wav = audio.resample(wav, rate, RATE)
    if lossless:
      np.testing.assert_array_equal(wav, signal, err_msg=name)
    else:  # codec delay and loss: the best-aligned normalised correlation stays high
      corr = scipy.signal.correlate(wav, signal, method="fft").max()
      assert corr / (np.linalg.norm(wav) * np.linalg.norm(signal)) > 0.9, name


@pytest.mark.slow
def test_embed_cli_finds_and_embeds_every_format(folder, tmp_path):
  root, _ = folder
  tiny = model.EncoderConfig(cells=16, projection=8)
  ck = checkpoint.Checkpointer(os.fspath(tmp_path / "workdir"))
  checkpoint.write_config(os.fspath(tmp_path / "workdir"), {"model": model.config_to_dict(tiny)})
  ck.save(0, train_step.init_state(train_step.init_params(jax.random.key(0), tiny),
                              optim.make_optimizer()), {"step": 0})
  ck.close()
  out = tmp_path / "d.npz"
  done = subprocess.run([sys.executable, "-m", "experiments.embed",
                         f"--model={tmp_path / 'workdir'}", f"--output={out}", root],
                        cwd=REPO, capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, PYTHONPATH=REPO))
  assert done.returncode == 0, done.stderr[-3000:]
  with np.load(out) as result:
    paths = [os.path.basename(p) for p in result["paths"]]
    embeddings = dict(zip(paths, result["embeddings"]))
  assert paths == sorted(f[0] for f in writable(FILES))  # every format, not notes.txt
  for name, _, _, lossless in writable(FILES):
    if lossless:  # the same samples give the same d-vector whatever the container
      np.testing.assert_allclose(embeddings[name], embeddings["a.wav"], atol=1e-6, err_msg=name)
