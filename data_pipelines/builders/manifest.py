"""manifest: speech listed in a Kaldi data dir or a CSV/TSV table, with the common features.

Two kinds of manifest (`manifest` names it; relative to --manual_dir when not found as given):
  Kaldi data dir   `wav.scp` (`<utterance-id> <path>`; `<recording-id> <path>` with a
                   `segments` file of `<utterance-id> <recording-id> <start-s> <end-s>`),
                   `utt2spk` (`<utterance-id> <speaker-id>`), optional `text`
                   (`<utterance-id> <transcript>`). Command entries (`<command> |`) are run
                   with the shell only when run_pipes=True.
  CSV / TSV file   a header row naming `path_column` and `speaker_column` (optional
                   `text_column`, `utterance_column`); tab-separated for `.tsv` (read without
                   quote processing, as Common Voice's tables are written), comma otherwise.
                   The utterance id is `utterance_column`, else the path without extension.
Relative audio paths are under `audio_root` (itself relative to the manifest's folder;
default that folder). Every file is read with ge2e_jax.audio (any format libsndfile reads:
wav, flac, ogg, mp3 with libsndfile >= 1.1, ...), mixed down, resampled to 16 kHz and
silence-trimmed as in speaker_folders. Bad rows -- too few fields, an empty path or
speaker, a duplicate utterance id, an utterance without a speaker, a missing or unreadable
audio file, a failing command -- are skipped and listed with their manifest line
(`"line": "validated.tsv:12"`) in `<data_dir>/manifest/<config>/<version>/build_report.json`.
A header without the required columns, or a Kaldi dir without wav.scp/utt2spk, stops the
build with an error naming the file.

Splits as speaker_folders: `test` for `test_speakers`, else a stable hash of the speaker
id falls in `test_percent`%.

Presets:
  kaldi         manifest = the Kaldi data dir (default: --manual_dir itself)
  csv           manifest = a CSV/TSV with `path` and `speaker` columns
  common_voice  --manual_dir = a Common Voice language folder (cv-corpus-*/<lang>):
                validated.tsv (client_id as speaker, sentence as text), audio in clips/
Build:  python -m data_pipelines.builders.tfds_build data_pipelines/builders/manifest.py \
          --config=common_voice --manual_dir=/data/cv-corpus-17.0/cy --data_dir=runs/tfds
        ... --config='{"name": "mine", "manifest": "/data/list.csv", "audio_root": "/data"}'
"""

from __future__ import annotations

import csv
import dataclasses
import os
import subprocess

import tensorflow_datasets as tfds

from data_pipelines.builders import common
from ge2e_jax import audio

KALDI_FILES = ("wav.scp", "utt2spk")


@dataclasses.dataclass(eq=False)
class ManifestConfig(common.LocalCorpusConfig):
  """Which manifest, how to read it, how to split and trim."""
  manifest: str = ""
  audio_root: str = ""
  path_column: str = "path"
  speaker_column: str = "speaker"
  text_column: str = ""
  utterance_column: str = ""
  delimiter: str = ""  # "" = tab for .tsv, comma otherwise
  run_pipes: bool = False


@dataclasses.dataclass(frozen=True)
class Entry:
  """One utterance of the manifest; ``source`` is a path or (pipe) a shell command."""
  line: str
  utterance: str
  speaker: str
  source: str
  text: str = ""
  pipe: bool = False
  start_s: float = 0.0
  end_s: float | None = None  # None: to the end of the recording


def read_manifest(config: ManifestConfig, manifest: str,
                  report: common.BuildReport) -> list[Entry]:
  """The usable entries of a Kaldi dir or a table; reports the rows it cannot use."""
  root = os.path.join(os.path.dirname(os.path.abspath(manifest)) if os.path.isfile(manifest)
                      else os.path.abspath(manifest), config.audio_root)
  if os.path.isdir(manifest):
    entries = _read_kaldi(manifest, report)
  elif os.path.isfile(manifest):
    entries = _read_table(config, manifest, report)
  else:
    raise FileNotFoundError(f"manifest {manifest!r} is neither a Kaldi data dir nor a "
                            "CSV/TSV file")
  resolved = []
  for e in entries:
    if e.pipe:
      if not config.run_pipes:
        report.skip(e.source, "wav.scp entry is a command; set run_pipes=True to run it", e.line)
        continue
      resolved.append(e)
      continue
    path = os.path.normpath(os.path.join(root, e.source))
    if not os.path.isfile(path):
      report.skip(path, "no such file", e.line)
      continue
    resolved.append(dataclasses.replace(e, source=path))
  return resolved


def _read_table(config: ManifestConfig, path: str, report: common.BuildReport) -> list[Entry]:
  name = os.path.basename(path)
  tsv = path.lower().endswith(".tsv")
  delimiter = config.delimiter or ("\t" if tsv else ",")
  with open(path, encoding="utf-8-sig", newline="") as f:
    rows = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    header = next(rows, None)
    if header is None:
      raise ValueError(f"{path}: empty manifest (no header row)")
    wanted = [config.path_column, config.speaker_column] + [
        c for c in (config.text_column, config.utterance_column) if c]
    missing = [c for c in wanted if c not in header]
    if missing:
      raise ValueError(f"{path}: no column(s) {missing} in the header {header} (delimiter "
                       f"{delimiter!r}); set the config's path_column, speaker_column, ...")
    index = {c: header.index(c) for c in wanted}
    entries, first_line = [], {}
    line = rows.line_num
    for row in rows:
      where, line = f"{name}:{line + 1}", rows.line_num
      if not any(field.strip() for field in row):
        continue
      if len(row) != len(header):
        report.skip(path, f"{len(row)} fields, the header has {len(header)}", where)
        continue
      values = {c: row[i].strip() for c, i in index.items()}
      empty = [c for c in (config.path_column, config.speaker_column) if not values[c]]
      if empty:
        report.skip(path, f"empty {' and '.join(map(repr, empty))}", where)
        continue
      source = values[config.path_column]
      utterance = (values[config.utterance_column] if config.utterance_column
                   else os.path.splitext(source)[0])
      if utterance in first_line:
        report.skip(source, f"duplicate utterance id {utterance!r} (first on line "
                    f"{first_line[utterance]})", where)
        continue
      first_line[utterance] = where.rpartition(":")[2]
      entries.append(Entry(where, utterance, values[config.speaker_column], source,
                           values.get(config.text_column, "")))
  return entries


def _read_kaldi(directory: str, report: common.BuildReport) -> list[Entry]:
  missing = [f for f in KALDI_FILES if not os.path.isfile(os.path.join(directory, f))]
  if missing:
    raise FileNotFoundError(f"Kaldi data dir {directory!r} has no {' or '.join(missing)}")
  scp = _read_table_file(directory, "wav.scp", report)
  speakers = _read_table_file(directory, "utt2spk", report, single_value=True)
  texts = (_read_table_file(directory, "text", report)
           if os.path.isfile(os.path.join(directory, "text")) else {})
  has_segments = os.path.isfile(os.path.join(directory, "segments"))
  if has_segments:
    utterances = {}
    for utt, (where, value) in _read_table_file(directory, "segments", report).items():
      fields = value.split()
      try:
        recording, start, end = fields[0], float(fields[1]), float(fields[2])
      except (IndexError, ValueError):
        report.skip(os.path.join(directory, "segments"),
                    "expected '<utterance-id> <recording-id> <start-s> <end-s>'", where)
        continue
      if recording not in scp:
        report.skip(os.path.join(directory, "segments"),
                    f"recording {recording!r} of utterance {utt!r} is not in wav.scp", where)
        continue
      utterances[utt] = (where, scp[recording][1], start, None if end < 0 else end)
  else:
    utterances = {utt: (where, value, 0.0, None) for utt, (where, value) in scp.items()}
  entries = []
  for utt, (where, source, start, end) in utterances.items():
    if utt not in speakers:
      report.skip(source, f"utterance {utt!r} has no speaker in utt2spk", where)
      continue
    pipe = source.endswith("|")
    entries.append(Entry(where, utt, speakers[utt][1], source.rstrip("|").strip() if pipe
                         else source, texts.get(utt, ("", ""))[1], pipe, start, end))
  for utt, (where, _) in speakers.items():
    if utt not in utterances:
      report.skip(os.path.join(directory, "utt2spk"), f"utterance {utt!r} has no audio "
                  f"(not in {'segments' if has_segments else 'wav.scp'})",
                  where)
  return entries


def _read_table_file(directory: str, name: str, report: common.BuildReport,
                     single_value: bool = False) -> dict[str, tuple[str, str]]:
  """``<key> <value...>`` lines -> {key: ("name:line", value)}; reports malformed lines."""
  path, out = os.path.join(directory, name), {}
  with open(path, encoding="utf-8") as f:
    for number, text in enumerate(f, 1):
      where, (key, _, value) = f"{name}:{number}", text.strip().partition(" ")
      value = value.strip()
      if not key:
        continue
      if name != "text" and (not value or (single_value and len(value.split()) != 1)):
        report.skip(path, f"expected '<id> <{'value' if single_value else 'entry'}>', "
                    f"got {text.strip()!r}", where)
      elif key in out:
        report.skip(path, f"duplicate id {key!r} (first on line "
                    f"{out[key][0].rpartition(':')[2]})", where)
      else:
        out[key] = (where, value)
  return out


def read_entry(entry: Entry, trim: audio.TrimOptions) -> common.PreparedAudio:
  """The entry's audio, cut to its segment and prepared; ValueError says why it cannot be."""
  if entry.pipe:
    done = subprocess.run(entry.source, shell=True, capture_output=True, timeout=600,
                          check=False)
    if done.returncode:
      raise ValueError(f"command failed with status {done.returncode}: "
                       f"{done.stderr.decode(errors='replace').strip()[-300:]}")
    data = done.stdout
    wav, sample_rate = audio.decode_audio_channels(data, entry.source)
  else:
    wav, sample_rate = audio.read_audio_channels(entry.source)
  if entry.start_s or entry.end_s is not None:
    end = len(wav) if entry.end_s is None else int(round(entry.end_s * sample_rate))
    wav = wav[int(round(entry.start_s * sample_rate)):end]
    if not len(wav):
      raise ValueError(f"segment {entry.start_s}-{entry.end_s} s is empty or past the end "
                       f"({len(wav)} samples)")
  return common.prepare(wav, sample_rate, trim)


class Manifest(common.ReportingBuilder, tfds.core.GeneratorBasedBuilder):
  """Speech listed in a Kaldi data dir or a CSV/TSV manifest, with the common features."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Give the manifest as the config's `manifest` (a Kaldi data dir or a CSV/TSV file), "
      "absolute or relative to --manual_dir.")
  BUILDER_CONFIGS = [
      ManifestConfig(name="kaldi", description="Kaldi data dir: wav.scp, utt2spk[, text]"),
      ManifestConfig(name="csv", description="CSV/TSV with path and speaker columns"),
      ManifestConfig(name="common_voice", manifest="validated.tsv", audio_root="clips",
                     speaker_column="client_id", text_column="sentence",
                     description="Common Voice: validated.tsv and clips/"),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        features=common.features(), description=__doc__.split("\n")[0])

  def _split_generators(self, dl_manager):
    config = self.builder_config
    manifest = config.manifest
    if not manifest or not (os.path.isabs(manifest) or os.path.exists(manifest)):
      manifest = os.path.join(os.fspath(dl_manager.manual_dir), manifest)
    by_split = common.group_by_split(
        config, read_manifest(config, os.path.normpath(manifest), self.report),
        f"manifest/{config.name}: no usable entry of {manifest!r} (skipped rows: build log)")
    self.report.extra.update(manifest=os.path.abspath(manifest), audio_root=config.audio_root)
    return {split: self._generate_examples(split, split_entries)
            for split, split_entries in by_split.items()}

  def _generate_examples(self, split, entries):
    config = self.builder_config
    trim = config.trim()

    def run(entry: Entry):
      try:
        return entry, read_entry(entry, trim), None
      except (ValueError, OSError, subprocess.TimeoutExpired) as e:
        return entry, None, getattr(e, "reason", str(e))

    for entry, prepared, error in common.ordered_map(run, entries, config.num_workers):
      if error is not None:
        self.report.skip(entry.source, error, entry.line)
        continue
      self.report.add(split, entry.speaker, entry.utterance, entry.source, prepared)
      yield entry.utterance, {"audio": prepared.audio, "speaker": entry.speaker,
                              "utterance": entry.utterance, "text": entry.text}
