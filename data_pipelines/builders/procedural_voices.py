"""Procedural espeak-ng speakers: a seeded random voice variant file per speaker.

A variant file (espeak-ng's `voices/!v` format, docs/voices.md of espeak-ng) changes the
voice, not the language: pitch base and range, the frequency/strength/width of formants
0-8 (vocal-tract length and timbre), flutter, roughness, breathiness, spectral tone,
voicing and consonant strength, and optionally one of the Klatt glottal sources. Laid over
any language voice, one file is one new speaker; thousands cost one small text file each.

The ranges keep speech intelligible: every drawn speaker was measured non-silent, unclipped
and of normal duration (tests/test_procedural_voices.py checks a sample of them).
"""

from __future__ import annotations

import dataclasses

import numpy as np

KLATT_SOURCES = (1, 2, 3)  # espeak-ng's `klatt N` sources (4 clips); 0 = its own wavegen.
KLATT_PROBABILITY = 0.2
BREATH_PROBABILITY = 0.35
# espeak-ng -a for procedural speakers: at its default 100 some variants clip; at 55, 3 of
# 600 utterances touched full scale (stock variants at 100: 83 of 300).
AMPLITUDE = 55


@dataclasses.dataclass(frozen=True)
class VariantParams:
  """One procedural speaker: every line of its variant file (percentages are of default)."""
  gender: str
  pitch: tuple[int, int]                       # base Hz, top Hz
  formants: tuple[tuple[int, int, int], ...]   # formants 0-8: (frequency %, height %, width %)
  flutter: int
  roughness: int                               # 0-7
  breath: tuple[int, ...]                      # per formant 1-8; () = none
  breathw: tuple[int, ...]
  tone: tuple[int, ...]                        # (Hz, amplitude) x 3
  voicing: int
  consonants: tuple[int, int]                  # unvoiced %, voiced %
  klatt: int                                   # 0 = espeak-ng's default wave generator


def draw(rng: np.random.Generator) -> VariantParams:
  """A random speaker; a function of rng's state only."""
  female = bool(rng.random() < 0.5)
  base = int(rng.integers(150, 241) if female else rng.integers(72, 136))
  top = base + int(rng.integers(20, 101))
  # One vocal-tract scale moves formants 1-5 together (shorter tract: higher formants),
  # plus a small independent shift per formant.
  tract = rng.uniform(1.02, 1.16) if female else rng.uniform(0.88, 1.04)
  formants = []
  for k in range(9):
    shift = rng.uniform(0.96, 1.04) if 1 <= k <= 5 else rng.uniform(0.92, 1.08)
    freq = (tract if 1 <= k <= 5 else 1.0) * shift
    height = rng.uniform(0.75, 1.12) if k <= 5 else rng.uniform(0.4, 1.2)
    width = rng.uniform(0.75, 1.6)
    formants.append((int(round(100 * freq)), int(round(100 * height)), int(round(100 * width))))
  if rng.random() < BREATH_PROBABILITY:
    breath = tuple(int(v) for v in rng.integers(0, 16, size=8))
    breathw = tuple(int(v) for v in rng.integers(100, 401, size=8))
  else:
    breath = breathw = ()
  tone = (int(rng.integers(400, 801)), int(rng.integers(130, 181)),
          int(rng.integers(900, 1501)), int(rng.integers(100, 151)),
          int(rng.integers(1700, 2601)), int(rng.integers(70, 131)))
  klatt = int(rng.choice(KLATT_SOURCES)) if rng.random() < KLATT_PROBABILITY else 0
  return VariantParams(
      gender="female" if female else "male", pitch=(base, top), formants=tuple(formants),
      flutter=int(rng.integers(10, 101)), roughness=int(rng.integers(0, 5)),
      breath=breath, breathw=breathw, tone=tone, voicing=int(rng.integers(75, 111)),
      consonants=(int(rng.integers(70, 131)), int(rng.integers(70, 131))), klatt=klatt)


def variant_file(name: str, params: VariantParams) -> str:
  """The espeak-ng variant file text of `params` (to be saved as voices/!v/<name>)."""
  lines = ["language variant", f"name {name}", f"gender {params.gender}",
           f"pitch {params.pitch[0]} {params.pitch[1]}"]
  lines += [f"formant {k} {f} {h} {w}" for k, (f, h, w) in enumerate(params.formants)]
  lines += [f"flutter {params.flutter}", f"roughness {params.roughness}",
            "tone " + " ".join(map(str, params.tone)), f"voicing {params.voicing}",
            f"consonants {params.consonants[0]} {params.consonants[1]}"]
  if params.breath:
    lines += ["breath " + " ".join(map(str, params.breath)),
              "breathw " + " ".join(map(str, params.breathw))]
  if params.klatt:
    lines.append(f"klatt {params.klatt}")
  return "\n".join(lines) + "\n"
