"""A generated corpus of good, bad and odd audio files for the fuzz tests (nothing committed).

``make_corpus(root)`` writes a speaker-folder tree ``root/tree/<speaker>/...`` (the
speaker_folders layout; speaker ``spk5`` is the test split) of real espeak-ng speech in
many encodings, rates and channel counts beside files that must be refused: empty,
header-only, truncated (WAV, FLAC, Ogg), huge declared sizes and rates, non-audio bytes,
NaN/inf and extreme floats, silence, ±1 LSB noise, cancelling channels, DC, too short,
FIFOs, dangling and looping links, unreadable files and folders, links into the tree and
same-name files with two extensions. Every entry says what each reader must do with it:
``Expect("good")`` (embedded / built), ``Expect("bad", word)`` (refused, with ``word`` in
the reason) or None (that reader never sees it).
"""

from __future__ import annotations

import dataclasses
import io
import os
import struct
import subprocess

import numpy as np
import soundfile as sf

TEST_SPEAKER = "spk5"


@dataclasses.dataclass(frozen=True)
class Expect:
  outcome: str  # "good" or "bad"
  word: str = ""  # a word the reason of a "bad" file holds


GOOD = Expect("good")


@dataclasses.dataclass
class Entry:
  path: str
  cli: Expect | None  # the embed CLI walking the tree
  api: Expect | None  # inference.Embedder.read on the path
  builder: Expect | None  # speaker_folders over the tree
  locked: bool = False  # inside the unreadable folder (or unreadable itself)


@dataclasses.dataclass
class Corpus:
  tree: str
  entries: list[Entry]
  loose: list[Entry]  # named on the command line / to the API, outside the tree
  locked_folder: str

  def bad_count(self) -> int:
    return sum(1 for e in self.entries + self.loose
               if "bad" in {x.outcome for x in (e.cli, e.api, e.builder) if x})


def _espeak(text: str, voice: str, path: str) -> np.ndarray:
  subprocess.run(["espeak-ng", "-v", voice, "-w", path, text], check=True)
  wav, sr = sf.read(path, dtype="float64")
  os.remove(path)
  n = len(wav) * 16000 // sr
  return np.interp(np.arange(n) * sr / 16000, np.arange(len(wav)), wav)  # ~16 kHz is enough


def _wav_bytes(data: np.ndarray, sr: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
  buf = io.BytesIO()
  sf.write(buf, data, sr, subtype=subtype, format=fmt)
  return buf.getvalue()


def _patch(data: bytes, chunk: bytes, offset: int, fmt: str, value: int) -> bytes:
  out = bytearray(data)
  struct.pack_into(fmt, out, out.find(chunk) + offset, value)
  return bytes(out)


def _loudest_rms(wav: np.ndarray, frame: int = 320) -> float:
  """RMS of the loudest whole 20 ms frame at 16 kHz, its mean removed (float64)."""
  frames = wav[:len(wav) // frame * frame].reshape(-1, frame)
  return float(frames.std(axis=1).max())


def _resample(wav: np.ndarray, sr: int) -> np.ndarray:
  n = int(round(len(wav) * sr / 16000))
  return np.interp(np.arange(n) * 16000 / sr, np.arange(len(wav)), wav)


def make_corpus(root: str) -> Corpus:
  tree = os.path.join(root, "tree")
  speech = _espeak("open the window please", "en-us+m3", os.path.join(root, "a.wav"))
  other = _espeak("a quiet river runs by", "en-gb+f2", os.path.join(root, "b.wav"))
  speech, other = 0.8 * speech / np.abs(speech).max(), 0.8 * other / np.abs(other).max()
  entries: list[Entry] = []
  n_speakers = 6

  def place(name: str, k: int) -> str:
    folder = os.path.join(tree, f"spk{k % n_speakers}")
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, name)

  def add(name, data: bytes, expect=GOOD, *, builder="same", cli="same"):
    path = place(name, len(entries))
    with open(path, "wb") as f:
      f.write(data)
    entries.append(Entry(path, expect if cli == "same" else cli, expect,
                         expect if builder == "same" else builder))
    return path

  def bad(word):
    return Expect("bad", word)

  # --- good: encodings, rates, channels, odd but usable content --------------------------
  for subtype in ("PCM_16", "PCM_24", "PCM_32", "PCM_U8", "FLOAT", "DOUBLE", "ULAW", "ALAW",
                  "IMA_ADPCM", "MS_ADPCM", "GSM610", "G721_32"):
    sr = 8000 if subtype in ("GSM610", "G721_32") else 16000
    add(f"enc_{subtype.lower()}.wav", _wav_bytes(_resample(speech, sr), sr, subtype))
  for fmt, subtype, ext in (("FLAC", "PCM_16", "flac"), ("FLAC", "PCM_24", "flac"),
                            ("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "ogg"),
                            ("AIFF", "PCM_16", "wav"), ("AU", "PCM_16", "wav"),
                            ("W64", "PCM_16", "wav"), ("RF64", "FLOAT", "wav"),
                            ("CAF", "PCM_16", "wav"), ("FLAC", "PCM_16", "wav")):
    sr = 48000 if subtype == "OPUS" else 16000
    add(f"fmt_{fmt.lower()}_{subtype.lower()}.{ext}",
        _wav_bytes(_resample(other, sr), sr, subtype, fmt))
  for sr in (1000, 4000, 8000, 11025, 22050, 44100, 48000, 96000, 192000, 768000):
    add(f"rate_{sr}.wav", _wav_bytes(_resample(speech, sr), sr))
  for channels in (2, 3, 5, 8, 64):
    mix = np.stack([speech * (1 - c / channels) for c in range(channels)], 1)
    add(f"channels_{channels}.wav", _wav_bytes(mix, 16000))
  add("stereo_one_silent.wav", _wav_bytes(np.stack([speech, 0 * speech], 1), 16000))
  add("clipped_pcm16.wav", _wav_bytes(np.clip(20 * speech, -1, 1), 16000))
  add("clipped_float.wav", _wav_bytes(20 * speech, 16000, "FLOAT"))
  add("full_scale_square.wav", _wav_bytes(np.sign(np.sin(np.arange(16000) / 7.0)), 16000,
                                          "PCM_24"))
  add("dc_offset_speech.wav", _wav_bytes(0.15 + 0.5 * speech, 16000))
  add("int16_scaled_float.wav", _wav_bytes(32767 * speech, 16000, "FLOAT"))
  add("quiet_minus50db.wav",
      _wav_bytes(speech * 10 ** (-50 / 20) / _loudest_rms(speech), 16000))
  add("padded_silence.flac", _wav_bytes(np.concatenate([np.zeros(32000), other,
                                                        np.zeros(32000)]), 16000, fmt="FLAC"))
  add("click.wav", _wav_bytes(np.where(np.arange(16000) == 8000, 0.9, 0.0), 16000))
  add("white_noise.wav", _wav_bytes(0.3 * np.random.default_rng(0).standard_normal(16000), 16000))
  add("exactly_400.wav", _wav_bytes(0.5 * np.sin(np.arange(400) / 3.0), 16000))
  add("UPPER_CASE.WAV", _wav_bytes(speech, 16000))
  add("mislabelled_wav_data.flac", _wav_bytes(speech, 16000))
  add("mislabelled_ogg_data.wav", _wav_bytes(other, 16000, "VORBIS", "OGG"))
  add("ünïcødé 話者 ñ.wav", _wav_bytes(other, 16000))
  add("new\nline.flac", _wav_bytes(speech, 16000, fmt="FLAC"))
  add("-leading-dash.wav", _wav_bytes(other, 16000))
  with_list = _wav_bytes(speech, 16000)  # a LIST chunk before the data chunk
  fmt_end = with_list.find(b"data")
  add("extra_chunk.wav", with_list[:fmt_end] + b"LIST\x05\x00\x00\x00abcde\x00"
      + with_list[fmt_end:])

  # --- bad: broken headers, sizes and containers ----------------------------------------
  pcm = _wav_bytes(speech, 16000)
  flac = _wav_bytes(speech, 16000, fmt="FLAC")
  ogg = _wav_bytes(other, 16000, "VORBIS", "OGG")
  add("empty.wav", b"", bad("empty"))
  add("empty.flac", b"", bad("empty"))
  add("tiny_3_bytes.wav", b"RIF", bad("not a readable"))
  add("riff_only.wav", pcm[:12], bad("no data chunk"))
  add("header_only.wav", pcm[:44], bad("truncated"))
  add("no_samples.wav", _patch(pcm[:pcm.find(b"data") + 8], b"data", 4, "<I", 0),
      bad("no audio samples"))
  for frac in (0.1, 0.5, 0.9):
    add(f"cut_{int(frac * 100)}.wav", pcm[:int(len(pcm) * frac)], bad("truncated"))
    add(f"cut_{int(frac * 100)}.flac", flac[:int(len(flac) * frac)], bad(""))
    add(f"cut_{int(frac * 100)}.ogg", ogg[:int(len(ogg) * frac)], bad(""))
  add("cut_last_byte.ogg", ogg[:-1], bad("truncated"))
  add("huge_data_chunk.wav", _patch(pcm, b"data", 4, "<I", 0x7FFFFFF0), bad("truncated"))
  streaminfo = bytearray(flac)  # total samples (36 bits) = 2**36 - 1
  streaminfo[21] |= 0x0F
  streaminfo[22:26] = b"\xff\xff\xff\xff"
  add("huge_total_samples.flac", bytes(streaminfo), bad("not a readable"))
  for sr, word in ((999_999_999, "sample rate"), (1, "sample rate"), (999, "sample rate"),
                   (800_000, "sample rate"), (0, "not a readable")):
    add(f"header_rate_{sr}.wav", _patch(pcm, b"fmt ", 12, "<I", sr), bad(word))
  add("zero_channels.wav", _patch(pcm, b"fmt ", 10, "<H", 0), bad("not a readable"))
  add("random_bytes.wav", np.random.default_rng(1).bytes(5000), bad("not a readable"))
  add("random_bytes.ogg", b"OggS" + np.random.default_rng(2).bytes(3000), bad(""))
  add("text.flac", b"hello, this is not audio\n" * 20, bad("not a readable"))
  add("png_bytes.wav", b"\x89PNG\r\n\x1a\n" + bytes(200), bad("not a readable"))

  # --- bad: values and content ----------------------------------------------------------
  nan = speech.copy()
  nan[100] = np.nan
  inf = speech.copy()
  inf[200] = np.inf
  add("nan.wav", _wav_bytes(nan, 16000, "FLOAT"), bad("NaN"))
  add("inf.wav", _wav_bytes(inf, 16000, "DOUBLE"), bad("NaN or infinite"))
  add("double_1e300.wav", _wav_bytes(1e300 * speech, 16000, "DOUBLE"), bad("NaN or infinite"))
  add("float_1e19.wav", _wav_bytes(1e19 * speech, 16000, "FLOAT"), bad("samples reach"))
  big = np.finfo(np.float32).max
  add("float32_max_stereo.wav", _wav_bytes(np.full((8000, 2), big), 16000, "FLOAT"),
      bad("samples reach"))
  add("float32_max_speech_stereo.wav", _wav_bytes(np.stack([speech, speech], 1) * big / 0.8,
                                                  16000, "FLOAT"), bad("samples reach"))
  add("float32_max_opposite.wav", _wav_bytes(np.stack([speech, -speech], 1) * big / 0.8,
                                             16000, "FLOAT"), bad("silen"))
  add("silence.wav", _wav_bytes(np.zeros(32000), 16000), bad("silen"))
  add("silence_u8.wav", _wav_bytes(np.zeros(16000), 16000, "PCM_U8"), bad("silen"))
  add("silence_float.flac", _wav_bytes(np.zeros(16000), 16000, fmt="FLAC"), bad("silen"))
  lsb = np.random.default_rng(3).integers(-1, 2, 32000) / 32768
  add("one_lsb_noise.wav", _wav_bytes(lsb, 16000), bad("silent"))
  add("one_lsb_noise_44k.flac", _wav_bytes(_resample(lsb, 44100), 44100, fmt="FLAC"),
      bad("silent"))
  add("quiet_minus70db.wav", _wav_bytes(speech * 10 ** (-70 / 20) / _loudest_rms(speech), 16000),
      bad("silent"))
  add("opposite_phase.wav", _wav_bytes(np.stack([speech, -speech], 1), 16000), bad("silen"))
  residual = np.resize(lsb, len(speech))  # channels that cancel but for ±1 LSB
  add("opposite_phase_residual.wav", _wav_bytes(np.stack([speech, residual - speech], 1), 16000),
      bad("silent"))
  add("opposite_phase_44k.flac", _wav_bytes(np.stack([_resample(other, 44100),
                                                      -_resample(other, 44100)], 1), 44100,
                                            fmt="FLAC"), bad("silen"))
  add("dc_only.wav", _wav_bytes(np.full(16000, 0.5), 16000), bad("silent"))
  add("dc_negative_full_scale.wav", _wav_bytes(np.full(16000, -1.0), 16000), bad("silent"))
  add("one_sample.wav", _wav_bytes(np.array([0.5]), 16000), bad("too short"))
  add("short_100.wav", _wav_bytes(speech[4000:4100], 16000), bad("too short"))
  add("short_399.wav", _wav_bytes(0.5 * np.sin(np.arange(399) / 3.0), 16000), bad("too short"))
  add("short_8k_150.wav", _wav_bytes(0.5 * np.sin(np.arange(150) / 3.0), 8000),
      bad("too short"))

  # --- odd tree entries ------------------------------------------------------------------
  fifo = place("pipe.wav", len(entries))
  os.mkfifo(fifo)
  entries.append(Entry(fifo, bad("FIFO"), bad("FIFO"), bad("FIFO")))
  dangling = place("dangling.wav", len(entries))
  os.symlink("does_not_exist.wav", dangling)
  entries.append(Entry(dangling, bad("dangling"), bad("dangling"), bad("dangling")))
  loop = place("self_loop.flac", len(entries))
  os.symlink(os.path.basename(loop), loop)
  entries.append(Entry(loop, bad("symbolic links"), bad("symbolic links"),
                       bad("symbolic links")))
  target = add("link_target.wav", _wav_bytes(other, 16000))
  link = place("link_to_target.wav", len(entries))
  os.symlink(target, link)  # the builder reads the target once, at its own place
  entries.append(Entry(link, GOOD, GOOD, bad("inside the tree")))
  loop_dir = os.path.join(tree, "spk0", "loop_to_tree")
  os.symlink("..", loop_dir)  # the CLI walk does not follow folder links at all
  entries.append(Entry(loop_dir, None, None, bad("not followed")))
  alias = os.path.join(tree, "spk1", "alias_of_test_speaker")
  os.symlink(os.path.join("..", TEST_SPEAKER), alias)
  entries.append(Entry(alias, None, None, bad("inside the tree")))
  for ext in ("wav", "flac"):  # same utterance id: the builder keeps the .wav
    entries.append(Entry(place(f"twin.{ext}", 0), GOOD, GOOD,
                         GOOD if ext == "wav" else bad("is taken by")))
    with open(entries[-1].path, "wb") as f:
      f.write(_wav_bytes(speech, 16000, fmt="WAV" if ext == "wav" else "FLAC"))
  folder_wav = os.path.join(tree, "spk2", "folder.wav")
  os.makedirs(folder_wav)
  entries.append(Entry(os.path.join(folder_wav, "inside.wav"), GOOD, GOOD, GOOD))
  with open(entries[-1].path, "wb") as f:
    f.write(_wav_bytes(other, 16000))
  os.makedirs(os.path.join(tree, "spk3", "empty_folder.flac"))
  for name in ("notes.txt", "song.m4a", "no_extension"):
    add(name, pcm if name != "notes.txt" else b"notes\n", None,
        builder=bad("not an audio file"), cli=None)
  locked = os.path.join(tree, "spk4", "locked")
  os.makedirs(locked)
  # Expectations without read permission; a reader that has it (root) finds them good.
  entries.append(Entry(os.path.join(locked, "inside_locked.wav"), None,
                       bad("Permission denied"), None, True))
  with open(entries[-1].path, "wb") as f:
    f.write(_wav_bytes(speech, 16000))
  add("unreadable.wav", pcm, bad("Permission denied"))
  entries[-1].locked = True
  os.chmod(entries[-1].path, 0)
  os.chmod(locked, 0)

  # --- named directly, outside the tree --------------------------------------------------
  loose = [Entry("/dev/null", bad("character device"), bad("character device"), None),
           Entry("/dev/zero", bad("character device"), bad("character device"), None),
           Entry(os.path.join(root, "missing.wav"), bad("no such file"), bad("no such file"),
                 None),
           Entry(fifo, bad("FIFO"), bad("FIFO"), None)]
  return Corpus(tree, entries, loose, locked)
