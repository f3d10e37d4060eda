# ernie-distill — set-up and everyday commands. Everything runs inside .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-parity demo bench bench-quick gpu-check clean

install: $(STAMP)

# requirements.txt is a complete lock of the CPU stack, installed with --no-deps so that
# paddleslim's opencv pin (unused, and built for NumPy 1) is never pulled in.
$(STAMP): requirements.txt setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(GPU),sed 's/^paddlepaddle==/paddlepaddle-gpu==/' requirements.txt > $(VENV)/requirements.txt,cp requirements.txt $(VENV)/requirements.txt)
	$(BIN)/python -m pip install -q --no-deps -r $(VENV)/requirements.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e ".[train]"
	touch $(STAMP)

# import contracts first (seconds), then the fast tests, then the end-to-end ones
test: install
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -m "not e2e"
	$(BIN)/python -m pytest -q -m e2e

# Parity with PaddleNLP / transformers (tests/teachers/test_parity.py): the references live in a
# venv of their own (their pins clash with ours), built once and reused while the pins hold.
PARITY := .venv-parity
PARITY_REQ := tests/teachers/parity-requirements.txt

$(PARITY)/.installed: $(PARITY_REQ)
	test -x $(PARITY)/bin/python || $(PYTHON) -m venv $(PARITY)
	$(PARITY)/bin/python -m pip install -q --upgrade pip
	$(PARITY)/bin/python -m pip install -q -r $(PARITY_REQ)
	touch $@

test-parity: install $(PARITY)/.installed
	PARITY_PYTHON=$(abspath $(PARITY))/bin/python $(BIN)/python -m pytest -q -m parity tests/teachers/test_parity.py

demo: install
	$(BIN)/distill run recipes/movies_en/bow_from_minilm.yaml --out runs/demo

bench: install
	$(BIN)/python -m pip install -q --no-deps -r bench/requirements.txt
	$(BIN)/python -m bench.all

bench-quick: install
	$(BIN)/python -m bench.all --quick

# first thing to run on a GPU machine (make install GPU=1); says so and exits 0 without a GPU
gpu-check: install
	PYTHON=$(BIN)/python bash bench/gpu_check.sh

clean:
	rm -rf $(VENV) $(PARITY) build *.egg-info
