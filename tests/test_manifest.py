"""The manifest builder on real audio files (the session's speaker_tree, plus mp3 copies):
CSV, Kaldi (with a shell pipe) and Common Voice's TSV layout, with bad rows reported by line."""

import hashlib

import numpy as np
import pytest
import scipy.signal
import soundfile as sf
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.builders import manifest
from ge2e_jax import audio

NO_GCS = tfds.download.DownloadConfig(try_download_gcs=False)
FLAC = {k: f"{k[:4]}/{20 + int(k[3]) - 1}/{k}.flac" for k in ("1001-20-0000", "1001-20-0001",
                                                              "1003-22-0000", "1003-22-0001")}


def build(config, tmp_path_factory, manual_dir=None):
  builder = tfds.builder("manifest", config=config,
                         data_dir=tmp_path_factory.mktemp(f"tfds_{config.name}"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      try_download_gcs=False, manual_dir=manual_dir))
  examples = {split: {ex["utterance"].decode(): ex for ex in tfds.as_numpy(
      builder.as_dataset(split=split))} for split in common.SPLITS}
  return examples, common.read_report(builder)


def int16_of(path):
  wav, _ = sf.read(path, dtype="int16")
  return wav


def write_mp3(source, target):
  wav, sr = sf.read(source, dtype="float32")
  sf.write(target, wav, sr, format="MP3")
  return wav


def skipped_by_line(report):
  return {s.get("line"): (s["path"], s["reason"]) for s in report["skipped"]}


@pytest.fixture(scope="module")
def table(speaker_tree, tmp_path_factory):
  """A CSV over speaker_tree (untrimmed): good rows, an mp3, and one row of each bad kind."""
  tmp = tmp_path_factory.mktemp("csv")
  mp3 = tmp / "speech.mp3"
  original = write_mp3(speaker_tree.root / FLAC["1001-20-0001"], mp3)
  lines = [
      "path,speaker,sentence",                                  # 1
      f'{FLAC["1001-20-0000"]},1001,"the cat, sat"',             # 2
      f"{FLAC['1001-20-0001']},1001,a quiet river",              # 3
      f"{FLAC['1003-22-0000']},1003,x",                          # 4
      f"{FLAC['1003-22-0001']},1003,y",                          # 5
      "1002/21/1002-21-0000.wav,1002,stereo",                    # 6
      f"{mp3},1005,an mp3",                                      # 7
      f"{FLAC['1001-20-0000']},1001,again",                      # 8 duplicate of line 2
      "1004/23/missing.flac,1004,",                              # 9 no such file
      "1003/22/noise.wav,1003,noise",                            # 10 not audio
      "1001/20/empty.wav,1001,empty",                            # 11 empty file
      ",1002,no path",                                           # 12 empty path
      "1002/21/1002-21-0001.wav",                                # 13 one field
      "",                                                        # 14 blank: ignored
      "1002/21/1002-21-0002.wav,1002,last",                      # 15
  ]
  (tmp / "list.csv").write_text("\n".join(lines) + "\n")
  config = manifest.ManifestConfig(
      name="table", manifest=str(tmp / "list.csv"), audio_root=str(speaker_tree.root),
      text_column="sentence", test_speakers=("1003",), trim_silence=False)
  return build(config, tmp_path_factory) + (mp3, original)


def test_csv_rows_become_examples_with_exact_audio(table, speaker_tree):
  examples, report, mp3, _ = table
  speakers = {split: sorted(ex["speaker"].decode() for ex in examples[split].values())
              for split in common.SPLITS}
  assert speakers == {"train": ["1001", "1001", "1002", "1002", "1005"],
                      "test": ["1003", "1003"]}
  for utt, rel in FLAC.items():
    split = "test" if utt.startswith("1003") else "train"
    np.testing.assert_array_equal(examples[split][rel[:-5]]["audio"],
                                  int16_of(speaker_tree.root / rel))
  assert examples["train"][FLAC["1001-20-0000"][:-5]]["text"] == b"the cat, sat"
  stereo = [u for u in report["utterances"] if u["utterance"] == "1002/21/1002-21-0000"]
  assert stereo[0]["orig_sample_rate"] == 44100 and stereo[0]["orig_channels"] == 2
  assert report["manifest"].endswith("list.csv")


def test_csv_reads_mp3_through_libsndfile(table):
  examples, _, mp3, original = table
  got = examples["train"][str(mp3)[:-4]]["audio"].astype(np.float64) / 32768
  assert abs(len(got) - len(original)) < 2400  # encoder delay and padding, < 0.15 s
  # The best-aligned normalised cross-correlation (any lag): mp3 keeps the waveform.
  best = scipy.signal.correlate(got, original, method="fft").max()
  assert best / (np.linalg.norm(got) * np.linalg.norm(original)) > 0.9


def test_csv_bad_rows_are_reported_with_their_line(table, speaker_tree):
  _, report, _, _ = table
  skipped = skipped_by_line(report)
  expected = {"list.csv:8": "duplicate utterance id '1001/20/1001-20-0000' (first on line 2)",
              "list.csv:9": "no such file", "list.csv:10": "not a readable audio file",
              "list.csv:11": "empty file", "list.csv:12": "empty 'path'",
              "list.csv:13": "1 fields, the header has 3"}
  assert set(skipped) == set(expected)
  for line, words in expected.items():
    assert words in skipped[line][1], (line, skipped[line])
  assert skipped["list.csv:9"][0] == str(speaker_tree.root / "1004/23/missing.flac")
  assert report["num_skipped"] == 6


def test_table_without_the_required_columns_is_a_clear_error(tmp_path):
  (tmp_path / "list.csv").write_text("file,who\na.wav,1\n")
  config = manifest.ManifestConfig(name="x", manifest=str(tmp_path / "list.csv"))
  with pytest.raises(ValueError, match=r"list.csv: no column\(s\) \['path', 'speaker'\]"):
    manifest.read_manifest(config, config.manifest, common.BuildReport("x"))


@pytest.fixture(scope="module")
def kaldi(speaker_tree, tmp_path_factory):
  root = speaker_tree.root
  data = tmp_path_factory.mktemp("kaldi")
  (data / "wav.scp").write_text("\n".join([
      f"u1 {root / FLAC['1001-20-0000']}",
      f"u2 cat {root / FLAC['1003-22-0000']} |",
      f"u3 {FLAC['1003-22-0001']}",
      "badline",
      f"u1 {root / FLAC['1001-20-0001']}",
      f"u4 {FLAC['1001-20-0001']}",
      "u5 exit 3 |",
  ]) + "\n")
  (data / "utt2spk").write_text("u1 1001\nu2 1003\nu3 1003\nu9 1002\nu5 1001\n")
  (data / "text").write_text("u1 THE CAT SAT\n")
  config = manifest.ManifestConfig(name="kaldi_test", manifest=str(data), audio_root=str(root),
                                   run_pipes=True, test_speakers=("1003",),
                                   trim_silence=False)
  return build(config, tmp_path_factory)


def test_kaldi_dir_with_a_pipe_and_bad_lines(kaldi, speaker_tree):
  examples, report = kaldi
  assert sorted(examples["train"]) == ["u1"] and sorted(examples["test"]) == ["u2", "u3"]
  assert examples["train"]["u1"]["text"] == b"THE CAT SAT"
  assert examples["test"]["u3"]["text"] == b""
  np.testing.assert_array_equal(examples["test"]["u2"]["audio"],  # through `cat ... |`
                                int16_of(speaker_tree.root / FLAC["1003-22-0000"]))
  skipped = skipped_by_line(report)
  expected = {"wav.scp:4": "expected '<id> <entry>'", "wav.scp:5": "duplicate id 'u1'",
              "wav.scp:6": "'u4' has no speaker in utt2spk",
              "utt2spk:4": "'u9' has no audio (not in wav.scp)",
              "wav.scp:7": "command failed with status 3"}
  assert set(skipped) == set(expected)
  for line, words in expected.items():
    assert words in skipped[line][1], (line, skipped[line])


def test_pipes_are_not_run_unless_asked(tmp_path):
  (tmp_path / "wav.scp").write_text(f"u1 touch {tmp_path / 'ran'} |\n")
  (tmp_path / "utt2spk").write_text("u1 s\n")
  report = common.BuildReport("x")
  config = manifest.ManifestConfig(name="x")
  assert manifest.read_manifest(config, str(tmp_path), report) == []
  assert "set run_pipes=True" in report.skipped[0]["reason"]
  assert report.skipped[0]["line"] == "wav.scp:1" and not (tmp_path / "ran").exists()


def test_kaldi_segments_cut_the_recording(speaker_tree):
  path = str(speaker_tree.root / FLAC["1001-20-0000"])
  entry = manifest.Entry("segments:1", "u1", "1001", path, start_s=0.25, end_s=0.75)
  prepared = manifest.read_entry(entry, audio.TrimOptions(enabled=False))
  np.testing.assert_array_equal(prepared.audio, int16_of(path)[4000:12000])


def reference_split(speaker, percent=10.0):
  bucket = int(hashlib.sha256(speaker.encode()).hexdigest()[:16], 16) % 10000
  return "test" if bucket < percent * 100 else "train"


def test_common_voice_preset_reads_validated_tsv_and_mp3_clips(speaker_tree, tmp_path_factory):
  cv = tmp_path_factory.mktemp("cv")
  (cv / "clips").mkdir()
  ids = [f"client{n:03d}" for n in range(200)]
  speakers = ([i for i in ids if reference_split(i) == "test"][:1]
              + [i for i in ids if reference_split(i) == "train"][:2])
  header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccents\tlocale"
  rows, sources = [header], {}
  for k, (speaker, rel) in enumerate(zip(speakers * 2, list(FLAC.values()) * 2)):
    clip = f"common_voice_cy_{k}.mp3"
    if k < 4:
      write_mp3(speaker_tree.root / rel, cv / "clips" / clip)
    sources[clip[:-4]] = speaker
    rows.append(f'{speaker}\t{clip}\tShe said "hi" {k}\t2\t0\t\t\t\tcy')
  (cv / "validated.tsv").write_text("\n".join(rows) + "\n")
  config = manifest.Manifest.builder_configs["common_voice"]
  examples, report = build(config, tmp_path_factory, manual_dir=str(cv))
  found = {u: ex["speaker"].decode() for split in common.SPLITS
           for u, ex in examples[split].items()}
  assert found == {u: s for u, s in sources.items() if int(u.rsplit("_", 1)[1]) < 4}
  for split in common.SPLITS:
    assert {ex["speaker"].decode() for ex in examples[split].values()} == {
        s for s in speakers if reference_split(s) == split}
  assert examples["test"]["common_voice_cy_0"]["text"] == b'She said "hi" 0'
  assert {s["line"]: s["reason"] for s in report["skipped"]} == {
      "validated.tsv:6": "no such file", "validated.tsv:7": "no such file"}
