"""PyTorch checkpoints (``torch.save``) read into NumPy without torch and without running code.

Reads both formats ``torch.load`` reads:
  legacy  (``_use_new_zipfile_serialization=False``, e.g. Resemblyzer's ``pretrained.pt``):
          pickles of the magic number, protocol version and system info, then the object
          pickle, then the pickled list of storage keys, then per storage an int64 element
          count and the raw little-endian bytes.
  zip     (the default since torch 1.6): ``<archive>/data.pkl`` plus one raw file per
          storage, ``<archive>/data/<key>``.

Pickles are executable programs; this module runs them through an unpickler whose
``find_class`` resolves only a fixed allow-list: the tensor and parameter rebuild functions,
the storage types and ``collections.OrderedDict``. Any other global (``os.system``,
``builtins.eval``, a class with ``__reduce__``) is refused before it is looked up, with
``UnsafeCheckpointError`` naming the file and the global. Tensors come back as NumPy arrays
(copies, in the checkpoint's dtype) inside the plain dicts/lists/tuples of the checkpoint.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile

import ml_dtypes
import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
STORAGE_DTYPES = {
    "DoubleStorage": np.float64, "FloatStorage": np.float32, "HalfStorage": np.float16,
    "BFloat16Storage": ml_dtypes.bfloat16, "LongStorage": np.int64, "IntStorage": np.int32,
    "ShortStorage": np.int16, "CharStorage": np.int8, "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(ValueError):
  """The checkpoint's pickle names a global outside the allow-list (or is not a checkpoint)."""


class _StorageType:
  """Stands for ``torch.<Name>Storage`` in a pickle: only its dtype matters here."""

  def __init__(self, name: str):
    self.dtype = np.dtype(STORAGE_DTYPES[name])


class _Storage:
  """One storage's bytes, filled when read (legacy storages follow the object pickle)."""

  def __init__(self, dtype: np.dtype, numel: int):
    self.dtype, self.numel, self.data = dtype, numel, None


class _Tensor:
  """A tensor whose storage may not be read yet: made an array by ``_materialise``."""

  def __init__(self, storage: _Storage, offset: int, size, stride):
    self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

  def array(self) -> np.ndarray:
    data = self.storage.data
    if data is None:
      raise UnsafeCheckpointError("a tensor's storage is missing from the checkpoint")
    last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride) if n)
    if min(self.size, default=1) and (self.offset < 0 or last >= len(data)):
      raise UnsafeCheckpointError(f"a tensor of size {self.size} reaches past its storage "
                                  f"of {len(data)} elements")
    item = data.itemsize
    return np.lib.stride_tricks.as_strided(
        data[self.offset:], self.size, [s * item for s in self.stride]).copy()


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, *rest):
  del requires_grad, hooks, rest  # autograd state and tensor metadata mean nothing in NumPy
  if not isinstance(storage, _Storage):
    raise UnsafeCheckpointError(f"a tensor rebuilt from {type(storage).__name__}, not a storage")
  return _Tensor(storage, int(offset), size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, *rest):
  del requires_grad, hooks, rest
  return data


ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(name) for name in STORAGE_DTYPES},
}


class _Unpickler(pickle.Unpickler):
  """Resolves only ``ALLOWED`` globals; storages come from ``persistent_load``."""

  def __init__(self, file, name: str, storages: dict):
    super().__init__(file, encoding="latin1")
    self.name, self.storages = name, storages

  def find_class(self, module, name):
    if (module, name) not in ALLOWED:
      raise UnsafeCheckpointError(
          f"{self.name}: refusing to load the global {module}.{name}: a PyTorch checkpoint "
          f"may only name tensors, storages and OrderedDict (is it a trusted model file?)")
    return ALLOWED[(module, name)]

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] in ("storage", b"storage")
            and isinstance(pid[1], _StorageType)):
      raise UnsafeCheckpointError(f"{self.name}: unexpected persistent id {pid!r:.80}")
    storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
    if key not in self.storages:
      self.storages[key] = _Storage(storage_type.dtype, numel)
    return self.storages[key]


def _unpickle(file, name: str, storages: dict):
  try:
    return _Unpickler(file, name, storages).load()
  except UnsafeCheckpointError:
    raise
  except (pickle.UnpicklingError, EOFError, TypeError, AttributeError, IndexError,
          KeyError, ValueError, struct.error) as err:
    raise UnsafeCheckpointError(f"{name}: not a readable PyTorch checkpoint "
                                f"({type(err).__name__}: {err})") from None


def _materialise(obj):
  if isinstance(obj, _Tensor):
    return obj.array()
  if isinstance(obj, dict):
    out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
    out.update((k, _materialise(v)) for k, v in obj.items())
    return out
  if isinstance(obj, (list, tuple)):
    return type(obj)(_materialise(v) for v in obj)
  return obj


def _read_zip(path: str, archive: zipfile.ZipFile):
  pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
  if len(pickles) != 1:
    raise UnsafeCheckpointError(f"{path}: a zip file without one <archive>/data.pkl "
                                "(not a PyTorch checkpoint)")
  prefix, storages = pickles[0][:-len("data.pkl")], {}
  obj = _unpickle(io.BytesIO(archive.read(pickles[0])), path, storages)
  big_endian = archive.read(prefix + "byteorder") == b"big" if (
      prefix + "byteorder") in archive.namelist() else False
  for key, storage in storages.items():
    try:
      raw = archive.read(f"{prefix}data/{key}")
    except KeyError:
      raise UnsafeCheckpointError(f"{path}: storage {key} is missing") from None
    dtype = storage.dtype.newbyteorder(">") if big_endian else storage.dtype
    storage.data = _frombuffer(path, raw, dtype, storage.numel, key).astype(storage.dtype)
  return _materialise(obj)


def _read_legacy(path: str, f):
  storages = {}
  magic = _unpickle(f, path, storages)
  if magic != LEGACY_MAGIC:
    raise UnsafeCheckpointError(f"{path}: not a PyTorch checkpoint (no torch.save magic number)")
  protocol = _unpickle(f, path, storages)
  if protocol != LEGACY_PROTOCOL:
    raise UnsafeCheckpointError(f"{path}: unsupported torch.save protocol {protocol!r}")
  _unpickle(f, path, storages)  # system info: endianness and type sizes, always little/8 here
  obj = _unpickle(f, path, storages)
  keys = _unpickle(f, path, storages)
  if not isinstance(keys, list) or set(map(str, keys)) != set(storages):
    raise UnsafeCheckpointError(f"{path}: the storage key list does not match the tensors")
  for key in map(str, keys):
    storage = storages[key]
    header = f.read(8)
    if len(header) != 8:
      raise UnsafeCheckpointError(f"{path}: truncated before storage {key}")
    numel = struct.unpack("<q", header)[0]
    raw = f.read(numel * storage.dtype.itemsize)
    storage.data = _frombuffer(path, raw, storage.dtype, numel, key)
  return _materialise(obj)


def _frombuffer(path, raw, dtype, numel, key):
  if len(raw) != numel * dtype.itemsize:
    raise UnsafeCheckpointError(f"{path}: storage {key} holds {len(raw)} bytes, expected "
                                f"{numel} x {dtype.itemsize}")
  return np.frombuffer(raw, dtype)


def load(path: str | os.PathLike):
  """The object ``torch.save`` wrote to ``path``, tensors as NumPy arrays; nothing executed.

  Raises ``UnsafeCheckpointError`` (a ValueError) naming the file for a global outside the
  allow-list or a file that is not a PyTorch checkpoint, FileNotFoundError when missing.
  """
  path = os.fspath(path)
  if zipfile.is_zipfile(path):
    with zipfile.ZipFile(path) as archive:
      return _read_zip(path, archive)
  with open(path, "rb") as f:
    return _read_legacy(path, f)
