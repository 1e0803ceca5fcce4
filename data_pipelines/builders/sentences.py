"""A small English grammar that draws varied sentences for text-independent speech."""

from __future__ import annotations

import numpy as np

_WORDS = {
    "det": ["the", "a", "every", "one", "that", "this", "my", "your", "our", "some"],
    "adj": ["quiet", "bright", "heavy", "little", "ancient", "yellow", "careful", "sudden",
            "gentle", "narrow", "purple", "frozen", "clever", "noisy", "distant", "silver",
            "empty", "golden", "patient", "wooden", "tired", "curious", "rapid", "hollow"],
    "noun": ["river", "teacher", "window", "garden", "engine", "mountain", "letter", "pilot",
             "basket", "island", "doctor", "market", "candle", "bridge", "farmer", "station",
             "kitten", "lantern", "village", "painter", "harbour", "violin", "meadow", "robot",
             "castle", "blanket", "orchard", "sailor", "tunnel", "pencil"],
    "verb": ["watches", "carries", "follows", "paints", "finds", "builds", "remembers",
             "visits", "opens", "describes", "repairs", "imagines", "passes", "greets",
             "measures", "borrows", "collects", "forgets", "hides", "answers"],
    "adv": ["slowly", "quietly", "again", "today", "carefully", "often", "suddenly",
            "happily", "at night", "every morning", "once more", "without a sound"],
    "prep": ["near", "behind", "across", "under", "beside", "beyond", "inside", "above"],
    "wh": ["why", "when", "how", "where"],
}

_TEMPLATES = [
    "det adj noun verb det noun",
    "det noun verb det adj noun adv",
    "det adj noun verb det noun prep det noun",
    "adv det noun verb det adj noun",
    "wh does det adj noun remember det noun prep det noun",
    "det noun and det noun verb det adj noun adv",
    "det noun prep det adj noun verb adv",
]


def random_sentence(rng: np.random.Generator) -> str:
  """One grammatical sentence of 6-11 words; a function of rng's state only."""
  template = _TEMPLATES[rng.integers(len(_TEMPLATES))].split()
  words = [_WORDS[t][rng.integers(len(_WORDS[t]))] if t in _WORDS else t for t in template]
  sentence = " ".join(words)
  return sentence[0].upper() + sentence[1:] + ("?" if template[0] == "wh" else ".")
