"""A speaker-partitioned int16 cache of one corpus split, so RAM does not bound the corpus.

Built once per split from any prepared corpus (``data_pipelines.corpus``), e.g. on shared
storage before a multi-host job (``python -m data_pipelines.build_cache``), then opened
read-only by every host. A cache is a directory ``<cache_dir>/<name with / as __>/<split>/``:

  audio.i16      the split's audio, int16 rows of HOP_LENGTH (160) samples: speakers in
                 sorted-name order, each speaker's utterances contiguous in sorted-name order,
                 each utterance from a row start (its last row zero-padded)
  index.npz      per speaker: name, first utterance, number of utterances; per utterance:
                 name, first row, length in samples (names as UTF-8 blobs + end offsets)
  manifest.json  corpus name/config/version and fingerprint, split, sample rate, hop, dtype,
                 numbers of speakers/utterances/rows/samples, audio bytes and CRC-32, index
                 SHA-256, build time

A host reads the index (tens of bytes per utterance) and then only its own speakers' rows
(``Cache.read_speakers``): ``in_memory=True`` reads their byte ranges whole into RAM
(``MemoryRows``; start-up reads ~1/P of the split), ``in_memory=False`` leaves them on disk
(``DiskRows``) and each batch ``pread``s its crops (start-up reads the index only; RAM holds
the index, not the audio). Both give the same crops through ``Rows.crops``. Reads go through
``pread`` rather than ``mmap`` so the file's pages sit in the kernel's page cache, which can
drop them, not in the process's resident set.

Building streams the split twice through disk (arrival order into a scratch file, then
sorted by speaker into ``audio.i16``), holding one utterance and the index in RAM, in a
``.tmp-<pid>`` sibling directory renamed into place only when complete: an interrupted build
leaves no cache, and a cache being replaced stays valid until the new one is whole.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from typing import Iterable

import numpy as np

from ge2e_jax import progress
from ge2e_jax.features import HOP_LENGTH, SAMPLE_RATE

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
AUDIO_FILE, INDEX_FILE, MANIFEST_FILE = "audio.i16", "index.npz", "manifest.json"
ROW_BYTES = HOP_LENGTH * 2
_COPY_CHUNK = 64 << 20  # bytes per read when streaming whole files


def cache_path(cache_dir: str, name: str, split: str) -> str:
  """Where the cache of corpus `name` / `split` lives under `cache_dir`."""
  return os.path.join(cache_dir, name.replace("/", "__"), split)


def build_command(name: str, split: str, data_dir: str | None, cache_dir: str) -> str:
  return (f"python -m data_pipelines.build_cache --corpus={name} --split={split} "
          f"--data_dir={data_dir or ''} --cache_dir={cache_dir}")


def corpus_identity(builder) -> dict:
  """Name, config, version and a fingerprint of a prepared TFDS builder's splits.

  The fingerprint hashes every split's example count per shard and byte size, so a corpus
  rebuilt with other contents (files added or dropped, other trimming or TFDS version) no
  longer matches; a rebuild with byte-identical records matches, as it should.
  """
  info = builder.info
  splits = sorted((s.name, int(s.num_bytes), [int(n) for n in s.shard_lengths])
                  for s in info.splits.values())
  payload = {"name": builder.name, "version": str(info.version),
             "config": builder.builder_config.name if builder.builder_config else "",
             "splits": splits}
  digest = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
  return {"name": builder.name, "config": payload["config"], "version": payload["version"],
          "fingerprint": digest}


def _pack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
  encoded = [n.encode() for n in names]
  blob = np.frombuffer(b"".join(encoded), np.uint8)
  return blob, np.cumsum([len(e) for e in encoded], dtype=np.int64)


def _unpack(blob: np.ndarray, ends: np.ndarray, which) -> list[str]:
  """The packed strings at positions `which`."""
  raw = memoryview(blob)
  return [bytes(raw[(ends[i - 1] if i else 0):ends[i]]).decode() for i in which]


def _sha256(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    while chunk := f.read(_COPY_CHUNK):
      digest.update(chunk)
  return digest.hexdigest()


def write_cache(examples: Iterable[tuple[str, str, np.ndarray]], path: str, *, corpus: dict,
                split: str, overwrite: bool = False) -> dict:
  """Streams `(speaker, utterance, int16 audio)` examples into a cache at `path`.

  corpus: `corpus_identity(builder)` of the source (recorded in the manifest).
  Returns the manifest. Fails before writing anything if `path` holds a cache and not
  `overwrite`; on any error the partial build is removed and `path` is left as it was.
  """
  path = os.path.abspath(path)
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"speaker cache {path} exists; pass overwrite=True (--overwrite) to "
                          f"rebuild it")
  start = time.perf_counter()
  tmp = f"{path}.tmp-{os.getpid()}"
  shutil.rmtree(tmp, ignore_errors=True)
  os.makedirs(tmp)
  try:
    manifest = _write(examples, tmp, corpus=corpus, split=split)
    manifest["build_seconds"] = round(time.perf_counter() - start, 3)
    _write_json(os.path.join(tmp, MANIFEST_FILE), manifest)
    _replace_dir(tmp, path)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  log.info("speaker cache %s: %d speakers, %d utterances, %.1f h of audio in %.1f s", path,
           manifest["num_speakers"], manifest["num_utterances"],
           manifest["num_samples"] / SAMPLE_RATE / 3600, manifest["build_seconds"])
  return manifest


def _write(examples, tmp: str, *, corpus: dict, split: str) -> dict:
  """Both passes into `tmp` (see module docstring); returns the manifest without timing."""
  scratch = os.path.join(tmp, "arrival_order.i16")
  speakers, utterances, rows_at, lengths = [], [], [], []
  at = 0
  with open(scratch, "wb") as f:
    for speaker, utterance, audio in examples:
      audio = np.asarray(audio)
      if audio.dtype != np.int16 or audio.ndim != 1:
        raise ValueError(f"utterance {utterance!r}: audio must be 1-D int16, got "
                         f"{audio.dtype} {audio.shape}")
      if audio.size == 0:
        raise ValueError(f"utterance {utterance!r} of speaker {speaker!r} has no audio samples")
      rows = -(-audio.size // HOP_LENGTH)
      f.write(audio.tobytes())
      f.write(bytes(2 * (rows * HOP_LENGTH - audio.size)))
      speakers.append(speaker)
      utterances.append(utterance)
      rows_at.append(at)
      lengths.append(audio.size)
      at += rows
  if not utterances:
    raise ValueError(f"split {split!r} of corpus {corpus['name']!r} has no utterances")
  if len(set(utterances)) != len(utterances):
    dup = next(u for u in sorted(utterances) if utterances.count(u) > 1)
    raise ValueError(f"utterance names must be unique in split {split!r}; {dup!r} repeats")
  order = sorted(range(len(utterances)), key=lambda u: (speakers[u], utterances[u]))
  lengths = np.array(lengths, np.int64)
  num_rows = -(-lengths // HOP_LENGTH)
  crc = 0
  with open(scratch, "rb") as src, open(os.path.join(tmp, AUDIO_FILE), "wb") as dst:
    for u in order:
      data = os.pread(src.fileno(), int(num_rows[u]) * ROW_BYTES, rows_at[u] * ROW_BYTES)
      crc = zlib.crc32(data, crc)
      dst.write(data)
    dst.flush()
    os.fsync(dst.fileno())
  os.remove(scratch)

  sorted_speakers = [speakers[u] for u in order]
  names, first = [], []
  for i, s in enumerate(sorted_speakers):
    if not names or names[-1] != s:
      names.append(s)
      first.append(i)
  first = np.array(first, np.int64)
  ordered_rows = num_rows[order]
  speaker_blob, speaker_ends = _pack(names)
  utterance_blob, utterance_ends = _pack([utterances[u] for u in order])
  index_path = os.path.join(tmp, INDEX_FILE)
  with open(index_path, "wb") as f:
    np.savez(f, speaker_names=speaker_blob, speaker_name_ends=speaker_ends,
             speaker_first_utterance=first,
             speaker_num_utterances=np.diff(np.append(first, len(order))),
             utterance_names=utterance_blob, utterance_name_ends=utterance_ends,
             utterance_row=np.concatenate([[0], np.cumsum(ordered_rows)[:-1]]).astype(np.int64),
             utterance_length=lengths[order])
  total_rows = int(ordered_rows.sum())
  return {"format_version": FORMAT_VERSION, "corpus": corpus, "split": split,
          "sample_rate": SAMPLE_RATE, "hop_length": HOP_LENGTH, "dtype": "int16",
          "num_speakers": len(names), "num_utterances": len(order), "num_rows": total_rows,
          "num_samples": int(lengths.sum()), "audio_bytes": total_rows * ROW_BYTES,
          "audio_crc32": crc, "index_sha256": _sha256(index_path),
          "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def _write_json(path: str, value: dict) -> None:
  with open(path, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())


def _replace_dir(tmp: str, path: str) -> None:
  """Renames `tmp` to `path`; an existing `path` is moved aside first and removed after."""
  old = None
  if os.path.exists(path):
    old = f"{path}.old-{os.getpid()}"
    os.rename(path, old)
  os.rename(tmp, path)
  if old:
    shutil.rmtree(old)


def build_from_corpus(name: str, split: str, cache_dir: str, data_dir: str | None = None, *,
                      overwrite: bool = False) -> dict:
  """Builds the cache of prepared corpus `name` / `split` under `cache_dir`; the manifest."""
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TF only here

  builder = corpus.builder(name, data_dir)
  identity = corpus_identity(builder)
  identity["name"] = name  # with its config, as training names it
  total = builder.info.splits[split].num_examples if split in builder.info.splits else None

  def examples():
    with progress.Progress(f"cache {name}:{split}", total=total, unit="utterances") as bar:
      for ex in corpus.open_split(name, split, data_dir).as_numpy_iterator():
        yield ex["speaker"].decode(), ex["utterance"].decode(), ex["audio"]
        bar.advance()

  return write_cache(examples(), cache_path(cache_dir, name, split), corpus=identity,
                     split=split, overwrite=overwrite)


@dataclasses.dataclass(frozen=True)
class Cache:
  """An opened, checked cache: its directory, manifest and index arrays (all speakers)."""
  path: str
  manifest: dict
  index: dict

  @property
  def audio_path(self) -> str:
    return os.path.join(self.path, AUDIO_FILE)

  def speaker_names(self) -> list[str]:
    ends = self.index["speaker_name_ends"]
    return _unpack(self.index["speaker_names"], ends, range(ends.size))

  def utterance_names(self, utterances: np.ndarray) -> list[str]:
    """Names of the utterances at positions `utterances` (speaker-sorted order)."""
    return _unpack(self.index["utterance_names"], self.index["utterance_name_ends"],
                   utterances)

  def speaker_counts(self) -> dict[str, int]:
    """{speaker name: number of utterances} of every speaker of the split."""
    return dict(zip(self.speaker_names(), self.index["speaker_num_utterances"].tolist()))

  def read_speakers(self, speakers: list[str], *, in_memory: bool):
    """`speakers`' utterances, each speaker's in sorted-name order, as `(utterances per
    speaker, utterance names, first rows, lengths in samples, Rows)`.

    in_memory: the cache read whole for these speakers (their byte ranges copied into a
    `MemoryRows`, one read per speaker); else the file's `DiskRows` (nothing read here).
    """
    index = self.index
    position = {name: k for k, name in enumerate(self.speaker_names())}
    which = [position[s] for s in speakers]
    first = index["speaker_first_utterance"][which]
    num = index["speaker_num_utterances"][which].astype(np.int64)
    utterance = np.concatenate([np.zeros(0, np.int64)]
                               + [np.arange(f, f + c) for f, c in zip(first, num)])
    lengths = index["utterance_length"][utterance]
    file_rows = index["utterance_row"][utterance]
    audio, rows = DiskRows(self.audio_path, self.manifest["num_rows"]), file_rows
    if in_memory:
      disk = audio

      def fill(array, starts):  # a speaker's utterances are contiguous rows of the file
        ends = starts + -(-lengths // HOP_LENGTH)
        for at, count in zip(np.cumsum(num) - num, num):
          disk.read(array[starts[at]:ends[at + count - 1]], int(file_rows[at]))

      audio, rows = memory_rows(lengths, fill)
    return num, self.utterance_names(utterance), rows, lengths, audio


def open_cache(cache_dir: str, name: str, split: str, *, data_dir: str | None = None,
               check_corpus: bool = True) -> Cache:
  """Opens the cache of `name` / `split`, with a clear error for anything that does not fit.

  Checks: it exists and is complete; it was built for this corpus, split, sample rate and hop;
  the index matches its checksum; the audio file has the size the manifest says (a truncated
  copy fails here). With `check_corpus`, the prepared corpus at `data_dir` (when there is one)
  must be the one the cache was built from (else the cache is stale).
  """
  path = cache_path(cache_dir, name, split)
  rebuild = build_command(name, split, data_dir, cache_dir)
  manifest_path = os.path.join(path, MANIFEST_FILE)
  if not os.path.isfile(manifest_path):
    raise FileNotFoundError(f"no speaker cache for corpus {name!r} split {split!r}: "
                            f"{manifest_path} is missing; build it with: {rebuild}")
  try:
    with open(manifest_path) as f:
      manifest = json.load(f)
  except (OSError, ValueError) as err:
    raise ValueError(f"speaker cache manifest {manifest_path} is unreadable ({err}); rebuild "
                     f"with: {rebuild} --overwrite") from None
  expected = {"format_version": FORMAT_VERSION, "split": split, "sample_rate": SAMPLE_RATE,
              "hop_length": HOP_LENGTH, "dtype": "int16"}
  for key, want in expected.items():
    if manifest.get(key) != want:
      raise ValueError(f"speaker cache {path} was built for {key}={manifest.get(key)!r}, not "
                       f"{want!r}; rebuild with: {rebuild} --overwrite")
  built_for = manifest.get("corpus", {}).get("name")
  if built_for != name:
    raise ValueError(f"speaker cache {path} was built for corpus {built_for!r}, not {name!r}")
  index_path = os.path.join(path, INDEX_FILE)
  if not os.path.isfile(index_path):
    raise FileNotFoundError(f"speaker cache index {index_path} is missing; rebuild with: "
                            f"{rebuild} --overwrite")
  if _sha256(index_path) != manifest["index_sha256"]:
    raise ValueError(f"speaker cache index {index_path} does not match the checksum in "
                     f"{manifest_path} (changed or partly copied); rebuild with: "
                     f"{rebuild} --overwrite")
  audio_path = os.path.join(path, AUDIO_FILE)
  size = os.path.getsize(audio_path) if os.path.isfile(audio_path) else None
  if size != manifest["audio_bytes"]:
    what = "is missing" if size is None else f"has {size} bytes"
    raise ValueError(f"speaker cache audio {audio_path} {what}, the manifest says "
                     f"{manifest['audio_bytes']} (truncated or partly copied); rebuild with: "
                     f"{rebuild} --overwrite")
  if check_corpus:
    _check_not_stale(manifest, name, data_dir, path, rebuild)
  with np.load(index_path, allow_pickle=False) as npz:
    index = {k: npz[k] for k in npz.files}
  return Cache(path, manifest, index)


def _check_not_stale(manifest, name, data_dir, path, rebuild) -> None:
  from data_pipelines import corpus  # pylint: disable=g-import-not-at-top  # TF only here
  try:
    builder = corpus.builder(name, data_dir)
  except (FileNotFoundError, ValueError) as err:
    log.warning("speaker cache %s: cannot check it against corpus %r, which is not prepared "
                "here (%s); trusting the cache", path, name, str(err).splitlines()[0])
    return
  now, then = corpus_identity(builder), manifest["corpus"]
  if (now["version"], now["fingerprint"]) != (then.get("version"), then.get("fingerprint")):
    raise ValueError(
        f"speaker cache {path} is stale: corpus {name!r} at {builder.data_dir} (version "
        f"{now['version']}, fingerprint {now['fingerprint'][:12]}) is not the one it was built "
        f"from (version {then.get('version')}, fingerprint {str(then.get('fingerprint'))[:12]})"
        f"; rebuild with: {rebuild} --overwrite")


def verify_audio(cache: Cache) -> None:
  """Reads the whole audio file and checks its CRC-32 against the manifest (slow: all bytes)."""
  crc = 0
  with open(cache.audio_path, "rb") as f:
    while chunk := f.read(_COPY_CHUNK):
      crc = zlib.crc32(chunk, crc)
  if crc != cache.manifest["audio_crc32"]:
    raise ValueError(f"speaker cache audio {cache.audio_path} has CRC-32 {crc}, the manifest "
                     f"says {cache.manifest['audio_crc32']}: it is corrupt; rebuild it")


class Rows:
  """A shard's audio: int16 rows of HOP_LENGTH samples, each utterance from a row start.

  Held in RAM (`MemoryRows`) or left in the cache file (`DiskRows`); `crops`, the one crop
  implementation of every storage, reads through `read` and so yields the same crops from
  either.
  """

  def read(self, out: np.ndarray, row: int) -> None:
    """Fills the contiguous int16 array `out` with the samples from row `row` on."""
    raise NotImplementedError

  def crops(self, first: np.ndarray, row: np.ndarray, size: np.ndarray,
            length) -> np.ndarray:
    """(n, m) crop start rows, utterance first rows and lengths -> (n, m, length) int16.

    A crop that fits is `length` samples from its start row; a shorter utterance is read
    whole and tiled (repeated) from its start to `length`.
    """
    length = int(length)
    out = np.empty(first.shape + (length,), np.int16)
    for at in np.ndindex(first.shape):
      if size[at] >= length:
        self.read(out[at], int(first[at]))
      else:
        whole = np.empty(int(size[at]), np.int16)
        self.read(whole, int(row[at]))
        out[at] = np.resize(whole, length)
    return out


class MemoryRows(Rows):
  """Rows in RAM: a (rows, HOP_LENGTH) int16 array."""

  def __init__(self, array: np.ndarray):
    self.array = array
    self._flat = array.reshape(-1)

  def read(self, out: np.ndarray, row: int) -> None:
    start = row * HOP_LENGTH
    out[...] = self._flat[start:start + out.size].reshape(out.shape)


def memory_rows(lengths: np.ndarray, fill) -> tuple[MemoryRows, np.ndarray]:
  """Utterances of `lengths` samples laid out as rows in RAM, and each one's first row.

  `fill(array, starts)` writes utterance u's samples from row `starts[u]` of the zeroed
  (rows, HOP_LENGTH) int16 `array`.
  """
  rows = -(-lengths // HOP_LENGTH)
  starts = (np.cumsum(rows) - rows).astype(np.int64)
  array = np.zeros([int(rows.sum()), HOP_LENGTH], np.int16)
  fill(array, starts)
  return MemoryRows(array), starts


class DiskRows(Rows):
  """The cache file's rows, read on demand with `pread` (RAM holds none of the audio)."""

  def __init__(self, path: str, num_rows: int):
    self.path, self.num_rows = path, num_rows
    self._fd = os.open(path, os.O_RDONLY)
    # No read-ahead: reads are crops or one speaker's rows, and the kernel's read-ahead would
    # pull in other hosts' speakers (BENCHMARKS.md, "One crop path for every storage").
    os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)

  def __del__(self, close=os.close):  # os may be gone when this runs at interpreter exit
    if getattr(self, "_fd", None) is not None:
      close(self._fd)
      self._fd = None

  def read(self, out: np.ndarray, row: int) -> None:
    offset = row * ROW_BYTES
    view = memoryview(out).cast("B")
    done = 0
    while done < view.nbytes:
      got = os.preadv(self._fd, [view[done:]], offset + done)
      if got == 0:
        raise ValueError(f"speaker cache audio {self.path} ended at byte {offset + done}, "
                         f"before the {view.nbytes} bytes asked for at {offset}: truncated?")
      done += got
