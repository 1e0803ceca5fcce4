"""The imported Resemblyzer encoder against Resemblyzer itself (torch + librosa), and the
import CLI. Parity needs the bench extra's torch and resemblyzer (skipped with the reason
otherwise; they bring librosa and webrtcvad); the speech is espeak-ng's, made here.

Parity is on the same trimmed audio: Resemblyzer's ``preprocess_wav`` (volume to -30 dBFS,
webrtcvad trimming) output goes to ``VoiceEncoder.embed_utterance`` and to our Embedder
(with our trimming off) and our traced ``embed_waveforms`` (what every export serialises).
"""

import io
import os
import shutil
import subprocess

import jax
import numpy as np
import pytest
import soundfile

from ge2e_jax import audio, features, inference, pretrained

torch = pytest.importorskip("torch", reason="torch (the bench extra) is not installed")
resemblyzer = pytest.importorskip("resemblyzer", reason="resemblyzer (the bench extra) is not "
                                  "installed")
librosa = pytest.importorskip("librosa", reason="librosa (comes with resemblyzer) is not installed")

VOICES = ("en", "en-us", "de", "fr", "es", "it", "nl", "pl")
TEXTS = ("ok computer", "the quick brown fox jumps over the lazy dog near the river bank",
         "please verify my voice", "one two three four five six seven eight nine ten "
         "and then some more words to make this a long utterance of several seconds")


@pytest.fixture(scope="module")
def utterances():
  """24 espeak-ng utterances (8 voices x 3 texts and pitches), 16 kHz, Resemblyzer-trimmed."""
  if shutil.which("espeak-ng") is None:
    pytest.skip("espeak-ng is not installed (make setup installs it)")
  wavs = []
  for i, voice in enumerate(VOICES):
    for k in range(3):
      # espeak-ng directly: data_pipelines' helper pulls in TensorFlow, which the bench
      # extra's environment need not have.
      wav, rate = soundfile.read(io.BytesIO(subprocess.run(
          ["espeak-ng", "-v", voice, "-p", str(20 + 25 * k), "--stdout",
           TEXTS[(i + k) % len(TEXTS)]], check=True, capture_output=True).stdout),
          dtype="float32")
      wav16 = audio.to_16k_mono(np.asarray(wav, np.float32), rate)
      wavs.append(resemblyzer.preprocess_wav(wav16).astype(np.float32))
  return wavs


@pytest.fixture(scope="module")
def weights():
  return os.path.join(os.path.dirname(resemblyzer.__file__), "pretrained.pt")


def test_mel_power_equals_librosa(utterances):
  """librosa.feature.melspectrogram(n_fft=400, hop 160, 40 mels; center=True, constant pad)
  is ours on the utterance zero-padded by half a window on each side."""
  worst = 0.0
  for wav in utterances:
    want = librosa.feature.melspectrogram(y=wav, sr=16000, n_fft=400, hop_length=160,
                                          n_mels=40).T.astype(np.float64)
    got = np.asarray(features.mel_spectrogram(np.pad(wav, 200), n_fft=400, mel_scale="slaney",
                                              log=False), np.float64)
    assert got.shape == want.shape
    # Relative to each frame's largest band: float32 FFTs round at ~1e-7 of the frame's
    # energy, so bands far below it carry no meaningful relative digits.
    scale = want.max(axis=1, keepdims=True) + 1e-12
    worst = max(worst, float(np.max(np.abs(got - want) / scale)))
  assert worst < 1e-5, worst


def test_d_vectors_equal_resemblyzer_embed_utterance(utterances, weights):
  encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
  want = np.stack([encoder.embed_utterance(w) for w in utterances]).astype(np.float64)
  config, params = pretrained.load(weights, "resemblyzer")
  embedder = inference.Embedder(config, params, trim=inference.TrimOptions(enabled=False))
  got = embedder.embed_prepared(utterances).astype(np.float64)
  windows = [len(encoder.compute_partial_slices(len(w), 1.3, 0.75)[0]) for w in utterances]
  assert len(utterances) >= 20 and max(windows) >= 3  # several utterances of many windows
  assert np.max(np.abs(got - want)) < 1e-4
  assert np.min(np.sum(got * want, axis=1)) >= 0.9999
  # The traced function every export serialises (one compile per length: a few lengths).
  traced = jax.jit(lambda w: inference.embed_waveforms(config, embedder.params, w))
  for i in (int(np.argmin(windows)), int(np.argmax(windows))):
    exported = np.asarray(traced(utterances[i][None]), np.float64)[0]
    assert np.max(np.abs(exported - want[i])) < 1e-4


def test_webrtcvad_trim_equals_resemblyzers(utterances):
  """audio.TrimOptions(method="webrtcvad") cuts what Resemblyzer's trim_long_silences cuts."""
  from resemblyzer import audio as resemblyzer_audio  # pylint: disable=g-import-not-at-top
  trim = audio.TrimOptions(method="webrtcvad")
  rng = np.random.default_rng(0)
  for wav in utterances[:6]:
    gap = np.zeros(16000, np.float32)  # a 1 s pause inside, and noise around
    padded = np.concatenate([gap, wav, gap, wav, gap])
    padded = padded + 1e-4 * rng.standard_normal(len(padded)).astype(np.float32)
    want = resemblyzer_audio.trim_long_silences(padded)
    got, (start, end) = trim.apply(padded)
    np.testing.assert_array_equal(got, want)
    assert len(got) < len(padded) - 16000 and 0 <= start < end <= len(padded)
