# The two commands of the README:
#   make run   set up, generate the default synthetic world (once) and run the main job on it
#   make test  set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORLD ?= data/world-default
PRESET ?= default
SEED ?= 0

.PHONY: run test install world clean

install: $(VENV)/.installed

# Reinstall when the dependencies change. torch==2.13.0 comes from the machine's wheel folder
# (pip's find-links); nothing here pulls torchvision.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(WORLD)/manifest.json: | $(VENV)/.installed
	$(BIN)/modiste world --preset $(PRESET) --seed $(SEED) --out $(WORLD) --force

world: $(WORLD)/manifest.json

run: install world
	$(BIN)/modiste info $(WORLD)
	$(BIN)/modiste show $(WORLD) --out $(WORLD)-items.png
	$(BIN)/modiste show $(WORLD) --persons -n 18 --out $(WORLD)-persons.png

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data .pytest_cache
