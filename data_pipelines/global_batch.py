"""Host-local speaker batches -> one global batch of jax.Arrays sharded over speakers.

Each host's pipeline yields its own N/P speakers (a disjoint shard, so speaker ids stay
distinct); `global_batch` glues them with `jax.make_array_from_process_local_data`, one key
at a time, with the sharding `ge2e_jax.train_step.batch_sharding` gives that key: the one table
of which batch axis is split over the mesh and which values are replicated.
"""

from __future__ import annotations

from typing import Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding


def global_batch(local: Mapping[str, np.ndarray],
                 shardings: Mapping[str, NamedSharding]) -> dict[str, jax.Array]:
  """Assembles the global batch from this host's `local` batch.

  shardings: `train.batch_sharding(mesh, stacked)`, one NamedSharding per key of `local`.
    A partitioned axis of the global array is the local one times the number of hosts; a
    replicated value (e.g. MultiReader weights) must be the same on every host.
  """
  if set(local) != set(shardings):
    raise ValueError(f"global_batch: the batch has keys {sorted(local)}, the shardings "
                     f"(train.batch_sharding) cover {sorted(shardings)}; they must match")
  out = {}
  for key, value in local.items():
    value, sharding = np.asarray(value), shardings[key]
    devices = len(sharding.mesh.local_devices)
    for dim, axis in enumerate(sharding.spec):
      if axis is not None and value.shape[dim] % devices:
        raise ValueError(f"global_batch: {key!r} has {value.shape[dim]} entries on axis {dim} "
                         f"on this host, not divisible by its {devices} local devices")
    out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out
