"""Who spoke when: window d-vectors -> spectral clustering -> speaker segments -> RTTM.

  embedder = inference.load("runs/ti_cpu")
  segments = diarization.diarize(embedder, wav, sample_rate)          # speakers: eigen-gap
  segments = diarization.diarize(embedder, wav, sample_rate, num_speakers=2)
  print("\n".join(diarization.rttm_lines(segments, "meeting1")))

The recording is cut into overlapping windows (``window_frames``, default the model's;
``hop_frames``, default 40 frames = 0.4 s) and each window gets a d-vector
(``Embedder.embed_utterance(..., return_windows=True)``). The windows are clustered with
the refined spectral clustering of Wang et al. 2018 (``ge2e_jax.spectral_clustering``).
Every 10 ms frame then takes the label of the window whose centre is nearest to it, so
overlapping windows split their shared audio at the midpoint between their centres. An
energy voice-activity detector (frames within ``vad_top_db`` of the loudest; pauses
shorter than ``min_pause_s`` are bridged) leaves non-speech out of the segments; it is not a
trained VAD and cannot tell steady noise from speech. Overlapping speech gets one label.
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

import numpy as np

from ge2e_jax import audio, inference, spectral_clustering
from ge2e_jax.der import Segment  # re-exported: diarization.Segment
from ge2e_jax.features import HOP_LENGTH, SAMPLE_RATE
from ge2e_jax.spectral_clustering import ClusteringOptions

FRAME_S = HOP_LENGTH / SAMPLE_RATE  # segment boundaries sit on the 10 ms frame grid


@dataclasses.dataclass(frozen=True)
class DiarizationOptions:
  """Windows, voice activity and clustering of ``diarize``."""
  window_frames: int | None = None  # window length in 10 ms frames (None: the embedder's)
  hop_frames: int = 40              # window hop in 10 ms frames
  vad_top_db: float = 40.0          # speech: 10 ms frames within this of the loudest
  min_pause_s: float = 0.5          # shorter non-speech gaps count as speech
  clustering: ClusteringOptions = ClusteringOptions()

  def __post_init__(self):
    if self.hop_frames < 1:
      raise ValueError(f"hop_frames must be >= 1, got {self.hop_frames}")
    if not (self.vad_top_db > 0 and self.min_pause_s >= 0):
      raise ValueError(f"need vad_top_db > 0 and min_pause_s >= 0, got {self.vad_top_db}, "
                       f"{self.min_pause_s}")


def windowed_embedder(embedder: inference.Embedder,
                      options: DiarizationOptions) -> inference.Embedder:
  """``embedder`` with the diarization windows (same params and trimming)."""
  window = options.window_frames or embedder.window_frames
  if (window, options.hop_frames) == (embedder.window_frames, embedder.hop_frames):
    return embedder
  return inference.Embedder(embedder.config, embedder.params, trim=embedder.trim,
                            max_windows=embedder.max_windows, window_frames=window,
                            hop_frames=options.hop_frames, source=embedder.source)


def speech_frames(wav16k: np.ndarray, top_db: float, min_pause_s: float) -> np.ndarray:
  """(frames,) bool per 10 ms frame of 16 kHz mono: RMS within ``top_db`` of the loudest.

  Non-speech runs shorter than ``min_pause_s`` between speech frames become speech.
  """
  frames = len(wav16k) // HOP_LENGTH
  power = np.mean(np.square(np.asarray(wav16k[:frames * HOP_LENGTH], np.float64)
                            .reshape(frames, HOP_LENGTH)), axis=1)
  if not frames or power.max() <= 0:
    return np.zeros(frames, bool)
  speech = power >= power.max() * 10.0 ** (-top_db / 10.0)
  for start, end in _runs(~speech):
    if start > 0 and end < frames and (end - start) * FRAME_S < min_pause_s:
      speech[start:end] = True
  return speech


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
  """[start, end) of each run of True in a 1-D bool array."""
  edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
  return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def frame_labels(starts_s: np.ndarray, window_s: float, labels: np.ndarray,
                 num_frames: int) -> np.ndarray:
  """(num_frames,) label of the window whose centre is nearest each 10 ms frame's centre.

  Frames outside every window (trimmed silence before the first or after the last) get -1.
  """
  starts_s = np.asarray(starts_s, np.float64)
  centres = starts_s + window_s / 2
  t = (np.arange(num_frames) + 0.5) * FRAME_S
  order = np.argsort(centres, kind="stable")
  sorted_centres = centres[order]
  right = np.clip(np.searchsorted(sorted_centres, t), 1, len(centres) - 1) if len(
      centres) > 1 else np.zeros(num_frames, np.int64)
  left = np.maximum(right - 1, 0)
  nearest = np.where(np.abs(t - sorted_centres[left]) <= np.abs(sorted_centres[right] - t),
                     left, right)
  out = np.asarray(labels)[order][nearest].astype(np.int64)
  out[(t < starts_s.min()) | (t > starts_s.max() + window_s)] = -1
  return out


def segments_from_frames(labels: np.ndarray, speech: np.ndarray,
                         names: list[str] | None = None) -> list[Segment]:
  """Runs of one label over speech frames -> Segments (10 ms grid), in time order."""
  labels = np.where(speech[:len(labels)], labels[:len(speech)], -1)
  segments = []
  for label in np.unique(labels[labels >= 0]):
    name = names[label] if names else f"spk{label}"
    segments += [Segment(round(float(s * FRAME_S), 3), round(float(e * FRAME_S), 3), name)
                 for s, e in _runs(labels == label)]
  return sorted(segments)


class Windows(NamedTuple):
  """A recording's window d-vectors (``window_dvectors``), ready for ``segments``."""
  dvectors: np.ndarray  # (n, D) unit d-vector of each window
  starts: np.ndarray    # (n,) start of each window, seconds from the start of the recording
  window_s: float       # window length in seconds
  speech: np.ndarray    # (frames,) bool: 10 ms frames of the recording that hold speech


def window_dvectors(embedder: inference.Embedder, wav, sample_rate: int,
                    options: DiarizationOptions = DiarizationOptions(),
                    name: str = "waveform") -> Windows:
  """Window d-vectors and voice activity of one recording (samples,) or (samples, channels).

  ValueError (naming ``name``) for audio ``Embedder.prepare`` refuses.
  """
  windowed = windowed_embedder(embedder, options)
  result = windowed.embed_utterance(wav, sample_rate, return_windows=True, name=name)
  speech = speech_frames(audio.to_16k_mono(np.asarray(wav), sample_rate), options.vad_top_db,
                         options.min_pause_s)
  return Windows(result.windows, result.starts, windowed.window_samples / SAMPLE_RATE, speech)


def segments(windows: Windows, num_speakers: int | None = None,
             options: DiarizationOptions = DiarizationOptions()) -> list[Segment]:
  """Cluster the windows and cut the speech into speaker segments (spk0, spk1, ...)."""
  labels = spectral_clustering.cluster(windows.dvectors, num_speakers, options.clustering)
  per_frame = frame_labels(windows.starts, windows.window_s, labels, len(windows.speech))
  return segments_from_frames(per_frame, windows.speech)


def diarize(embedder: inference.Embedder, wav, sample_rate: int,
            num_speakers: int | None = None,
            options: DiarizationOptions = DiarizationOptions(),
            name: str = "waveform") -> list[Segment]:
  """Speaker segments of one recording (samples,) or (samples, channels) at ``sample_rate``.

  ``num_speakers`` fixes the count; otherwise the eigen-gap picks it within
  ``options.clustering``'s [min_speakers, max_speakers]. Speakers are named spk0, spk1, ...
  in order of first appearance. ValueError (naming ``name``) for audio ``Embedder.prepare``
  refuses.
  """
  return segments(window_dvectors(embedder, wav, sample_rate, options, name), num_speakers,
                  options)


_FIELD = re.compile(r"\s+")


def rttm_lines(segments, file_id: str) -> list[str]:
  """NIST RTTM SPEAKER lines (times in seconds, 3 decimals); whitespace in names becomes _."""
  file_id = _FIELD.sub("_", file_id) or "_"
  return [f"SPEAKER {file_id} 1 {s.start:.3f} {s.end - s.start:.3f} <NA> <NA> "
          f"{_FIELD.sub('_', s.speaker)} <NA> <NA>" for s in segments]
