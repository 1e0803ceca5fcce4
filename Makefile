# Two commands on a fresh machine: `make demo` and `make test`. Both run `setup` first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_PACKAGES := espeak-ng

.PHONY: setup test test-fast demo bench voices clean ti-cpu recorded-voices

setup: $(VENV)/.installed

# espeak-ng makes the embedded synthetic-voice corpus (tests and demo need it).
$(VENV)/.installed: setup.cfg setup.py pyproject.toml
	@command -v espeak-ng >/dev/null || { $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(APT_PACKAGES); }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

test: setup
	$(PY) -m pytest -q -ra

test-fast: setup
	$(PY) -m pytest -q -ra -m "not slow"

demo: setup
	$(PY) -m experiments.demo

# TI-SV on 2 CPU cores (experiments/configs/ti_cpu.py): the corpora (synthetic; recorded voices for
# the real held-out speakers), then about 31 minutes of training.
ti-cpu: setup recorded-voices
	$(PY) -m data_pipelines.builders.tfds_build data_pipelines/builders/synthetic_voices.py \
	  --config=ti --data_dir=runs/tfds
	$(PY) -m experiments.train --config=experiments/configs/ti_cpu.py --workdir=runs/ti_cpu

bench: setup
	$(PY) -m pip install -q -e '.[bench]' torch==2.13.0 || $(PY) -m pip install -q -e '.[bench]'
	$(PY) -m benchmarks.train_step

# Optional MBROLA voices (real speakers' diphones) for synthetic_voices' test_mbrola split:
# Debian's contrib/non-free mbrola packages, apt-downloaded and unpacked into third_party/mbrola
# (MBROLA_VOICES=us1 de4 ... picks the databases). The system's apt sources stay as they are.
voices:
	data_pipelines/builders/fetch_mbrola.sh third_party/mbrola $(MBROLA_VOICES)

clean:
	rm -rf $(VENV) runs .pytest_cache

# Recorded human voices (docs/recorded_voices.md): the Debian packages the recorded_voices
# builder allows, apt-downloaded and unpacked into third_party/recorded_voices (the system's
# apt state stays as it is), then the corpus in runs/tfds.
recorded-voices: setup third_party/recorded_voices/packages.txt
	$(PY) -m data_pipelines.builders.tfds_build data_pipelines/builders/recorded_voices.py \
	  --data_dir=runs/tfds

third_party/recorded_voices/packages.txt: data_pipelines/builders/fetch_recorded_voices.sh | $(VENV)/.installed
	data_pipelines/builders/fetch_recorded_voices.sh third_party/recorded_voices \
	  $$($(PY) -c 'from data_pipelines.builders import recorded_voices as r; print(*r.ALLOWED_PACKAGES)')
