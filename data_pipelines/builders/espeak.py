"""espeak-ng (and optional MBROLA) synthesis through the espeak-ng command line.

espeak-ng output is deterministic: the same voice, prosody and text give the
same bytes, which is what makes the synthetic corpus reproducible.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np

from ge2e_jax import audio

MBROLA_DIR = "/usr/share/mbrola"


class EspeakError(RuntimeError):
  """espeak-ng is missing or failed; says which command and why."""


@dataclasses.dataclass(frozen=True)
class Prosody:
  """espeak-ng prosody flags: -p pitch (0-99), -s speed (wpm), -g word gap (10 ms), -a amplitude."""
  pitch: int = 50
  speed: int = 175
  word_gap: int = 0
  amplitude: int = 100


def executable() -> str:
  path = shutil.which("espeak-ng")
  if path is None:
    raise EspeakError(
        "espeak-ng not found on PATH; install it (Debian: apt-get install espeak-ng, "
        "or `make setup`)")
  return path


@functools.cache
def version() -> str:
  """`espeak-ng --version`: the version and the data directory in use."""
  return subprocess.run([executable(), "--version"], capture_output=True,
                        text=True, check=True).stdout.strip()


def data_dir() -> str:
  """espeak-ng's data directory, as the installed binary reports it."""
  match = re.search(r"Data at:\s*(\S.*)$", version())
  if not match:
    raise EspeakError(f"no data directory in `espeak-ng --version`: {version()!r}")
  return match.group(1).strip()


@functools.cache
def variants() -> tuple[str, ...]:
  """Installed voice variants (espeak-ng-data/voices/!v), sorted; names with spaces dropped."""
  names = os.listdir(os.path.join(data_dir(), "voices", "!v"))
  return tuple(sorted((n for n in names if " " not in n), key=str.lower))


def mbrola_voices() -> tuple[str, ...]:
  """espeak-ng's English-speaking MBROLA voices whose MBROLA database is installed.

  Each MBROLA database was recorded from a different real speaker.
  """
  if shutil.which("mbrola") is None or not os.path.isdir(MBROLA_DIR):
    return ()
  out = subprocess.run([executable(), "--voices=mb"], capture_output=True,
                       text=True, check=True).stdout
  found = []
  for line in out.splitlines()[1:]:
    fields = line.split()
    if len(fields) < 5 or not fields[1].startswith("en"):
      continue
    voice = fields[4].split("/")[-1]  # e.g. mb-us1, mb-de4-en
    database = voice.split("-")[1]
    if os.path.exists(os.path.join(MBROLA_DIR, database)):
      found.append(voice)
  return tuple(sorted(set(found)))


def synthesize(voice: str, text: str, prosody: Prosody) -> tuple[np.ndarray, int]:
  """Speaks `text` with espeak-ng voice `voice` (e.g. 'en-us+m3', 'mb-us1').

  Returns (float32 mono waveform, sample rate); espeak voices give 22050 Hz,
  MBROLA voices their database's rate.
  """
  with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
    wav_path = os.path.join(tmp, "utt.wav")
    cmd = [executable(), "-v", voice, "-p", str(prosody.pitch), "-s", str(prosody.speed),
           "-g", str(prosody.word_gap), "-a", str(prosody.amplitude), "-w", wav_path,
           "--", text]
    try:
      proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired as e:
      raise EspeakError(f"{' '.join(cmd)} did not finish in 120 s") from e
    if proc.returncode != 0 or not os.path.exists(wav_path):
      raise EspeakError(f"{' '.join(cmd)} failed (exit {proc.returncode}): "
                        f"{proc.stderr.strip()}")
    return audio.read_audio(wav_path)
