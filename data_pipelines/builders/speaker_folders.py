"""speaker_folders: any local tree `<root>/.../<speaker>/.../<utterance>.{wav,flac}`.

This is how LibriSpeech-, VCTK- or VoxCeleb1-style trees come in. The speaker
is the folder `speaker_depth` levels below `root` (0: the first folder). Every
file is read with ge2e_jax.audio, mixed down to mono, resampled to 16 kHz and,
unless trim_silence=False, cut of leading/trailing silence by an energy VAD.
Unreadable, empty, truncated, non-audio, too short or silent files (the checks of
ge2e_jax.audio.speech_16k, which inference applies too) and folders that cannot be
listed are skipped and listed with their reason in
`<data_dir>/speaker_folders/<config>/<version>/build_report.json` (which also holds
how much silence was cut, per file and in total). Speaker folders without audio are listed
there too (``empty_speaker_folders``), and train speakers with fewer than
``min_utterances`` audio files (default 2, the least a GE2E batch needs) are left out of
train with their reason (``speakers_left_out``).

Symbolic links: links to folders or files outside the root are followed (trees of links
to other storage work). A link to something inside the tree is not followed, so every
file is read once, at its own place and as its own speaker; loops are not followed
either. Both are reported. Two files that differ only in their extension (u1.wav beside
u1.flac) would share an utterance id: the one whose extension comes first in
`extensions` is kept, the other reported.

Splits: a speaker is `test` when listed in `test_speakers`, or else when a
stable hash of its id falls in `test_percent`% (see common.split_of_speaker).

Presets (root "" means the --manual_dir of the build):
  librispeech  root = LibriSpeech/train-clean-100 (or any subset folder):
               <speaker>/<chapter>/<speaker>-<chapter>-<n>.flac; transcripts
               from <speaker>-<chapter>.trans.txt. Root LibriSpeech/ -> depth 1.
  vctk         root = VCTK-Corpus-0.92/wav48_silence_trimmed: <speaker>/<utt>_mic1.flac
               (mic1 only). For VCTK 0.80 use root wav48 and file_glob "*".
  voxceleb1    root = VoxCeleb1 wav/ holding dev and test speakers (vox1_dev_wav and
               vox1_test_wav unpacked together): <id>/<video>/<n>.wav; test = the
               40 speakers id10270-id10309 of the official verification list.
               (VoxCeleb2's m4a files must be converted to wav/flac first.)
Build:  tfds build data_pipelines/builders/speaker_folders.py --config=librispeech \
          --manual_dir=/data/LibriSpeech/train-clean-100
        tfds build ... --config='{"name": "mine", "root": "/data/tree", "speaker_depth": 1}'
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import os

import tensorflow_datasets as tfds

from data_pipelines.builders import common
from ge2e_jax import audio

TRANSCRIPT_SUFFIX = ".trans.txt"


@dataclasses.dataclass(eq=False)
class SpeakerFoldersConfig(common.LocalCorpusConfig):
  """Where the tree is and where its speakers are (split and trimming: the base class)."""
  root: str = ""
  speaker_depth: int = 0
  extensions: tuple[str, ...] = (".wav", ".flac")
  file_glob: str = "*"
  # Train speakers with fewer audio files are left out of train (reported): a GE2E batch
  # takes data.n_utterances of each speaker, at least 2 (a centroid without the utterance).
  min_utterances: int = 2


@dataclasses.dataclass(frozen=True)
class AudioFile:
  path: str
  speaker: str
  utterance: str
  text: str


def scan(config: SpeakerFoldersConfig, root: str,
         report: common.BuildReport) -> list[AudioFile]:
  """Lists the tree's audio files in sorted order; reports the files it cannot use."""
  extensions = tuple(e.lower() for e in config.extensions)
  found, transcripts, excluded, speaker_folders = [], {}, 0, {}
  links = _LinkGuard(root, report)

  def unreadable(error: OSError) -> None:
    report.skip(error.filename, f"cannot list folder ({error.strerror})")

  for dirpath, dirnames, filenames in os.walk(root, onerror=unreadable, followlinks=True):
    dirnames[:] = [d for d in sorted(dirnames) if links.follow_folder(os.path.join(dirpath, d))]
    folder = os.path.relpath(dirpath, root).split(os.sep)
    if folder != ["."] and len(folder) == config.speaker_depth + 1:
      speaker_folders[folder[-1]] = dirpath
    for name in sorted(filenames):
      path = os.path.join(dirpath, name)
      rel = os.path.relpath(path, root).replace(os.sep, "/")
      if name.endswith(TRANSCRIPT_SUFFIX):
        try:
          transcripts.update(_read_transcripts(path, os.path.dirname(rel)))
        except (OSError, UnicodeDecodeError) as e:
          report.skip(path, f"unreadable transcript file ({e})")
        continue
      stem, ext = os.path.splitext(rel)
      if ext.lower() not in extensions:
        report.skip(path, f"not an audio file (extension {ext or 'none'!r}; "
                    f"expected one of {', '.join(extensions)})")
        continue
      if not fnmatch.fnmatch(name, config.file_glob):
        excluded += 1
        continue
      parts = rel.split("/")
      if len(parts) - 1 <= config.speaker_depth:
        report.skip(path, f"no speaker folder: file lies above speaker_depth="
                    f"{config.speaker_depth} under {root}")
        continue
      if links.read_file(path):
        found.append(AudioFile(path, parts[config.speaker_depth], stem, ""))
  report.extra["excluded_by_file_glob"] = excluded
  found = _one_file_per_utterance(found, extensions, report)
  with_audio = {f.speaker for f in found}
  empty = sorted(path for speaker, path in speaker_folders.items() if speaker not in with_audio)
  for path in empty:
    report.skip(path, f"speaker folder holds no audio file ({', '.join(extensions)}, "
                f"file_glob {config.file_glob!r})")
  report.extra["empty_speaker_folders"] = empty
  return [dataclasses.replace(f, text=transcripts.get(f.utterance, "")) for f in found]


class _LinkGuard:
  """Decides which symbolic links the walk follows: every file is read once, in place.

  A link into the tree would read a file twice, or as another speaker's (a test
  speaker's audio in train); a link to a folder above the root loops. Links out of the
  tree are followed, each target once.
  """

  def __init__(self, root: str, report: common.BuildReport):
    self.root = os.path.realpath(root)
    self.report = report
    self.seen: dict[str, str] = {self.root: root}

  def _inside(self, real: str) -> bool:
    return real == self.root or real.startswith(self.root + os.sep)

  def _allowed(self, path: str, what: str) -> bool:
    if not os.path.exists(path):
      return True  # A dangling or looping link: reading it reports which.
    real = os.path.realpath(path)
    if os.path.islink(path) and self._inside(real):
      self.report.skip(path, f"symbolic link to {what} inside the tree ({real}); not followed, "
                       "it is read at its own place")
    elif self.root.startswith(real + os.sep):
      self.report.skip(path, f"symbolic link loop: {real} holds the tree root; not followed")
    elif real in self.seen:
      self.report.skip(path, f"same {what} as {self.seen[real]} (symbolic links); not read twice")
    else:
      self.seen[real] = path
      return True
    return False

  def follow_folder(self, path: str) -> bool:
    return self._allowed(path, "folder")

  def read_file(self, path: str) -> bool:
    return self._allowed(path, "file")


def _one_file_per_utterance(files: list[AudioFile], extensions: tuple[str, ...],
                            report: common.BuildReport) -> list[AudioFile]:
  """Keeps one of the files that share an utterance id (u1.wav, u1.flac): TFDS keys are ids."""
  rank = lambda f: (extensions.index(os.path.splitext(f.path)[1].lower()), f.path)
  kept: dict[str, AudioFile] = {}
  for f in sorted(files, key=rank):
    if f.utterance in kept:
      report.skip(f.path, f"utterance id {f.utterance!r} is taken by {kept[f.utterance].path} "
                  "(same name, other extension); not read")
    else:
      kept[f.utterance] = f
  return [f for f in files if kept[f.utterance] is f]


def enough_utterances(files: list[AudioFile], minimum: int,
                      report: common.BuildReport) -> list[AudioFile]:
  """The files of speakers with at least ``minimum`` files; the others are reported (each
  file, and the speaker in the report's ``speakers_left_out``), counted before reading."""
  counts = collections.Counter(f.speaker for f in files)
  left_out = {speaker: f"{n} audio file(s); a training batch needs at least "
                       f"min_utterances={minimum} of each speaker: left out of train"
              for speaker, n in sorted(counts.items()) if n < minimum}
  for f in files:
    if f.speaker in left_out:
      report.skip(f.path, f"speaker {f.speaker!r}: {left_out[f.speaker]}")
  report.extra["speakers_left_out"] = left_out
  return [f for f in files if f.speaker not in left_out]


def _read_transcripts(path: str, rel_dir: str) -> dict[str, str]:
  """LibriSpeech `<utt-id> <TEXT>` lines -> {relative utterance path: text}."""
  out = {}
  with open(path, encoding="utf-8") as f:
    for line in f:
      key, _, text = line.strip().partition(" ")
      if key:
        out[f"{rel_dir}/{key}" if rel_dir else key] = text
  return out


class SpeakerFolders(common.ReportingBuilder, tfds.core.GeneratorBasedBuilder):
  """Speech from a local speaker-folder tree, with the common ge2e_jax features."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Give the tree's root as the config's `root`, or as --manual_dir (tfds build) / "
      "DownloadConfig(manual_dir=...) with root=''.")
  BUILDER_CONFIGS = [
      SpeakerFoldersConfig(name="librispeech", extensions=(".flac",),
                           description="LibriSpeech subset: speaker/chapter/utt.flac"),
      SpeakerFoldersConfig(name="vctk", file_glob="*_mic1.*",
                           description="VCTK 0.92 wav48_silence_trimmed, mic1"),
      SpeakerFoldersConfig(name="voxceleb1", extensions=(".wav",),
                           test_speakers=common.VOXCELEB1_TEST_SPEAKERS,
                           description="VoxCeleb1 wav/: id/video/utt.wav"),
      SpeakerFoldersConfig(name="custom", description="Any tree; set root."),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.features(), description=__doc__.split("\n")[0])

  def _split_generators(self, dl_manager):
    config = self.builder_config
    root = os.fspath(config.root or dl_manager.manual_dir)
    if not os.path.isdir(root):
      raise FileNotFoundError(f"speaker_folders/{config.name}: root {root!r} is not a directory")
    files = scan(config, root, self.report)
    if not files:
      raise ValueError(f"speaker_folders/{config.name}: no audio file ({', '.join(config.extensions)}"
                       f", file_glob {config.file_glob!r}) in a speaker folder speaker_depth="
                       f"{config.speaker_depth} below {root!r}")
    by_split = common.group_by_split(config, files,
                                     f"speaker_folders/{config.name}: no audio file of {root!r}")
    by_split["train"] = enough_utterances(by_split["train"], config.min_utterances, self.report)
    if not by_split["train"]:
      raise ValueError(f"speaker_folders/{config.name}: no train speaker of {root!r} has "
                       f"min_utterances={config.min_utterances} audio files")
    self.report.extra["root"] = root
    self.report.extra["speaker_depth"] = config.speaker_depth
    return {split: self._generate_examples(split, split_files)
            for split, split_files in by_split.items()}

  def _generate_examples(self, split, files):
    config = self.builder_config
    trim = config.trim()

    def run(f: AudioFile):
      try:
        wav, sr = audio.read_audio_channels(f.path)
        return f, common.prepare(wav, sr, trim), None
      except (ValueError, OSError) as e:  # AudioReadError is a ValueError.
        return f, None, getattr(e, "reason", str(e))
      except MemoryError:
        return f, None, "too large to prepare in memory"

    for f, prepared, error in common.ordered_map(run, files, config.num_workers):
      if error is not None:
        self.report.skip(f.path, error)
        continue
      self.report.add(split, f.speaker, f.utterance, f.path, prepared)
      yield f.utterance, {"audio": prepared.audio, "speaker": f.speaker,
                          "utterance": f.utterance, "text": f.text}
