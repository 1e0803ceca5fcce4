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
