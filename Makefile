# Two commands set up a fresh machine: `make run` (the app) and `make test` (the tests).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean package package-cuda install-desktop uninstall-desktop

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "busviewer needs Python 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/busviewer

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen MPLBACKEND=Agg $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_import.py
	$(BIN)/python benchmarks/bench_inference.py
	$(BIN)/python benchmarks/bench_app.py launch
	$(BIN)/python benchmarks/bench_cine.py

# The installer: build the CPU bundle (dist/cpu/busviewer/) and run its smoke test (slow:
# not part of `make test`). package-cuda: the CUDA bundle (dist/cuda/busviewer/). See README.
PACKAGE_STAMP := $(VENV)/.package-installed
$(PACKAGE_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,package]'
	touch $(PACKAGE_STAMP)

package: $(PACKAGE_STAMP)
	PYTHON=$(BIN)/python packaging/smoke.sh cpu

package-cuda: $(PACKAGE_STAMP)
	PYTHON=$(BIN)/python packaging/smoke.sh cuda

# Desktop entry + icon in XDG_DATA_HOME; DESKTOP_EXEC=/path/to/busviewer (default: this venv's)
DESKTOP_EXEC ?= $(abspath $(BIN)/busviewer)
install-desktop:
	packaging/desktop.sh install --exec "$(DESKTOP_EXEC)"

uninstall-desktop:
	packaging/desktop.sh uninstall

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
