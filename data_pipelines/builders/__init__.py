"""TFDS builders that give every speech corpus the same features (see common.py).

Importing this package registers `synthetic_voices`, `hts_voices`, `speaker_folders`,
`manifest` and `recorded_voices` with TFDS; `adapters` maps TFDS's own librispeech and
voxceleb to the same features.
"""

from data_pipelines.builders import hts_voices
from data_pipelines.builders import manifest
from data_pipelines.builders import recorded_voices
from data_pipelines.builders import speaker_folders
from data_pipelines.builders import synthetic_voices
