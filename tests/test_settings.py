"""ge2e_jax.settings: defaults, checks and errors come from the one dataclass field."""

import dataclasses

import ml_collections
import pytest

from ge2e_jax import settings


@dataclasses.dataclass(frozen=True)
class Inner:
  prob: float = settings.setting(0.0, settings.number(0, 1), "fraction")
  snr_db: tuple = settings.setting((5.0, 20.0), settings.span())


@dataclasses.dataclass(frozen=True)
class Outer:
  cells: int = settings.required(settings.integer(1))
  kind: str = settings.setting("sgd", settings.one_of("sgd", "adam"))
  scale: float | None = settings.setting(None, settings.optional(settings.number(0, low_open=True)))
  inner: Inner = Inner()


def test_defaults_and_help_come_from_the_fields():
  assert settings.defaults(Outer) == {"kind": "sgd", "scale": None,
                                      "inner": {"prob": 0.0, "snr_db": (5.0, 20.0)}}
  assert settings.help_text(Inner)["prob"] == "fraction"


@pytest.mark.parametrize("values, message", [
    ({"kind": "sgd"}, "config.x.cells is missing"),
    ({"cells": 0}, "config.x.cells=0: expected an integer >= 1"),
    ({"cells": True}, "config.x.cells=True: expected an integer >= 1"),
    ({"cells": 2, "kind": "lamb"}, "config.x.kind='lamb': expected one of ('sgd', 'adam')"),
    ({"cells": 2, "scale": 0.0}, "config.x.scale=0.0: expected None or a finite number > 0"),
    ({"cells": 2, "inner": {"prob": 1.5}}, "config.x.inner.prob=1.5: expected a number in [0, 1]"),
    ({"cells": 2, "inner": {"snr_db": (9.0, 3.0)}}, "config.x.inner.snr_db=(9.0, 3.0)"),
    ({"cells": 2, "inner": {"snr_db": (1.0, float("nan"))}}, "config.x.inner.snr_db="),
    ({"cells": 2, "cell": 3}, "config.x: unknown fields ['cell']"),
    ({"cells": 2, "inner": 3}, "config.x.inner: expected a section of fields"),
])
def test_every_bad_value_is_named(values, message):
  with pytest.raises(settings.SettingError, match=None) as err:
    settings.build(Outer, values, "x")
  assert message in str(err.value)


def test_build_from_a_config_dict():
  config = ml_collections.ConfigDict({"cells": 4, "inner": {"snr_db": [1.0, 2.0]}})
  built = settings.build(Outer, config, "x")
  assert built == Outer(cells=4, inner=Inner(snr_db=(1.0, 2.0)))


def _fewer(c, path):
  return None if c.low < c.high else f"config.{path}.low={c.low}: expected < high={c.high}"


@dataclasses.dataclass(frozen=True)
class Range:
  low: int = settings.setting(0, settings.integer(0))
  high: int = settings.setting(5, settings.integer(0))

  def __post_init__(self):
    settings.check(self, "r", _fewer)


@dataclasses.dataclass(frozen=True)
class Entry:
  corpus: str = settings.required(settings.text("a name", empty=False), "where")
  weight: float = settings.setting(1.0, settings.number(0, low_open=True), "alpha")


@dataclasses.dataclass(frozen=True)
class Data:
  sources: dict = settings.named(Entry, {"ok": Entry("a")}, "the corpora")
  level: float | None = settings.setting(
      None, settings.optional(settings.number(high=0, high_open=True)), "dB")
  range: Range = Range()


def test_post_init_runs_the_field_checks_then_the_relations():
  with pytest.raises(settings.SettingError, match=r"^config.r.low=-1: expected an integer >= 0; "
                                                 r"config.r.high=-2: expected an integer >= 0$"):
    Range(low=-1, high=-2)  # the field checks first: the relation is not asked
  with pytest.raises(settings.SettingError, match=r"^config.r.low=5: expected < high=5$"):
    Range(low=5)
  assert settings.problems(Data, {"range": {"low": 7}}, "d") == ["config.r.low=7: expected < high=5"]


def test_named_entries_default_check_and_build():
  assert settings.defaults(Data) == {"sources": {"ok": {"corpus": "a", "weight": 1.0}},
                                     "level": None, "range": {"low": 0, "high": 5}}
  assert Data().sources == {"ok": Entry("a")} and Data().sources is not Data().sources
  built = settings.build(Data, {"sources": {"x": {"corpus": "b"}, "y": {"corpus": "c",
                                                                       "weight": 2}}}, "d")
  assert built.sources == {"x": Entry("b", 1.0), "y": Entry("c", 2)}
  assert settings.problems(Data, {"sources": {"x": {"weight": 0}, "y": {"corpus": ""}}}, "d") == [
      "config.d.sources.x.corpus is missing", "config.d.sources.x.weight=0: expected a finite "
      "number > 0", "config.d.sources.y.corpus='': expected a name"]
  assert settings.problems(Data, {"sources": {}}, "d") == [
      "config.d.sources={}: expected {name: {field: value}} with at least one entry"]
  assert settings.problems(Data, {"level": 0.0}, "d") == [
      "config.d.level=0.0: expected None or a finite number < 0"]


def test_complete_names_every_missing_field_but_not_an_entry_s_defaults():
  values = {"sources": {"x": {"corpus": "b"}}, "range": {"low": 1}}
  assert settings.problems(Data, values, "") == []
  assert settings.problems(Data, values, "", complete=True) == [
      "config.level is missing", "config.range.high is missing"]
