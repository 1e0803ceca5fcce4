"""recorded_voices: real human speech from Debian packages, for training and held-out tests.

Every other corpus here is espeak-ng; this one is people. `make recorded-voices` fetches
the packages of SPEAKERS (fetch_recorded_voices.sh: apt download, `dpkg -x` into
third_party/recorded_voices/<package>/, versions in packages.txt) and builds this:

  telephone prompts   asterisk-core-sounds-{en,es,fr,it,ru}-wav, asterisk-prompt-es-co,
                      asterisk-prompt-fr-armelle, asterisk-prompt-it-menardi-wav: one
                      professional voice each, 8 kHz (upsampled to 16 kHz here: nothing
                      above 4 kHz; es-co and fr-armelle also GSM 06.10 coded)
  game voice packs    hedgewars-data: a pack is a character; packs of one credited actor
                      are one speaker, the processed Robot pack is left out
  spoken words        qabcs-data (only its English set, a microphone recording; the other
                      sets are synthesised), gcin-voice (two Mandarin syllable voices),
                      tuxpaint-stamps-default (the stamps' spoken descriptions: one credited
                      reader per language, French's two told apart by their encoder;
                      symbols/ is left out, its numbers and letters came from other
                      readers), kajongg (four English player voices)

Speakers are the voices credited in the packages' copyright files, changelogs or game
credits, never guessed from the folder: a speaker may span packages (Allison Smith recorded
both the US English and the Mexican Spanish prompts) and a package may hold several
speakers. Uncredited voices: four Hedgewars packs (one language or character each) and
Kajongg's four English voices (its four players; its German set, maybe by the same people,
is left out).
A clip whose bytes repeat an earlier clip of its speaker (one recording filed under two
names) is read once.

Utterances: the clips are short (a word to a sentence), so each speaker's clips, read,
resampled and trimmed like every builder's (common.prepare), are shuffled with a seed of
the speaker and joined back to back until an utterance lasts `utterance_seconds` (a clip
longer than that stays alone; a remainder under half of it joins the previous utterance).
A speaker is in one split only, so no utterance joins clips across train and test.
`test_clips` holds the test speakers' clips one by one instead (up to
`clips_per_speaker` each, a seeded sample, not joined): single words and prompts of about
a second, as a user's folder of recordings is; joined utterances are the easier test.

Splits: speaker-disjoint; `test` is `test_speakers` (fixed, chosen to hold telephone and
wide-band, male and female, several languages), everything else `train`. The build report
records per speaker its voice, languages, packages and versions, licences, the sample rates
it was recorded at and its band limit, per split its speakers by band limit, and per
utterance the clips it joins.

Build:  make recorded-voices
or      python -m data_pipelines.builders.tfds_build data_pipelines/builders/recorded_voices.py \
            --data_dir=runs/tfds     (after fetch_recorded_voices.sh)
The packages it reads: ALLOWED_PACKAGES (the Makefile passes them to the fetch script).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import glob
import hashlib
import os

import numpy as np
import soundfile as sf
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from ge2e_jax import audio
from ge2e_jax.features import SAMPLE_RATE

LOCAL_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "third_party", "recorded_voices")
GSM_SAMPLE_RATE = 8000  # Asterisk's raw .gsm prompts: headerless GSM 06.10 at 8 kHz
ASTERISK = "usr/share/asterisk/sounds"
HEDGEWARS = "usr/share/games/hedgewars/Data/Sounds/voices"
TUXPAINT = "usr/share/tuxpaint/stamps"
KAJONGG = "usr/share/kajongg/voices"


@dataclasses.dataclass(frozen=True)
class Clips:
  """A speaker's clips in one package: a recursive glob under `<root>/<package>/`, less the
  paths (relative to the package folder) that match an `exclude` pattern (fnmatch) and,
  where `encoder` is set, the clips whose Vorbis encoder (vendor string) does not hold it:
  one language's clips recorded in batches by two readers are told apart by the encoder."""
  package: str
  pattern: str
  language: str  # BCP 47
  licence: str
  exclude: tuple[str, ...] = ()
  encoder: str = ""


@dataclasses.dataclass(frozen=True)
class RecordedSpeaker:
  id: str
  voice: str  # as credited (copyright file or the game's credits)
  clips: tuple[Clips, ...]


def _hedgewars(pack: str, language: str) -> Clips:
  return Clips("hedgewars-data", f"{HEDGEWARS}/{pack}/*.ogg", language, "GFDL-1.3")


def _tuxpaint(locale: str, language: str, *exclude: str, encoder: str = "") -> Clips:
  # symbols/ (letters, numbers, money...) mixes in other readers: its numbers came from
  # Schoolsplay's and other contributors' recordings (the package's changelog).
  return Clips("tuxpaint-stamps-default", f"{TUXPAINT}/**/*_desc_{locale}.ogg", language,
               "GPL-2", exclude=(f"{TUXPAINT}/symbols/*", *exclude), encoder=encoder)


def _kajongg(voice: str) -> Clips:
  return Clips("kajongg", f"{KAJONGG}/{voice}/*.ogg", "en", "GPL-2+")


SPEAKERS = (
    RecordedSpeaker("asterisk-allison", "Allison Smith", (
        Clips("asterisk-core-sounds-en-wav", f"{ASTERISK}/en_US_f_Allison/**/*.wav", "en-US",
              "CC-BY-SA-3.0"),
        Clips("asterisk-core-sounds-es-wav", f"{ASTERISK}/es_MX_f_Allison/**/*.wav", "es-MX",
              "CC-BY-SA-3.0"))),
    RecordedSpeaker("asterisk-june", "June Wallack", (
        Clips("asterisk-core-sounds-fr-wav", f"{ASTERISK}/fr_CA_f_June/**/*.wav", "fr-CA",
              "CC-BY-SA-3.0"),)),
    RecordedSpeaker("asterisk-carlo", "Carlo Flora", (
        Clips("asterisk-core-sounds-it-wav", f"{ASTERISK}/it_IT_m_Carlo/**/*.wav", "it-IT",
              "CC-BY-3.0"),)),
    RecordedSpeaker("asterisk-ivrvoice-ru", "ivrvoice.ru (provided by Maxim Topal)", (
        Clips("asterisk-core-sounds-ru-wav", f"{ASTERISK}/ru_RU_f_IvrvoiceRU/**/*.wav", "ru-RU",
              "CC-BY-3.0"),)),
    RecordedSpeaker("asterisk-menardi", "Paola Dal Zot (Marco Menardi's prompts)", (
        Clips("asterisk-prompt-it-menardi-wav", f"{ASTERISK}/it_IT_f_Menardi/**/*.wav", "it-IT",
              "CC-BY-SA-3.0"),)),
    RecordedSpeaker("asterisk-es-co", "July E. Jimenez (Avatar Ltda.)", (
        Clips("asterisk-prompt-es-co", f"{ASTERISK}/**/*.gsm", "es-CO", "GPL-2"),)),
    RecordedSpeaker("asterisk-armelle", "Armelle Desjardins", (
        Clips("asterisk-prompt-fr-armelle", f"{ASTERISK}/**/*.gsm", "fr-FR", "BSD-like"),)),
    # The game's credits: "Hedgehogs voice: Stephen Alexander" (the English character packs)
    # and one contributor for "Default_pl, Russian_pl voices"; the other packs are uncredited.
    RecordedSpeaker("hedgewars-stephen-alexander", "Stephen Alexander", tuple(
        _hedgewars(pack, "en") for pack in ("British", "Classic", "Default", "Mobster",
                                            "Pirate", "Russian", "Singer", "Surfer"))),
    RecordedSpeaker("hedgewars-mtg90pl", "mtg90pl", (_hedgewars("Default_pl", "pl"),
                                                     _hedgewars("Russian_pl", "pl"))),
    RecordedSpeaker("hedgewars-default-es", "uncredited (pack Default_es)",
                    (_hedgewars("Default_es", "es"),)),
    RecordedSpeaker("hedgewars-default-ru", "uncredited (pack Default_ru)",
                    (_hedgewars("Default_ru", "ru"),)),
    RecordedSpeaker("hedgewars-default-uk", "uncredited (pack Default_uk)",
                    (_hedgewars("Default_uk", "uk"),)),
    RecordedSpeaker("hedgewars-hillbilly", "uncredited (pack HillBilly)",
                    (_hedgewars("HillBilly", "en"),)),
    RecordedSpeaker("qabcs-en", "Jordan Irwin (author of the English set)", (
        Clips("qabcs-data", "usr/share/qabcs/abcs/en/sounds/**/*.ogg", "en-US", "GPL-3+"),)),
    RecordedSpeaker("gcin-liu", "Edward Der-Hua Liu", (
        Clips("gcin-voice", "usr/share/gcin-voice/ogg/*/3.ogg", "zh", "GPL-3 or LGPL-3"),)),
    RecordedSpeaker("gcin-chu-lo", "Chu Lo (ChionMeilin recording group)", (
        Clips("gcin-voice", "usr/share/gcin-voice/ogg/*/5.ogg", "zh", "CC-BY-3.0"),)),
    # The readers credited for the "descriptive sounds" in tuxpaint-stamps-default's
    # changelog (usr/share/doc/tuxpaint-stamps-default/changelog.gz). French has two, Jacques
    # Chion (release 2007.November.21) and PaulK (Google Code-In, release 2014.August.13),
    # and two batches of clips by their Vorbis encoder, in two voices (2007: 68 animals;
    # 2010: nearly every stamp, like the other Code-In sets). Who read which is inferred.
    RecordedSpeaker("tuxpaint-be", "Kseniya Buraya", (_tuxpaint("be", "be"),)),
    RecordedSpeaker("tuxpaint-bg", "Krasimir Petkov", (_tuxpaint("bg", "bg"),)),
    # Five 8 kHz clips among Catalan's 44.1 kHz ones: another session, if not another reader.
    RecordedSpeaker("tuxpaint-ca", "Pere Pujal i Carabantes", (_tuxpaint("ca", "ca", *(
        f"{TUXPAINT}/animals/{name}_desc_ca.ogg" for name in (
            "birds/pigeon", "mammals/bovines/zebu", "mammals/deer/wapiti",
            "mammals/rodents/rat", "mammals/wildboar"))),)),
    RecordedSpeaker("tuxpaint-da", "Joe Dalton", (_tuxpaint("da", "da"),)),
    RecordedSpeaker("tuxpaint-el", "Kiriaki Serafeim", (_tuxpaint("el", "el"),)),
    RecordedSpeaker("tuxpaint-es", "Estefanía Ortiz", (_tuxpaint("es", "es"),)),
    RecordedSpeaker("tuxpaint-fr-chion", "Jacques Chion (inferred: the 2007 batch)", (
        _tuxpaint("fr", "fr", encoder="libVorbis I 20070622"),)),
    RecordedSpeaker("tuxpaint-fr-paulk", "PaulK (inferred: the 2010 batch)", (
        _tuxpaint("fr", "fr", encoder="libVorbis I 20101101"),)),
    RecordedSpeaker("tuxpaint-ro", "Tabbytha", (_tuxpaint("ro", "ro"),)),
    RecordedSpeaker("tuxpaint-ru", "Edwin Veber", (_tuxpaint("ru", "ru"),)),
    # Kajongg's four English player voices (two male, two female; recordings copyright
    # Wolfgang Rohdewald, readers uncredited). Its four German voices are left out: the
    # same people may have recorded both languages.
    *(RecordedSpeaker(f"kajongg-{voice}", f"uncredited (Kajongg voice {voice})",
                      (_kajongg(voice),))
      for voice in ("female1", "female2", "male1", "male2")),
)
# The only packages this builder reads; a package folder under the root that is not
# listed here is refused.
ALLOWED_PACKAGES = tuple(sorted({c.package for s in SPEAKERS for c in s.clips}))
# Four of the seven telephone-band voices and ten wide-band ones, so each band holds
# several speakers and trials within one band are possible.
TEST_SPEAKERS = ("asterisk-carlo", "asterisk-armelle", "asterisk-june", "asterisk-ivrvoice-ru",
                 "hedgewars-mtg90pl", "hedgewars-default-uk", "qabcs-en", "gcin-chu-lo",
                 "tuxpaint-bg", "tuxpaint-da", "tuxpaint-el", "tuxpaint-fr-chion",
                 "kajongg-female1", "kajongg-male1")


@dataclasses.dataclass(eq=False)
class RecordedVoicesConfig(common.LocalCorpusConfig):
  """Where the unpacked packages are and how clips become utterances (split: the base)."""
  root: str = ""                          # "" = third_party/recorded_voices
  utterance_seconds: float = 3.0          # join a speaker's clips up to this length
  max_utterances_per_speaker: int = 200   # the long telephone sets would dominate otherwise
  clips_per_speaker: int = 32             # test_clips: a test speaker's single clips
  seed: int = 0


@dataclasses.dataclass(frozen=True)
class Clip:
  path: str
  speaker: str
  package: str


def check_packages(root: str) -> list[str]:
  """The allowed package folders present under `root`; ValueError (one line) for any other."""
  names = sorted(n for n in os.listdir(root)
                 if not n.startswith(".") and os.path.isdir(os.path.join(root, n)))
  for name in names + sorted(common.package_versions(root)):
    if name not in ALLOWED_PACKAGES:
      raise ValueError(f"recorded_voices: package {name!r} under {root} is not on the "
                       f"allow-list of source packages ({', '.join(ALLOWED_PACKAGES)})")
  if not names:
    raise FileNotFoundError(f"recorded_voices: no package folder under {root}; run "
                            "`make recorded-voices` (fetch_recorded_voices.sh)")
  return names


def scan(root: str, report: common.BuildReport) -> list[Clip]:
  """Every speaker's clips in sorted order; links and repeated bytes are skipped (a package
  links shared clips or files one recording under several names)."""
  present = set(check_packages(root))
  clips = []
  for speaker in SPEAKERS:
    first_of: dict[bytes, str] = {}  # a clip's digest -> its first path, per speaker
    for source in speaker.clips:
      if source.package not in present:
        continue
      base = os.path.join(root, source.package)
      for path in sorted(glob.glob(os.path.join(base, source.pattern), recursive=True)):
        if any(fnmatch.fnmatch(os.path.relpath(path, base), p) for p in source.exclude):
          continue
        if source.encoder and source.encoder not in vorbis_encoder(path):
          continue
        if os.path.islink(path):
          report.skip(path, "symbolic link (its target is read as its own clip)")
        elif os.path.isfile(path):
          with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).digest()
          if digest in first_of:
            report.skip(path, f"the same bytes as {first_of[digest]} (read once)")
            continue
          first_of[digest] = path
          clips.append(Clip(path, speaker.id, source.package))
  return clips


def vorbis_encoder(path: str) -> str:
  """The vendor string of an Ogg Vorbis file's comment header ("" where there is none)."""
  with open(path, "rb") as f:
    head = f.read(4096)  # the identification and comment headers open the stream
  start = head.find(b"\x03vorbis") + 7
  if start < 7 or start + 4 > len(head):
    return ""
  length = int.from_bytes(head[start:start + 4], "little")
  return head[start + 4:start + 4 + length].decode("utf-8", "replace")


def read_clip(path: str) -> tuple[np.ndarray, int]:
  """(float32 (samples, channels), rate); headerless .gsm is GSM 06.10 at 8 kHz."""
  if path.endswith(".gsm"):
    try:
      wav, rate = sf.read(path, format="RAW", subtype="GSM610", samplerate=GSM_SAMPLE_RATE,
                          channels=1, dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as e:
      raise audio.AudioReadError(path, f"unreadable GSM 06.10 ({e})") from None
    return wav, rate
  return audio.read_audio_channels(path)


def seeded_order(count: int, seed: str) -> np.ndarray:
  """A permutation of range(count) fixed by the string `seed`."""
  return np.random.default_rng(
      int.from_bytes(hashlib.sha256(seed.encode()).digest()[:8], "big")).permutation(count)


def join_plan(seconds: list[float], target: float, seed: str) -> list[list[int]]:
  """Groups of clip indices in a seeded order, each lasting about `target` seconds.

  Clips are added until a group reaches `target`; a last group under target / 2 joins the
  one before it (or stays alone when it is the only one).
  """
  groups, current, length = [], [], 0.0
  for i in seeded_order(len(seconds), seed):
    current.append(int(i))
    length += seconds[i]
    if length >= target:
      groups.append(current)
      current, length = [], 0.0
  if current:
    if groups and length < target / 2:
      groups[-1].extend(current)
    else:
      groups.append(current)
  return groups


def band_limit_hz(orig_sample_rate: int) -> int:
  """The highest frequency a clip recorded at `orig_sample_rate` holds at 16 kHz."""
  return min(orig_sample_rate, SAMPLE_RATE) // 2


def band_of(report: dict) -> dict[str, str]:
  """{speaker: band limit (Hz, a string)} of every speaker a build report read clips of: a
  property of the speaker's recordings, so `test` and `test_clips` share it."""
  return {row["speaker"]: str(row["band_limit_hz"]) for row in report["speakers"]
          if "band_limit_hz" in row}


def trials_by_band(report: dict, split: str, enroll: int, max_utterances: int) -> dict:
  """{"<test band>/<model band>": {"trials", "target"}} of `split` as the evaluation scores
  it (experiments.held_out: a speaker's first `max_utterances`, `enroll` of them enrolled,
  every other one scored against every speaker's model; speakers with <= enroll left out).

  The bands of a build report's "bands"; the same-band keys ("4000/4000") are the trials
  that the recording channel cannot decide alone.
  """
  utterances = {row["speaker"]: row.get("utterances", 0) for row in report["speakers"]}
  scored = {band: [min(utterances[s], max_utterances) - enroll for s in speakers
                   if utterances[s] > enroll]
            for band, speakers in report["bands"].get(split, {}).items()}
  return {f"{test}/{model}": {"trials": sum(tested) * len(models),
                              "target": sum(tested) if test == model else 0}
          for test, tested in sorted(scored.items()) for model, models in sorted(scored.items())}


def speaker_table(present: set[str], versions: dict[str, str], root: str) -> list[dict]:
  """Per speaker (with clips in a present package): who, languages, packages, licences."""
  rows = []
  for speaker in SPEAKERS:
    sources = [c for c in speaker.clips if c.package in present]
    if not sources:
      continue
    packages = sorted({c.package for c in sources})
    rows.append({
        "speaker": speaker.id, "voice": speaker.voice,
        "split": "test" if speaker.id in TEST_SPEAKERS else "train",
        "languages": sorted({c.language for c in sources}),
        "licences": sorted({c.licence for c in sources}),
        "packages": {p: versions.get(p, "unknown") for p in packages},
        "copyright_files": [os.path.join(root, p, "usr/share/doc", p, "copyright")
                            for p in packages]})
  return rows


class RecordedVoices(common.ReportingBuilder, tfds.core.GeneratorBasedBuilder):
  """Recorded human voices from Debian packages with the common ge2e_jax features."""

  VERSION = tfds.core.Version("2.1.0")
  RELEASE_NOTES = {
      "1.0.0": "First release: Asterisk prompts, Hedgewars voices, qABCs, gcin.",
      "2.0.0": "30 speakers: Tux Paint stamp descriptions (10 credited readers) and Kajongg's "
               "4 English voices; asterisk-june and asterisk-ivrvoice-ru move to test; a "
               "clip repeated under another name is read once.",
      "2.1.0": "test_clips: the test speakers' clips one by one (not joined); train and test "
               "as in 2.0.0.",
  }
  BUILDER_CONFIGS = [RecordedVoicesConfig(
      name="default", test_speakers=TEST_SPEAKERS,
      description="Every allowed package present; clips joined into ~3 s utterances.")]

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self, description=__doc__, features=common.features(),
        supervised_keys=None, homepage="https://packages.debian.org/")

  def _split_generators(self, dl_manager):
    del dl_manager  # Fetched by fetch_recorded_voices.sh.
    config = self.builder_config
    root = os.fspath(config.root or LOCAL_DIR)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"recorded_voices: {root!r} is not a directory; run "
                              "`make recorded-voices` (fetch_recorded_voices.sh)")
    clips = scan(root, self.report)
    by_split = common.group_by_split(config, clips, f"recorded_voices: the clips of {root!r}")
    versions = common.package_versions(root)
    self.report.extra["root"] = root
    self.report.extra["packages"] = versions
    rows = speaker_table({c.package for c in clips}, versions, root)
    self._rows = {row["speaker"]: row for row in rows}
    self.report.extra["speakers"] = rows
    self.report.extra["utterance_seconds"] = config.utterance_seconds
    self.report.extra["bands"] = {}  # {split: {band limit Hz: [speaker, ...]}}
    splits = {split: self._generate_examples(split, found) for split, found in by_split.items()}
    splits["test_clips"] = self._generate_clips(by_split["test"])
    return splits

  def _read(self, clips, report_skips: bool = True) -> dict[str, list]:
    """{speaker: [(clip, prepared audio)]} of the clips that read as speech, in order."""
    trim = self.builder_config.trim()

    def run(clip: Clip):
      try:
        wav, rate = read_clip(clip.path)
        return clip, common.prepare(wav, rate, trim), None
      except (ValueError, OSError) as e:  # AudioReadError is a ValueError.
        return clip, None, getattr(e, "reason", str(e))

    by_speaker: dict[str, list] = {}
    for clip, prepared, error in common.ordered_map(run, clips,
                                                    self.builder_config.num_workers):
      if error is None:
        by_speaker.setdefault(clip.speaker, []).append((clip, prepared))
      elif report_skips:
        self.report.skip(clip.path, error)
    return by_speaker

  def _generate_clips(self, clips):
    """Each test speaker's first `clips_per_speaker` readable clips in a seeded order."""
    config = self.builder_config
    by_speaker: dict[str, list] = {}
    for clip in clips:
      by_speaker.setdefault(clip.speaker, []).append(clip)
    sample = []
    for speaker, found in sorted(by_speaker.items()):
      order = seeded_order(len(found), f"{config.seed}/{speaker}/clips")
      # Twice the number wanted: room for the clips that do not read as speech.
      sample += [found[i] for i in order[:2 * config.clips_per_speaker]]
    # Their skips are the test split's, reported there.
    for speaker, items in sorted(self._read(sample, report_skips=False).items()):
      for n, (clip, prepared) in enumerate(items[:config.clips_per_speaker]):
        utterance = f"{speaker}/clip{n:03d}"
        self.report.add("test_clips", speaker, utterance, clip.path, prepared)
        self.report.utterances[-1]["band_limit_hz"] = band_limit_hz(prepared.orig_sample_rate)
        yield utterance, {"audio": prepared.audio, "speaker": speaker, "utterance": utterance,
                          "text": ""}

  def _generate_examples(self, split, clips):
    config = self.builder_config
    for speaker, items in sorted(self._read(clips).items()):
      groups = join_plan([len(p.audio) / SAMPLE_RATE for _, p in items],
                         config.utterance_seconds, f"{config.seed}/{speaker}")
      groups = groups[:config.max_utterances_per_speaker]
      rates = sorted({p.orig_sample_rate for _, p in items})
      band = band_limit_hz(rates[0])
      self.report.extra["bands"].setdefault(split, {}).setdefault(str(band), []).append(speaker)
      self._rows[speaker].update(
          sample_rates=rates, band_limit_hz=band,
          upsampled=rates[0] < SAMPLE_RATE,
          clips=sum(map(len, groups)), utterances=len(groups),
          seconds=round(sum(len(items[i][1].audio) for g in groups for i in g) / SAMPLE_RATE, 1))
      for n, group in enumerate(groups):
        parts = [items[i] for i in group]
        utterance = f"{speaker}/{n:04d}"
        joined = common.PreparedAudio(
            np.concatenate([p.audio for _, p in parts]),
            sum(p.cut_start_s for _, p in parts), sum(p.cut_end_s for _, p in parts),
            min(p.orig_sample_rate for _, p in parts),
            max(p.orig_channels for _, p in parts))
        self.report.add(split, speaker, utterance, " + ".join(c.path for c, _ in parts), joined)
        self.report.utterances[-1]["band_limit_hz"] = band_limit_hz(joined.orig_sample_rate)
        yield utterance, {"audio": joined.audio, "speaker": speaker, "utterance": utterance,
                          "text": ""}
