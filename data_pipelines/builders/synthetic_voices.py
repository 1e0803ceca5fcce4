"""synthetic_voices: a multi-speaker corpus synthesised on this machine with espeak-ng.

A speaker is a voice with its own fixed pitch and speed; each utterance jitters
that prosody a little. Three kinds of voice (`speaker_kind`):
  procedural  a language voice + a seeded random variant file of its own (formants,
              pitch, flutter, roughness, breath, tone, ...; procedural_voices.py): as
              many distinct speakers as asked, over many languages (accents)
  stock       a language voice + one of espeak-ng's installed variants (!v)
  MBROLA      espeak-ng's English-speaking MBROLA voices, diphones recorded from real
              people (`make voices`), only in the `test_mbrola` split of *_mbrola configs
Splits (speaker-disjoint; each a held-out condition addressable by name):
  train             `num_train_speakers`, languages `voices`
  test              the next `num_test_speakers`, same languages and voice kind
  test_unseen_lang  `num_unseen_lang_speakers` of the same kind, languages
                    `unseen_voices`: language families (espeak-ng's ISO 639-5 groups)
                    never in train
  test_mbrola       (configs with mbrola_test=True, which hold only this split)
                    every English MBROLA voice installed: a voice family never in train
Configs:
  ti               random sentences from a small grammar (text-independent)
  ti_960           ti with 960 train speakers: ti's train and test speakers are its
                   first 150 (score it on its own test split); test_unseen_lang holds
                   ti's speakers (other sentences)
  ti_1920x8        ti_960's audio hours from twice the speakers: 1920 train speakers of
                   8 utterances each (ti_960's train and test speakers are its first 990;
                   its test splits hold 16 per speaker as ti's)
  td_ok_computer   everyone says "ok computer" (text-dependent)
  td_hey_computer  everyone says "hey computer"
  td_hey_computer_16
                   "hey computer" from only the first 16 train speakers, the same
                   30 test speakers (a small MultiReader target, no voice leakage)
  td_hey_computer_16_pooled_ok
                   td_hey_computer_16's train split plus td_ok_computer's (the same
                   audio), one pool: a voice's two phrases are one speaker
  td_ok_computer_stock, ti_stock
                   the stock-variant English corpus (8 English
                   voices x espeak-ng's variants; train and test only)
  td_ok_computer_mbrola, ti_mbrola
                   test_mbrola only (needs `make voices`)
Speakers depend only on (seed, speaker_kind, voices, unseen_voices, speaker counts), not
on the text, so the configs share speakers and splits: the first `num_train_speakers`
of the seeded speaker list are `train`, the next `num_test_speakers` are `test`.
`train_speaker_limit=k` keeps only the first k train speakers in `train` (test
unchanged); each of `pooled_train_phrases` adds every train speaker saying that
phrase to `train`, with the audio of that phrase's own config.
The same config gives identical audio bytes on every run (espeak-ng is
deterministic); the espeak-ng version, installed variants, every speaker's voice
and procedural parameters, and MBROLA package versions are in the build report.

Build:  tfds build data_pipelines/builders/synthetic_voices.py --config=ti
        tfds build ... --config='{"name": "tiny", "phrase": "ok computer", ...}'
or      tfds.builder("synthetic_voices/ti", data_dir=...).download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.builders import espeak
from data_pipelines.builders import procedural_voices
from data_pipelines.builders import sentences
from ge2e_jax import audio

ENGLISH_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")
# Train languages: English accents, other West and North Germanic, Romance and Celtic
# languages (espeak-ng families gmw, gmq, roa, cel), all written in the Latin alphabet so
# that they read the English text with their own letter-to-sound rules: accents.
TRAIN_LANGUAGES = ENGLISH_VOICES + (
    "af", "de", "nl", "lb", "da", "nb", "sv", "is", "es", "es-419", "fr-fr", "fr-be", "it",
    "pt", "pt-br", "ro", "ca", "cy", "ga", "gd")
# Held-out languages, from families never in train: West and South Slavic (zlw, zls),
# Uralic (urj), Baltic (bat), Turkic (trk), Malayo-Polynesian (poz), Albanian (ine).
UNSEEN_LANGUAGES = ("cs", "pl", "sk", "hr", "sl", "bs", "fi", "et", "hu", "lt", "lv", "tr",
                    "az", "uz", "id", "ms", "sq")
SPEAKER_KINDS = ("procedural", "stock")
UNSEEN_SPLIT, MBROLA_SPLIT = "test_unseen_lang", "test_mbrola"
MBROLA_AMPLITUDE = 60  # espeak-ng -a: at 100, 10 of 60 MBROLA sentences clipped; at 60, none.


@dataclasses.dataclass(eq=False)
class SyntheticVoicesConfig(tfds.core.BuilderConfig):
  """Corpus size, voices and prosody; phrase="" means random sentences (ti)."""
  phrase: str = ""
  num_train_speakers: int = 120
  num_test_speakers: int = 30
  num_unseen_lang_speakers: int = 30           # 0: no test_unseen_lang split
  utterances_per_speaker: int = 20
  train_utterances_per_speaker: int = 0        # 0: utterances_per_speaker
  seed: int = 0
  speaker_kind: str = "procedural"             # one of SPEAKER_KINDS
  voices: tuple[str, ...] = TRAIN_LANGUAGES    # espeak-ng languages of train and test
  unseen_voices: tuple[str, ...] = UNSEEN_LANGUAGES
  mbrola_test: bool = False                    # only a test_mbrola split of MBROLA voices
  pitch_range: tuple[int, int] = (25, 75)
  speed_range: tuple[int, int] = (140, 200)
  pitch_jitter: int = 4
  speed_jitter: float = 0.05
  max_word_gap: int = 3
  trim_silence: bool = True
  trim_top_db: float = 40.0
  num_workers: int = 2
  train_speaker_limit: int = 0                 # > 0: only the first k train speakers say `phrase`
  pooled_train_phrases: tuple[str, ...] = ()   # train also holds all train speakers saying these


@dataclasses.dataclass(frozen=True)
class Speaker:
  """One speaker: its espeak-ng voice (-v), fixed prosody, split and where the voice is from."""
  id: str
  voice: str
  pitch: int
  speed: int
  split: str
  kind: str = "stock"                # procedural, stock or mbrola
  language: str = ""                 # espeak-ng language code ("" for MBROLA)
  family: str = ""                   # language family (espeak-ng folder), or "mbrola"
  amplitude: int = 100               # espeak-ng -a
  variant: procedural_voices.VariantParams | None = None  # procedural: its variant file

  @property
  def variant_name(self) -> str:
    return self.voice.partition("+")[2]


def splits(config: SyntheticVoicesConfig) -> tuple[str, ...]:
  """The config's split names (see module doc)."""
  if config.mbrola_test:
    return (MBROLA_SPLIT,)
  return common.SPLITS + ((UNSEEN_SPLIT,) if config.num_unseen_lang_speakers else ())


def speakers(config: SyntheticVoicesConfig) -> list[Speaker]:
  """The seeded speaker list of every split, in split order."""
  if config.speaker_kind not in SPEAKER_KINDS:
    raise ValueError(f"{config.name}: speaker_kind={config.speaker_kind!r}, expected one of "
                     f"{SPEAKER_KINDS}")
  if config.mbrola_test:
    return _mbrola_speakers(config)
  rng = np.random.default_rng(config.seed)
  counts = {"train": config.num_train_speakers, "test": config.num_test_speakers}
  out = _draw(config, rng, config.voices, counts)
  if config.num_unseen_lang_speakers:
    overlap = {espeak.language(c).family for c in config.voices} & {
        espeak.language(c).family for c in config.unseen_voices}
    if overlap:
      raise ValueError(f"{config.name}: unseen_voices share language families {sorted(overlap)} "
                       "with voices; test_unseen_lang must hold families never in train")
    # Its own stream: the held-out speakers do not move when train/test sizes change.
    out += _draw(config, np.random.default_rng([config.seed, 1]), config.unseen_voices,
                 {UNSEEN_SPLIT: config.num_unseen_lang_speakers})
  return out


def _draw(config, rng, codes, counts: dict[str, int]) -> list[Speaker]:
  needed = sum(counts.values())
  labels = [split for split, n in counts.items() for _ in range(n)]
  prefix = "u" if UNSEEN_SPLIT in counts else "v"
  langs = [espeak.language(c) for c in codes]
  if config.speaker_kind == "stock":
    voices = [(lang, var) for lang in langs for var in espeak.variants()]
    if needed > len(voices):
      raise ValueError(f"{config.name}: {needed} speakers requested but only {len(voices)} "
                       "distinct voices available; add voices or use fewer speakers")
    order = rng.permutation(len(voices))
  out = []
  for i in range(needed):
    if config.speaker_kind == "stock":
      lang, var = voices[order[i]]
      voice, params, amplitude = f"{lang.code}+{var}", None, 100
    else:
      # Languages in turn, in a seeded order: every language gets its share of speakers.
      if i % len(langs) == 0:
        cycle = rng.permutation(len(langs))
      lang = langs[cycle[i % len(langs)]]
      params = procedural_voices.draw(rng)
      voice, amplitude = f"{lang.voice}+{prefix}{i:05d}", procedural_voices.AMPLITUDE
    out.append(Speaker(
        id=voice if params is None else f"{lang.code}+{prefix}{i:05d}", voice=voice,
        pitch=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
        speed=int(rng.integers(config.speed_range[0], config.speed_range[1] + 1)),
        split=labels[i], kind=config.speaker_kind, language=lang.code, family=lang.family,
        amplitude=amplitude, variant=params))
  return out


def _mbrola_speakers(config) -> list[Speaker]:
  voices = espeak.mbrola_voices()
  if not voices:
    raise espeak.EspeakError(
        f"{config.name}: mbrola_test=True but no MBROLA voice is installed (run `make voices`, "
        f"which unpacks Debian's mbrola packages into {espeak.LOCAL_MBROLA_DIR})")
  rng = np.random.default_rng([config.seed, 2])
  return [Speaker(id=voice, voice=f"mb/{voice}",
                  pitch=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
                  speed=int(rng.integers(config.speed_range[0], config.speed_range[1] + 1)),
                  split=MBROLA_SPLIT, kind="mbrola", family="mbrola", amplitude=MBROLA_AMPLITUDE)
          for voice in voices]


def utterance_plan(config: SyntheticVoicesConfig, speaker_index: int, speaker: Speaker,
                   utt_index: int, phrase: str | None = None) -> tuple[str, espeak.Prosody]:
  """(text, prosody) of one utterance of `phrase` (default config.phrase), seeded by both."""
  phrase = config.phrase if phrase is None else phrase
  rng = np.random.default_rng(
      [config.seed, speaker_index, utt_index, zlib.crc32(phrase.encode())])
  prosody = espeak.Prosody(
      pitch=int(np.clip(speaker.pitch + rng.integers(-config.pitch_jitter,
                                                     config.pitch_jitter + 1), 0, 99)),
      speed=int(round(speaker.speed * (1 + rng.uniform(-config.speed_jitter,
                                                       config.speed_jitter)))),
      word_gap=int(rng.integers(0, config.max_word_gap + 1)), amplitude=speaker.amplitude)
  text = phrase or sentences.random_sentence(rng)
  return text, prosody


class SyntheticVoices(common.ReportingBuilder, tfds.core.GeneratorBasedBuilder):
  """Multi-speaker espeak-ng speech with the common ge2e_jax features."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {"1.0.0": "First release.",
                   "2.0.0": "Procedural speakers over many languages; test_unseen_lang and "
                            "test_mbrola held-out splits; stock-variant configs *_stock."}
  BUILDER_CONFIGS = [
      SyntheticVoicesConfig(name="ti", description="Random sentences.",
                            utterances_per_speaker=16),
      SyntheticVoicesConfig(name="ti_960", utterances_per_speaker=16, num_train_speakers=960,
                            description="Random sentences, 960 train speakers (ti's "
                                        "train and test speakers among them)."),
      SyntheticVoicesConfig(name="ti_1920x8", utterances_per_speaker=16,
                            num_train_speakers=1920, train_utterances_per_speaker=8,
                            description="Random sentences, 1920 train speakers of 8 "
                                        "utterances (ti_960's speakers among them)."),
      SyntheticVoicesConfig(name="td_ok_computer", phrase="ok computer",
                            description='Everyone says "ok computer".'),
      SyntheticVoicesConfig(name="td_hey_computer", phrase="hey computer",
                            description='Everyone says "hey computer".'),
      SyntheticVoicesConfig(name="td_hey_computer_16", phrase="hey computer",
                            train_speaker_limit=16,
                            description='"hey computer", 16 train speakers, 30 test speakers.'),
      SyntheticVoicesConfig(name="td_hey_computer_16_pooled_ok", phrase="hey computer",
                            train_speaker_limit=16, pooled_train_phrases=("ok computer",),
                            description='td_hey_computer_16 train + td_ok_computer train in '
                                        'one speaker pool; test as td_hey_computer.'),
      SyntheticVoicesConfig(name="td_ok_computer_stock", phrase="ok computer",
                            speaker_kind="stock", voices=ENGLISH_VOICES,
                            num_unseen_lang_speakers=0,
                            description='"ok computer" from English voices x stock variants.'),
      SyntheticVoicesConfig(name="ti_stock", utterances_per_speaker=16, speaker_kind="stock",
                            voices=ENGLISH_VOICES, num_unseen_lang_speakers=0,
                            description="Random sentences, English voices x stock variants."),
      SyntheticVoicesConfig(name="td_ok_computer_mbrola", phrase="ok computer",
                            mbrola_test=True,
                            description='"ok computer" from every English MBROLA voice.'),
      SyntheticVoicesConfig(name="ti_mbrola", utterances_per_speaker=16, mbrola_test=True,
                            description="Random sentences from every English MBROLA voice."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.features(),
        homepage="https://github.com/espeak-ng/espeak-ng",
        description=__doc__.split("\n")[0])

  def _download_and_prepare(self, dl_manager, download_config=None):
    # Procedural variant files and MBROLA links live in a private espeak-ng data
    # directory for the duration of the build.
    with tempfile.TemporaryDirectory(prefix="espeak-voices-") as root:
      self._voice_root = root
      super()._download_and_prepare(dl_manager, download_config)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    config = self.builder_config
    if not 0 <= config.train_speaker_limit <= config.num_train_speakers:
      raise ValueError(f"{config.name}: train_speaker_limit={config.train_speaker_limit} must be"
                       f" in [0, num_train_speakers={config.num_train_speakers}]")
    if not all(config.pooled_train_phrases) or config.phrase in config.pooled_train_phrases:
      raise ValueError(f"{config.name}: pooled_train_phrases={config.pooled_train_phrases!r} must"
                       f" be non-empty phrases other than phrase={config.phrase!r}")
    all_speakers = speakers(config)
    mbrola = espeak.mbrola_install() if config.mbrola_test else None
    self._data_path = espeak.private_data_dir(
        os.path.join(self._voice_root, "data"),
        {s.variant_name: procedural_voices.variant_file(s.variant_name, s.variant)
         for s in all_speakers if s.variant is not None}, mbrola)
    self._mbrola_bin = mbrola.bin_dir if mbrola else None
    self.report.extra["espeak_ng"] = espeak.version()
    self.report.extra["espeak_variants"] = list(espeak.variants())
    self.report.extra["speakers"] = [dataclasses.asdict(s) for s in all_speakers]
    self.report.extra["split_languages"] = {
        split: sorted({s.language or s.voice for s in all_speakers if s.split == split})
        for split in splits(config)}
    if mbrola:
      self.report.extra["mbrola"] = _mbrola_packages(mbrola)
    return {split: self._generate_examples(split, list(enumerate(all_speakers)))
            for split in splits(config)}

  def _generate_examples(self, split, indexed_speakers):
    config = self.builder_config
    trim = audio.TrimOptions(enabled=config.trim_silence, top_db=config.trim_top_db)
    limit = config.train_speaker_limit if split == "train" else 0
    count = (config.train_utterances_per_speaker if split == "train" else 0) or (
        config.utterances_per_speaker)
    jobs = [(i, spk, u, None) for i, spk in indexed_speakers
            if spk.split == split and not (limit and i >= limit)
            for u in range(count)]
    if split == "train":
      jobs += [(i, spk, u, phrase) for phrase in config.pooled_train_phrases
               for i, spk in indexed_speakers if spk.split == split
               for u in range(count)]

    def run(job):
      i, spk, u, phrase = job
      text, prosody = utterance_plan(config, i, spk, u, phrase)
      try:
        # Stock voices read espeak-ng's installed data: their audio never depends on our data dir.
        wav, sr = espeak.synthesize(spk.voice, text, prosody,
                                    None if spk.kind == "stock" else self._data_path,
                                    self._mbrola_bin if spk.kind == "mbrola" else None)
        return job, text, prosody, common.prepare(wav, sr, trim), None
      except (espeak.EspeakError, ValueError) as e:  # AudioReadError is a ValueError.
        return job, text, prosody, None, str(e)

    def described(result):
      (_, spk, u, phrase), text, prosody, prepared, error = result
      # A pooled phrase's utterances get the phrase in their id (ids stay unique).
      utterance = f"{spk.id}/{u:04d}" if phrase is None else (
          f"{spk.id}/{phrase.replace(' ', '_')}/{u:04d}")
      source = (f"espeak-ng{'' if spk.kind == 'stock' else ' --path=<voices>'} -v {spk.voice} "
                f"-p {prosody.pitch} -s {prosody.speed} -g {prosody.word_gap} "
                f"-a {prosody.amplitude}")
      return spk.id, utterance, source, text, prepared, error

    yield from common.reported_examples(self.report, split, map(
        described, common.ordered_map(run, jobs, config.num_workers)))


def _mbrola_packages(mbrola: espeak.MbrolaInstall) -> dict[str, object]:
  """Where MBROLA came from, for the build report: binary, databases, package versions."""
  return {"bin_dir": mbrola.bin_dir, "databases": sorted(mbrola.databases),
          "packages": common.package_versions(os.path.dirname(os.path.dirname(mbrola.bin_dir)))}
