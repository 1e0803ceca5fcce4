"""Reading, converting and trimming speech audio with NumPy, SciPy and soundfile.

The TFDS builders use this module at build time and the inference path uses it
on hosts without TensorFlow, so both see the same decoding, resampling and
silence trimming. Audio is float32 in [-1, 1) everywhere; int16 only on disk.
"""

from __future__ import annotations

import dataclasses
import io
import math
import os
import struct
from typing import BinaryIO

import numpy as np
import scipy.signal
import soundfile as sf

from ge2e_jax.features import SAMPLE_RATE

INT16_SCALE = 32768.0

# File extensions of the container formats libsndfile reads, by its format name. Left out:
# RAW (headerless), MAT4/MAT5 (.mat is any MATLAB data) and SD2 (needs a resource fork).
_EXTENSIONS_BY_FORMAT = {
    "WAV": (".wav",), "WAVEX": (".wav",), "RF64": (".rf64",), "W64": (".w64",),
    "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aiff", ".aif", ".aifc"), "CAF": (".caf",), "AU": (".au", ".snd"),
    "NIST": (".sph", ".nist"), "IRCAM": (".sf",), "HTK": (".htk",), "VOC": (".voc",),
    "AVR": (".avr",), "PAF": (".paf",), "PVF": (".pvf",), "SVX": (".8svx", ".iff"),
    "WVE": (".wve",), "MPC2K": (".mpc2k",), "XI": (".xi",), "SDS": (".sds",),
}


def _readable_extensions() -> tuple[str, ...]:
  """Extensions of the formats the installed libsndfile reads (mp3 needs libsndfile >= 1.1)."""
  available = sf.available_formats()
  return tuple(sorted({ext for fmt, exts in _EXTENSIONS_BY_FORMAT.items() if fmt in available
                       for ext in exts}))


AUDIO_EXTENSIONS = _readable_extensions()


@dataclasses.dataclass(frozen=True)
class TrimOptions:
  """Energy-VAD settings (see ``trim_silence``); ``enabled=False`` keeps everything.

  The builders and ``ge2e_jax.inference`` both trim with this, so training data and
  served audio are cut alike.
  """
  enabled: bool = True
  top_db: float = 40.0
  frame_ms: float = 20.0
  pad_ms: float = 40.0

  def apply(self, wav: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """16 kHz mono -> (trimmed, (start, end)) with trimmed == wav[start:end]."""
    if not self.enabled:
      return wav, (0, len(wav))
    return trim_silence(wav, SAMPLE_RATE, self.top_db, self.frame_ms, self.pad_ms)


class AudioReadError(ValueError):
  """A file that cannot be used as audio; says which file and why."""

  def __init__(self, path: str | os.PathLike, reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"{self.path}: {reason}")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """Returns (float32 mono waveform, sample rate) of a file libsndfile reads (AUDIO_EXTENSIONS).

  Raises AudioReadError for a missing, unreadable, empty, truncated or
  non-audio file, and for one holding NaN or infinite samples.
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise AudioReadError(path, "no such file")
  try:
    f = open(path, "rb")
  except OSError as e:
    raise AudioReadError(path, f"cannot open ({e.strerror})") from e
  with f:
    return _read(f, path)


def decode_audio(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, int]:
  """Like read_audio, for the encoded bytes of a file (`name` is for errors)."""
  return _read(io.BytesIO(data), name)


def _read(fobj: BinaryIO, name: str) -> tuple[np.ndarray, int]:
  size = fobj.seek(0, io.SEEK_END)
  fobj.seek(0)
  if size == 0:
    raise AudioReadError(name, "empty file (0 bytes)")
  _check_wav_complete(fobj, size, name)
  fobj.seek(0)
  try:
    with sf.SoundFile(fobj) as snd:
      sample_rate, declared = snd.samplerate, snd.frames
      wav = snd.read(dtype="float32", always_2d=True)
  except (sf.LibsndfileError, RuntimeError, TypeError) as e:
    raise AudioReadError(name, f"not a readable audio file ({e})") from e
  if wav.shape[0] == 0:
    raise AudioReadError(name, "no audio samples")
  if wav.shape[0] < declared:
    raise AudioReadError(
        name, f"truncated: header declares {declared} frames, read {wav.shape[0]}")
  if not np.all(np.isfinite(wav)):
    raise AudioReadError(name, "contains NaN or infinite samples")
  return to_mono(wav), sample_rate


def _check_wav_complete(fobj: BinaryIO, size: int, name: str) -> None:
  """Raises if a RIFF/WAVE file's data chunk runs past the end of the file.

  libsndfile silently shortens such files; a cut-off download must not pass as
  a short utterance. Streamed wavs (data size 0 or 0xFFFFFFFF) are accepted.
  """
  header = fobj.read(12)
  if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
    return
  pos = 12
  while pos + 8 <= size:
    fobj.seek(pos)
    chunk_id, chunk_size = struct.unpack("<4sI", fobj.read(8))
    if chunk_id == b"data":
      if chunk_size not in (0, 0xFFFFFFFF) and pos + 8 + chunk_size > size:
        raise AudioReadError(
            name, f"truncated: data chunk declares {chunk_size} bytes, "
            f"file holds {size - pos - 8}")
      return
    pos += 8 + chunk_size + (chunk_size & 1)
  raise AudioReadError(name, "truncated: WAV file has no data chunk")


def to_mono(wav: np.ndarray) -> np.ndarray:
  """Averages the channels of a (samples, channels) array; 1-D passes through."""
  wav = np.asarray(wav, dtype=np.float32)
  if wav.ndim == 1:
    return wav
  if wav.ndim != 2:
    raise ValueError(f"expected (samples,) or (samples, channels), got {wav.shape}")
  return wav.mean(axis=1, dtype=np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  """Polyphase resampling along axis 0 by the gcd-reduced ratio target/orig."""
  if orig_sr <= 0 or target_sr <= 0:
    raise ValueError(f"sample rates must be positive, got {orig_sr} -> {target_sr}")
  wav = np.asarray(wav, dtype=np.float32)
  if orig_sr == target_sr:
    return wav.copy()
  g = math.gcd(orig_sr, target_sr)
  out = scipy.signal.resample_poly(wav, target_sr // g, orig_sr // g, axis=0)
  return out.astype(np.float32)


def trim_silence(
    wav: np.ndarray,
    sample_rate: int,
    top_db: float = 40.0,
    frame_ms: float = 20.0,
    pad_ms: float = 40.0,
) -> tuple[np.ndarray, tuple[int, int]]:
  """Cuts leading and trailing silence with an energy voice-activity detector.

  A frame is speech when its RMS is within `top_db` of the loudest frame's;
  everything before the first and after the last speech frame is cut, keeping
  `pad_ms` of context on each side. Returns (trimmed, (start, end)) with
  trimmed == wav[start:end]; an all-zero input gives an empty array.
  """
  wav = np.asarray(wav, dtype=np.float32)
  if wav.ndim != 1:
    raise ValueError(f"trim_silence expects mono audio, got shape {wav.shape}")
  frame = max(1, int(round(sample_rate * frame_ms / 1000)))
  pad = int(round(sample_rate * pad_ms / 1000))
  n_frames = -(-len(wav) // frame)
  padded = np.zeros(n_frames * frame, np.float64)
  padded[:len(wav)] = wav
  rms = np.sqrt(np.mean(padded.reshape(n_frames, frame) ** 2, axis=1))
  if n_frames == 0 or rms.max() == 0.0:
    return wav[:0], (0, 0)
  loud = np.flatnonzero(rms >= rms.max() * 10.0 ** (-top_db / 20.0))
  start = max(0, loud[0] * frame - pad)
  end = min(len(wav), (loud[-1] + 1) * frame + pad)
  return wav[start:end], (int(start), int(end))


def to_16k_mono(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  """(samples,) or (samples, channels) float audio at any rate -> 16 kHz mono float32."""
  return resample(to_mono(wav), int(sample_rate), SAMPLE_RATE)


def to_int16(wav: np.ndarray) -> np.ndarray:
  """float in [-1, 1) -> int16, rounding and clipping out-of-range samples."""
  scaled = np.round(np.asarray(wav, dtype=np.float64) * INT16_SCALE)
  return np.clip(scaled, -32768, 32767).astype(np.int16)


def from_int16(wav: np.ndarray) -> np.ndarray:
  """int16 -> float32 in [-1, 1)."""
  return np.asarray(wav, dtype=np.int16).astype(np.float32) / INT16_SCALE
