"""The TFDS builders and adapters, built for real from espeak-ng speech and fake corpora."""

import collections
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import zipfile

from etils import epath
import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import tensorflow_datasets as tfds

from data_pipelines.builders import adapters
from data_pipelines.builders import common
from data_pipelines.builders import espeak
from data_pipelines.builders import speaker_folders
from data_pipelines.builders import synthetic_voices

FEATURES = {"audio", "speaker", "utterance", "text"}
NO_GCS = tfds.download.DownloadConfig(try_download_gcs=False)


def _examples(builder_or_ds, split=None):
  ds = builder_or_ds if split is None else builder_or_ds.as_dataset(split=split)
  return [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in ex.items()}
          for ex in tfds.as_numpy(ds)]


def _check_common_features(examples):
  for ex in examples:
    assert set(ex) == FEATURES
    assert ex["audio"].dtype == np.int16 and ex["audio"].ndim == 1
    assert isinstance(ex["speaker"], str) and isinstance(ex["text"], str)
  assert len({ex["utterance"] for ex in examples}) == len(examples)


# --- synthetic_voices ---------------------------------------------------------------


def test_synthetic_td_features_shapes_and_sizes(synthetic_td):
  builder = synthetic_td.builder()
  assert set(builder.info.features) == FEATURES
  assert builder.info.features["audio"].np_dtype == np.int16
  assert builder.info.features["audio"].shape == (None,)
  for split, n_speakers in (("train", 10), ("test", 4)):
    examples = _examples(builder, split)
    _check_common_features(examples)
    per_speaker = collections.Counter(ex["speaker"] for ex in examples)
    assert len(per_speaker) == n_speakers and set(per_speaker.values()) == {8}
    for ex in examples:
      assert ex["text"] == "ok computer"
      assert 0.4 < len(ex["audio"]) / 16000 < 2.5
      assert np.abs(ex["audio"]).max() > 3000  # Speech, not silence.
    # Per-utterance prosody jitter: a speaker never says the phrase twice alike.
    by_speaker = collections.defaultdict(list)
    for ex in examples:
      by_speaker[ex["speaker"]].append(ex["audio"].tobytes())
    assert all(len(set(a)) == len(a) for a in by_speaker.values())


@pytest.mark.parametrize("corpus", ["synthetic_td", "synthetic_td_hey", "synthetic_ti"])
def test_synthetic_splits_are_speaker_disjoint(corpus, request):
  builder = request.getfixturevalue(corpus).builder()
  train = {ex["speaker"] for ex in _examples(builder, "train")}
  test = {ex["speaker"] for ex in _examples(builder, "test")}
  assert len(train) == 10 and len(test) == 4 and not train & test


def test_synthetic_td_sources_share_speakers_and_differ_in_phrase(synthetic_td,
                                                                  synthetic_td_hey):
  ok, hey = synthetic_td.builder(), synthetic_td_hey.builder()
  for split in common.SPLITS:
    ok_ex, hey_ex = _examples(ok, split), _examples(hey, split)
    assert {e["speaker"] for e in ok_ex} == {e["speaker"] for e in hey_ex}
    assert {e["text"] for e in hey_ex} == {"hey computer"}


def test_synthetic_ti_has_varied_sentences(synthetic_ti):
  examples = _examples(synthetic_ti.builder(), "train")
  _check_common_features(examples)
  texts = [ex["text"] for ex in examples]
  assert len(examples) == 60
  assert len(set(texts)) >= 0.9 * len(texts)
  assert all(len(t.split()) >= 6 for t in texts)


def test_synthetic_report_records_speakers_and_trimming(synthetic_td):
  builder = synthetic_td.builder()
  report = common.read_report(builder)
  assert report["num_skipped"] == 0 and report["skipped"] == []
  voices = {s["id"]: s for s in report["speakers"]}
  assert len(voices) == 18  # 10 train, 4 test, 4 test_unseen_lang.
  assert len({(s["voice"], s["pitch"], s["speed"]) for s in voices.values()}) == 18
  assert set(report["test_speakers"]) == {e["speaker"] for e in _examples(builder, "test")}
  lengths = {e["utterance"]: len(e["audio"]) for e in _examples(builder, "train")}
  rows = [u for u in report["utterances"] if u["split"] == "train"]
  assert len(rows) == len(lengths)
  for row in rows:
    assert round(row["seconds"] * 16000) == lengths[row["utterance"]]
    assert row["cut_start_s"] >= 0 and row["cut_end_s"] >= 0
  # espeak-ng ends each utterance with a pause, which the VAD cuts.
  assert report["total_cut_end_s"] == pytest.approx(
      sum(u["cut_end_s"] for u in report["utterances"]), abs=1e-3)
  assert report["total_cut_end_s"] > 0.05 * len(report["utterances"])


ALL_SPLITS = "train+test+test_unseen_lang"


def _tiny_config(name, seed):
  return synthetic_voices.SyntheticVoicesConfig(
      name=name, seed=seed, num_train_speakers=2, num_test_speakers=1,
      num_unseen_lang_speakers=1, utterances_per_speaker=2)


def test_synthetic_same_seed_gives_identical_audio(tmp_path):
  first = tfds.load("synthetic_voices", split=ALL_SPLITS, data_dir=tmp_path / "a",
                    builder_kwargs={"config": _tiny_config("tiny", seed=7)},
                    download_and_prepare_kwargs={"download_config": NO_GCS})
  builder = tfds.builder("synthetic_voices", config=_tiny_config("tiny", seed=7),
                         data_dir=tmp_path / "b")
  builder.download_and_prepare(download_config=NO_GCS)
  other = tfds.builder("synthetic_voices", config=_tiny_config("tiny", seed=8),
                       data_dir=tmp_path / "c")
  other.download_and_prepare(download_config=NO_GCS)
  a = {e["utterance"]: e["audio"].tobytes() for e in _examples(first)}
  b = {e["utterance"]: e["audio"].tobytes() for e in _examples(builder.as_dataset(split=ALL_SPLITS))}
  c = {e["utterance"]: e["audio"].tobytes() for e in _examples(other.as_dataset(split=ALL_SPLITS))}
  assert len(a) == 8 and a == b
  assert set(c.values()).isdisjoint(a.values())


def test_synthetic_train_utterances_per_speaker_shortens_train_only(tmp_path):
  """ti_1920x8's option: fewer train utterances per speaker, the first of the full set;
  the test splits keep utterances_per_speaker."""
  full = tfds.builder("synthetic_voices", config=_tiny_config("tiny", seed=7),
                      data_dir=tmp_path / "full")
  full.download_and_prepare(download_config=NO_GCS)
  short_config = synthetic_voices.SyntheticVoicesConfig(
      name="tiny_short", seed=7, num_train_speakers=2, num_test_speakers=1,
      num_unseen_lang_speakers=1, utterances_per_speaker=2, train_utterances_per_speaker=1)
  short = tfds.builder("synthetic_voices", config=short_config, data_dir=tmp_path / "short")
  short.download_and_prepare(download_config=NO_GCS)
  a = {e["utterance"]: e["audio"].tobytes() for e in _examples(full.as_dataset(split=ALL_SPLITS))}
  b = {e["utterance"]: e["audio"].tobytes() for e in _examples(short.as_dataset(split=ALL_SPLITS))}
  per_speaker = collections.Counter(e["speaker"] for e in _examples(short.as_dataset(split="train")))
  assert sorted(per_speaker.values()) == [1, 1]
  assert len(a) == 8 and len(b) == 6 and all(a[u] == audio for u, audio in b.items())


def test_synthetic_rejects_more_speakers_than_voices(tmp_path):
  config = synthetic_voices.SyntheticVoicesConfig(name="huge", voices=("en-us",),
                                                  speaker_kind="stock", num_train_speakers=5000)
  with pytest.raises(ValueError, match="distinct voices available"):
    tfds.builder("synthetic_voices", config=config,
                 data_dir=tmp_path).download_and_prepare(download_config=NO_GCS)
  assert not list(tmp_path.glob("synthetic_voices/huge/*/dataset_info.json"))


def test_synthetic_mbrola_requested_but_missing_says_so(tmp_path):
  if espeak.mbrola_voices():
    pytest.skip("MBROLA voices are installed here")
  config = synthetic_voices.SyntheticVoicesConfig(name="mb", mbrola_test=True)
  with pytest.raises(espeak.EspeakError, match="MBROLA"):
    synthetic_voices.speakers(config)


# --- speaker_folders ------------------------------------------------------------------

FOLDERS_TEST_PERCENT = 40.0


class _Records(logging.Handler):

  def __init__(self):
    super().__init__()
    self.messages = []

  def emit(self, record):
    self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def folders(speaker_tree, tmp_path_factory):
  """speaker_folders built over the speaker_tree fixture; with the log lines it wrote."""
  config = speaker_folders.SpeakerFoldersConfig(
      name="tree", root=str(speaker_tree.root), test_percent=FOLDERS_TEST_PERCENT,
      min_utterances=1)  # the one-file tone speaker stays in train
  records = _Records()
  logger = logging.getLogger(common.__name__)
  logger.addHandler(records)
  try:
    builder = tfds.builder("speaker_folders", config=config,
                           data_dir=tmp_path_factory.mktemp("tfds_folders"))
    builder.download_and_prepare(download_config=NO_GCS)
  finally:
    logger.removeHandler(records)
  examples = {split: _examples(builder, split) for split in common.SPLITS}
  return builder, examples, common.read_report(builder), records.messages


def _reference_split(speaker):
  bucket = int(hashlib.sha256(speaker.encode()).hexdigest()[:16], 16) % 10000
  return "test" if bucket < FOLDERS_TEST_PERCENT * 100 else "train"


def test_folders_features_speakers_and_hash_splits(folders, speaker_tree):
  _, examples, _, _ = folders
  for split in common.SPLITS:
    _check_common_features(examples[split])
    counts = collections.Counter(ex["speaker"] for ex in examples[split])
    expected = {s: n for s, n in speaker_tree.speakers.items() if _reference_split(s) == split}
    assert counts == expected
  assert {ex["speaker"] for ex in examples["test"]} == {"1003", "1006"}


def test_folders_reads_librispeech_transcripts(folders, speaker_tree):
  _, examples, _, _ = folders
  texts = {ex["utterance"]: ex["text"] for split in common.SPLITS for ex in examples[split]}
  for utterance, text in speaker_tree.texts.items():
    assert texts[utterance] == text
  assert texts[speaker_tree.tone.relpath[:-4]] == ""


def test_folders_converts_stereo_44k_like_an_fft_resampler(folders, speaker_tree):
  _, examples, report, _ = folders
  by_utt = {ex["utterance"]: ex["audio"] for s in common.SPLITS for ex in examples[s]}
  rows = {u["utterance"]: u for u in report["utterances"]}
  for rel in speaker_tree.stereo_44k:
    utt = rel[:-4]
    original, sr = sf.read(speaker_tree.root / rel, dtype="float64")
    assert sr == 44100 and original.shape[1] == 2
    mono = original.mean(axis=1)
    mono = np.pad(mono, (0, -len(mono) % 441))  # So that 16000/44100 * length is whole.
    reference = scipy.signal.resample(mono, len(mono) * 160 // 441)
    start = int(round(rows[utt]["cut_start_s"] * 16000))
    got = by_utt[utt].astype(np.float64) / 32768
    ref = reference[start:start + len(got)]
    assert rows[utt]["orig_sample_rate"] == 44100 and rows[utt]["orig_channels"] == 2
    # Compared below 6 kHz: the resamplers differ in their transition bands near 8 kHz.
    lowpass = scipy.signal.firwin(255, 6000, fs=16000)
    got, ref = (scipy.signal.filtfilt(lowpass, 1.0, x) for x in (got, ref))
    assert np.linalg.norm(got - ref) / np.linalg.norm(ref) < 0.01
  assert report["mixed_down_files"] == len(speaker_tree.stereo_44k) + 1  # + the tone.


def test_folders_trims_the_tone_by_its_known_silence(folders, speaker_tree):
  _, examples, report, _ = folders
  tone = speaker_tree.tone
  row = next(u for u in report["utterances"] if u["utterance"] == tone.relpath[:-4])
  got = next(ex["audio"] for s in common.SPLITS for ex in examples[s]
             if ex["utterance"] == tone.relpath[:-4]).astype(np.float64) / 32768
  pad_s, frame_s = 0.040, 0.020  # TrimSettings defaults.
  assert row["cut_start_s"] == pytest.approx(tone.lead_s - pad_s, abs=frame_s)
  assert row["cut_end_s"] == pytest.approx(tone.trail_s - pad_s, abs=frame_s)
  t = row["cut_start_s"] + np.arange(len(got)) / 16000  # Time in the original file.
  inside = (t > tone.lead_s + 0.05) & (t < tone.lead_s + tone.tone_s - 0.05)
  expected = tone.amplitude * np.sin(2 * np.pi * tone.freq_hz * (t - tone.lead_s))
  np.testing.assert_allclose(got[inside], expected[inside], atol=2e-3)
  peak_hz = np.argmax(np.abs(np.fft.rfft(got))) * 16000 / len(got)
  assert abs(peak_hz - tone.freq_hz) < 2.0
  assert report["total_cut_start_s"] == pytest.approx(
      sum(u["cut_start_s"] for u in report["utterances"]), abs=1e-3)


def test_folders_skips_and_reports_bad_files(folders, speaker_tree):
  builder, examples, report, messages = folders
  skipped = {s["path"]: s["reason"] for s in report["skipped"]}
  expected = {str(speaker_tree.root / rel): word for rel, word in speaker_tree.bad_files.items()}
  assert set(skipped) == set(expected)
  for path, word in expected.items():
    assert word in skipped[path], (path, skipped[path])
  utterances = {ex["utterance"] for s in common.SPLITS for ex in examples[s]}
  assert not {os.path.splitext(rel)[0] for rel in speaker_tree.bad_files} & utterances
  assert report["num_skipped"] == len(expected)
  report_path = os.path.join(builder.data_dir, common.REPORT_FILENAME)
  assert builder.data_dir.endswith(os.path.join("speaker_folders", "tree", "1.0.0"))
  assert any(f"{len(expected)} inputs skipped" in m and report_path in m for m in messages), [
      m for m in messages if "inputs skipped" in m]
  assert sum(f"Skipping {p}:" in " ".join(messages) for p in expected) == len(expected)


def test_folders_speaker_depth_picks_the_folder_level(speaker_tree):
  report = common.BuildReport("scan")
  config = speaker_folders.SpeakerFoldersConfig(name="depth1", speaker_depth=1)
  files = speaker_folders.scan(config, str(speaker_tree.root), report)
  assert {f.speaker for f in files} == {"20", "21", "22", "23", "24", "25", "1"}
  reasons = {os.path.basename(s["path"]): s["reason"] for s in report.skipped}
  assert "speaker_depth=1" in reasons["stray.wav"]


def test_folders_split_by_explicit_test_speakers():
  config = speaker_folders.SpeakerFoldersConfig(name="x", test_speakers=("id10270", "b"))
  assert [common.split_of(config, s) for s in ("id10270", "b", "c", "id10001")] == [
      "test", "test", "train", "train"]
  voxceleb = speaker_folders.SpeakerFolders.builder_configs["voxceleb1"]
  assert common.split_of(voxceleb, "id10309") == "test"
  assert common.split_of(voxceleb, "id10310") == "train"


def test_folders_via_manual_dir_and_tfds_load_without_trimming(speaker_tree, tmp_path):
  config = speaker_folders.SpeakerFoldersConfig(
      name="untrimmed", test_percent=FOLDERS_TEST_PERCENT, trim_silence=False,
      min_utterances=1)
  ds = tfds.load("speaker_folders", split="train", data_dir=tmp_path,
                 builder_kwargs={"config": config},
                 download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                     manual_dir=str(speaker_tree.root), try_download_gcs=False)})
  tone = speaker_tree.tone
  examples = {ex["utterance"]: ex for ex in _examples(ds)}
  total_s = tone.lead_s + tone.tone_s + tone.trail_s
  assert len(examples[tone.relpath[:-4]]["audio"]) == pytest.approx(total_s * 16000, abs=1)
  report = json.loads((tmp_path / "speaker_folders/untrimmed/1.0.0/build_report.json").read_text())
  assert report["total_cut_start_s"] == 0 and report["total_cut_end_s"] == 0


def test_folders_with_an_empty_test_split_raises(speaker_tree, tmp_path):
  config = speaker_folders.SpeakerFoldersConfig(name="notest", root=str(speaker_tree.root),
                                                test_percent=0.0)
  with pytest.raises(ValueError, match="falls in split 'test'"):
    tfds.builder("speaker_folders", config=config,
                 data_dir=tmp_path).download_and_prepare(download_config=NO_GCS)


def test_folders_report_empty_speaker_folders_and_leave_out_short_speakers(speaker_tree,
                                                                            tmp_path):
  root = tmp_path / "tree"
  shutil.copytree(speaker_tree.root, root)
  (root / "1007" / "30").mkdir(parents=True)  # a speaker folder without audio
  (root / "1008").mkdir()
  (root / "1008" / "readme.txt").write_text("no audio here")
  report = common.BuildReport("scan")
  config = speaker_folders.SpeakerFoldersConfig(name="x", root=str(root))
  files = speaker_folders.scan(config, str(root), report)
  assert report.extra["empty_speaker_folders"] == [str(root / "1007"), str(root / "1008")]
  reasons = {s["path"]: s["reason"] for s in report.skipped}
  assert "speaker folder holds no audio file" in reasons[str(root / "1007")]
  kept = speaker_folders.enough_utterances(files, 2, report)
  assert {f.speaker for f in files} - {f.speaker for f in kept} == {"tone"}
  assert "min_utterances=2" in report.extra["speakers_left_out"]["tone"]
  reasons = {s["path"]: s["reason"] for s in report.skipped}
  assert "left out of train" in reasons[str(root / speaker_tree.tone.relpath)]
  counts = collections.Counter(f.speaker for f in files)  # files found, before reading
  kept = speaker_folders.enough_utterances(files, 4, common.BuildReport("x"))
  assert {f.speaker for f in kept} == {s for s, n in counts.items() if n >= 4} != set(counts)


@pytest.mark.slow
def test_failing_folder_builds_end_in_one_line(speaker_tree, tmp_path):
  (tmp_path / "a_file").write_text("x")
  (tmp_path / "no_audio" / "spk").mkdir(parents=True)
  script = os.path.join(os.path.dirname(common.__file__), "speaker_folders.py")
  cases = {
      json.dumps({"name": "t1", "rooot": "/x"}): "SpeakerFoldersConfig has no field 'rooot'; "
                                                  "did you mean 'root'?",
      json.dumps({"name": "t2", "root": str(tmp_path / "a_file")}): "is not a directory",
      json.dumps({"name": "t3", "root": str(tmp_path / "no_audio")}): "no audio file",
      json.dumps({"name": "t4", "root": str(speaker_tree.root), "test_percent": 100.0}):
          "falls in split 'train'",
  }
  procs = {config: subprocess.Popen(  # side by side: each pays for a TensorFlow start
      [sys.executable, "-m", "data_pipelines.builders.tfds_build", script, f"--config={config}",
       f"--data_dir={tmp_path / 'data'}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
      text=True) for config in cases}
  for config, needle in cases.items():
    _, stderr = procs[config].communicate(timeout=300)
    assert procs[config].returncode == 1, stderr[-2000:]
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("tfds_build: ") and needle in last, last
    assert "Traceback" not in stderr


# --- adapters of TFDS's own librispeech and voxceleb ------------------------------------

def test_librispeech_adapter_gives_common_features(fake_librispeech):
  builder, written = fake_librispeech.builder(), fake_librispeech.written
  for split, subsets in (("train", {"train_clean100", "train_clean360", "train_other500"}),
                         ("test", {"test_clean"})):
    examples = _examples(adapters.as_dataset(builder, split))
    _check_common_features(examples)
    expected = {k: v for k, v in written.items() if v[3] in subsets}
    assert {ex["utterance"] for ex in examples} == set(expected)
    for ex in examples:
      speaker, ints, text, _ = expected[ex["utterance"]]
      assert ex["speaker"] == speaker and ex["text"] == text
      np.testing.assert_array_equal(ex["audio"], ints)
  train = {ex["speaker"] for ex in _examples(adapters.as_dataset(builder, "train"))}
  test = {ex["speaker"] for ex in _examples(adapters.as_dataset(builder, "test"))}
  assert not train & test


def _fake_voxceleb(root):
  """manual_dir/vox_dev_wav.zip with wav/<id>/<youtube id>/<n>.wav, and iden_split.txt."""
  rng = np.random.default_rng(1)
  files, split_lines, written = {}, [], {}
  for s, speaker in enumerate(["id10001", "id10002", "id10270", "id10309"]):
    for v, video in enumerate(["abcDEF12345", "zyxWVU98765"][: 1 + s % 2]):
      for n in range(2):
        rel = f"{speaker}/{video}/{n + 1:05d}.wav"
        ints = rng.integers(-9000, 9000, size=3200 + 160 * n).astype(np.int16)
        path = root / "src" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, ints, 16000, subtype="PCM_16")
        files[rel] = path
        split_lines.append(f"{1 + (n + v) % 3} {rel}")
        written[rel] = (speaker, video, ints)
  manual = root / "manual"
  manual.mkdir()
  with zipfile.ZipFile(manual / "vox_dev_wav.zip", "w") as z:
    for rel, path in files.items():
      z.write(path, f"wav/{rel}")
  (root / "iden_split.txt").write_text("\n".join(split_lines) + "\n")
  return manual, root / "iden_split.txt", written


@pytest.fixture(scope="module")
def voxceleb(tmp_path_factory):
  """TFDS's real voxceleb builder run on a fake vox_dev_wav.zip."""
  root = tmp_path_factory.mktemp("fake_voxceleb")
  manual, iden_split, written = _fake_voxceleb(root)
  builder = tfds.builder("voxceleb", data_dir=root / "tfds")
  with pytest.MonkeyPatch.context() as patch:  # Only the iden_split.txt download is faked.
    patch.setattr(tfds.download.DownloadManager, "download",
                  lambda self, urls: {k: epath.Path(iden_split) for k in urls})
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        manual_dir=str(manual), try_download_gcs=False))
  return builder, written


# pydub (TFDS's voxceleb decodes with it) warns on import about ffmpeg and audioop;
# reading wav needs neither.
@pytest.mark.filterwarnings("ignore:Couldn't find ffmpeg", "ignore:'audioop' is deprecated")
def test_voxceleb_adapter_splits_by_verification_speakers(voxceleb):
  builder, written = voxceleb
  by_audio = {ints.tobytes(): (speaker, video) for speaker, video, ints in written.values()}
  seen = []
  for split, speakers in (("train", {"id10001", "id10002"}), ("test", {"id10270", "id10309"})):
    examples = _examples(adapters.as_dataset(builder, split))
    _check_common_features(examples)
    assert {ex["speaker"] for ex in examples} == speakers
    for ex in examples:
      speaker, video = by_audio[ex["audio"].tobytes()]
      assert ex["speaker"] == speaker and ex["text"] == ""
      assert ex["utterance"].startswith(f"{speaker}/{video}/")
    seen += [ex["audio"].tobytes() for ex in examples]
  assert sorted(seen) == sorted(by_audio)


def test_adapter_passes_native_builders_and_rejects_others(voxceleb, synthetic_td, tmp_path):
  native = {e["utterance"]: e["audio"].tobytes()
            for e in _examples(adapters.as_dataset(synthetic_td.builder(), "test"))}
  assert native == {e["utterance"]: e["audio"].tobytes()
                    for e in _examples(synthetic_td.builder(), "test")}
  with pytest.raises(ValueError, match="split must be one of"):
    adapters.as_dataset(voxceleb[0], "validation")
  with pytest.raises(ValueError, match="no adapter for TFDS dataset 'mnist'"):
    adapters.as_dataset(tfds.builder("mnist", data_dir=tmp_path), "train")


# --- tfds build command line ------------------------------------------------------------


@pytest.mark.slow
def test_tfds_build_cli_builds_a_json_config(tmp_path):
  config = {"name": "cli_tiny", "phrase": "hey computer", "num_train_speakers": 2,
            "num_test_speakers": 1, "num_unseen_lang_speakers": 0, "utterances_per_speaker": 2}
  script = os.path.join(os.path.dirname(common.__file__), "synthetic_voices.py")
  # TFDS's build command; `tfds build` itself also needs apache-beam (see tfds_build.py).
  proc = subprocess.run([sys.executable, "-m", "data_pipelines.builders.tfds_build", script,
                         f"--config={json.dumps(config)}", f"--data_dir={tmp_path}"],
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  builder = tfds.builder("synthetic_voices/cli_tiny", data_dir=tmp_path)
  assert builder.info.splits["train"].num_examples == 4
  assert builder.info.splits["test"].num_examples == 2
  assert common.read_report(builder)["train_examples"] == 4
