"""What every ge2e_jax corpus builder shares: features, splits, audio prep, report.

Every builder (speaker_folders, synthetic_voices) and every adapter of a TFDS
corpus yields the same features, so the speaker-batch pipeline reads any of
them alike:
  audio      int16, mono, 16 kHz, shape (samples,)
  speaker    string id, unique within the corpus
  utterance  string id, unique within the corpus
  text       transcript, "" when unknown
Splits are `train` and `test` with disjoint speakers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import subprocess
import time

import numpy as np
import tensorflow_datasets as tfds

from ge2e_jax import audio
from ge2e_jax.features import SAMPLE_RATE

SPLITS = ("train", "test")
REPORT_FILENAME = "build_report.json"
# The 40 speakers of VoxCeleb1's official verification test list.
VOXCELEB1_TEST_SPEAKERS = tuple(f"id{n}" for n in range(10270, 10310))

log = logging.getLogger(__name__)


def features() -> tfds.features.FeaturesDict:
  return tfds.features.FeaturesDict({
      # A Tensor stored as raw bytes: tfds.features.Audio writes numpy input as an
      # int64 list (~5 bytes per int16 sample) whatever its `encoding`.
      "audio": tfds.features.Tensor(
          shape=(None,), dtype=np.int16, encoding=tfds.features.Encoding.BYTES,
          doc=f"mono PCM at {SAMPLE_RATE} Hz"),
      "speaker": tfds.features.Text(),
      "utterance": tfds.features.Text(),
      "text": tfds.features.Text(),
  })


def split_of_speaker(speaker: str, test_percent: float, salt: str = "") -> str:
  """'test' for a stable pseudo-random `test_percent`% of speakers, else 'train'.

  A hash (not Python's salted hash()) so every host and every rebuild puts a
  speaker in the same split, and adding speakers never moves existing ones.
  """
  digest = hashlib.sha256(f"{salt}{speaker}".encode()).digest()
  bucket = int.from_bytes(digest[:8], "big") % 10000
  return "test" if bucket < test_percent * 100 else "train"


@dataclasses.dataclass(eq=False)
class LocalCorpusConfig(tfds.core.BuilderConfig):
  """What the builders of a user's own audio (speaker folders, manifests) share: which
  speakers are held out, how silence is trimmed, how many files are read at once."""
  test_percent: float = 10.0
  test_speakers: tuple[str, ...] = ()
  split_salt: str = ""
  trim_silence: bool = True
  trim_top_db: float = 40.0
  num_workers: int = 2

  def trim(self) -> audio.TrimOptions:
    return audio.TrimOptions(enabled=self.trim_silence, top_db=self.trim_top_db)


def split_of(config: LocalCorpusConfig, speaker: str) -> str:
  """'test' for listed test_speakers (when given) or a stable test_percent% of speakers."""
  if config.test_speakers:
    return "test" if speaker in config.test_speakers else "train"
  return split_of_speaker(speaker, config.test_percent, config.split_salt)


def group_by_split(config: LocalCorpusConfig, items: list, what: str) -> dict[str, list]:
  """{split: the items (anything with .speaker) of its speakers}; a split left empty is an
  error naming ``what`` (e.g. "speaker_folders/x: no audio file of '/data'")."""
  by_split = {split: [] for split in SPLITS}
  for item in items:
    by_split[split_of(config, item.speaker)].append(item)
  for split, found in by_split.items():
    if not found:
      raise ValueError(
          f"{what} falls in split {split!r} ({len({i.speaker for i in items})} speakers, "
          f"{len(items)} items found, test_percent={config.test_percent}, "
          f"test_speakers={config.test_speakers})")
  return by_split


@dataclasses.dataclass(frozen=True)
class PreparedAudio:
  """16 kHz int16 audio plus what it took to get there."""
  audio: np.ndarray
  cut_start_s: float
  cut_end_s: float
  orig_sample_rate: int
  orig_channels: int


def prepare(wav: np.ndarray, sample_rate: int, trim: audio.TrimOptions) -> PreparedAudio:
  """Float audio (samples,) or (samples, channels) at any rate -> trimmed int16 at 16 kHz.

  Raises ValueError with the reason for audio inference would refuse too
  (``audio.speech_16k``: bad sample rate, non-finite, too short, silent); callers
  report that input as skipped.
  """
  speech, (start, end), n = audio.speech_16k(wav, sample_rate, trim)
  channels = 1 if np.ndim(wav) == 1 else np.shape(wav)[1]
  return PreparedAudio(audio.to_int16(speech), start / SAMPLE_RATE, (n - end) / SAMPLE_RATE,
                       int(sample_rate), channels)


def ordered_map(fn, items, num_workers: int):
  """Yields fn(item) in input order from a thread pool, at most 4*num_workers ahead.

  Threads suffice: the work is espeak-ng subprocesses and libsndfile/SciPy
  calls that release the GIL, and TensorFlow-loaded processes must not fork.
  The window bounds memory when the consumer (the TFDS writer) is slower.
  """
  with concurrent.futures.ThreadPoolExecutor(max(1, num_workers)) as pool:
    pending = collections.deque()
    for item in items:
      pending.append(pool.submit(fn, item))
      if len(pending) >= 4 * max(1, num_workers):
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def package_versions(root: str) -> dict[str, str]:
  """{package: version} of the Debian packages a fetch script (apt_private.sh) unpacked into
  `root`, from its packages.txt; {} where there is none (a system-wide install)."""
  listing = os.path.join(root, "packages.txt")
  if not os.path.isfile(listing):
    return {}
  with open(listing) as f:
    return dict(line.split(maxsplit=1) for line in f.read().split("\n") if line.strip())


def run_writing(cmd: list[str], output: str, error: type[Exception], env=None,
                timeout_s: float = 120) -> None:
  """Runs a synthesiser's command line that writes the file `output`; `error` names the
  command and why when it times out, fails or writes nothing."""
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
  except subprocess.TimeoutExpired as e:
    raise error(f"{' '.join(cmd)} did not finish in {timeout_s:g} s") from e
  if proc.returncode != 0 or not os.path.exists(output):
    raise error(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()}")


def reported_examples(report: "BuildReport", split: str, results):
  """TFDS (key, example) pairs of synthesised utterances, each reported: `results` yields
  (speaker, utterance, source, text, prepared, error); an error is reported as skipped."""
  for speaker, utterance, source, text, prepared, error in results:
    if error is not None:
      report.skip(f"{source} {text!r}", error)
      continue
    report.add(split, speaker, utterance, source, prepared)
    yield utterance, {"audio": prepared.audio, "speaker": speaker, "utterance": utterance,
                      "text": text}


class BuildReport:
  """Collects skipped inputs and trimming amounts; written next to the data.

  The file is `<data_dir>/<name>/<config>/<version>/build_report.json`.
  """

  def __init__(self, dataset: str):
    self.dataset = dataset
    self.skipped: list[dict[str, str]] = []
    self.utterances: list[dict[str, object]] = []
    self.extra: dict[str, object] = {}
    self._start = time.monotonic()

  def skip(self, path: str, reason: str, line: str | None = None) -> None:
    """Records a skipped input; ``line`` ("wav.scp:7") is where a manifest named it."""
    log.warning("Skipping %s%s: %s", path, f" ({line})" if line else "", reason)
    self.skipped.append({"path": os.fspath(path), "reason": reason,
                         **({"line": line} if line else {})})

  def add(self, split: str, speaker: str, utterance: str, source: str,
          prepared: PreparedAudio) -> None:
    self.utterances.append({
        "split": split, "speaker": speaker, "utterance": utterance,
        "source": source, "seconds": len(prepared.audio) / SAMPLE_RATE,
        "cut_start_s": prepared.cut_start_s, "cut_end_s": prepared.cut_end_s,
        "orig_sample_rate": prepared.orig_sample_rate,
        "orig_channels": prepared.orig_channels,
    })

  def summary(self) -> dict[str, object]:
    out: dict[str, object] = {"dataset": self.dataset,
                              "build_seconds": round(time.monotonic() - self._start, 2),
                              "num_skipped": len(self.skipped)}
    for split in dict.fromkeys([*SPLITS, *(str(u["split"]) for u in self.utterances)]):
      rows = [u for u in self.utterances if u["split"] == split]
      out[f"{split}_examples"] = len(rows)
      out[f"{split}_speakers"] = sorted({str(u["speaker"]) for u in rows})
      out[f"{split}_seconds"] = round(sum(float(u["seconds"]) for u in rows), 3)
    out["total_cut_start_s"] = round(sum(float(u["cut_start_s"]) for u in self.utterances), 3)
    out["total_cut_end_s"] = round(sum(float(u["cut_end_s"]) for u in self.utterances), 3)
    out["resampled_files"] = sum(u["orig_sample_rate"] != SAMPLE_RATE for u in self.utterances)
    out["mixed_down_files"] = sum(int(u["orig_channels"]) > 1 for u in self.utterances)
    return out

  def write(self, directory: os.PathLike | str, final_directory: os.PathLike | str) -> None:
    """Writes into `directory`, logging the path it will have in `final_directory`."""
    body = {**self.summary(), **self.extra, "skipped": self.skipped,
            "utterances": self.utterances}
    with open(os.path.join(os.fspath(directory), REPORT_FILENAME), "w") as f:
      json.dump(body, f, indent=1)
    log.warning("%s: %d examples written, %d inputs skipped (report: %s)",
                self.dataset, len(self.utterances), len(self.skipped),
                os.path.join(os.fspath(final_directory), REPORT_FILENAME))


def read_report(builder: tfds.core.DatasetBuilder) -> dict:
  """The build report of a prepared builder (also works on read-only builders)."""
  with open(os.path.join(os.fspath(builder.data_dir), REPORT_FILENAME)) as f:
    return json.load(f)


class ReportingBuilder:
  """Mixin for GeneratorBasedBuilders: owns a BuildReport, writes it after the splits.

  Written inside TFDS's temporary build directory, so the report appears
  atomically with the data (and not at all when the build fails).
  """

  report: BuildReport

  def _download_and_prepare(self, dl_manager, download_config=None):
    self.report = BuildReport(f"{self.name}/{self.builder_config.name}/{self.version}")
    super()._download_and_prepare(dl_manager, download_config)
    # self.data_dir is TFDS's temporary `incomplete.*` sibling of the final
    # `<data_dir>/<name>/<config>/<version>` until the build succeeds.
    final = os.path.join(os.path.dirname(os.path.normpath(self.data_dir)), str(self.version))
    self.report.write(self.data_dir, final)
