"""Train-step throughput: ge2e_jax's jitted step against the same model in PyTorch.

Both sides do the same work per step: log-mel of raw 16 kHz audio, a 3-layer LSTMP
(``torch.nn.LSTM(proj_size=...)`` on the PyTorch side), last frame, L2 norm, GE2E softmax
loss with leave-one-out centroids (sum), backward, global-norm clip 3, the paper's gradient
scales and an SGD update. Times are medians of per-step wall clock after warm-up (JAX's
compile time is reported on its own). No TensorFlow is imported: this runs on a GPU box.

  python -m benchmarks.train_step                       # td 64x10x80 and ti 16x5x160
  python -m benchmarks.train_step --case td:64:10:80 --case ti:64:10:160 --steps 20
  python -m benchmarks.train_step --augment 0.5 --no-torch   # + the step with augmentation

On a CPU host JAX is timed on 1 device and on one device per core (``--cpu_devices 1,2``;
``jax_num_cpu_devices`` splits the host into devices): the train step is data-parallel over
devices, and XLA runs each device's share on its own thread, while one device runs most of
the LSTM's per-time-step work on one thread. PyTorch uses its default intra-op threads.
"""

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time

import jax
import numpy as np

from ge2e_jax import augment, features, model, optim, train_step

DEFAULT_CASES = ("td:64:10:80", "ti:16:5:160")


@dataclasses.dataclass
class Case:
  preset: str
  n: int
  m: int
  frames: int

  @classmethod
  def parse(cls, text):
    preset, n, m, frames = text.split(":")
    return cls(preset, int(n), int(m), int(frames))

  def __str__(self):
    return f"{self.preset} {self.n}x{self.m}x{self.frames}"


def random_audio(n, m, frames, seed=0):
  rs = np.random.RandomState(seed)
  return (0.1 * rs.randn(n, m, features.samples_for_frames(frames))).astype(np.float32)


def _summary(times, utterances, compile_s=None):
  median = statistics.median(times)
  return {"median_s": median, "utterances_per_s": utterances / median, "steps": len(times),
          "compile_s": compile_s}


def _compiled_step(preset, n, m, frames, devices, augmenter=None, **step_options):
  """(compiled step, state, batch, rng, compile seconds) on the first ``devices``.

  ``preset``: a preset name or an EncoderConfig; ``step_options`` go to make_train_step.
  """
  config = model.preset(preset) if isinstance(preset, str) else preset
  mesh = train_step.make_mesh(jax.devices()[:devices])
  opt = optim.make_optimizer()
  step = train_step.make_train_step(config, opt, mesh, augment=augmenter, **step_options)
  state = train_step.replicate(train_step.init_state(train_step.init_params(jax.random.key(0), config), opt),
                          mesh)
  batch = jax.device_put({"audio": random_audio(n, m, frames),
                          "speaker": np.arange(n, dtype=np.int32)}, train_step.batch_sharding(mesh))
  rng = jax.random.key(1)
  start = time.perf_counter()
  compiled = step.lower(state, batch, rng).compile()
  return compiled, state, batch, rng, time.perf_counter() - start


def time_train_step(preset, n: int, m: int, frames: int, steps: int = 10,
                    warmup: int = 2, devices: int = 1, **step_options) -> dict:
  """Median wall-clock seconds of ge2e_jax's jitted train step on the first ``devices``,
  and XLA's temp buffer bytes for it (``_compiled_step``'s arguments)."""
  compiled, state, batch, rng, compile_s = _compiled_step(preset, n, m, frames, devices,
                                                          **step_options)
  for _ in range(warmup):
    state, metrics = compiled(state, batch, rng)
  jax.block_until_ready(metrics)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, rng)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  return dict(_summary(times, n * m, compile_s),
              temp_bytes=compiled.memory_analysis().temp_size_in_bytes)


def time_augmented_step(preset: str, n: int, m: int, frames: int, augmenter, steps: int = 10,
                        warmup: int = 2, devices: int = 1) -> dict:
  """The step without and with ``augmenter`` inside, timed alternately (a noisy host slows
  both alike), and the augmentation alone (jitted on one device's shard)."""
  plain = _compiled_step(preset, n, m, frames, devices)
  augmented = _compiled_step(preset, n, m, frames, devices, augmenter)
  states = [plain[1], augmented[1]]
  times = ([], [])
  for k in range(warmup + steps):
    for which, (compiled, _, batch, rng, _) in enumerate((plain, augmented)):
      start = time.perf_counter()
      states[which], metrics = compiled(states[which], batch, rng)
      jax.block_until_ready((states[which], metrics))
      if k >= warmup:
        times[which].append(time.perf_counter() - start)
  shard = jax.device_put(random_audio(n // devices, m, frames), jax.devices()[0])
  alone = jax.jit(augmenter.__call__)
  jax.block_until_ready(alone(shard, jax.random.key(0)))
  alone_times = []
  for k in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(alone(shard, jax.random.key(k)))
    alone_times.append(time.perf_counter() - start)
  return {"plain": _summary(times[0], n * m, plain[4]),
          "augmented": _summary(times[1], n * m, augmented[4]),
          "augment_alone_median_s": statistics.median(alone_times)}


def time_torch_step(preset: str, n: int, m: int, frames: int, steps: int = 10,
                    warmup: int = 2, device: str = "cpu") -> dict:
  """The same step in PyTorch (cuDNN LSTM with proj_size on GPU)."""
  import torch  # the bench extra; not a library dependency
  import torch.nn.functional as F

  config = model.preset(preset)
  dev = torch.device(device)
  lstm = torch.nn.LSTM(config.n_mels, config.cells, num_layers=config.layers, batch_first=True,
                       proj_size=config.projection).to(dev)
  w = torch.nn.Parameter(torch.tensor(train_step.INIT_W, device=dev))
  b = torch.nn.Parameter(torch.tensor(train_step.INIT_B, device=dev))
  projections = [p for name, p in lstm.named_parameters() if name.startswith("weight_hr")]
  sgd = torch.optim.SGD(list(lstm.parameters()) + [w, b], lr=0.01)
  window = torch.hann_window(features.WIN_LENGTH, periodic=True, device=dev)
  mel = torch.from_numpy(np.asarray(features.mel_filterbank(), np.float32)).to(dev)
  audio = torch.from_numpy(random_audio(n, m, frames)).to(dev).reshape(n * m, -1)
  idx = torch.arange(n, device=dev)

  def step():
    frames_ = audio.unfold(-1, features.WIN_LENGTH, features.HOP_LENGTH) * window
    power = torch.fft.rfft(frames_, n=features.N_FFT).abs().square()
    logmel = torch.log(power @ mel + 1e-6)
    x = (logmel - logmel.mean(1, keepdim=True)) / torch.sqrt(
        logmel.var(1, unbiased=False, keepdim=True) + model.FEATURE_VARIANCE_FLOOR)
    emb = F.normalize(lstm(x)[0][:, -1], dim=-1).reshape(n, m, -1)
    sums = emb.sum(1)
    cos = torch.einsum("nmd,kd->nmk", emb, F.normalize(sums, dim=-1))
    own = (emb * F.normalize(sums[:, None] - emb, dim=-1)).sum(-1)
    cos = cos.clone()
    cos[idx, :, idx] = own
    s = w * cos + b
    loss = (torch.logsumexp(s, -1) - s[idx, :, idx]).sum()
    sgd.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(lstm.parameters()) + [w, b], 3.0)
    for p in projections:
      p.grad.mul_(0.5)
    w.grad.mul_(0.01)
    b.grad.mul_(0.01)
    sgd.step()
    with torch.no_grad():
      w.clamp_(min=optim.W_FLOOR)
    return loss

  sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
  for _ in range(warmup):
    step()
  sync()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    sync()
    times.append(time.perf_counter() - start)
  return _summary(times, n * m)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--case", action="append", help="preset:N:M:frames (repeatable)")
  parser.add_argument("--steps", type=int, default=10)
  parser.add_argument("--no-torch", action="store_true", help="time JAX only")
  parser.add_argument("--cpu_devices", default="1,2",
                      help="on a CPU host: JAX device counts to time, comma-separated")
  parser.add_argument("--augment", type=float, default=None,
                      help="also time the JAX step with augmentation inside (every kind in "
                      "--augment_kinds at this probability, config defaults otherwise)")
  parser.add_argument("--augment_kinds", default=",".join(augment.KINDS),
                      help="comma-separated kinds for --augment")
  parser.add_argument("--json", help="also write the results here")
  args = parser.parse_args()
  augmenter = None
  if args.augment is not None:
    augmenter = augment.Augmenter(augment.AugmentOptions.from_dict(
        {kind: {"prob": args.augment} for kind in args.augment_kinds.split(",") if kind}))
  cases = [Case.parse(c) for c in (args.case or DEFAULT_CASES)]
  device_counts = [int(d) for d in args.cpu_devices.split(",")]
  # Before the first device query; it only shapes the CPU backend.
  jax.config.update("jax_num_cpu_devices", max(device_counts))
  if jax.default_backend() != "cpu":
    device_counts = [1]
  device = jax.devices()[0]
  torch_device = "cuda" if device.platform == "gpu" else "cpu"
  print(f"machine: {platform.node()} {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores; jax {jax.__version__} on {device.device_kind}")
  rows = []
  for case in cases:
    row = {"case": str(case), "jax": {}, "torch": None}
    for count in device_counts:
      result = time_train_step(case.preset, case.n, case.m, case.frames, args.steps,
                               devices=count)
      row["jax"][count] = result
      print(f"{case}: jax on {count} device(s) median {result['median_s']:.4f}s, compile "
            f"{result['compile_s']:.1f}s", flush=True)
      if augmenter is not None:
        row.setdefault("augmented", {})[count] = result = time_augmented_step(
            case.preset, case.n, case.m, case.frames, augmenter, args.steps, devices=count)
        print(f"{case}: on {count} device(s) step {result['plain']['median_s']:.4f}s, with "
              f"augmentation {result['augmented']['median_s']:.4f}s (alternating), "
              f"augmentation alone {result['augment_alone_median_s']:.4f}s", flush=True)
    if not args.no_torch:
      row["torch"] = time_torch_step(case.preset, case.n, case.m, case.frames, args.steps,
                                     device=torch_device)
      print(f"{case}: torch median {row['torch']['median_s']:.4f}s", flush=True)
    rows.append(row)
  print("\n| case | JAX devices | JAX utt/s | PyTorch utt/s | JAX / PyTorch | JAX compile s |")
  print("|---|---|---|---|---|---|")
  for row in rows:
    t = row["torch"]
    for count, j in row["jax"].items():
      ratio = f"{j['utterances_per_s'] / t['utterances_per_s']:.2f}x" if t else "-"
      t_ups = f"{t['utterances_per_s']:.0f}" if t else "-"
      print(f"| {row['case']} | {count} | {j['utterances_per_s']:.0f} | {t_ups} | {ratio} | "
            f"{j['compile_s']:.1f} |")
  if augmenter is not None:
    print("\n| case | JAX devices | step s | step s with augmentation | overhead | "
          "augmentation alone s (one device's shard) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
      for count, a in row["augmented"].items():
        plain, augmented = a["plain"]["median_s"], a["augmented"]["median_s"]
        print(f"| {row['case']} | {count} | {plain:.3f} | {augmented:.3f} | "
              f"{augmented / plain - 1:+.0%} | {a['augment_alone_median_s']:.3f} |")
    print(f"augmentation: {args.augment_kinds} each at p={args.augment}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  main()
