"""synthetic_voices: a multi-speaker corpus synthesised on this machine with espeak-ng.

A speaker is an espeak-ng voice (language voice + variant, or an installed
MBROLA voice) with its own fixed pitch and speed; each utterance jitters that
prosody a little. Configs:
  ti               random sentences from a small grammar (text-independent)
  td_ok_computer   everyone says "ok computer" (text-dependent)
  td_hey_computer  everyone says "hey computer"
  td_hey_computer_16
                   "hey computer" from only the first 16 train speakers, the same
                   30 test speakers (a small MultiReader target, no voice leakage)
  td_hey_computer_16_pooled_ok
                   td_hey_computer_16's train split plus td_ok_computer's (the same
                   audio), one pool: a voice's two phrases are one speaker
Speakers depend only on (seed, voices, use_mbrola), not on the text, so the
configs share speakers and splits: the first `num_train_speakers` of the
seeded speaker list are `train`, the next `num_test_speakers` are `test`.
`train_speaker_limit=k` keeps only the first k train speakers in `train` (test
unchanged); each of `pooled_train_phrases` adds every train speaker saying that
phrase to `train`, with the audio of that phrase's own config.
The same config gives identical audio bytes on every run (espeak-ng is
deterministic); the espeak-ng version and installed variants are recorded in
the build report.

Build:  tfds build data_pipelines/builders/synthetic_voices.py --config=ti
        tfds build ... --config='{"name": "tiny", "phrase": "ok computer", ...}'
or      tfds.builder("synthetic_voices/ti", data_dir=...).download_and_prepare()
"""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import tensorflow_datasets as tfds

from data_pipelines.builders import common
from data_pipelines.builders import espeak
from data_pipelines.builders import sentences
from ge2e_jax import audio

ENGLISH_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan",
                  "en-gb-x-gbcwmd", "en-029", "en-us-nyc")


@dataclasses.dataclass(eq=False)
class SyntheticVoicesConfig(tfds.core.BuilderConfig):
  """Corpus size, voices and prosody; phrase="" means random sentences (ti)."""
  phrase: str = ""
  num_train_speakers: int = 120
  num_test_speakers: int = 30
  utterances_per_speaker: int = 20
  seed: int = 0
  voices: tuple[str, ...] = ENGLISH_VOICES
  use_mbrola: bool = False
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
  id: str
  voice: str
  pitch: int
  speed: int
  split: str


def speakers(config: SyntheticVoicesConfig) -> list[Speaker]:
  """The seeded speaker list: distinct voices, each with a fixed pitch and speed."""
  voices = [f"{v}+{var}" for v in config.voices for var in espeak.variants()]
  if config.use_mbrola:
    mbrola = espeak.mbrola_voices()
    if not mbrola:
      raise espeak.EspeakError(
          f"use_mbrola=True but no MBROLA voice is installed under {espeak.MBROLA_DIR} "
          "(Debian: apt-get install mbrola mbrola-us1 ...)")
    voices += list(mbrola)
  needed = config.num_train_speakers + config.num_test_speakers
  if needed > len(voices):
    raise ValueError(f"{config.name}: {needed} speakers requested but only {len(voices)} "
                     "distinct voices available; add voices or use fewer speakers")
  rng = np.random.default_rng(config.seed)
  order = rng.permutation(len(voices))
  out = []
  for i in range(needed):
    voice = voices[order[i]]
    out.append(Speaker(
        id=voice, voice=voice,
        pitch=int(rng.integers(config.pitch_range[0], config.pitch_range[1] + 1)),
        speed=int(rng.integers(config.speed_range[0], config.speed_range[1] + 1)),
        split="train" if i < config.num_train_speakers else "test"))
  return out


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
      word_gap=int(rng.integers(0, config.max_word_gap + 1)))
  text = phrase or sentences.random_sentence(rng)
  return text, prosody


class SyntheticVoices(common.ReportingBuilder, tfds.core.GeneratorBasedBuilder):
  """Multi-speaker espeak-ng speech with the common ge2e_jax features."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  BUILDER_CONFIGS = [
      SyntheticVoicesConfig(name="ti", description="Random sentences.",
                            utterances_per_speaker=16),
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
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.features(),
        homepage="https://github.com/espeak-ng/espeak-ng",
        description=__doc__.split("\n")[0])

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
    self.report.extra["espeak_ng"] = espeak.version()
    self.report.extra["espeak_variants"] = list(espeak.variants())
    self.report.extra["speakers"] = [dataclasses.asdict(s) for s in all_speakers]
    return {split: self._generate_examples(split, list(enumerate(all_speakers)))
            for split in common.SPLITS}

  def _generate_examples(self, split, indexed_speakers):
    config = self.builder_config
    trim = audio.TrimOptions(enabled=config.trim_silence, top_db=config.trim_top_db)
    limit = config.train_speaker_limit if split == "train" else 0
    jobs = [(i, spk, u, None) for i, spk in indexed_speakers
            if spk.split == split and not (limit and i >= limit)
            for u in range(config.utterances_per_speaker)]
    if split == "train":
      jobs += [(i, spk, u, phrase) for phrase in config.pooled_train_phrases
               for i, spk in indexed_speakers if spk.split == split
               for u in range(config.utterances_per_speaker)]

    def run(job):
      i, spk, u, phrase = job
      text, prosody = utterance_plan(config, i, spk, u, phrase)
      try:
        wav, sr = espeak.synthesize(spk.voice, text, prosody)
        return job, text, prosody, common.prepare(wav, sr, trim), None
      except (espeak.EspeakError, ValueError) as e:  # AudioReadError is a ValueError.
        return job, text, prosody, None, str(e)

    for (_, spk, u, phrase), text, prosody, prepared, error in common.ordered_map(
        run, jobs, config.num_workers):
      # A pooled phrase's utterances get the phrase in their id (ids stay unique).
      utterance = f"{spk.id}/{u:04d}" if phrase is None else (
          f"{spk.id}/{phrase.replace(' ', '_')}/{u:04d}")
      source = (f"espeak-ng -v {spk.voice} -p {prosody.pitch} -s {prosody.speed} "
                f"-g {prosody.word_gap}")
      if error is not None:
        self.report.skip(f"{source} {text!r}", error)
        continue
      self.report.add(split, spk.id, utterance, source, prepared)
      yield utterance, {"audio": prepared.audio, "speaker": spk.id,
                        "utterance": utterance, "text": text}
