"""Bad and odd audio through every reader: the embed CLI, the inference API, speaker_folders.

The corpus (tests/audio_corpus.py, generated here, >= 100 files) holds good speech in many
encodings beside files that must be refused. Every reader must embed or build the good
ones with finite output and name every bad one with a reason, without a traceback.
Also: embed's --output checks and umask, a non-finite encoder, symlink trees.
"""

import os
import stat
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines.builders import common, speaker_folders
from ge2e_jax import audio, export_io, inference, model, train_step
import audio_corpus  # tests/audio_corpus.py (pytest puts tests/ on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = model.EncoderConfig(cells=16, projection=8)
WINDOW_FRAMES = 80


# Runs argv[1:] with umask 022 and without root's override of file permissions (dropped
# from the bounding set, if this process may; harmless otherwise), so that unreadable
# files and folders are unreadable even to root. An exec'd launcher, not a preexec_fn:
# Python code in a forked child of this multithreaded (JAX) process could deadlock.
UNPRIVILEGED = """
import ctypes, os, sys
os.umask(0o022)
prctl = ctypes.CDLL(None, use_errno=True).prctl
for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
  prctl(24, capability, 0, 0, 0)  # PR_CAPBSET_DROP
os.execv(sys.argv[1], sys.argv[1:])
"""


def _unprivileged(*argv):
  return [sys.executable, "-S", "-c", UNPRIVILEGED, *map(os.fspath, argv)]


def _locked_out(folder, unprivileged=False) -> bool:
  """Whether this process (or an ``_unprivileged`` child) cannot list ``folder``."""
  if not unprivileged:
    try:
      os.listdir(folder)
      return False
    except PermissionError:
      return True
  listing = f"import os; os.listdir({folder!r})"
  probe = subprocess.run(_unprivileged(sys.executable, "-S", "-c", listing), capture_output=True)
  return probe.returncode != 0


def _expect(entry, reader, locked_out):
  """What ``reader`` must do with ``entry``; unreadable entries are good to a privileged one."""
  if entry.locked and not locked_out:
    return audio_corpus.GOOD
  return getattr(entry, reader)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  built = audio_corpus.make_corpus(os.fspath(tmp_path_factory.mktemp("corpus")))
  yield built
  os.chmod(built.locked_folder, 0o755)  # so that pytest can clean up


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
  """A tiny randomly initialised encoder, written as experiments.export writes one."""
  path = os.fspath(tmp_path_factory.mktemp("export"))
  params = train_step.init_params(jax.random.key(3), CONFIG)
  export_io.write_params(path, CONFIG, params["encoder"], {"window_frames": WINDOW_FRAMES})
  return path


@pytest.fixture(scope="module")
def embedder(export_dir):
  return inference.load(export_dir)


def test_corpus_is_large_and_mixed(corpus):
  everything = corpus.entries + corpus.loose
  assert len(everything) >= 100 and corpus.bad_count() >= 50
  assert sum(e.api == audio_corpus.GOOD for e in everything) >= 40


@pytest.mark.slow
def test_embed_cli_over_the_corpus(corpus, export_dir, embedder, tmp_path):
  """One run, --skip_unreadable: good files embedded, every bad path named with a reason."""
  out = tmp_path / "new" / "folder" / "d.npz"
  inputs = [corpus.tree] + [e.path for e in corpus.loose]
  result = subprocess.run(
      _unprivileged(sys.executable, "-m", "experiments.embed", f"--model={export_dir}",
                    f"--output={out}", "--skip_unreadable", "--batch_files=1000", *inputs),
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  locked_out = _locked_out(corpus.locked_folder, unprivileged=True)
  expected = {e.path: _expect(e, "cli", locked_out) for e in corpus.entries + corpus.loose}
  good = {p for p, x in expected.items() if x and x.outcome == "good"}
  bad = {p: x.word for p, x in expected.items() if x and x.outcome == "bad"}
  if locked_out:
    bad[corpus.locked_folder] = "cannot list folder (Permission denied)"
  with np.load(out) as npz:
    paths, rows = list(npz["paths"]), npz["embeddings"]
    skipped = dict(zip(npz["skipped"], npz["skipped_reasons"]))
  assert stat.S_IMODE(os.stat(out).st_mode) == 0o644  # the umask's, not mkstemp's 0600
  assert set(paths) == good
  assert set(skipped) == set(bad)
  for path, word in bad.items():
    assert word in skipped[path], (path, skipped[path])
    assert f"  {path}: {skipped[path]}\n" in result.stderr
  assert np.all(np.isfinite(rows)) and rows.shape == (len(paths), CONFIG.projection)
  np.testing.assert_allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
  sample = sorted(good)[::7]
  np.testing.assert_allclose(rows[[paths.index(p) for p in sample]],
                             embedder.embed_files(sample), atol=1e-5)


def test_api_reads_and_refuses_the_corpus_file_by_file(corpus, embedder):
  locked_out = _locked_out(corpus.locked_folder)
  good, outcomes = [], {}
  for entry in corpus.entries + corpus.loose:
    expect = _expect(entry, "api", locked_out)
    if expect is None:
      continue
    try:
      embedder.read(entry.path)
      good.append(entry.path)
      outcomes[entry.path] = ("good", "")
    except audio.AudioReadError as err:  # any other exception fails the test
      assert str(err).startswith(f"{entry.path}: ")
      outcomes[entry.path] = ("bad", err.reason)
    assert outcomes[entry.path][0] == expect.outcome, (entry.path, outcomes[entry.path])
    assert expect.word in outcomes[entry.path][1], (entry.path, outcomes[entry.path])
  rows = embedder.embed_files(good)
  assert np.all(np.isfinite(rows)) and rows.shape == (len(good), CONFIG.projection)


def test_speaker_folders_builds_the_corpus(corpus, tmp_path):
  config = speaker_folders.SpeakerFoldersConfig(
      name="fuzz", root=corpus.tree, extensions=(".wav", ".flac", ".ogg"),
      test_speakers=(audio_corpus.TEST_SPEAKER,))
  builder = tfds.builder("speaker_folders", config=config, data_dir=os.fspath(tmp_path))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      try_download_gcs=False))
  locked_out = _locked_out(corpus.locked_folder)
  expected = {e.path: _expect(e, "builder", locked_out) for e in corpus.entries}
  good = {p for p, x in expected.items() if x and x.outcome == "good"}
  bad = {p: x.word for p, x in expected.items() if x and x.outcome == "bad"}
  if locked_out:
    bad[corpus.locked_folder] = "cannot list folder"
  report = common.read_report(builder)
  skipped = {s["path"]: s["reason"] for s in report["skipped"]}
  assert set(skipped) == set(bad)
  for path, word in bad.items():
    assert word in skipped[path], (path, skipped[path])
  examples = {split: list(tfds.as_numpy(builder.as_dataset(split=split)))
              for split in common.SPLITS}
  utterances = [ex["utterance"].decode() for split in common.SPLITS for ex in examples[split]]
  assert sorted(utterances) == sorted(
      os.path.splitext(os.path.relpath(p, corpus.tree))[0] for p in good)  # each file once
  for split, rows in examples.items():
    for ex in rows:
      speaker = ex["speaker"].decode()
      assert (speaker == audio_corpus.TEST_SPEAKER) == (split == "test")
      assert ex["utterance"].decode().split("/")[0] == speaker
      assert len(ex["audio"]) >= audio.MIN_SPEECH_SAMPLES and np.any(ex["audio"])


def test_builders_and_inference_share_the_length_and_speech_checks(embedder):
  trim = audio.TrimOptions()
  tone = 0.5 * np.sin(np.arange(400) / 3.0)
  lsb = np.random.default_rng(0).integers(-1, 2, 16000) / 32768
  assert len(common.prepare(tone, 16000, trim).audio) == len(embedder.prepare(tone, 16000))
  for wav, reason in ((tone[:399], "too short: 399 samples"), (lsb, "silent: loudest"),
                      (np.zeros((400, 0)), "at least one channel")):
    with pytest.raises(ValueError, match=reason):
      common.prepare(wav, 16000, trim)
    with pytest.raises(ValueError, match=f"waveform: .*{reason}"):
      embedder.prepare(wav, 16000)
  for rate in (True, float("inf"), 999_999_999):
    with pytest.raises(ValueError, match="sample rate must be"):
      embedder.prepare(tone, rate)


def test_a_non_finite_d_vector_is_refused_naming_the_file(corpus, embedder):
  nan_params = jax.tree.map(lambda x: x * np.nan, embedder.params)
  broken = inference.Embedder(CONFIG, nan_params, window_frames=WINDOW_FRAMES)
  path = next(e.path for e in corpus.entries if e.path.endswith("enc_pcm_16.wav"))
  with pytest.raises(audio.AudioReadError, match=f"{path}: d-vector is not finite"):
    broken.embed_files([path])


# --- embed --output and folder faults --------------------------------------------------------

def _embed(*args):
  """Starts the embed CLI as an ``_unprivileged`` process."""
  return subprocess.Popen(_unprivileged(sys.executable, "-m", "experiments.embed", *args),
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_embed_refuses_bad_outputs_and_unlistable_folders_before_any_work(corpus, export_dir,
                                                                         tmp_path):
  good = next(e.path for e in corpus.entries if e.path.endswith("enc_pcm_16.wav"))
  (tmp_path / "a_folder").mkdir()
  os.mkfifo(tmp_path / "a_fifo")
  model_flag = f"--model={export_dir}"
  runs = {  # run at once: each exits before loading the model
      "exists and is a directory": _embed(model_flag, f"--output={tmp_path / 'a_folder'}", good),
      "exists and is not a regular file": _embed(model_flag, f"--output={tmp_path / 'a_fifo'}",
                                                   good)}
  if _locked_out(corpus.locked_folder, unprivileged=True):  # else: root keeps its privileges
    runs[f"{corpus.locked_folder}: cannot list folder (Permission denied)"] = _embed(
        model_flag, f"--output={tmp_path / 'd.npz'}", os.path.dirname(corpus.locked_folder))
    (tmp_path / "read_only").mkdir(mode=0o555)
    runs[f"folder {tmp_path / 'read_only'} is not writable"] = _embed(
        model_flag, f"--output={tmp_path / 'read_only' / 'new' / 'd.npz'}", good)
  for words, run in runs.items():
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, (words, stderr)
    assert words in stderr and "Traceback" not in stderr, (words, stderr)
    assert "nothing written" in stderr or len(stderr.strip().splitlines()) == 1, stderr
  assert stat.S_ISFIFO(os.stat(tmp_path / "a_fifo").st_mode)  # not replaced by a file
  assert {"a_fifo", "a_folder"} <= set(os.listdir(tmp_path)) <= {"a_fifo", "a_folder", "read_only"}
  assert os.listdir(tmp_path / "a_folder") == [] and not os.path.exists(tmp_path / "d.npz")


# --- speaker_folders tree faults, at the scan ----------------------------------------------

def test_scan_reads_every_file_once_at_its_own_place(tmp_path):
  """A loop, an alias of a test speaker inside a train speaker, a file link, u1.wav+u1.flac.

  (One loop only: two make the landed tree's walk exponential.)
  """
  root = tmp_path / "tree"
  for speaker in ("train_a", "test_b"):
    (root / speaker / "ch").mkdir(parents=True)
    for n in range(3):
      (root / speaker / "ch" / f"u{n}.wav").write_bytes(b"RIFF")
  (root / "train_a" / "ch" / "u0.flac").write_bytes(b"fLaC")
  os.symlink(tmp_path, root / "train_a" / "ch" / "up")  # holds the root: a loop
  os.symlink(os.path.join("..", "test_b"), root / "train_a" / "alias_of_b")
  os.symlink(root / "test_b" / "ch" / "u1.wav", root / "train_a" / "ch" / "u9.wav")
  outside = tmp_path / "elsewhere" / "ch"
  outside.mkdir(parents=True)
  (outside / "o1.wav").write_bytes(b"RIFF")
  os.symlink(outside.parent, root / "test_b" / "linked_out")
  os.symlink(outside.parent, root / "test_b" / "linked_out_again")
  report = common.BuildReport("scan")
  files = speaker_folders.scan(speaker_folders.SpeakerFoldersConfig(name="s"), str(root), report)
  assert sorted((f.speaker, f.utterance) for f in files) == sorted(
      [("train_a", f"train_a/ch/u{n}") for n in range(3)]
      + [("test_b", f"test_b/ch/u{n}") for n in range(3)]
      + [("test_b", "test_b/linked_out/ch/o1")])
  assert next(f.path for f in files if f.utterance == "train_a/ch/u0").endswith("u0.wav")
  reasons = {os.path.relpath(s["path"], root): s["reason"] for s in report.skipped}
  assert set(reasons) == {"train_a/ch/up", "train_a/alias_of_b",
                          "train_a/ch/u9.wav", "train_a/ch/u0.flac", "test_b/linked_out_again"}
  assert "symbolic link loop" in reasons["train_a/ch/up"]
  assert "inside the tree" in reasons["train_a/alias_of_b"]
  assert "is taken by" in reasons["train_a/ch/u0.flac"]
  assert "same folder as" in reasons["test_b/linked_out_again"]
