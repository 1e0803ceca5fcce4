"""espeak-ng (and optional MBROLA) synthesis through the espeak-ng command line.

espeak-ng output is deterministic: the same voice, prosody and text give the
same bytes, which is what makes the synthetic corpus reproducible.

Procedural voices and project-local MBROLA voices live in a private espeak-ng data
directory (`private_data_dir`, passed as `espeak-ng --path`): links to the installed
data plus generated variant files and links to MBROLA databases. Voices are named there
by their file (`gmw/de+<variant>`, `mb/mb-us1`), so espeak-ng never lists its voices (it
lists at most 350, fewer than a corpus's variant files).
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

from data_pipelines.builders import common
from ge2e_jax import audio

MBROLA_DIR = "/usr/share/mbrola"  # Debian's mbrola-* packages, installed system-wide.
# `make voices` unpacks Debian's mbrola packages here (see fetch_mbrola.sh).
LOCAL_MBROLA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "third_party", "mbrola")


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


@dataclasses.dataclass(frozen=True)
class Language:
  """An installed espeak-ng language voice: `code` (en-us), `family` (ISO 639-5 folder, gmw)."""
  code: str
  family: str
  file: str  # Under espeak-ng-data/lang, e.g. gmw/en-US.

  @property
  def voice(self) -> str:
    """Its -v name inside a private_data_dir (lower case: espeak-ng lowers voice names)."""
    return self.file.lower()


@functools.cache
def languages() -> dict[str, Language]:
  """Installed language voices by code (`espeak-ng --voices`)."""
  out = subprocess.run([executable(), "--voices"], capture_output=True, text=True,
                       check=True).stdout
  found = {}
  for line in out.splitlines()[1:]:
    fields = line.split()
    if len(fields) >= 5:
      family = fields[4].split("/")[0] if "/" in fields[4] else fields[4]
      found.setdefault(fields[1], Language(fields[1], family, fields[4]))
  return found


def language(code: str) -> Language:
  found = languages().get(code)
  if found is None:
    raise EspeakError(f"espeak-ng has no language voice {code!r} (`espeak-ng --voices` lists "
                      f"{len(languages())}: {', '.join(sorted(languages()))})")
  return found


@dataclasses.dataclass(frozen=True)
class MbrolaInstall:
  """An mbrola binary and its voice databases (name -> database file)."""
  bin_dir: str
  databases: dict[str, str]


def mbrola_install() -> MbrolaInstall | None:
  """The project-local MBROLA (`make voices`) if present, else a system-wide one, else None."""
  for root, bin_dir in ((os.path.join(LOCAL_MBROLA_DIR, "usr", "share", "mbrola"),
                         os.path.join(LOCAL_MBROLA_DIR, "usr", "bin")),
                        (MBROLA_DIR, os.path.dirname(shutil.which("mbrola") or ""))):
    if not (bin_dir and os.path.isfile(os.path.join(bin_dir, "mbrola")) and os.path.isdir(root)):
      continue
    databases = {name: os.path.join(root, name, name) for name in sorted(os.listdir(root))
                 if os.path.isfile(os.path.join(root, name, name))}
    if databases:
      return MbrolaInstall(bin_dir, databases)
  return None


def mbrola_voices() -> tuple[str, ...]:
  """espeak-ng's English-speaking MBROLA voices (mb-us1, mb-de4-en, ...) with a database.

  Each MBROLA database was recorded from a different real speaker.
  """
  install = mbrola_install()
  if install is None:
    return ()
  out = subprocess.run([executable(), "--voices=mb"], capture_output=True,
                       text=True, check=True).stdout
  found = []
  for line in out.splitlines()[1:]:
    fields = line.split()
    if len(fields) < 5 or not fields[1].startswith("en"):
      continue
    voice = fields[4].split("/")[-1]  # e.g. mb-us1, mb-de4-en
    if voice.split("-")[1] in install.databases:
      found.append(voice)
  return tuple(sorted(set(found)))


def private_data_dir(root: str, variant_files: dict[str, str],
                     mbrola: MbrolaInstall | None = None) -> str:
  """Makes `root`/espeak-ng-data: the installed data plus `variant_files` (name -> text).

  Returns `root`, the value for `espeak-ng --path`. Language voices get lower-case links
  (`Language.voice`); MBROLA databases are linked as espeak-ng-data/mbrola/<name>.
  """
  system = data_dir()
  data = os.path.join(root, "espeak-ng-data")
  os.makedirs(os.path.join(data, "voices", "!v"))
  for entry in os.listdir(system):
    if entry not in ("voices", "lang", "mbrola"):
      os.symlink(os.path.join(system, entry), os.path.join(data, entry))
  for dirpath, _, files in os.walk(os.path.join(system, "lang")):
    target = os.path.join(data, os.path.relpath(dirpath, system).lower())
    os.makedirs(target, exist_ok=True)
    for name in files:
      os.symlink(os.path.join(dirpath, name), os.path.join(target, name.lower()))
  for entry in os.listdir(os.path.join(system, "voices")):
    if entry != "!v":
      os.symlink(os.path.join(system, "voices", entry), os.path.join(data, "voices", entry))
  for name, text in variant_files.items():
    with open(os.path.join(data, "voices", "!v", name), "w") as f:
      f.write(text)
  if mbrola is not None:
    os.makedirs(os.path.join(data, "mbrola"))
    for name, path in mbrola.databases.items():
      os.symlink(path, os.path.join(data, "mbrola", name))
  return root


def synthesize(voice: str, text: str, prosody: Prosody, data_path: str | None = None,
               mbrola_bin: str | None = None) -> tuple[np.ndarray, int]:
  """Speaks `text` with espeak-ng voice `voice` (e.g. 'en-us+m3', 'mb/mb-us1').

  `data_path` is a `private_data_dir` (None: the installed data); `mbrola_bin` the folder
  of the mbrola binary for MBROLA voices. Returns (float32 mono waveform, sample rate):
  espeak voices give 22050 Hz, MBROLA voices their database's rate.
  """
  with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
    wav_path = os.path.join(tmp, "utt.wav")
    cmd = [executable()] + ([f"--path={data_path}"] if data_path else []) + [
        "-v", voice, "-p", str(prosody.pitch), "-s", str(prosody.speed),
        "-g", str(prosody.word_gap), "-a", str(prosody.amplitude), "-w", wav_path, "--", text]
    env = None if mbrola_bin is None else dict(
        os.environ, PATH=os.pathsep.join([mbrola_bin, os.environ.get("PATH", "")]))
    common.run_writing(cmd, wav_path, EspeakError, env)
    return audio.read_audio(wav_path)
