"""Packaging: the wheel holds `ge2e_jax` and `ge2e_jax_recipes`, with the repository's
`experiments/` and `data_pipelines/` placed unchanged inside the latter.

Top-level packages named `experiments` or `data_pipelines` would clash with a user's own;
`ge2e_jax_recipes.activate()` (src/ge2e_jax_recipes, the console scripts call it) puts
their folder on `sys.path`, so they import each other by their repository names as in a
checkout. An editable install (`pip install -e .`, `make setup`) maps the repository names
onto the checkout too. Everything else is in setup.cfg.
"""

import sys

import setuptools

RECIPES = "ge2e_jax_recipes"
TREES = ("experiments", "data_pipelines")


def subpackages(name: str) -> list[str]:
  return [name] + [f"{name}.{p}" for p in setuptools.find_packages(name)]


packages = subpackages("ge2e_jax") + [RECIPES]
package_dir = {RECIPES: f"src/{RECIPES}"}
for tree in TREES:
  packages += [f"{RECIPES}.{name}" for name in subpackages(tree)]
  package_dir[f"{RECIPES}.{tree}"] = tree
  if "editable_wheel" in sys.argv:  # pip install -e: the checkout's names as well
    packages += subpackages(tree)

setuptools.setup(packages=packages, package_dir=package_dir)
