# Two commands a reader needs (README): `make run` and `make test`.
# Both create the virtual environment in .venv first if it is missing, older
# than the requirement files, or of another Python version than the one chosen.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# The interpreter that builds .venv: PYTHON if given, else the first of
# PYTHON_CANDIDATES that tools/check_python.py accepts (the pins install on few
# Python versions; see README, Environment).  PYTHON_CHOICE is
# "ok <major.minor> <path>" or "no <one line saying why and what to do>".
PYTHON ?=
PYTHON_CANDIDATES := python3.11 python3
NO_PYTHON := found no $(or $(PYTHON),python3.11 or python3) that runs; this \
	project needs Python 3.11 or 3.12: get one with 'uv python install 3.11', \
	your distribution's python3.11 package or 'pyenv install 3.11', then run \
	make again (or make PYTHON=/path/to/python3.11)
PYTHON_CHOICE := $(shell reason=""; \
	for c in $(or $(PYTHON),$(PYTHON_CANDIDATES)); do \
		command -v "$$c" >/dev/null 2>&1 || continue; \
		out=$$("$$c" tools/check_python.py "$$c" 2>&1 </dev/null); rc=$$?; \
		if [ $$rc = 0 ]; then echo "ok $$out"; exit 0; fi; \
		if [ $$rc = 2 ] && [ -z "$$reason" ]; then reason="$$out"; fi; \
	done; \
	echo "no $${reason:-$(NO_PYTHON)}")
PYTHON_OK    := $(filter ok,$(firstword $(PYTHON_CHOICE)))
BASE_VERSION := $(word 2,$(PYTHON_CHOICE))
BASE_PYTHON  := $(wordlist 3,999,$(PYTHON_CHOICE))

# An existing .venv whose python does not run, or runs another major.minor
# than the chosen interpreter, is removed and built again.  (If no
# interpreter is accepted, a working, up-to-date .venv is still used.)
VENV_VERSION := $(shell [ -x $(PY) ] && $(PY) -c \
	'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
VENV_STALE   := $(and $(PYTHON_OK),$(wildcard $(VENV)),$(filter-out \
	$(BASE_VERSION),$(or $(VENV_VERSION),none)))

.PHONY: setup run test bench answers clean FORCE

setup: $(STAMP)

# pip >= 25.3 for --build-constraint: Chainer 7.8.1 ships only as a source
# distribution whose build needs setuptools < 81 (pkg_resources).
$(STAMP): requirements.txt constraints.txt build-constraints.txt $(if $(VENV_STALE),FORCE)
	$(if $(PYTHON_OK),,$(error $(wordlist 2,999,$(PYTHON_CHOICE))))
	$(if $(VENV_STALE),rm -rf $(VENV))
	"$(BASE_PYTHON)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.3"
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt \
		--build-constraint build-constraints.txt
	$(PY) -c "import sys; sys.path.insert(0, '.'); from common import compat; \
		compat.import_chainer(); compat.import_tf_slim(); compat.import_keras(); import torch, cv2"
	touch $(STAMP)

# The main job: train and test the ConvAE answer (PyTorch) on the newt photos.
run: $(STAMP)
	$(PY) scripts_pytorch/convae_pytorch.py --train --test

# The suite runs in TEST_WORKERS processes (pytest-xdist); every test is
# single-threaded (OMP_NUM_THREADS=1, tests/conftest.py), so 2 workers keep
# 2 cores busy.  `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS)

# Re-make every committed answer picture of the README (slow: all scripts).
answers: $(STAMP)
	$(PY) tools/make_answers.py

clean:
	rm -rf out

FORCE:
