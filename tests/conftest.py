"""Shared session fixtures: small real corpora built once per test session.

Synthetic corpora (espeak-ng, real `synthetic_voices` builder, built lazily the
first time a test asks for them, all under one session tmp data_dir that the pytest-xdist
workers share):
  synthetic_td      "ok computer", 10 train + 4 test (+ 4 test_unseen_lang) speakers x 8 utts
  synthetic_td_hey  "hey computer", same speakers and sizes (second td source
                    for MultiReader tests)
  synthetic_ti      random sentences, 10 train + 4 test speakers x 6 utterances
Each is a `BuiltCorpus`; read it with
  tfds.builder(corpus.name, data_dir=corpus.data_dir)   # or corpus.builder()
  tfds.load(corpus.name, split="train", data_dir=corpus.data_dir)
Features: audio int16 (samples,) at 16 kHz, speaker, utterance, text (strings).
Splits: train / test / test_unseen_lang, speaker-disjoint (procedural espeak-ng speakers;
test_unseen_lang from language families never in train). The three share speakers and splits.

fake_librispeech: TFDS's own `librispeech` builder (lazy_decode) prepared from a fake
extracted corpus of noise (no espeak-ng): read through `data_pipelines.corpus` it goes the
adapter path; `train` = 3 subsets x 2 speakers, `test` (test_clean) 2 speakers, 3
utterances of 0.9-1.4 s each. fake_librispeech_other: the same ids, other noise.

speaker_tree: a LibriSpeech-style folder tree of real wav/flac files (see
`SpeakerTree`), with 44.1 kHz stereo files, a tone with known silence padding
and bad files, for the speaker_folders builder.

The session shares one JAX compilation cache (a fresh temporary folder, so every session
starts cold): the training, export and CLI subprocesses the tests start inherit it through
JAX_COMPILATION_CACHE_DIR, and an encoder or train step compiled once is read back by every
later process and module that compiles the same program.
"""

from __future__ import annotations

import collections
import dataclasses
import fcntl
import os
import pathlib
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
import soundfile as sf

CACHE_ENV = "JAX_COMPILATION_CACHE_DIR"
MIN_COMPILE_TIME_ENV = "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"


def pytest_configure(config):
  """Sets the session's compilation cache before any test module imports jax: every
  program, however quick to compile (the subprocesses compile the same small ones)."""
  if CACHE_ENV not in os.environ:
    config.ge2e_jax_cache = tempfile.mkdtemp(prefix="ge2e_jax_compilation_cache_")
    os.environ[CACHE_ENV] = config.ge2e_jax_cache
    os.environ[MIN_COMPILE_TIME_ENV] = "0"


def pytest_collection_modifyitems(items):
  """Modules with the most `slow` tests first (in-module order kept): `make test`'s two
  workers (`pytest -n 2 --dist loadscope --no-loadscope-reorder`) take whole modules in
  this order, so the long ones start early and the workers end together."""
  slow = collections.Counter(item.path for item in items if item.get_closest_marker("slow"))
  items.sort(key=lambda item: -slow[item.path])


def pytest_unconfigure(config):
  cache = getattr(config, "ge2e_jax_cache", None)
  if cache:
    del os.environ[CACHE_ENV], os.environ[MIN_COMPILE_TIME_ENV]
    shutil.rmtree(cache, ignore_errors=True)


TD_SPEAKERS = dict(num_train_speakers=10, num_test_speakers=4, num_unseen_lang_speakers=4,
                   utterances_per_speaker=8)
TI_SPEAKERS = dict(num_train_speakers=10, num_test_speakers=4, num_unseen_lang_speakers=4,
                   utterances_per_speaker=6)


@dataclasses.dataclass(frozen=True)
class BuiltCorpus:
  """A prepared TFDS corpus: `name` ("builder/config") and `data_dir` for tfds.builder/load."""
  name: str
  data_dir: str
  config: object  # The SyntheticVoicesConfig it was built from (None for fakes).

  def builder(self):
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    return tfds.builder(self.name, data_dir=self.data_dir)


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory) -> pathlib.Path:
  """The tfds data_dir that holds every synthetic corpus of this session: under
  pytest-xdist, one for all workers (in the parent of each worker's base temp folder)."""
  if "PYTEST_XDIST_WORKER" not in os.environ:
    return tmp_path_factory.mktemp("tfds_synthetic")
  path = tmp_path_factory.getbasetemp().parent / "tfds_synthetic"
  path.mkdir(exist_ok=True)
  return path


def _build_synthetic(data_dir, **config_kwargs) -> BuiltCorpus:
  """Builds the corpus once: a worker that finds another building it waits for it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from data_pipelines.builders import synthetic_voices  # pylint: disable=g-import-not-at-top
  config = synthetic_voices.SyntheticVoicesConfig(**config_kwargs)
  builder = tfds.builder("synthetic_voices", config=config, data_dir=os.fspath(data_dir))
  with open(os.path.join(data_dir, f"{config.name}.lock"), "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    builder.download_and_prepare()
  return BuiltCorpus(f"synthetic_voices/{config.name}", os.fspath(data_dir), config)


@pytest.fixture(scope="session")
def synthetic_td(synthetic_data_dir) -> BuiltCorpus:
  """Text-dependent "ok computer": 10 train + 4 test speakers x 8 utterances."""
  return _build_synthetic(synthetic_data_dir, name="test_td_ok_computer",
                          phrase="ok computer", **TD_SPEAKERS)


@pytest.fixture(scope="session")
def synthetic_td_hey(synthetic_data_dir) -> BuiltCorpus:
  """Text-dependent "hey computer": the same speakers and sizes as synthetic_td."""
  return _build_synthetic(synthetic_data_dir, name="test_td_hey_computer",
                          phrase="hey computer", **TD_SPEAKERS)


@pytest.fixture(scope="session")
def synthetic_ti(synthetic_data_dir) -> BuiltCorpus:
  """Text-independent random sentences: 10 train + 4 test speakers x 6 utterances."""
  return _build_synthetic(synthetic_data_dir, name="test_ti", **TI_SPEAKERS)


LIBRISPEECH_SUBSETS = {"dev_clean": "dev-clean", "dev_other": "dev-other",
                       "test_clean": "test-clean", "test_other": "test-other",
                       "train_clean100": "train-clean-100",
                       "train_clean360": "train-clean-360",
                       "train_other500": "train-other-500"}


@dataclasses.dataclass(frozen=True)
class FakeLibriSpeech(BuiltCorpus):
  """`written`: utterance id -> (speaker, int16 audio, transcript, TFDS split it is in)."""
  written: dict


def _write_fake_librispeech(root, seed, speakers=2, utterances=3):
  """The extracted archives' layout: <dir>/LibriSpeech/<subset>/<spk>/<chap>/*.flac."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  dirs, written = {}, {}
  for i, (key, subset) in enumerate(LIBRISPEECH_SUBSETS.items()):
    base = root / key / "LibriSpeech"
    spk_lines, chapter_lines = [], []
    for s in range(speakers):
      speaker, chapter = 100 + 10 * i + s, 500 + 10 * i + s
      folder = base / subset / str(speaker) / str(chapter)
      folder.mkdir(parents=True)
      spk_lines.append(f"{speaker} | F | {subset} | 1.0 | X")
      chapter_lines.append(f"{chapter} | {speaker} | 1.0 | {subset} | 1 | 2 | t | p")
      lines = []
      for n in range(utterances):
        key_id = f"{speaker}-{chapter}-{n:04d}"
        ints = rng.integers(-8000, 8000, size=14000 + 4000 * n).astype(np.int16)
        sf.write(folder / f"{key_id}.flac", ints, 16000, subtype="PCM_16")
        lines.append(f"{key_id} WORDS OF {key_id}")
        written[key_id] = (str(speaker), ints, f"WORDS OF {key_id}", key)
      (folder / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (base / "SPEAKERS.TXT").write_text("; ID|SEX|SUBSET|MINUTES|NAME\n"
                                       + "\n".join(spk_lines) + "\n")
    (base / "CHAPTERS.TXT").write_text(
        "; ID|READER|MINUTES|SUBSET|PROJ.|BOOK ID|CH. TITLE|PROJECT TITLE\n"
        + "\n".join(chapter_lines) + "\n")
    dirs[key] = epath.Path(root / key)
  return dirs, written


def _build_fake_librispeech(root, seed, **sizes) -> FakeLibriSpeech:
  """TFDS's real librispeech builder (lazy_decode config) run on a fake extracted corpus."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  dirs, written = _write_fake_librispeech(root, seed, **sizes)
  data_dir = os.fspath(root / "tfds")
  builder = tfds.builder("librispeech", config="lazy_decode", data_dir=data_dir)
  with pytest.MonkeyPatch.context() as patch:  # Only the download is faked.
    patch.setattr(tfds.download.DownloadManager, "download_and_extract",
                  lambda self, urls: {k: dirs[k] for k in urls})
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))
  return FakeLibriSpeech("librispeech/lazy_decode", data_dir, None, written)


@pytest.fixture(scope="session")
def fake_librispeech(tmp_path_factory) -> FakeLibriSpeech:
  return _build_fake_librispeech(tmp_path_factory.mktemp("fake_librispeech"), seed=0)


@pytest.fixture(scope="session")
def fake_librispeech_wide(tmp_path_factory) -> FakeLibriSpeech:
  """12 train speakers (4 per train subset) x 8 utterances of 0.9-2.6 s: N x M batches."""
  return _build_fake_librispeech(tmp_path_factory.mktemp("fake_librispeech_wide"), seed=2,
                                 speakers=4, utterances=8)


@pytest.fixture(scope="session")
def fake_librispeech_other(tmp_path_factory) -> FakeLibriSpeech:
  """fake_librispeech's speakers and utterance ids with other audio (a second source)."""
  return _build_fake_librispeech(tmp_path_factory.mktemp("fake_librispeech_other"), seed=1)


@dataclasses.dataclass(frozen=True)
class Tone:
  """A sine tone between known stretches of digital silence."""
  relpath: str
  freq_hz: float
  amplitude: float  # Of the mono mix.
  lead_s: float
  tone_s: float
  trail_s: float


@dataclasses.dataclass(frozen=True)
class SpeakerTree:
  """A LibriSpeech-style tree `root/<speaker>/<chapter>/<speaker>-<chapter>-<n>.{flac,wav}`.

  speakers:   speaker id -> number of good audio files
  texts:      utterance id (relative path without extension) -> transcript, from
              LibriSpeech-style `<speaker>-<chapter>.trans.txt` files
  stereo_44k: relative paths of the 44.1 kHz stereo wavs
  tone:       a 44.1 kHz stereo tone with known silence padding (speaker "tone")
  bad_files:  relative path -> a word its skip reason must contain
  """
  root: pathlib.Path
  speakers: dict[str, int]
  texts: dict[str, str]
  stereo_44k: tuple[str, ...]
  tone: Tone
  bad_files: dict[str, str]


def _espeak(voice: str, text: str, pitch: int) -> tuple[np.ndarray, int]:
  from data_pipelines.builders import espeak  # pylint: disable=g-import-not-at-top
  return espeak.synthesize(voice, text, espeak.Prosody(pitch=pitch))


@pytest.fixture(scope="session")
def speaker_tree(tmp_path_factory) -> SpeakerTree:
  """Real espeak-ng speech in wav/flac at 16 kHz mono and 44.1 kHz stereo, plus bad files."""
  from ge2e_jax import audio  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("speaker_tree")
  voices = {"1001": "en-us+m3", "1002": "en-gb+f2", "1003": "en-gb-scotland+m1",
            "1004": "en-us+f4", "1005": "en-029+m5", "1006": "en-gb-x-rp+f1"}
  lines = ["the cat sat on the mat", "a quiet river runs by", "open the window please"]
  speakers, texts, stereo = {}, {}, []
  for k, (spk, voice) in enumerate(voices.items()):
    chapter = f"{20 + k}"
    folder = root / spk / chapter
    folder.mkdir(parents=True)
    trans = []
    for n, line in enumerate(lines):
      utt = f"{spk}-{chapter}-{n:04d}"
      wav, sr = _espeak(voice, line, pitch=30 + 7 * k)
      wav = audio.resample(wav, sr, 16000)
      if k % 2:  # Odd speakers: 44.1 kHz stereo wav with unequal channels.
        wav44 = audio.resample(wav, 16000, 44100)
        sf.write(folder / f"{utt}.wav", np.stack([wav44, 0.5 * wav44], 1), 44100,
                 subtype="PCM_16")
        stereo.append(f"{spk}/{chapter}/{utt}.wav")
      else:
        sf.write(folder / f"{utt}.flac", wav, 16000, subtype="PCM_16")
      trans.append(f"{utt} {line.upper()}")
      texts[f"{spk}/{chapter}/{utt}"] = line.upper()
    (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(trans) + "\n")
    speakers[spk] = len(lines)

  sr, tone = 44100, Tone("tone/1/tone-1-0000.wav", 440.0, 0.3, 0.6, 1.0, 0.9)
  t = np.arange(int(tone.tone_s * sr)) / sr
  sine = (tone.amplitude / 0.75) * np.sin(2 * np.pi * tone.freq_hz * t)
  mono = np.concatenate([np.zeros(int(tone.lead_s * sr)), sine, np.zeros(int(tone.trail_s * sr))])
  (root / "tone" / "1").mkdir(parents=True)
  sf.write(root / tone.relpath, np.stack([mono, 0.5 * mono], 1), sr, subtype="PCM_16")
  speakers["tone"] = 1

  good = root / "1001" / "20" / "1001-20-0000.flac"
  wav_bytes = (root / stereo[0]).read_bytes()
  bad = {
      "1001/20/empty.wav": (b"", "empty"),
      "1002/21/header_only.wav": (wav_bytes[:30], "truncated"),
      "1002/21/cut_short.wav": (wav_bytes[:len(wav_bytes) // 2], "truncated"),
      "1003/22/noise.wav": (np.random.default_rng(0).bytes(4000), "not a readable audio"),
      "1003/22/cut.flac": (good.read_bytes()[:2000], "readable"),
      "1004/notes.txt": (b"not audio", "not an audio file"),
      "stray.wav": (wav_bytes, "speaker"),
  }
  for rel, (data, _) in bad.items():
    (root / rel).write_bytes(data)
  return SpeakerTree(root, speakers, texts, tuple(stereo), tone,
                     {rel: word for rel, (_, word) in bad.items()})


@pytest.fixture
def small_disk(tmp_path):
  """``small_disk(size)``: a fresh tmpfs of that size ("1m") for full-disk cases; needs root
  and mount (skips elsewhere), unmounted after the test."""
  mounted = []

  def mount(size: str) -> pathlib.Path:
    path = tmp_path / f"small_disk{len(mounted)}"
    path.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True, text=True)
    if result.returncode:
      pytest.skip(f"cannot mount a tmpfs here (needs root): {result.stderr.strip()}")
    mounted.append(path)
    return path

  yield mount
  for path in mounted:
    subprocess.run(["umount", str(path)], check=True)
