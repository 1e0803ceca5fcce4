"""hts_voices: Open JTalk's HTS voice under drawn settings, built for real (`make hts-voices`
fetches the engine; set-up does it for the tests)."""

import collections
import dataclasses

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.builders import hts_voices
from data_pipelines.builders import open_jtalk
from data_pipelines.builders import sentences

NO_GCS = tfds.download.DownloadConfig(try_download_gcs=False)
TEXT = "今日は静かな猫が窓を見ました。"


def tiny(name="tiny", seed=3):
  return hts_voices.HtsVoicesConfig(name=name, seed=seed, num_train_speakers=3,
                                    num_test_speakers=2, utterances_per_speaker=2)


def f0_hz(wav, sr):
  """Median F0 of the voiced 40 ms frames: the autocorrelation peak in 60-500 Hz (float64)."""
  frame, hop = int(0.04 * sr), int(0.01 * sr)
  lags = np.arange(sr // 500, sr // 60)
  found = []
  for start in range(0, len(wav) - frame, hop):
    x = np.asarray(wav[start:start + frame], np.float64)
    x = x - x.mean()
    energy = np.dot(x, x)
    if energy < 1e-4 * frame:
      continue
    r = np.array([np.dot(x[:-lag], x[lag:]) for lag in lags]) / energy
    if r.max() > 0.6:
      found.append(sr / lags[np.argmax(r)])
  return float(np.median(found))


def test_speakers_are_seeded_per_index_inside_their_ranges():
  config = tiny()
  drawn = hts_voices.speakers(config)
  assert [s.split for s in drawn] == ["train"] * 3 + ["test"] * 2
  assert len({s.settings for s in drawn}) == 5
  more = hts_voices.speakers(dataclasses.replace(config, num_train_speakers=4))
  assert [s.settings for s in more[:4]] == [s.settings for s in drawn[:4]]  # index, not count
  for s in drawn:
    for field in ("all_pass", "half_tone", "rate", "gv_spectrum", "gv_f0", "postfilter",
                  "voicing"):
      low, high = getattr(config, field)
      assert low <= getattr(s.settings, field) <= high
  text, settings = hts_voices.utterance_plan(config, 0, drawn[0], 1)
  assert (text, settings) == hts_voices.utterance_plan(config, 0, drawn[0], 1)
  assert abs(settings.half_tone - drawn[0].settings.half_tone) <= config.half_tone_jitter


def test_japanese_sentences_are_a_function_of_the_generator_state():
  draw = lambda seed: [sentences.random_japanese_sentence(np.random.default_rng(seed))
                       for _ in range(3)]
  assert draw(1) == draw(1)
  texts = {sentences.random_japanese_sentence(np.random.default_rng(s)) for s in range(40)}
  assert len(texts) == 40 and all(t.endswith("。") for t in texts)


def test_settings_move_pitch_and_speed_as_named():
  found = open_jtalk.install()
  base, sr = open_jtalk.synthesize(found, TEXT, open_jtalk.Settings())
  octave, _ = open_jtalk.synthesize(found, TEXT, open_jtalk.Settings(half_tone=12.0))
  slow, _ = open_jtalk.synthesize(found, TEXT, open_jtalk.Settings(rate=0.8))
  assert f0_hz(octave, sr) / f0_hz(base, sr) == pytest.approx(2.0, rel=0.08)
  assert len(slow) / len(base) == pytest.approx(1 / 0.8, rel=0.08)
  again, _ = open_jtalk.synthesize(found, TEXT, open_jtalk.Settings())
  assert np.array_equal(base, again)  # deterministic


@pytest.mark.slow
def test_build_gives_speaker_disjoint_splits_the_same_bytes_and_a_report(tmp_path):
  builds = []
  for where in ("a", "b"):
    builder = tfds.builder("hts_voices", config=tiny(), data_dir=tmp_path / where)
    builder.download_and_prepare(download_config=NO_GCS)
    builds.append({split: list(tfds.as_numpy(builder.as_dataset(split=split)))
                   for split in common.SPLITS})
  first, second = builds
  speakers = {split: {ex["speaker"] for ex in first[split]} for split in common.SPLITS}
  assert speakers["train"] == {b"hts00000", b"hts00001", b"hts00002"}
  assert speakers["test"] == {b"hts00003", b"hts00004"}
  for split in common.SPLITS:
    counts = collections.Counter(ex["speaker"] for ex in first[split])
    assert set(counts.values()) == {2}
    for ex in first[split]:
      assert ex["audio"].dtype == np.int16 and len(ex["audio"]) > 16000  # a sentence
      assert np.abs(ex["audio"]).max() > 3000
    assert (sorted((ex["utterance"], ex["audio"].tobytes()) for ex in first[split])
            == sorted((ex["utterance"], ex["audio"].tobytes()) for ex in second[split]))
  report = common.read_report(tfds.builder("hts_voices", config=tiny(), data_dir=tmp_path / "a"))
  assert [s["id"] for s in report["speakers"]] == [f"hts{i:05d}" for i in range(5)]
  assert report["packages"].get("open-jtalk")  # versions recorded
  assert report["speakers"][0]["settings"]["all_pass"] == hts_voices.speakers(tiny())[
      0].settings.all_pass
