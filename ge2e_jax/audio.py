"""Reading, converting and trimming speech audio with NumPy, SciPy and soundfile.

The TFDS builders use this module at build time and the inference path uses it
on hosts without TensorFlow, so both see the same decoding, resampling and
silence trimming. Audio is float32 in [-1, 1) everywhere; int16 only on disk.

What counts as usable audio is defined here once, for builders and inference alike:
sample rates in [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE], finite samples within
±MAX_ABS_SAMPLE after the channel mix-down, and, after trimming, at least
MIN_SPEECH_SAMPLES samples whose loudest 20 ms frame reaches MIN_SPEECH_DBFS
(``speech_16k``).
"""

from __future__ import annotations

import dataclasses
import io
import math
import numbers
import os
import stat
import struct
from typing import BinaryIO

import numpy as np
import scipy.ndimage
import scipy.signal
import soundfile as sf

from ge2e_jax.features import SAMPLE_RATE, WIN_LENGTH

INT16_SCALE = 32768.0
# Sample rates a file or caller may declare. Bounds the resampler's work and memory: 16 kHz
# output is at most 16x the input's length, and its filter stays small.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
# Usable speech, after silence trimming: one 25 ms log-mel frame at 16 kHz...
MIN_SPEECH_SAMPLES = WIN_LENGTH
# ...whose loudest 20 ms frame, its mean (DC) removed, is at least this loud (RMS re full
# scale 1.0): about 33 int16 steps. ±1 LSB int16 noise is about -92 dB.
MIN_SPEECH_DBFS = -60.0
SPEECH_FRAME_MS = 20.0
# Float audio belongs in [-1, 1]; int16-scaled floats (±32768) still pass. Larger values
# are not audio in any known scaling, and near 1e16 the float32 log-mel power overflows.
MAX_ABS_SAMPLE = 65536.0
# Values decoded per block: memory follows the samples a file really holds, not its header.
_READ_BLOCK_VALUES = 1 << 22

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
  # "energy": ``trim_silence`` (leading and trailing silence); "webrtcvad":
  # ``trim_long_silences``, Resemblyzer's (pauses inside the utterance too; needs webrtcvad).
  method: str = "energy"

  def __post_init__(self):
    _check_trim_settings(self.top_db, self.frame_ms, self.pad_ms)
    if self.method not in TRIM_METHODS:
      raise ValueError(f"trim method must be one of {TRIM_METHODS}, got {self.method!r}")

  def apply(self, wav: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """16 kHz mono -> (trimmed, (start, end)) with trimmed == wav[start:end] ("energy"; for
    "webrtcvad" the first and last kept samples, with pauses between them cut)."""
    if not self.enabled:
      return wav, (0, len(wav))
    if self.method == "webrtcvad":
      return trim_long_silences(wav)
    return trim_silence(wav, SAMPLE_RATE, self.top_db, self.frame_ms, self.pad_ms)


TRIM_METHODS = ("energy", "webrtcvad")


class AudioReadError(ValueError):
  """A file that cannot be used as audio; says which file and why."""

  def __init__(self, path: str | os.PathLike, reason: str):
    self.path = os.fspath(path)
    self.reason = reason
    super().__init__(f"{self.path}: {reason}")


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """Returns (float32 mono waveform, sample rate) of a file libsndfile reads (AUDIO_EXTENSIONS).

  Raises AudioReadError for a missing, unreadable, empty, truncated or
  non-audio file, for one that is not a regular file (a FIFO or device is
  never read), for a sample rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE]
  and for one holding NaN or infinite samples.
  """
  wav, sample_rate = read_audio_channels(path)
  return to_mono(wav), sample_rate


def read_audio_channels(path: str | os.PathLike) -> tuple[np.ndarray, int]:
  """Like read_audio, keeping the channels: ((samples, channels) float32, sample rate)."""
  path = os.fspath(path)
  with _open_regular_file(path) as f:
    return _read(f, path)


def decode_audio(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, int]:
  """Like read_audio, for the encoded bytes of a file (`name` is for errors)."""
  wav, sample_rate = decode_audio_channels(data, name)
  return to_mono(wav), sample_rate


def decode_audio_channels(data: bytes, name: str = "<bytes>") -> tuple[np.ndarray, int]:
  """Like read_audio_channels, for the encoded bytes of a file (`name` is for errors)."""
  return _read(io.BytesIO(data), name)


def _open_regular_file(path: str) -> BinaryIO:
  """Opens a regular file for reading; AudioReadError for anything else, without blocking.

  Checked before opening (opening a device can have effects) and again on the open file
  (the path may change in between); O_NONBLOCK keeps a FIFO from blocking the open.
  """
  try:
    kind = _file_kind(os.stat(path).st_mode)
  except FileNotFoundError:
    raise AudioReadError(
        path, "dangling symbolic link" if os.path.islink(path) else "no such file") from None
  except OSError as e:
    raise AudioReadError(path, f"cannot open ({e.strerror})") from None
  if kind != "regular file":
    raise AudioReadError(path, f"not a regular file (a {kind})")
  try:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
  except OSError as e:
    raise AudioReadError(path, f"cannot open ({e.strerror})") from None
  kind = _file_kind(os.fstat(fd).st_mode)
  if kind != "regular file":
    os.close(fd)
    raise AudioReadError(path, f"not a regular file (a {kind})")
  os.set_blocking(fd, True)
  return os.fdopen(fd, "rb")


def _file_kind(mode: int) -> str:
  for test, kind in ((stat.S_ISREG, "regular file"), (stat.S_ISDIR, "directory"),
                     (stat.S_ISFIFO, "FIFO"), (stat.S_ISCHR, "character device"),
                     (stat.S_ISBLK, "block device"), (stat.S_ISSOCK, "socket")):
    if test(mode):
      return kind
  return "special file"


def _read(fobj: BinaryIO, name: str) -> tuple[np.ndarray, int]:
  """(samples, channels) float32 and the sample rate of an open file; AudioReadError if unusable."""
  size = fobj.seek(0, io.SEEK_END)
  fobj.seek(0)
  if size == 0:
    raise AudioReadError(name, "empty file (0 bytes)")
  _check_wav_complete(fobj, size, name)
  fobj.seek(0)
  _check_ogg_complete(fobj, size, name)
  fobj.seek(0)
  try:
    snd = sf.SoundFile(fobj)
  except Exception as e:  # libsndfile's, or soundfile's own checks: the file is not usable.
    raise AudioReadError(name, f"not a readable audio file ({_sf_message(e)})") from e
  with snd:
    sample_rate, channels, declared = snd.samplerate, snd.channels, snd.frames
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
      raise AudioReadError(name, f"header declares a sample rate of {sample_rate} Hz; expected "
                           f"{MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    block = max(1, _READ_BLOCK_VALUES // channels)
    blocks = []
    try:
      # Explicit block sizes: decoders soundfile calls non-seekable (GSM 6.10, G.721) need
      # them, and a header declaring billions of frames allocates nothing up front.
      while len(chunk := snd.read(block, dtype="float32", always_2d=True)):
        blocks.append(chunk)
    except MemoryError:
      raise AudioReadError(name, "too large to decode in memory") from None
    except Exception as e:  # A decoder error part way through the file.
      raise AudioReadError(
          name, f"not a readable audio file (decoding failed: {_sf_message(e)})") from e
  if not blocks:
    raise AudioReadError(name, "no audio samples")
  wav = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
  if wav.shape[0] < declared:
    raise AudioReadError(
        name, f"truncated: header declares {declared} frames, read {wav.shape[0]}")
  if not np.all(np.isfinite(wav)):
    raise AudioReadError(name, "contains NaN or infinite samples")
  return wav, sample_rate


def _sf_message(error: Exception) -> str:
  """libsndfile's own words, without soundfile's "Error opening <file object>:" prefix."""
  return getattr(error, "error_string", None) or str(error)


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


def _check_ogg_complete(fobj: BinaryIO, size: int, name: str) -> None:
  """Raises if an Ogg file (Vorbis, Opus, FLAC in Ogg) is cut off.

  Walks the pages: each must fit in the file, and the last must carry the end-of-stream
  flag. libsndfile otherwise returns the audio of the complete pages as if that were all.
  """
  pos, end_of_stream = 0, False
  while pos < size:
    fobj.seek(pos)
    header = fobj.read(27)
    if header[:4] != b"OggS":
      if pos == 0 or end_of_stream:
        return  # Not Ogg, or trailing bytes after a finished stream.
      raise AudioReadError(name, f"truncated or corrupt: no Ogg page at byte {pos} of {size}")
    if len(header) < 27:
      raise AudioReadError(name, f"truncated: Ogg page header at byte {pos} is cut off")
    segments = fobj.read(header[26])
    if len(segments) < header[26]:
      raise AudioReadError(name, f"truncated: Ogg page header at byte {pos} is cut off")
    end_of_stream = bool(header[5] & 0x04)
    pos += 27 + len(segments) + sum(segments)
    if pos > size:
      raise AudioReadError(name, f"truncated: Ogg page ends at byte {pos}, file holds {size}")
  if not end_of_stream:
    raise AudioReadError(name, "truncated: Ogg stream ends without its end-of-stream page")


def to_mono(wav: np.ndarray) -> np.ndarray:
  """Averages the channels of a (samples, channels) array; 1-D passes through."""
  wav = np.asarray(wav, dtype=np.float32)
  if wav.ndim == 1:
    return wav
  if wav.ndim != 2:
    raise ValueError(f"expected (samples,) or (samples, channels), got {wav.shape}")
  if wav.shape[1] == 0:
    raise ValueError(f"expected (samples, channels) with at least one channel, got {wav.shape}")
  # Summed in float64: two channels near the float32 maximum must not overflow to inf.
  return wav.mean(axis=1, dtype=np.float64).astype(np.float32)


def resample(wav: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
  """Polyphase resampling along axis 0 by the gcd-reduced ratio target/orig."""
  orig_sr, target_sr = check_sample_rate(orig_sr), check_sample_rate(target_sr)
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
  sample_rate = check_sample_rate(sample_rate)
  _check_trim_settings(top_db, frame_ms, pad_ms)
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


def _check_trim_settings(top_db: float, frame_ms: float, pad_ms: float) -> None:
  """ValueError for settings the VAD cannot use (a NaN or negative top_db finds no speech)."""
  for label, value, zero_ok in (("top_db", top_db, False), ("frame_ms", frame_ms, False),
                                ("pad_ms", pad_ms, True)):
    real = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (real and math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
      bound = ">= 0" if zero_ok else "> 0"
      raise ValueError(f"silence trimming: {label} must be a finite number {bound}, got {value!r}")


def check_sample_rate(sample_rate) -> int:
  """`sample_rate` as an int; ValueError unless a whole number in [MIN_, MAX_SAMPLE_RATE] Hz.

  Checked before anything is allocated for it: a rate of 1 Hz would make 16 kHz audio
  16000 times longer, and bools, NaN or inf are mistakes, not rates.
  """
  valid = (isinstance(sample_rate, numbers.Real) and not isinstance(sample_rate, bool)
           and math.isfinite(sample_rate) and sample_rate == int(sample_rate)
           and MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE)
  if not valid:
    raise ValueError(f"sample rate must be a positive whole number of Hz from {MIN_SAMPLE_RATE} "
                     f"to {MAX_SAMPLE_RATE}, got {sample_rate!r}")
  return int(sample_rate)


def to_16k_mono(wav: np.ndarray, sample_rate: int) -> np.ndarray:
  """(samples,) or (samples, channels) float audio at any rate -> 16 kHz mono float32."""
  sample_rate = check_sample_rate(sample_rate)
  return resample(to_mono(wav), sample_rate, SAMPLE_RATE)


def checked_mono(wav) -> np.ndarray:
  """Float audio (samples,) or (samples, channels) -> float32 mono; ValueError if unusable.

  The mix-down is checked, not just the input: its samples must be finite and within
  ±MAX_ABS_SAMPLE, or the log-mel (and the d-vector) would not be finite.
  """
  wav = np.asarray(wav)
  if not np.issubdtype(wav.dtype, np.floating):
    raise ValueError(f"expected float audio in [-1, 1) (e.g. int16 / 32768), got dtype {wav.dtype}")
  if wav.ndim not in (1, 2):
    raise ValueError(f"expected shape (samples,) or (samples, channels), got {wav.shape}")
  mono = to_mono(wav)
  if not mono.size:
    raise ValueError(f"no samples (shape {wav.shape})")
  if not np.all(np.isfinite(mono)):
    raise ValueError("contains NaN or infinite samples")
  peak = float(np.max(np.abs(mono)))
  if peak > MAX_ABS_SAMPLE:
    raise ValueError(f"samples reach {peak:.3g}; expected float audio in [-1, 1] "
                     f"(at most ±{MAX_ABS_SAMPLE:g})")
  return mono


def speech_level_db(wav: np.ndarray) -> float:
  """RMS in dB re full scale of the loudest 20 ms frame of 16 kHz mono, its DC removed."""
  frame = min(len(wav), int(SAMPLE_RATE * SPEECH_FRAME_MS / 1000))
  if not frame:
    return -math.inf
  whole = len(wav) // frame
  wav = np.asarray(wav, np.float64)
  # Whole frames, plus the last `frame` samples so that the tail is covered too.
  frames = np.concatenate([wav[:whole * frame].reshape(whole, frame), wav[None, -frame:]])
  ac_power = np.mean((frames - frames.mean(axis=1, keepdims=True)) ** 2, axis=1)
  loudest = float(np.sqrt(ac_power.max()))
  return 20 * math.log10(loudest) if loudest > 0 else -math.inf


def check_speech(wav: np.ndarray, trimmed: bool = False) -> None:
  """ValueError unless 16 kHz mono `wav` is long and loud enough to be speech.

  At least MIN_SPEECH_SAMPLES samples, and a loudest frame at MIN_SPEECH_DBFS or more:
  digital silence, ±1 LSB noise, a DC offset or stereo channels that cancel are not speech.
  """
  after = " after silence trimming" if trimmed else ""
  if len(wav) < MIN_SPEECH_SAMPLES:
    raise ValueError(f"too short: {len(wav)} samples at {SAMPLE_RATE} Hz{after}; need at least "
                     f"{MIN_SPEECH_SAMPLES} (one 25 ms frame)")
  level = speech_level_db(wav)
  if level < MIN_SPEECH_DBFS:
    raise ValueError(f"silent: loudest {SPEECH_FRAME_MS:g} ms frame is at {level:.0f} dB re full "
                     f"scale{after}; speech needs at least {MIN_SPEECH_DBFS:g} dB")


def speech_16k(wav, sample_rate, trim: TrimOptions) -> tuple[np.ndarray, tuple[int, int], int]:
  """Float audio at any rate -> (trimmed 16 kHz mono speech, (start, end), untrimmed length).

  The one preparation builders and inference share: ``check_sample_rate``,
  ``checked_mono``, resampling, ``trim.apply`` and ``check_speech``; raises ValueError
  with the reason (callers add the file's name).
  """
  sample_rate = check_sample_rate(sample_rate)
  wav = resample(checked_mono(wav), sample_rate, SAMPLE_RATE)
  speech, span = trim.apply(wav)
  check_speech(speech, trimmed=trim.enabled)
  return speech, span, len(wav)


def trim_long_silences(wav: np.ndarray, window_ms: int = 30, average_frames: int = 8,
                       max_silence_frames: int = 6) -> tuple[np.ndarray, tuple[int, int]]:
  """Resemblyzer's ``trim_long_silences``: webrtcvad (mode 3) on 30 ms windows of 16 kHz
  audio, smoothed over ``average_frames`` windows and dilated by ``max_silence_frames``; the
  windows left unvoiced are cut (trailing samples short of a window too).

  Returns (kept audio, (first, last + 1) kept sample). Offered for parity with Resemblyzer;
  needs the ``webrtcvad`` package (the ``parity`` extra).
  """
  try:
    import webrtcvad  # pylint: disable=g-import-not-at-top  # optional: the parity extra
  except ImportError:
    raise ValueError("trim method 'webrtcvad' needs the webrtcvad package "
                     "(pip install webrtcvad, or ge2e_jax's 'parity' extra)") from None
  window = window_ms * SAMPLE_RATE // 1000
  wav = np.asarray(wav, np.float32)
  wav = wav[:len(wav) - len(wav) % window]
  pcm = np.round(wav * 32767).astype(np.int16).astype("<i2").tobytes()
  vad = webrtcvad.Vad(3)
  voiced = np.array([vad.is_speech(pcm[2 * s:2 * (s + window)], sample_rate=SAMPLE_RATE)
                     for s in range(0, len(wav), window)], np.float64)
  padded = np.concatenate([np.zeros((average_frames - 1) // 2), voiced,
                           np.zeros(average_frames // 2)])
  sums = np.cumsum(padded)
  sums[average_frames:] = sums[average_frames:] - sums[:-average_frames]
  mask = np.round(sums[average_frames - 1:] / average_frames).astype(bool)
  if len(mask):
    mask = scipy.ndimage.binary_dilation(mask, np.ones(max_silence_frames + 1))
  mask = np.repeat(mask, window)
  kept = np.flatnonzero(mask)
  return wav[mask], ((int(kept[0]), int(kept[-1]) + 1) if len(kept) else (0, 0))


def to_int16(wav: np.ndarray) -> np.ndarray:
  """float in [-1, 1) -> int16, rounding and clipping out-of-range samples."""
  scaled = np.round(np.asarray(wav, dtype=np.float64) * INT16_SCALE)
  return np.clip(scaled, -32768, 32767).astype(np.int16)


def from_int16(wav: np.ndarray) -> np.ndarray:
  """int16 -> float32 in [-1, 1)."""
  return np.asarray(wav, dtype=np.int16).astype(np.float32) / INT16_SCALE
