"""Small grammars (English, Japanese) that draw varied sentences for text-independent speech."""

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


# Japanese (Open JTalk reads it; hts_voices.py): the same kind of grammar, words in kanji
# and kana as a Japanese reader would write them.
_JA_WORDS = {
    "adj": ["静かな", "明るい", "重い", "小さな", "古い", "黄色い", "新しい", "遠い", "白い",
            "優しい", "大きな", "冷たい", "赤い", "長い", "暗い", "丁寧な", "不思議な", "賑やかな"],
    "noun": ["猫", "先生", "窓", "庭", "山", "手紙", "川", "駅", "村", "港", "医者", "市場",
             "橋", "島", "子供", "電車", "花", "傘", "鞄", "本", "机", "鳥", "犬", "町",
             "友達", "時計", "地図", "帽子", "船", "お菓子"],
    "verb": ["見ました", "運びます", "探しています", "作りました", "覚えています", "開けました",
             "待っています", "書きました", "呼びました", "忘れました", "集めます", "隠しました",
             "直しました", "借りました", "描きます", "届けました"],
    "adv": ["ゆっくり", "静かに", "もう一度", "今日", "毎朝", "夜に", "突然", "いつも", "昨日",
            "こっそり", "丁寧に", "急いで"],
    "place": ["近く", "後ろ", "中", "上", "隣", "向こう", "前", "下"],
}

_JA_TEMPLATES = [
    "adv、adj noun は adj noun を verb。",
    "noun は noun の place で noun を verb。",
    "adj noun と noun が adv verb。",
    "どうして adj noun は noun を verb か。",
    "noun の noun は adj noun に noun を verb。",
    "adv noun の place で、adj noun が noun を verb。",
]


def random_japanese_sentence(rng: np.random.Generator) -> str:
  """One Japanese sentence of 5-9 words; a function of rng's state only."""
  template = _JA_TEMPLATES[rng.integers(len(_JA_TEMPLATES))]
  parts = []
  for token in template.replace("、", " 、 ").replace("。", " 。").split():
    parts.append(_JA_WORDS[token][rng.integers(len(_JA_WORDS[token]))]
                 if token in _JA_WORDS else token)
  return "".join(parts)
