# Two commands on a fresh machine: `make demo` and `make test`. Both run `setup` first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The base install alone (`pip install .`, no extras): tests/test_readme_journeys.py runs
# embed and verify with it, as a serving host without TensorFlow would.
BASE_VENV := .venv-base
# Open JTalk, project-local (hts-voices below): the tests build hts_voices with it.
OPEN_JTALK := third_party/open_jtalk/packages.txt
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := espeak-ng

.PHONY: setup test test-fast demo bench voices clean ti-cpu pretrained demo-pretrained onnx \
  recorded-voices hts-voices coverage

setup: $(VENV)/.installed

# espeak-ng makes the embedded synthetic-voice corpus (tests and demo need it).
$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	@command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	$(PYTHON) -m venv $(BASE_VENV)
	$(BASE_VENV)/bin/python -m pip install -q .
	touch $@

# Two pytest workers (pytest-xdist), each taking whole test modules: a module's fixtures
# (corpora, trained runs) are built once. Modules are handed out in tests/conftest.py's order
# (--no-loadscope-reorder keeps it). TEST_WORKERS=1 runs in one process.
TEST_WORKERS ?= 2
PYTEST := GE2E_BASE_VENV=$(BASE_VENV) $(PY) -m pytest -q -ra \
  $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder)

test: setup $(OPEN_JTALK)
	$(PYTEST)

test-fast: setup $(OPEN_JTALK)
	$(PYTEST) -m "not slow"

demo: setup
	$(PY) -m experiments.demo

# TI-SV on 2 CPU cores from real and synthetic speech (experiments/configs/ti_cpu_real.py,
# MultiReader): the recorded voices, the espeak-ng and the HTS corpora, then about half an hour
# of training.
ti-cpu: setup recorded-voices hts-voices
	$(PY) -m data_pipelines.builders.tfds_build data_pipelines/builders/synthetic_voices.py \
	  --config=ti_960 --data_dir=runs/tfds
	$(PY) -m experiments.train --config=experiments/configs/ti_cpu_real.py --workdir=runs/ti_cpu_real

bench: setup
	$(PY) -m pip install -q -e '.[bench]' torch==2.13.0 || $(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.train_step

# Optional MBROLA voices (real speakers' diphones) for synthetic_voices' test_mbrola split:
# Debian's contrib/non-free mbrola packages, apt-downloaded and unpacked into third_party/mbrola
# (MBROLA_VOICES=us1 de4 ... picks the databases). The system's apt sources stay as they are.
voices:
	data_pipelines/builders/fetch_mbrola.sh third_party/mbrola $(MBROLA_VOICES)

clean:
	rm -rf $(VENV) $(BASE_VENV) runs .pytest_cache

# Resemblyzer's pretrained encoder (Apache-2.0, inside its PyPI wheel) as a ge2e_jax export:
# `pip download --no-deps` (no torch, no librosa), unzip, import without torch (docs/pretrained.md);
# thresholds measured on the held-out synthetic "ok computer" voices (built first).
RESEMBLYZER_DIR := third_party/resemblyzer
TD_CORPUS := synthetic_voices/td_ok_computer
PRETRAINED_CONDITIONS := $(TD_CORPUS):test_unseen_lang,$(TD_CORPUS):test_unseen_lang+noise_snr5..15,$(TD_CORPUS):test
pretrained: setup
	@test -f $(RESEMBLYZER_DIR)/resemblyzer/pretrained.pt || { \
	  $(PY) -m pip download -q --no-deps --dest $(RESEMBLYZER_DIR) resemblyzer==0.1.4 && \
	  cd $(RESEMBLYZER_DIR) && ../../$(PY) -m zipfile -e Resemblyzer-0.1.4-py3-none-any.whl . ; }
	$(PY) -m data_pipelines.builders.tfds_build data_pipelines/builders/synthetic_voices.py \
	  --config=td_ok_computer --data_dir=runs/tfds
	$(PY) -m experiments.import_encoder --format=resemblyzer --overwrite \
	  --checkpoint=$(RESEMBLYZER_DIR)/resemblyzer/pretrained.pt --output=runs/pretrained/resemblyzer \
	  --conditions=$(PRETRAINED_CONDITIONS) --data_dir=runs/tfds

# td_demo's phrase, fine-tuned from the imported encoder for 200 of td_demo's 600 steps, then exported.
demo-pretrained: pretrained
	$(PY) -m experiments.train --config=experiments/configs/td_pretrained.py --workdir=runs/demo_pretrained
	$(PY) -m experiments.export --model=runs/demo_pretrained --output=runs/demo_pretrained/export \
	  --overwrite --platforms=cpu

# The ONNX export's converter and runtime (docs/onnx.md) without the onnx extra's orbax-checkpoint
# downgrade: jax2onnx without its dependencies, then its tests.
onnx: setup
	$(PY) -m pip install -q 'onnx>=1.16' onnx-ir 'onnxruntime>=1.17'
	$(PY) -m pip install -q --no-deps 'jax2onnx>=0.17.1'
	$(PY) -m pytest -q -ra tests/test_export_onnx.py

# Recorded human voices (docs/recorded_voices.md): the Debian packages the recorded_voices
# builder allows, apt-downloaded and unpacked into third_party/recorded_voices (the system's
# apt state stays as it is; fetched again when the fetch script or the speaker table
# changes), then the corpus in runs/tfds.
recorded-voices: setup third_party/recorded_voices/packages.txt
	$(PY) -m data_pipelines.builders.tfds_build data_pipelines/builders/recorded_voices.py \
	  --data_dir=runs/tfds

third_party/recorded_voices/packages.txt: data_pipelines/builders/fetch_recorded_voices.sh \
  data_pipelines/builders/recorded_voices.py | $(VENV)/.installed
	data_pipelines/builders/fetch_recorded_voices.sh third_party/recorded_voices \
	  $$($(PY) -c 'from data_pipelines.builders import recorded_voices as r; print(*r.ALLOWED_PACKAGES)')

# A second synthesis engine (docs/hts_voices.md): Open JTalk and its HTS voice, Debian's
# packages apt-downloaded and unpacked into third_party/open_jtalk (17 MB; the system's apt
# state stays as it is; the tests use it too), then the corpus in runs/tfds.
hts-voices: setup $(OPEN_JTALK)
	$(PY) -m data_pipelines.builders.tfds_build data_pipelines/builders/hts_voices.py \
	  --config=ti --data_dir=runs/tfds

$(OPEN_JTALK): data_pipelines/builders/fetch_open_jtalk.sh
	data_pipelines/builders/fetch_open_jtalk.sh third_party/open_jtalk

# The whole suite with line coverage of the library, the experiments and the data pipelines
# (code run in the tests' subprocesses is not counted).
coverage: setup
	$(PYTEST) --cov=ge2e_jax --cov=experiments --cov=data_pipelines --cov-report=term
