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
# A tiny Real-Time-Voice-Cloning encoder checkpoint (its SpeakerEncoder with 2 x LSTM(8) and
# Linear(8, 6), Adam state included, zip format as RTVC saves) and what torch computed with
# it: the embeddings of ``mels`` (RTVC's forward: ReLU(linear(h_T)) / norm).
RTVC_TINY = os.path.join(DATA, "rtvc_tiny.pt")
RTVC_TINY_EXPECTED = os.path.join(DATA, "rtvc_tiny_expected.npz")


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


def save_rtvc_tiny(torch):
  torch.manual_seed(0)
  lstm, linear = torch.nn.LSTM(40, 8, 2, batch_first=True), torch.nn.Linear(8, 6)
  module = torch.nn.Module()
  module.lstm, module.linear = lstm, linear
  module.similarity_weight = torch.nn.Parameter(torch.tensor([10.0]))
  module.similarity_bias = torch.nn.Parameter(torch.tensor([-5.0]))
  optimizer = torch.optim.Adam(module.parameters())
  mels = torch.rand(3, 30, 40) * 4  # mel power is >= 0
  _, (hidden, _) = lstm(mels)
  raw = torch.relu(linear(hidden[-1]))
  raw.sum().backward()
  optimizer.step()  # an optimizer_state with tensors, as RTVC checkpoints hold
  with torch.no_grad():
    _, (hidden, _) = lstm(mels)
    raw = torch.relu(linear(hidden[-1]))
    embeds = raw / torch.norm(raw, dim=1, keepdim=True)
  torch.save({"step": 5, "model_state": module.state_dict(),
              "optimizer_state": optimizer.state_dict()}, RTVC_TINY)
  np.savez(RTVC_TINY_EXPECTED, mels=mels.numpy(), embeds=embeds.numpy())


if __name__ == "__main__":
  import torch  # pylint: disable=g-import-not-at-top  # only to regenerate the fixtures
  os.makedirs(DATA, exist_ok=True)
  for kind, path in FILES.items():
    save(torch, path, legacy=kind == "legacy")
  save_rtvc_tiny(torch)
  for path in (*FILES.values(), RTVC_TINY, RTVC_TINY_EXPECTED):
    print(path, os.path.getsize(path))
