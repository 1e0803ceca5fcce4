"""What checking an export's checksums costs: ``inference.load`` of the td and ti presets'
export dirs with and without ``export_io.verify_checksums``, measured side by side in one run.

Each export holds params/, config.json, the model card and d_vector.jax_export (the
SavedModel, which holds the params once more, needs TensorFlow and is left out: a real
export hashes about a third more bytes than this one). Medians over ``--repeats``.

  python -m benchmarks.export_verify [--repeats 5]
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import numpy as np

from experiments import export_writer
from ge2e_jax import export_io, inference, model, model_card


def write_export(preset: str, directory: str) -> float:
  """Writes the preset's export (random params) into ``directory``; returns its megabytes."""
  config = model.preset(preset)
  shapes = jax.eval_shape(lambda: model.init_encoder_params(jax.random.key(0), config))
  rng = np.random.default_rng(0)
  params = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(s.dtype), shapes)
  os.makedirs(directory)
  export_io.write_params(directory, config, params, {"window_frames": 160})
  model_card.write(directory, model_card.new(0, 160, model.config_to_dict(config)))
  embedder = inference.Embedder(config, params)
  export_io.write_jax_export(directory, export_writer.export_jax(embedder, ["cpu"]))
  export_io.write_checksums(directory)
  return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(directory)
             for f in fs) / 1e6


def seconds(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  print(f"{jax.devices()[0].device_kind}, {os.cpu_count()} CPUs; medians of {args.repeats}")
  for preset in ("td", "ti"):
    with tempfile.TemporaryDirectory() as root:
      directory = os.path.join(root, preset)
      megabytes = write_export(preset, directory)
      inference.load(directory)  # warm: file cache, jax compile of nothing yet
      times = {"check": [], "load verified": [], "load unverified": []}
      for _ in range(args.repeats):
        times["check"].append(seconds(lambda: export_io.verify_checksums(directory)))
        times["load verified"].append(seconds(lambda: inference.load(directory)))
        times["load unverified"].append(seconds(lambda: inference.load(directory,
                                                                       verify=False)))
    med = {arm: statistics.median(t) for arm, t in times.items()}
    print(f"{preset}: export {megabytes:.1f} MB | checksums {1e3 * med['check']:.0f} ms | "
          f"load {1e3 * med['load verified']:.0f} ms verified vs "
          f"{1e3 * med['load unverified']:.0f} ms unverified "
          f"({med['load verified'] / med['load unverified']:.2f}x)")


if __name__ == "__main__":
  main()
