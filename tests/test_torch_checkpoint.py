"""ge2e_jax.torch_checkpoint: PyTorch checkpoints into NumPy, no torch, nothing executed."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from ge2e_jax import torch_checkpoint
from tests import torch_fixtures


def assert_same(got, want):
  if isinstance(want, dict):
    assert type(got) is type(want) and list(got) == list(want)
    for key in want:
      assert_same(got[key], want[key])
  elif isinstance(want, (list, tuple)):
    assert type(got) is type(want) and len(got) == len(want)
    for g, w in zip(got, want):
      assert_same(g, w)
  elif isinstance(want, np.ndarray):
    assert isinstance(got, np.ndarray) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got.flags.owndata  # a copy: nothing aliases the file's buffer
  else:
    assert got == want


@pytest.mark.parametrize("kind", ["legacy", "zip"])
def test_reads_committed_checkpoints_without_torch(kind):
  assert_same(torch_checkpoint.load(torch_fixtures.FILES[kind]), torch_fixtures.expected())


@pytest.mark.parametrize("legacy", [True, False])
def test_reads_what_real_torch_saves(tmp_path, legacy):
  torch = pytest.importorskip("torch", reason="torch (the bench extra) is not installed")
  path = tmp_path / "state.pt"
  torch_fixtures.save(torch, str(path), legacy)
  assert_same(torch_checkpoint.load(path), torch_fixtures.expected())
  # A real module's state dict too (nn.LSTM + Linear, as Resemblyzer saves).
  module = torch.nn.LSTM(5, 3, 2)
  torch.save({"model_state": module.state_dict()}, path,
             _use_new_zipfile_serialization=not legacy)
  got = torch_checkpoint.load(path)["model_state"]
  assert list(got) == list(module.state_dict())
  for key, value in module.state_dict().items():
    np.testing.assert_array_equal(got[key], value.numpy())


class _Payload:
  """Unpickling this runs ``touch <path>`` through os.system (what a hostile .pt does)."""

  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return os.system, (f"touch {self.path}",)


def _legacy_with(payload) -> bytes:
  out = io.BytesIO()
  for obj in (torch_checkpoint.LEGACY_MAGIC, torch_checkpoint.LEGACY_PROTOCOL, {}):
    pickle.dump(obj, out, protocol=2)
  pickle.dump({"model_state": payload}, out, protocol=2)
  pickle.dump([], out, protocol=2)
  return out.getvalue()


def test_malicious_pickles_are_refused_without_running(tmp_path):
  marker = tmp_path / "pwned"
  payload = pickle.dumps({"model_state": _Payload(marker)}, protocol=2)
  # The payload is live: the call its pickle carries (REDUCE) creates the marker. Run here
  # directly, never through an unpickler (the test could fail).
  call, args = _Payload(marker).__reduce__()
  call(*args)
  assert marker.exists() and b"system" in payload
  marker.unlink()

  legacy = tmp_path / "legacy.pt"
  legacy.write_bytes(_legacy_with(_Payload(marker)))
  archive = tmp_path / "zip.pt"
  with zipfile.ZipFile(archive, "w") as z:
    z.writestr("archive/data.pkl", payload)
  first = tmp_path / "first.pt"  # the payload where the magic number should be
  first.write_bytes(payload)
  builtins = tmp_path / "eval.pt"
  builtins.write_bytes(b"\x80\x02cbuiltins\neval\nq\x00X\x0b\x00\x00\x00print(1)+1q\x01\x85q\x02Rq\x03.")
  for path in (legacy, archive, first, builtins):
    with pytest.raises(torch_checkpoint.UnsafeCheckpointError) as err:
      torch_checkpoint.load(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and "refusing" in message, message
    assert not marker.exists()


def test_damaged_files_give_one_line(tmp_path):
  data = open(torch_fixtures.FILES["legacy"], "rb").read()
  cases = {"truncated.pt": data[:-10], "text.pt": b"not a checkpoint at all\n",
           "empty.pt": b""}
  for name, content in cases.items():
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(torch_checkpoint.UnsafeCheckpointError, match=name) as err:
      torch_checkpoint.load(path)
    assert "\n" not in str(err.value)
