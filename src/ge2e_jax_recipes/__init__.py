"""The recipes (`experiments/`, `data_pipelines/`) of an installed ge2e_jax, and its console
scripts.

A wheel holds the repository's `experiments/` and `data_pipelines/` unchanged inside this
package: installed as top-level packages, their generic names would clash with a user's own.
They import each other by those names, so `activate()` puts the folder holding them first on
`sys.path`; importing this package (or `ge2e_jax`) leaves `sys.path` alone, and only a process
that calls `activate()` (every console script does) sees the names. Import them as
`experiments.…` then, never as `ge2e_jax_recipes.experiments.…` (a second copy of each module).
"""

import importlib
import importlib.util
import os
import sys

TREES = ("experiments", "data_pipelines")


def activate() -> str:
  """Makes `import experiments` / `import data_pipelines` resolve to this install's copies,
  as in a checkout (idempotent); returns the folder holding them."""
  # The wheel's ge2e_jax_recipes/experiments, or an editable install's checkout.
  spec = importlib.util.find_spec(f"{__name__}.experiments")
  folder = os.path.dirname(os.path.dirname(spec.origin))
  while folder in sys.path:
    sys.path.remove(folder)
  sys.path.insert(0, folder)
  for name in TREES:
    module = sys.modules.get(name)
    if module is not None and os.path.dirname(os.path.dirname(module.__file__ or "")) != folder:
      raise ImportError(f"`{name}` is already imported from {module.__file__}; call "
                        f"{__name__}.activate() before importing it")
  return folder


def _console_script(name: str):
  def main():
    activate()
    return importlib.import_module(f"experiments.{name}").run()

  main.__name__ = main.__qualname__ = name
  main.__doc__ = f"`ge2e-{name}`: `python -m experiments.{name}` from this install."
  return main


train = _console_script("train")
evaluate = _console_script("evaluate")
embed = _console_script("embed")
verify = _console_script("verify")
export = _console_script("export")
diarize = _console_script("diarize")
