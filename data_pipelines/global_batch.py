"""Host-local speaker batches -> one global batch of jax.Arrays sharded over speakers.

Each host's pipeline yields its own N/P speakers (a disjoint shard, so speaker ids stay
distinct); `global_batch` glues them with `jax.make_array_from_process_local_data`. The speaker
axis is dim 0 of a plain batch and dim 1 of a MultiReader stacked batch (dim 0 = source); the
per-step scalars that every host computes identically (`weights`, `source`) are replicated.
"""

from __future__ import annotations

from typing import Mapping

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

REPLICATED_KEYS = ("weights", "source")


def global_batch(local: Mapping[str, np.ndarray],
                 sharding: NamedSharding) -> dict[str, jax.Array]:
  """Assembles the global batch from this host's `local` batch.

  sharding: a NamedSharding whose spec partitions the speakers over the mesh's data axis, e.g.
    `NamedSharding(mesh, P("data"))` on a 1-D mesh `data` (for a stacked batch
    `P(None, "data")` is accepted too; the speaker axis is found from `local["speaker"]`).
    The global speaker count is the local one times the number of hosts.
  """
  partitioned = [axis for axis in getattr(sharding, "spec", ()) if axis is not None]
  if not isinstance(sharding, NamedSharding) or len(partitioned) != 1:
    raise ValueError(f"global_batch needs a NamedSharding that partitions the speakers over one "
                     f"mesh axis, e.g. NamedSharding(mesh, P('data')); got {sharding!r}")
  if "speaker" not in local:
    raise ValueError(f"global_batch: the batch has no 'speaker' key; keys: {sorted(local)}")
  speaker_axis = np.ndim(local["speaker"]) - 1  # 0 plain, 1 stacked (K, N)
  n_local = np.shape(local["speaker"])[speaker_axis]
  devices = len(sharding.mesh.local_devices)
  if n_local % devices:
    raise ValueError(f"global_batch: this host has {n_local} speakers per batch, not divisible "
                     f"by its {devices} local devices")
  sharded = NamedSharding(sharding.mesh,
                          PartitionSpec(*([None] * speaker_axis), partitioned[0]))
  replicated = NamedSharding(sharding.mesh, PartitionSpec())
  return {key: jax.make_array_from_process_local_data(
              replicated if key in REPLICATED_KEYS else sharded, np.asarray(value))
          for key, value in local.items()}
