"""Small PyTorch checkpoints for tests/test_torch_checkpoint.py, and their expected contents.

``tests/data/torch_{legacy,zip}.pt`` were written by torch 2.13.0 (CPU) with
``/work/venvs/<venv with torch>/bin/python -m tests.torch_fixtures``: the tests read them
without torch (CI has none). ``expected()`` says what they hold, in NumPy alone.
"""

import collections
import os

import numpy as np

DATA = os.path.join(os.path.dirname(__file__), "data")
FILES = {"legacy": os.path.join(DATA, "torch_legacy.pt"), "zip": os.path.join(DATA, "torch_zip.pt")}


def expected() -> dict:
  """The checkpoint: a step, an OrderedDict state dict of float32/float16/int64/bool tensors,
  a transposed (non-contiguous) view and a slice sharing a storage with an offset."""
  base = np.arange(24, dtype=np.float32).reshape(4, 6) / 8 - 1
  return {"step": 7, "name": "fixture", "model_state": collections.OrderedDict([
      ("lstm.weight_ih_l0", base),
      ("lstm.bias", np.linspace(-2, 2, 5, dtype=np.float32)),
      ("transposed", base.T),
      ("tail", base.reshape(-1)[10:16]),
      ("half", np.array([0.5, -1.25, 3.0], np.float16)),
      ("count", np.array([1, -2, 3 << 40], np.int64)),
      ("mask", np.array([True, False, True])),
  ]), "nested": [{"scalar": np.float32(2.5).reshape(())}, (1, 2.0)]}


def to_torch(torch, value):
  """``expected()`` as torch tensors, with the views kept as views of one storage."""
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6) / 8 - 1
  state = collections.OrderedDict()
  for key, array in value["model_state"].items():
    state[key] = torch.from_numpy(array.copy())
  state["lstm.weight_ih_l0"] = base
  state["transposed"] = base.t()
  state["tail"] = base.reshape(-1)[10:16]
  return {"step": value["step"], "name": value["name"], "model_state": state,
          "nested": [{"scalar": torch.tensor(2.5)}, (1, 2.0)]}


def save(torch, path: str, legacy: bool):
  torch.save(to_torch(torch, expected()), path, _use_new_zipfile_serialization=not legacy)


if __name__ == "__main__":
  import torch  # pylint: disable=g-import-not-at-top  # only to regenerate the fixtures
  os.makedirs(DATA, exist_ok=True)
  for kind, path in FILES.items():
    save(torch, path, legacy=kind == "legacy")
    print(path, os.path.getsize(path))
