"""Waveform -> d-vector with sliding windows (Wan et al. 2018, §3.2), from a workdir or an export.

An utterance is brought to 16 kHz mono float32, its leading and trailing silence is cut
(energy VAD, ``ge2e_jax.audio.trim_silence``; optional), and it is split into windows of
160 frames (25 840 samples; ``window_frames`` changes it, e.g. 80 for a TD model trained
on 80-frame segments) with 50 % overlap: window k starts at frame 80 k (``hop_frames``
changes the hop; ``embed_utterance(..., return_windows=True)`` returns every window's
d-vector and start time, e.g. for diarization). When the
frames after the last such window are not covered, one more window is aligned to the end,
so every frame is seen and every window holds real audio. An utterance shorter than one
window gives a single window, filled by repeating the utterance from its start
(``wav[j % len(wav)]``), or with ``config.window_rule="overlap_padded"`` ending in it after
zeros. Each window's d-vector is L2-normalised (the encoder does that), the window
d-vectors are averaged and the average is normalised again. A speaker's d-vector is the
normalised mean of its utterance d-vectors (§3.2).

Windows of all utterances of a call are batched through one jitted encoder forward, in
chunks of at most ``max_windows`` windows zero-padded to a power-of-two bucket, so jit
compiles a handful of shapes, not one per file. ``embed_waveforms`` is the same
computation as one traceable function of a ``(batch, samples)`` waveform batch with
symbolic shapes: it is what ``experiments/export.py`` serialises.

``config.window_rule="partials"`` (imported Resemblyzer encoders, ``model.RESEMBLYZER``)
cuts windows as Resemblyzer's ``VoiceEncoder.embed_utterance`` does instead: one every
``round(SAMPLE_RATE / partial_rate / HOP_LENGTH)`` frames (77 at 1.3 per second) while the
window starts within the utterance's centred frames, the last dropped when it covers less
than ``min_coverage`` of a window (one is always kept), frames centred (a window starts half
a frame before its first frame) and audio beyond either end read as zeros. Volume
normalisation (``config.target_dbfs``) applies to the whole utterance before windowing.

Window starts sit on the 10 ms frame grid and frames use no centre padding, so a window's
log-mel equals the matching 160 frames of the whole utterance's log-mel.

Verification (``Embedder.score``/``verify``; the math is in ``ge2e_jax.scoring``) scores the
cosine of a speaker d-vector with test d-vectors and decides with the threshold of the
model's ``model_card.json`` (``ge2e_jax.model_card``) unless one is given.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ge2e_jax import audio, checkpoint, export_io, features, model, model_card, scoring
from ge2e_jax.audio import TrimOptions  # re-exported: Embedder(trim=inference.TrimOptions(...))
from ge2e_jax.features import SAMPLE_RATE
from ge2e_jax.normalize import l2_normalize, l2_normalize_np

WINDOW_FRAMES = 160
MIN_SAMPLES = audio.MIN_SPEECH_SAMPLES  # one 25 ms frame, as the builders require
MIN_BUCKET = 4


def num_windows(num_samples, window_frames: int = WINDOW_FRAMES, hop_frames: int | None = None,
                config: model.EncoderConfig | None = None):
  """Windows of an utterance of ``num_samples`` samples; ints or jax.export symbolic dims.

  ``hop_frames`` defaults to half a window (50 % overlap), or for ``config``'s "partials"
  rule to ``partial_hop_frames(config)``.
  """
  if _partials(config):
    return _num_partials(num_samples, window_frames, hop_frames or partial_hop_frames(config),
                         config.min_coverage)
  hop = hop_frames or window_frames // 2
  return 1 + (_last_start_frame(num_samples, window_frames) + hop - 1) // hop


def _rule(config) -> str:
  """``config.window_rule``; "overlap" without a config."""
  return "overlap" if config is None else config.window_rule


def _partials(config) -> bool:
  return _rule(config) == "partials"


def partial_hop_frames(config: model.EncoderConfig) -> int:
  """Frames between Resemblyzer partials: ``partial_rate`` windows per second."""
  return max(1, int(np.round(SAMPLE_RATE / config.partial_rate / features.HOP_LENGTH)))


def _num_partials(num_samples, window_frames, hop, min_coverage):
  """``VoiceEncoder.compute_partial_slices``'s count in integer (symbolic-safe) arithmetic."""
  max_, min_ = jax.core.max_dim, jax.core.min_dim
  frames = (num_samples + features.HOP_LENGTH) // features.HOP_LENGTH  # ceil((n + 1) / hop)
  count = (max_(1, frames - window_frames + hop + 1) + hop - 1) // hop
  covered = num_samples - (count - 1) * hop * features.HOP_LENGTH
  needed = int(np.ceil(min_coverage * window_frames * features.HOP_LENGTH))
  short = min_(1, max_(0, needed - covered))  # 1 when the last window covers too little
  return max_(1, count - short)  # at least one window (and provably so for jax.export)


def _last_start_frame(num_samples, window_frames):
  """First frame of the end-aligned last window (0 for utterances shorter than a window)."""
  window = features.samples_for_frames(window_frames)
  return (jax.core.max_dim(num_samples, window) - window) // features.HOP_LENGTH


def window_start_frames(num_samples, xp=np, window_frames: int = WINDOW_FRAMES,
                        hop_frames: int | None = None, config: model.EncoderConfig | None = None):
  """(num_windows,) first frame of each window: every ``hop_frames``, the last end-aligned
  (for the "partials" rule: every hop, none end-aligned)."""
  if _partials(config):
    hop = hop_frames or partial_hop_frames(config)
    return xp.arange(num_windows(num_samples, window_frames, hop, config)) * hop
  hop = hop_frames or window_frames // 2
  return xp.minimum(xp.arange(num_windows(num_samples, window_frames, hop)) * hop,
                    _last_start_frame(num_samples, window_frames))


def window_indices(num_samples, xp=np, window_frames: int = WINDOW_FRAMES,
                   hop_frames: int | None = None, config: model.EncoderConfig | None = None):
  """(num_windows, window samples) sample indices of each window, in numpy (xp=np) or jnp.

  ``% num_samples`` is a no-op for utterances of at least one window and repeats a
  shorter utterance from its start; the "overlap_padded" rule ends the window with it
  instead, indices before it negative. For the "partials" rule frames are centred: indices
  start half a frame early and may fall outside the utterance. ``gather_windows`` reads
  zeros outside.
  """
  starts = window_start_frames(num_samples, xp, window_frames, hop_frames,
                               config) * features.HOP_LENGTH
  window = features.samples_for_frames(window_frames)
  if _partials(config):
    return starts[:, None] - features.WIN_LENGTH // 2 + xp.arange(window)[None, :]
  if _rule(config) == "overlap_padded":
    lead = jax.core.max_dim(window, num_samples) - num_samples  # > 0 only for short input
    return starts[:, None] - lead + xp.arange(window)[None, :]
  return (starts[:, None] + xp.arange(window)[None, :]) % num_samples


def gather_windows(wav, indices, xp=np):
  """``wav[..., indices]`` with zeros where an index lies outside ``wav``."""
  n = wav.shape[-1]
  inside = (indices >= 0) & (indices < n)
  return xp.where(inside, wav[..., xp.clip(indices, 0, n - 1)], 0).astype(wav.dtype)


def embed_waveforms(config: model.EncoderConfig, encoder_params, waveform,
                    window_frames: int = WINDOW_FRAMES):
  """(batch, samples) 16 kHz float32 waveforms (no trimming here) -> (batch, D) d-vectors.

  Every row is one utterance of ``samples`` samples. Traceable with symbolic batch and
  sample counts (``jax.export.symbolic_shape("b, s")``).
  """
  batch, samples = waveform.shape
  waveform = features.normalize_volume(waveform, config.target_dbfs)
  windows = gather_windows(waveform, window_indices(samples, jnp, window_frames, config=config),
                           jnp)  # (batch, windows, W)
  per_window = model.SpeakerEncoder(config).apply(
      {"params": encoder_params}, windows.reshape(-1, windows.shape[-1]))
  return l2_normalize(per_window.reshape(batch, -1, per_window.shape[-1]).mean(axis=1))


@functools.partial(jax.jit, static_argnums=0)
def _encode_windows(config, encoder_params, windows):
  """(n, window samples) -> (n, D) unit d-vectors; shared compile cache for all Embedders."""
  return model.SpeakerEncoder(config).apply({"params": encoder_params}, windows)


def _bucket(n: int, cap: int) -> int:
  return min(cap, max(MIN_BUCKET, 1 << (n - 1).bit_length()))


class UtteranceWindows(NamedTuple):
  """An utterance's d-vector and its windows' (``embed_utterance(..., return_windows=True)``)."""
  d_vector: np.ndarray  # (D,) unit: the normalised mean of the window d-vectors
  windows: np.ndarray   # (n, D) unit d-vector of each window
  starts: np.ndarray    # (n,) start of each window in seconds from the start of the input


class Embedder:
  """Turns waveforms into L2-normalised float32 numpy d-vectors with one encoder's params.

  ``step`` and ``card`` (the ``model_card`` of the checkpoint or export, set by ``load``) give
  ``verify`` its default threshold.
  """

  def __init__(self, config: model.EncoderConfig, encoder_params, *,
               trim: TrimOptions = TrimOptions(), max_windows: int = 64,
               window_frames: int = WINDOW_FRAMES, source: str = "params",
               hop_frames: int | None = None, step: int | None = None,
               card: dict | None = None):
    if max_windows < MIN_BUCKET or max_windows & (max_windows - 1):
      raise ValueError(f"max_windows must be a power of two >= {MIN_BUCKET}, got {max_windows}")
    if window_frames < 2 or window_frames % 2:
      raise ValueError(f"window_frames must be an even number >= 2, got {window_frames}")
    self.window_frames = window_frames
    self.window_samples = features.samples_for_frames(window_frames)
    self.hop_frames = hop_frames or (partial_hop_frames(config) if _partials(config)
                                     else window_frames // 2)
    if not 1 <= self.hop_frames <= window_frames:
      raise ValueError(f"hop_frames must be in [1, window_frames={window_frames}], "
                       f"got {hop_frames}")
    self.step, self.card = step, card
    _check_params(config, encoder_params, source)
    self.config = config
    self.params = jax.device_put(encoder_params)
    self.trim = trim
    self.max_windows = max_windows
    self.source = source

  @property
  def dim(self) -> int:
    return model.embedding_dim(self.config)

  def prepare(self, wav, sample_rate: int, name: str = "waveform") -> np.ndarray:
    """float audio (samples,) or (samples, channels) at any rate -> trimmed 16 kHz mono
    (at ``config.target_dbfs`` when the model sets one).

    Raises ValueError (naming ``name``) for audio the builders would not take either
    (``audio.speech_16k``): non-float, non-finite, a sample rate out of range, too short
    or too quiet to be speech.
    """
    _refuse_masked(wav, name)
    try:
      speech, _, untrimmed = audio.speech_16k(wav, sample_rate, self.trim)
    except ValueError as err:
      raise ValueError(f"{name}: {err}") from None
    # The level of the whole recording, as Resemblyzer sets it before trimming (the trimmed
    # silence holds next to no energy); embedding then finds it at the target already.
    return features.normalize_volume(speech, self.config.target_dbfs, np, untrimmed)

  def read(self, path: str | os.PathLike) -> np.ndarray:
    """A wav/flac/ogg file -> trimmed 16 kHz mono; AudioReadError names the file."""
    try:
      wav, sample_rate = audio.read_audio_channels(path)
      return self.prepare(wav, sample_rate, name=os.fspath(path))
    except audio.AudioReadError:
      raise
    except ValueError as err:
      raise audio.AudioReadError(path, str(err).removeprefix(f"{os.fspath(path)}: ")) from err
    except MemoryError:
      raise audio.AudioReadError(path, "too large to read and prepare in memory") from None

  def embed_prepared(self, wavs: Sequence[np.ndarray],
                     names: Sequence[str] | None = None) -> np.ndarray:
    """(B, D) d-vectors of 16 kHz mono waveforms used as they are (see ``prepare``).

    AudioReadError naming the first waveform (``names[i]``, else "waveform i") whose
    d-vector is not finite: no NaN or inf row is ever returned.
    """
    if not len(wavs):
      return np.zeros((0, self.dim), np.float32)
    for i, wav in enumerate(wavs):
      _refuse_masked(wav, names[i] if names is not None else f"waveform {i}")
    counts = np.array([num_windows(len(w), self.window_frames, self.hop_frames, self.config)
                       for w in wavs], np.int64)
    per_window = np.concatenate([self._encode(chunk) for chunk in self._window_chunks(wavs)])
    starts = np.cumsum(counts) - counts
    rows = l2_normalize_np(np.add.reduceat(per_window.astype(np.float64), starts,
                                           axis=0)).astype(np.float32)
    self._check_finite(rows, names)
    return rows

  def _check_finite(self, rows: np.ndarray, names: Sequence[str] | None = None):
    """AudioReadError naming the first waveform whose d-vector row holds NaN or inf."""
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if len(bad):
      name = names[bad[0]] if names is not None else f"waveform {bad[0]}"
      raise audio.AudioReadError(name, f"d-vector is not finite (the encoder gave NaN or inf; "
                                 f"{len(bad)} of {len(rows)} in this batch, model {self.source})")

  def _window_chunks(self, wavs):
    """Yields (n <= max_windows, window samples) stacks of consecutive windows of wavs.

    The buffer is reused: each stack must be consumed before the next is asked for.
    """
    buf, n = np.zeros((self.max_windows, self.window_samples), np.float32), 0
    for wav in wavs:
      wav = features.normalize_volume(np.asarray(wav, np.float32), self.config.target_dbfs, np)
      idx = window_indices(len(wav), window_frames=self.window_frames,
                           hop_frames=self.hop_frames, config=self.config)
      while len(idx):
        take = min(len(idx), self.max_windows - n)
        buf[n:n + take] = gather_windows(wav, idx[:take])
        n, idx = n + take, idx[take:]
        if n == self.max_windows:
          yield buf
          n = 0
    if n:
      yield buf[:n]

  def _encode(self, windows: np.ndarray) -> np.ndarray:
    n = windows.shape[0]
    padded = np.zeros((_bucket(n, self.max_windows), self.window_samples), np.float32)
    padded[:n] = windows
    return np.asarray(_encode_windows(self.config, self.params, padded))[:n]

  def embed_utterances(self, wavs: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """(B, D) d-vectors of B waveforms of any lengths at ``sample_rate``."""
    return self.embed_prepared(
        [self.prepare(w, sample_rate, name=f"waveform {i}") for i, w in enumerate(wavs)])

  def embed_utterance(self, wav, sample_rate: int, return_windows: bool = False,
                      name: str = "waveform"):
    """(D,) float32 unit d-vector of one waveform (samples,) or (samples, channels).

    With ``return_windows`` an ``UtteranceWindows``: also each window's d-vector and start
    time (seconds in ``wav``, trimmed silence included), e.g. for diarization; windows hop
    by ``hop_frames``.
    """
    prepared = self.prepare(wav, sample_rate, name=name)
    if not return_windows:
      return self.embed_prepared([prepared])[0]
    offset = 0
    if self.trim.enabled:  # where the trimmed audio starts in the resampled input
      offset = self.trim.apply(audio.to_16k_mono(np.asarray(wav), sample_rate))[1][0]
    windows = np.concatenate([self._encode(chunk) for chunk in self._window_chunks([prepared])])
    self._check_finite(windows, [name] * len(windows))
    starts = window_start_frames(len(prepared), window_frames=self.window_frames,
                                 hop_frames=self.hop_frames,
                                 config=self.config) * features.HOP_LENGTH
    d_vector = l2_normalize_np(windows.astype(np.float64).sum(0)).astype(np.float32)
    return UtteranceWindows(d_vector, windows, (offset + starts) / SAMPLE_RATE)

  def embed_speaker(self, wavs: Sequence[np.ndarray], sample_rate: int) -> np.ndarray:
    """(D,) normalised mean of the utterance d-vectors: a speaker's enrollment d-vector."""
    if not len(wavs):
      raise ValueError("embed_speaker needs at least one enrollment utterance")
    return l2_normalize_np(self.embed_utterances(wavs, sample_rate).astype(np.float64)
                           .mean(0)).astype(np.float32)

  def embed_files(self, paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """(N, D) d-vectors of audio files (all read into memory first; batch long lists)."""
    return self.embed_prepared([self.read(p) for p in paths], [os.fspath(p) for p in paths])

  def score(self, enrolment, test, cohort=None, top_k: int = scoring.DEFAULT_TOP_K):
    """Cosine of the speaker d-vector of ``enrolment`` with ``test``; AS-norm with ``cohort``.

    ``enrolment``: one (D,) speaker d-vector or (n, D) enrolment utterance d-vectors (their
    normalised mean is the speaker's); ``test``: (D,) -> float or (m, D) -> (m,) scores.
    ``cohort``: (C, D) d-vectors of other speakers for AS-norm (``ge2e_jax.scoring``).
    """
    raw = scoring.cosine_scores(enrolment, test)
    if cohort is None:
      return raw
    speaker = scoring.speaker_model(enrolment)[None]
    tests = np.atleast_2d(np.asarray(test, np.float64))
    normed = scoring.as_norm(raw, scoring.cohort_stats(speaker, cohort, top_k),
                             scoring.cohort_stats(tests, cohort, top_k))
    return float(normed[0]) if np.ndim(test) == 1 else normed

  def operating_point(self, score_norm: str = "none") -> dict | None:
    """The model card's evaluation that sets this model's threshold for ``score_norm`` scores."""
    return model_card.operating_point(self.card, self.step, score_norm)

  def threshold(self, score_norm: str = "none", operating_point: str = "eer",
                threshold: float | None = None) -> tuple[float, str]:
    """(threshold, what it was measured on) for ``score_norm`` ("none" or "asnorm") scores.

    ``threshold`` if given, else the model card's EER threshold (``operating_point="eer"``)
    or its threshold at the card's false-accept rate ("far"), both measured on scores of
    the same kind; raises ValueError naming the model when its card has none.
    """
    if operating_point not in ("eer", "far"):
      raise ValueError(f"operating_point must be 'eer' or 'far', got {operating_point!r}")
    if threshold is not None:
      if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
      return float(threshold), "given"
    entry = self.operating_point(score_norm)
    if entry is None:
      how = " --score_norm=asnorm --cohort=..." if score_norm == "asnorm" else ""
      raise ValueError(
          f"{self.source}: no threshold for {score_norm} scores: its model card "
          f"({model_card.FILE}) marks no evaluation of step {self.step} as the operating point; "
          f"pass a threshold, or measure one with `python -m experiments.evaluate --model=... "
          f"--trials=... --calibrate{how}`")
    return (float(entry[f"{operating_point}_threshold"]),
            f"model card {operating_point} threshold: {entry['calibrated_on']}")

  def verify_d_vectors(self, enrolment, test, *, threshold: float | None = None,
                       operating_point: str = "eer", cohort=None,
                       top_k: int | None = None) -> list[dict]:
    """One decision per row of ``test`` (m, D) against the speaker of ``enrolment``.

    Scores are cosines, AS-normed when a ``cohort`` is given (``score``; ``top_k`` defaults
    to the one the card's threshold was measured with); the threshold is
    ``self.threshold(...)``. Each result: score, threshold, accept (score >= threshold), llr
    (when the card holds a calibration of such scores, else None), score_norm and
    threshold_from (what the threshold was measured on).
    """
    score_norm = "none" if cohort is None else "asnorm"
    threshold, threshold_from = self.threshold(score_norm, operating_point, threshold)
    entry = self.operating_point(score_norm) or {}
    calibration = entry.get("calibration") and scoring.Calibration.from_dict(entry["calibration"])
    top_k = top_k or (entry.get("cohort") or {}).get("top_k") or scoring.DEFAULT_TOP_K
    scores = np.atleast_1d(self.score(enrolment, np.atleast_2d(test), cohort, top_k))
    return [{"score": float(v), "threshold": threshold, "accept": bool(v >= threshold),
             "llr": float(calibration.llr(v)) if calibration else None,
             "score_norm": score_norm, "threshold_from": threshold_from} for v in scores]

  def verify(self, enroll, test, *, sample_rate: int | None = None, **options):
    """Does ``test`` sound like the speaker of ``enroll``? (``verify_d_vectors`` per test).

    ``enroll``: audio files (paths) or waveforms at ``sample_rate``; ``test``: one file or
    waveform (-> one result dict) or a list of them (-> a list). ``options`` go to
    ``verify_d_vectors`` (threshold, operating_point, cohort, top_k).
    """
    single = isinstance(test, (str, os.PathLike)) or (
        isinstance(test, np.ndarray) and test.dtype != object)
    tests = [test] if single else list(test)
    results = self.verify_d_vectors(self._embed_items(enroll, sample_rate, "enroll"),
                                    self._embed_items(tests, sample_rate, "test"), **options)
    return results[0] if single else results

  def _embed_items(self, items, sample_rate, what):
    if not len(items):
      raise ValueError(f"{what}: need at least one audio file or waveform")
    wavs = []
    for i, item in enumerate(items):
      if isinstance(item, (str, os.PathLike)):
        wavs.append(self.read(item))
      elif sample_rate is None:
        raise ValueError(f"{what} {i}: a waveform needs sample_rate=")
      else:
        wavs.append(self.prepare(item, sample_rate, name=f"{what} waveform {i}"))
    return self.embed_prepared(wavs)


def _refuse_masked(wav, name: str):
  """A NumPy masked array would be embedded with its mask ignored: refused."""
  if isinstance(wav, np.ma.MaskedArray):
    raise ValueError(f"{name}: a NumPy masked array (its mask would be ignored); pass "
                     "the samples to use, e.g. wav.compressed() or wav.filled(0)")


def _check_params(config, encoder_params, source):
  shape = lambda tree: jax.tree.map(lambda x: tuple(np.shape(x)), tree)
  expected = shape(export_io.abstract_encoder_params(config))
  if expected != shape(encoder_params):
    raise ValueError(f"{source}: encoder params do not match its model config {config}: "
                     f"expected shapes {expected}, got {shape(encoder_params)}")


def load(path: str | os.PathLike, which: str = "best", verify: bool = True,
         window_rule: str | None = None, **options) -> Embedder:
  """An Embedder from a training workdir (``which`` checkpoint) or an export dir.

  A workdir holds ``config.json`` and ``checkpoints/`` (``ge2e_jax.checkpoint``); an export
  dir holds ``config.json`` and ``params/`` (``ge2e_jax.export_io``). ``options`` go to
  ``Embedder``; ``window_frames`` defaults to the one the model was evaluated (workdir:
  config ``eval.window_frames``) or exported with, ``window_rule`` (``model.WINDOW_RULES``)
  to the model's. An export's files are checked against its checksums first
  (``export_io.verify_checksums``: DamagedExportError names a damaged file) unless
  ``verify`` is False.
  """
  with_rule = lambda config: (config if window_rule is None
                              else dataclasses.replace(config, window_rule=window_rule))
  path = os.fspath(path)
  expected = ("a training workdir (config.json + checkpoints/) or an export dir "
              "(config.json + params/, written by experiments.export)")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"model path {path} is not a directory; expected {expected}")
  if export_io.is_export_dir(path):
    config, params, metadata = export_io.read_export(path, verify)
    options.setdefault("window_frames", metadata.get("window_frames", WINDOW_FRAMES))
    card = model_card.read(path)
    return Embedder(with_rule(config), params["encoder"], source=path, card=card,
                    step=(card or {}).get("model", {}).get("step"), **options)
  if os.path.isdir(os.path.join(path, checkpoint.CHECKPOINT_DIR)):
    values = checkpoint.read_config(path)
    if "model" not in values:
      raise ValueError(f"{os.path.join(path, checkpoint.CONFIG_FILE)} has no 'model' entry "
                       f"(the encoder config); keys: {sorted(values)}")
    options.setdefault("window_frames",
                       values.get("eval", {}).get("window_frames", WINDOW_FRAMES))
    step, params = checkpoint.restore_params(path, which)
    return Embedder(with_rule(model.config_from_dict(values["model"])), params["encoder"],
                    source=f"{path} (step {step})", step=step, card=model_card.read(path),
                    **options)
  present = sorted(os.listdir(path))[:10]
  raise FileNotFoundError(f"model path {path} holds {present}; expected {expected}")
