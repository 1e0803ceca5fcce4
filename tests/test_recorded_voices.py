"""recorded_voices on a tiny generated package tree laid out as `dpkg -x` leaves the real ones."""

import collections
import fnmatch
import json
import os
import shutil

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.builders import recorded_voices as rv

NO_GCS = tfds.download.DownloadConfig(try_download_gcs=False)
SOUNDS = "usr/share/asterisk/sounds"
VOICES = "usr/share/games/hedgewars/Data/Sounds/voices"
STAMPS = "usr/share/tuxpaint/stamps"
KAJONGG = "usr/share/kajongg/voices"
# (package, file relative to the package folder, rate, channels, seconds, pitch Hz)
CLIPS = (
    *[("asterisk-core-sounds-en-wav", f"{SOUNDS}/en_US_f_Allison/p{i}.wav", 8000, 1, 1.2, 210)
      for i in range(4)],
    *[("asterisk-core-sounds-es-wav", f"{SOUNDS}/es_MX_f_Allison/digits/{i}.wav", 8000, 1,
       0.7, 215) for i in range(3)],
    *[("asterisk-prompt-fr-armelle", f"{SOUNDS}/fr/m{i}.gsm", 8000, 1, 0.9, 190)
      for i in range(6)],
    *[("hedgewars-data", f"{VOICES}/{pack}/{word}.ogg", 44100, 2, 0.6, pitch)
      for pack, pitch in (("Default", 150), ("Pirate", 120), ("Robot", 100),
                          ("Default_pl", 170), ("Russian_pl", 175))
      for word in ("Hello", "Ouch", "Boring", "Victory", "Oops")],
    *[("gcin-voice", f"usr/share/gcin-voice/ogg/s{i}/{k}.ogg", 44100, 1, 0.4, pitch)
      for i in range(8) for k, pitch in (("3", 110), ("5", 240))],
    # Stamp descriptions: Bulgarian and French are read, symbols/ is not, Dutch is not on
    # the list; French's two readers by the encoder of their clips (ENCODERS).
    *[("tuxpaint-stamps-default", f"{STAMPS}/{stamp}_desc_{locale}.ogg", 44100, 1, 0.8, pitch)
      for stamp in ("animals/birds/owl", "food/fruit/apple", "town/house", "household/cup",
                    "symbols/math/7")
      for locale, pitch in (("bg", 130), ("fr", 200), ("nl", 220))],
    # Kajongg: the English voice is read, the German one is not.
    *[("kajongg", f"{KAJONGG}/{voice}/{tile}.ogg", 44100, 1, 0.5, pitch)
      for voice, pitch in (("male1", 125), ("de/male1", 127)) for tile in ("b1", "b2", "pung")],
)
# (package, copy, original): one recording filed under a second name (sorted after it).
COPIES = (("tuxpaint-stamps-default", f"{STAMPS}/animals/birds/owlet_desc_bg.ogg",
           f"{STAMPS}/animals/birds/owl_desc_bg.ogg"),)
# The date in the Vorbis encoder's vendor string of these clips (the others: libsndfile's).
ENCODERS = {f"{STAMPS}/animals/birds/owl_desc_fr.ogg": "20070622",
            f"{STAMPS}/food/fruit/apple_desc_fr.ogg": "20101101",
            f"{STAMPS}/town/house_desc_fr.ogg": "20101101",
            f"{STAMPS}/symbols/math/7_desc_fr.ogg": "20101101"}
TEST_SPEAKERS = ("asterisk-armelle", "hedgewars-mtg90pl", "gcin-chu-lo", "tuxpaint-bg",
                 "tuxpaint-fr-chion")


def _voice(seconds, rate, channels, pitch, seed):
  """A voiced, amplitude-modulated harmonic tone with a little noise: passes speech_16k."""
  t = np.arange(int(seconds * rate)) / rate
  rng = np.random.default_rng(seed)
  wave = sum(np.sin(2 * np.pi * pitch * h * t + rng.uniform(0, 6)) / h for h in range(1, 6))
  wave *= 0.3 * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) * np.hanning(len(t))
  wave += 0.003 * rng.normal(size=len(t))
  return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


def _ogg_crc(page: bytes) -> int:
  """Ogg's page checksum: CRC-32, polynomial 0x04c11db7, not reflected, initial value 0."""
  crc = 0
  for byte in page:
    crc ^= byte << 24
    for _ in range(8):
      crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
  return crc


def _set_encoder_date(path, date):
  """Rewrites the date in an Ogg Vorbis file's vendor string (same length), fixing its page."""
  with open(path, "rb") as f:
    data = bytearray(f.read())
  at = data.index(b"libVorbis I ") + len(b"libVorbis I ")
  data[at:at + 8] = date.encode()
  page = data.rfind(b"OggS", 0, at)
  segments = data[page + 26]
  end = page + 27 + segments + sum(data[page + 27:page + 27 + segments])
  data[page + 22:page + 26] = bytes(4)
  data[page + 22:page + 26] = _ogg_crc(bytes(data[page:end])).to_bytes(4, "little")
  with open(path, "wb") as f:
    f.write(data)


def _write_tree(root):
  for n, (package, rel, rate, channels, seconds, pitch) in enumerate(CLIPS):
    path = os.path.join(root, package, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    wave = _voice(seconds, rate, channels, pitch, n)
    if path.endswith(".gsm"):
      sf.write(path, wave, rate, format="RAW", subtype="GSM610")
    else:
      sf.write(path, wave, rate, subtype="VORBIS" if path.endswith(".ogg") else "PCM_16")
  for rel, date in ENCODERS.items():
    _set_encoder_date(os.path.join(root, "tuxpaint-stamps-default", rel), date)
  # What the real packages also hold: a silence prompt, a link to a shared clip, licences.
  sf.write(os.path.join(root, "asterisk-core-sounds-en-wav", SOUNDS, "en_US_f_Allison",
                        "silence1.wav"), np.zeros(8000), 8000)
  os.symlink("m0.gsm", os.path.join(root, "asterisk-prompt-fr-armelle", SOUNDS, "fr", "link.gsm"))
  for package, copy, original in COPIES:
    shutil.copyfile(os.path.join(root, package, original), os.path.join(root, package, copy))
  packages = sorted({c[0] for c in CLIPS})
  for package in packages:
    doc = os.path.join(root, package, "usr/share/doc", package)
    os.makedirs(doc)
    with open(os.path.join(doc, "copyright"), "w") as f:
      f.write("Files: *\nLicense: test\n")
  with open(os.path.join(root, "packages.txt"), "w") as f:
    f.writelines(f"{p} 1.0-{i}\n" for i, p in enumerate(packages))
  return packages


@pytest.fixture(scope="module")
def built(tmp_path_factory):
  root = tmp_path_factory.mktemp("recorded_voices")
  packages = _write_tree(root)
  config = rv.RecordedVoicesConfig(name="tiny", root=str(root), test_speakers=TEST_SPEAKERS,
                                   utterance_seconds=2.0, clips_per_speaker=3, num_workers=1)
  builder = rv.RecordedVoices(config=config, data_dir=str(tmp_path_factory.mktemp("tfds")))
  builder.download_and_prepare(download_config=NO_GCS)
  examples = {split: [{k: (v.decode() if isinstance(v, bytes) else v) for k, v in ex.items()}
                      for ex in tfds.as_numpy(builder.as_dataset(split=split))]
              for split in (*common.SPLITS, "test_clips")}
  return builder, examples, common.read_report(builder), str(root), packages


def test_speakers_are_the_credited_voices_and_splits_are_disjoint(built):
  _, examples, report, _, _ = built
  speakers = {split: {ex["speaker"] for ex in found} for split, found in examples.items()}
  # Allison's two packages are one speaker; the two Polish packs one; Robot is left out;
  # gcin-voice holds two speakers; Kajongg's German voice and French descriptions are not read.
  assert speakers["train"] == {"asterisk-allison", "hedgewars-stephen-alexander", "gcin-liu",
                               "kajongg-male1", "tuxpaint-fr-paulk"}
  assert speakers["test"] == set(TEST_SPEAKERS)
  for found in examples.values():
    for ex in found:
      assert ex["audio"].dtype == np.int16 and ex["audio"].ndim == 1
      assert ex["utterance"].startswith(ex["speaker"] + "/")
  for left_out in ("Robot", "symbols/", "_desc_nl", "cup_desc_fr", "/de/"):
    assert not any(left_out in u["source"] for u in report["utterances"])
  assert report["train_speakers"] == sorted(speakers["train"])


def test_utterances_join_one_speakers_clips_within_one_split(built):
  _, examples, report, root, _ = built
  owner = {}  # clip path -> speaker, from the generated tree
  for speaker in rv.SPEAKERS:
    for source in speaker.clips:
      for package, rel, *_ in CLIPS:
        if (package == source.package and _matches(rel, source.pattern)
            and not any(_matches(rel, p) for p in source.exclude)
            and ENCODERS.get(rel, "20200704") in (source.encoder or "20200704")):
          owner[os.path.join(root, package, rel)] = speaker.id
  seen = collections.Counter()
  split_of = {s: split for split in common.SPLITS for s in {e["speaker"] for e in examples[split]}}
  for u in (u for u in report["utterances"] if u["split"] in common.SPLITS):
    parts = u["source"].split(" + ")
    assert {owner[p] for p in parts} == {u["speaker"]}
    assert split_of[u["speaker"]] == u["split"]
    seen.update(parts)
  assert max(seen.values()) == 1  # every clip in at most one utterance
  # Every generated clip of an allowed speaker is used; the silent one and a copy (its
  # original is used) are skipped and reported.
  assert set(seen) == set(owner)
  skipped = {os.path.basename(s["path"]): s["reason"] for s in report["skipped"]}
  assert "silence trimming" in skipped["silence1.wav"] and "link" in skipped["link.gsm"]
  for package, copy, original in COPIES:
    assert skipped[os.path.basename(copy)] == (
        f"the same bytes as {os.path.join(root, package, original)} (read once)")


def _matches(rel, pattern):
  return fnmatch.fnmatch(rel, pattern.replace("**/", "*"))


def test_joined_audio_is_the_clips_back_to_back_at_16k(built):
  _, examples, report, _, _ = built
  by_id = {ex["utterance"]: ex for found in examples.values() for ex in found}
  for u in report["utterances"]:
    audio = by_id[u["utterance"]]["audio"]
    assert len(audio) / 16000 == pytest.approx(u["seconds"], abs=1e-6)
    n = len(u["source"].split(" + "))
    # Clips are added until 2 s; a short remainder joins the last utterance.
    assert u["seconds"] >= 1.0 or n == 1
  armelle = [u for u in report["utterances"]
             if u["speaker"] == "asterisk-armelle" and u["split"] == "test"]
  assert sum(len(u["source"].split(" + ")) for u in armelle) == 6  # the link is not a 7th clip
  assert {u["band_limit_hz"] for u in armelle} == {4000}


def test_test_clips_are_single_clips_of_each_test_speaker_a_seeded_sample(built):
  builder, examples, report, _, _ = built
  in_test = {p: u["speaker"] for u in report["utterances"] if u["split"] == "test"
             for p in u["source"].split(" + ")}
  clips = [u for u in report["utterances"] if u["split"] == "test_clips"]
  by_id = {ex["utterance"]: ex for ex in examples["test_clips"]}
  assert sorted(by_id) == sorted(u["utterance"] for u in clips)
  # Each a clip the test split joins, of the same speaker, read again on its own.
  for u in clips:
    assert in_test[u["source"]] == u["speaker"] == by_id[u["utterance"]]["speaker"]
    wav, rate = rv.read_clip(u["source"])
    np.testing.assert_array_equal(by_id[u["utterance"]]["audio"],
                                  common.prepare(wav, rate, builder.builder_config.trim()).audio)
  # Every test speaker, with all its clips up to clips_per_speaker (3), none twice.
  assert collections.Counter(u["speaker"] for u in clips) == {
      s: min(3, n) for s, n in collections.Counter(in_test.values()).items()}
  assert len({u["source"] for u in clips}) == len(clips)
  # A seeded sample: armelle's first 3 of 6 clips (in scan order) in the seed's order.
  found = sorted(p for p, s in in_test.items() if s == "asterisk-armelle")
  assert len(found) == 6
  assert [u["source"] for u in clips if u["speaker"] == "asterisk-armelle"] == [
      found[i] for i in rv.seeded_order(6, "0/asterisk-armelle/clips")[:3]]


def test_report_holds_package_licence_and_band_limit_per_speaker(built):
  _, examples, report, _, packages = built
  rows = {r["speaker"]: r for r in report["speakers"]}
  assert report["packages"] == {p: f"1.0-{i}" for i, p in enumerate(packages)}
  allison = rows["asterisk-allison"]
  assert allison["languages"] == ["en-US", "es-MX"] and allison["sample_rates"] == [8000]
  assert allison["band_limit_hz"] == 4000 and allison["upsampled"]
  assert set(allison["packages"]) == {"asterisk-core-sounds-en-wav", "asterisk-core-sounds-es-wav"}
  assert all(os.path.isfile(p) for p in allison["copyright_files"])
  hog = rows["hedgewars-stephen-alexander"]
  assert hog["sample_rates"] == [44100] and hog["band_limit_hz"] == 8000 and not hog["upsampled"]
  assert rows["asterisk-armelle"]["split"] == "test" and rows["gcin-liu"]["split"] == "train"
  assert rows["tuxpaint-bg"]["voice"] == "Krasimir Petkov"
  assert rows["tuxpaint-bg"]["languages"] == ["bg"] and rows["tuxpaint-bg"]["clips"] == 4
  assert (rows["tuxpaint-fr-chion"]["clips"], rows["tuxpaint-fr-paulk"]["clips"]) == (1, 2)
  # Speakers by band limit per split, as the telephone prompts are confounded with their band.
  assert report["bands"] == {
      "train": {"4000": ["asterisk-allison"],
                "8000": ["gcin-liu", "hedgewars-stephen-alexander", "kajongg-male1",
                         "tuxpaint-fr-paulk"]},
      "test": {"4000": ["asterisk-armelle"],
               "8000": ["gcin-chu-lo", "hedgewars-mtg90pl", "tuxpaint-bg",
                        "tuxpaint-fr-chion"]}}
  assert json.dumps(report)  # plain JSON throughout
  # Every speaker a split holds has its band (band_eer scores test_clips by the same map).
  band_of = rv.band_of(report)
  for split, found in examples.items():
    assert {ex["speaker"] for ex in found} <= set(band_of), split
  assert band_of["asterisk-armelle"] == "4000" and band_of["gcin-chu-lo"] == "8000"


def test_trials_by_band_counts_what_the_evaluation_scores(built):
  _, examples, report, _, _ = built
  # By hand from the examples: speakers with > 1 utterance, at most 3 each, 1 enrolled.
  counts = collections.Counter(ex["speaker"] for ex in examples["test"])
  band = {r["speaker"]: str(r["band_limit_hz"]) for r in report["speakers"]
          if r["speaker"] in counts}
  kept = [s for s, n in counts.items() if n > 1]
  expected = collections.defaultdict(lambda: {"trials": 0, "target": 0})
  for s in kept:
    for model in kept:
      pair = f"{band[s]}/{band[model]}"
      expected[pair]["trials"] += min(counts[s], 3) - 1
      expected[pair]["target"] += (min(counts[s], 3) - 1) * (s == model)
  assert rv.trials_by_band(report, "test", enroll=1, max_utterances=3) == dict(expected)
  assert set(expected) == {"4000/4000", "4000/8000", "8000/4000", "8000/8000"}


def test_vorbis_encoder_is_the_vendor_string(built):
  _, _, _, root, _ = built
  stamps = os.path.join(root, "tuxpaint-stamps-default", STAMPS)
  assert rv.vorbis_encoder(os.path.join(stamps, "animals/birds/owl_desc_fr.ogg")) == (
      "Xiph.Org libVorbis I 20070622 (Reducing Environment)")
  assert rv.vorbis_encoder(os.path.join(root, "asterisk-core-sounds-en-wav", SOUNDS,
                                        "en_US_f_Allison", "p0.wav")) == ""


def test_join_plan_groups_to_the_target_and_is_seeded():
  seconds = [0.5, 0.7, 1.6, 0.4, 2.5, 0.3, 0.2]
  plan = rv.join_plan(seconds, 2.0, "s")
  assert plan == rv.join_plan(seconds, 2.0, "s") and plan != rv.join_plan(seconds, 2.0, "t")
  assert sorted(i for group in plan for i in group) == list(range(len(seconds)))
  for group in plan[:-1]:
    assert sum(seconds[i] for i in group) >= 2.0
    assert sum(seconds[i] for i in group[:-1]) < 2.0  # stops at the first clip past 2 s


def test_a_package_not_on_the_allow_list_is_refused(tmp_path):
  os.makedirs(tmp_path / "gcin-voice")
  assert rv.check_packages(str(tmp_path)) == ["gcin-voice"]
  os.makedirs(tmp_path / "some-other-voices")
  with pytest.raises(ValueError, match=r"^recorded_voices: package 'some-other-voices' .* "
                                       r"not on the allow-list") as err:
    rv.check_packages(str(tmp_path))
  assert "\n" not in str(err.value)
  os.rmdir(tmp_path / "some-other-voices")
  (tmp_path / "packages.txt").write_text("gcin-voice 1\nunlisted-data 2\n")
  with pytest.raises(ValueError, match="'unlisted-data'"):
    rv.check_packages(str(tmp_path))


def test_allow_list_is_the_speaker_table():
  assert set(rv.ALLOWED_PACKAGES) == {c.package for s in rv.SPEAKERS for c in s.clips}
  assert set(rv.TEST_SPEAKERS) <= {s.id for s in rv.SPEAKERS}
  assert len({s.id for s in rv.SPEAKERS}) == len(rv.SPEAKERS)
