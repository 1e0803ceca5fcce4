"""Procedural espeak-ng speakers, language coverage, held-out splits and the MBROLA path."""

import collections
import dataclasses
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data_pipelines import corpus
from data_pipelines.builders import common
from data_pipelines.builders import espeak
from data_pipelines.builders import procedural_voices
from data_pipelines.builders import synthetic_voices

NO_GCS = tfds.download.DownloadConfig(try_download_gcs=False)


def _f0_hz(wav: np.ndarray, sr: int) -> float:
  """Median autocorrelation pitch (60-400 Hz) of the loud 40 ms frames, in float64."""
  wav = np.asarray(wav, np.float64)
  n = int(0.04 * sr)
  frames = [wav[i:i + n] for i in range(0, len(wav) - n, n // 2)]
  loud = max(np.sqrt(np.mean(f ** 2)) for f in frames) * 0.3
  lo, hi = int(sr / 400), int(sr / 60)
  f0s = []
  for f in frames:
    if np.sqrt(np.mean(f ** 2)) < loud:
      continue
    f = f - f.mean()
    ac = np.correlate(f, f, "full")[n - 1:]
    lag = lo + int(np.argmax(ac[lo:hi]))
    if ac[lag] > 0.5 * ac[0]:  # Voiced frames only.
      f0s.append(sr / lag)
  return float(np.median(f0s))


def _log_spectrum(wav: np.ndarray) -> np.ndarray:
  """Mean log power spectrum (512-point frames), float64."""
  wav = np.asarray(wav, np.float64)
  frames = np.stack([wav[i:i + 512] * np.hanning(512) for i in range(0, len(wav) - 512, 256)])
  return np.log(np.mean(np.abs(np.fft.rfft(frames, axis=1)) ** 2, axis=0) + 1e-10)


@pytest.fixture(scope="module")
def voice_dir():
  """A private espeak-ng data dir with fixed-pitch and drawn variants."""
  base = procedural_voices.draw(np.random.default_rng(0))
  fixed = {"low": dataclasses.replace(base, pitch=(120, 120), klatt=0, breath=(), breathw=()),
           "high": dataclasses.replace(base, pitch=(220, 220), klatt=0, breath=(), breathw=())}
  rng = np.random.default_rng(1)
  drawn = {f"d{i}": procedural_voices.draw(rng) for i in range(16)}
  params = {**fixed, **drawn}
  with tempfile.TemporaryDirectory(prefix="Private-Voices-") as root:  # Upper case kept.
    path = espeak.private_data_dir(
        root, {name: procedural_voices.variant_file(name, p) for name, p in params.items()})
    yield path, params


def test_draw_is_seeded_and_the_file_says_every_parameter():
  a = [procedural_voices.draw(np.random.default_rng(5)) for _ in range(2)]
  b = procedural_voices.draw(np.random.default_rng(6))
  assert a[0] == a[1] and a[0] != b
  for p in [procedural_voices.draw(np.random.default_rng(s)) for s in range(50)]:
    lines = collections.defaultdict(list)
    for line in procedural_voices.variant_file("x", p).splitlines():
      key, *values = line.split()
      lines[key].append(values)
    assert lines["language"] == [["variant"]] and lines["name"] == [["x"]]
    base, top = map(int, lines["pitch"][0])
    assert 60 <= base < top <= 400 and (base, top) == p.pitch
    formants = sorted((int(k), int(f), int(h), int(w)) for k, f, h, w in lines["formant"])
    assert [k for k, *_ in formants] == list(range(9))
    assert all(80 <= f <= 125 and 30 <= h <= 130 and 60 <= w <= 170 for _, f, h, w in formants)
    assert 0 <= int(lines["roughness"][0][0]) <= 7 and 0 < int(lines["flutter"][0][0]) <= 100
    assert len(lines["tone"][0]) == 6 and 70 <= int(lines["voicing"][0][0]) <= 110
    assert ("breath" in lines) == bool(p.breath) and ("klatt" in lines) == bool(p.klatt)


def test_espeak_reads_the_variant_files_in_every_language(voice_dir):
  path, _ = voice_dir
  codes = synthetic_voices.TRAIN_LANGUAGES + synthetic_voices.UNSEEN_LANGUAGES
  for code in codes:
    voice = espeak.language(code).voice
    low, sr = espeak.synthesize(f"{voice}+low", "ok computer", espeak.Prosody(), path)
    high, _ = espeak.synthesize(f"{voice}+high", "ok computer", espeak.Prosody(), path)
    # The variant's `pitch 120 120` / `pitch 220 220` sets the voice's pitch (espeak-ng
    # ignores a variant it cannot find, so this also shows the file was found).
    assert _f0_hz(low, sr) == pytest.approx(120, rel=0.2), code
    assert _f0_hz(high, sr) == pytest.approx(220, rel=0.2), code


def test_procedural_speakers_of_one_base_voice_differ_and_repeat_exactly(voice_dir):
  path, params = voice_dir
  text = "Why does the quiet teacher remember the river near a bridge?"
  spectra, f0s = {}, {}
  for name in [n for n in params if n.startswith("d")]:
    wav, sr = espeak.synthesize(f"gmw/en-us+{name}", text, espeak.Prosody(), path)
    again, _ = espeak.synthesize(f"gmw/en-us+{name}", text, espeak.Prosody(), path)
    assert wav.tobytes() == again.tobytes()
    spectra[name], f0s[name] = _log_spectrum(wav), _f0_hz(wav, sr)
    # Intelligible-speech sanity: loud enough, not clipped, a normal speaking duration.
    assert np.sqrt(np.mean(wav.astype(np.float64) ** 2)) > 10 ** (-36 / 20)
    assert np.mean(np.abs(wav) >= 0.99) < 1e-3
    assert 0.05 < len(wav) / sr / len(text) < 0.12
  names = sorted(spectra)
  distances = [np.sqrt(np.mean((spectra[a] - spectra[b]) ** 2))
               for i, a in enumerate(names) for b in names[i + 1:]]
  assert min(distances) > 0.3  # Each pair differs in timbre (same text, language, prosody).
  for name in names:  # And each speaks near its own drawn pitch range.
    base, top = params[name].pitch
    assert 0.7 * base < f0s[name] < 1.3 * top, (name, f0s[name], params[name].pitch)


def test_languages_cover_many_families_and_unseen_ones_are_new():
  family = {c: espeak.language(c).family
            for c in synthetic_voices.TRAIN_LANGUAGES + synthetic_voices.UNSEEN_LANGUAGES}
  train = {family[c] for c in synthetic_voices.TRAIN_LANGUAGES}
  unseen = {family[c] for c in synthetic_voices.UNSEEN_LANGUAGES}
  assert len(synthetic_voices.TRAIN_LANGUAGES) >= 25 and len(train) >= 4
  assert len(synthetic_voices.UNSEEN_LANGUAGES) >= 15 and len(unseen) >= 6
  assert not train & unseen
  config = synthetic_voices.SyntheticVoicesConfig(name="x", unseen_voices=("pl", "de"))
  with pytest.raises(ValueError, match=r"share language families \['gmw'\]"):
    synthetic_voices.speakers(config)
  with pytest.raises(espeak.EspeakError, match="no language voice 'xx-nowhere'"):
    synthetic_voices.speakers(dataclasses.replace(config, voices=("xx-nowhere",)))


def test_thousands_of_speakers_are_distinct_and_languages_balanced():
  config = synthetic_voices.SyntheticVoicesConfig(name="big", num_train_speakers=2000,
                                                  num_test_speakers=100)
  speakers = synthetic_voices.speakers(config)
  assert len({s.id for s in speakers}) == len({s.variant for s in speakers}) == 2130
  counts = collections.Counter(s.language for s in speakers if s.split == "train")
  assert set(counts) == set(config.voices) and max(counts.values()) - min(counts.values()) <= 1
  # Speakers do not depend on the text, and held-out ones not on the train size.
  small = synthetic_voices.speakers(dataclasses.replace(config, phrase="hey",
                                                        num_train_speakers=10))
  assert small[:10] == speakers[:10] and small[-30:] == speakers[-30:]


def test_heldout_splits_are_speaker_and_family_disjoint(synthetic_td):
  report = common.read_report(synthetic_td.builder())
  by_id = {s["id"]: s for s in report["speakers"]}
  speakers = {split: {ex["speaker"] for ex in corpus.iterate(synthetic_td.name, split,
                                                             synthetic_td.data_dir)}
              for split in ("train", "test", "test_unseen_lang")}
  assert [len(speakers[s]) for s in speakers] == [10, 4, 4]
  assert not (speakers["train"] & speakers["test"] or speakers["train"] & speakers[
      "test_unseen_lang"] or speakers["test"] & speakers["test_unseen_lang"])
  families = {split: {by_id[s]["family"] for s in ids} for split, ids in speakers.items()}
  assert not families["train"] & families["test_unseen_lang"]
  assert {by_id[s]["language"] for s in speakers["test_unseen_lang"]} <= set(
      synthetic_voices.UNSEEN_LANGUAGES)
  assert all(by_id[s]["kind"] == "procedural" and by_id[s]["variant"]["formants"]
             for ids in speakers.values() for s in ids)
  assert report["test_unseen_lang_examples"] == 4 * 8
  with pytest.raises(ValueError, match="split must be one of"):
    corpus.open_split(synthetic_td.name, "test_mbrola", synthetic_td.data_dir)


@pytest.mark.skipif(not espeak.mbrola_voices(),
                    reason="no MBROLA voices (run `make voices` to fetch them)")
def test_mbrola_split_speaks_every_installed_voice(tmp_path):
  config = synthetic_voices.SyntheticVoicesConfig(name="mb", phrase="ok computer",
                                                  mbrola_test=True, utterances_per_speaker=2)
  builder = tfds.builder("synthetic_voices", config=config, data_dir=tmp_path)
  builder.download_and_prepare(download_config=NO_GCS)
  assert list(builder.info.splits) == ["test_mbrola"]
  examples = list(corpus.iterate("synthetic_voices/mb", "test_mbrola", str(tmp_path)))
  voices = espeak.mbrola_voices()
  assert collections.Counter(ex["speaker"] for ex in examples) == {v: 2 for v in voices}
  for ex in examples:
    assert 0.4 < len(ex["audio"]) / 16000 < 2.5 and 3000 < np.abs(ex["audio"]).max() < 32767
  report = common.read_report(builder)
  assert report["num_skipped"] == 0
  assert {s["family"] for s in report["speakers"]} == {"mbrola"}
  assert report["mbrola"]["databases"] and all(
      v.split("-")[1] in report["mbrola"]["databases"] for v in voices)


def test_distinctness_statistics_ignore_the_padding():
  from experiments import held_out  # pylint: disable=g-import-not-at-top
  from ge2e_jax import features  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  waves = [0.1 * rng.standard_normal(n).astype(np.float32) for n in (5000, 23456)]
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)  # 25 ms periodic Hann.
  reference = []
  for wave in waves:  # float64 NumPy log-mel of the unpadded audio, 10 ms hop.
    frames = np.stack([wave[i:i + 400] * window for i in range(0, len(wave) - 399, 160)])
    power = np.abs(np.fft.rfft(frames, n=512, axis=1)) ** 2
    log_mel = np.log(power @ features.mel_filterbank(40).astype(np.float64) + 1e-6)
    reference.append(np.concatenate([log_mel.mean(0), log_mel.std(0)]))
  reference = np.stack(reference)
  np.testing.assert_allclose(held_out.log_mel_statistics(waves),
                             reference - reference.mean(0), atol=2e-3)
