# Two commands a reader needs (README): `make run` and `make test`.
# Both create the virtual environment in .venv first if it is missing or
# older than the requirement files.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench answers clean

setup: $(STAMP)

# pip >= 25.3 for --build-constraint: Chainer 7.8.1 ships only as a source
# distribution whose build needs setuptools < 81 (pkg_resources).
$(STAMP): requirements.txt constraints.txt build-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.3"
	$(PY) -m pip install --quiet -r requirements.txt -c constraints.txt \
		--build-constraint build-constraints.txt
	$(PY) -c "import sys; sys.path.insert(0, '.'); from common import compat; \
		compat.import_chainer(); compat.import_tf_slim(); compat.import_keras(); import torch, cv2"
	touch $(STAMP)

# The main job: train and test the ConvAE answer (PyTorch) on the newt photos.
run: $(STAMP)
	$(PY) scripts_pytorch/convae_pytorch.py --train --test

test: $(STAMP)
	$(PY) -m pytest

# Re-make every committed answer picture of the README (slow: all scripts).
answers: $(STAMP)
	$(PY) tools/make_answers.py

clean:
	rm -rf out
