# The two commands of the README:
#   make run   set up, generate the default synthetic world (once), train what the app needs (once),
#              show a user's recommendations and outfit, then serve the app on http://$(HOST):$(PORT)
#              (make run DESIGNS=1 also trains DVBPR and the GAN, about 50 more minutes once, and serves designs)
#   make test  set up and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
WORLD ?= data/world-default
PRESET ?= default
SEED ?= 0
RUN_DIR ?= data/runs/bpr-default
OUTFIT_RUN ?= data/runs/outfit-default
OUTFIT_MINUTES ?= 4
DESIGNS ?=
DVBPR_RUN ?= data/runs/dvbpr-default
GAN_RUN ?= data/runs/gan-default
GAN_MINUTES ?= 30
SHOW_USER ?= u00042
HOST ?= 127.0.0.1
PORT ?= 8000

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

# The default recommender (BPR-MF), trained once and reused by later runs.
$(RUN_DIR)/best/model.json: $(WORLD)/manifest.json
	$(BIN)/modiste train rec --model bpr --data $(WORLD) --out $(RUN_DIR)

# The outfit model, trained once (a few minutes of training on one thread) and reused.
$(OUTFIT_RUN)/best/model.json: $(WORLD)/manifest.json
	$(BIN)/modiste train outfit --data $(WORLD) --out $(OUTFIT_RUN) --train-set max_minutes=$(OUTFIT_MINUTES)

# Designs (opt-in, DESIGNS=1): the visually-aware ranker and the category GAN, each trained once.
$(DVBPR_RUN)/best/model.json: $(WORLD)/manifest.json
	$(BIN)/modiste train rec --model dvbpr --data $(WORLD) --out $(DVBPR_RUN)

$(GAN_RUN)/model/gan.json: $(WORLD)/manifest.json
	$(BIN)/modiste train gan --data $(WORLD) --out $(GAN_RUN) --minutes $(GAN_MINUTES)

DESIGN_RUNS := $(if $(DESIGNS),$(DVBPR_RUN)/best/model.json $(GAN_RUN)/model/gan.json)
DESIGN_ARGS := $(if $(DESIGNS),--design-rec-run $(DVBPR_RUN) --gan-run $(GAN_RUN))

run: install world $(RUN_DIR)/best/model.json $(OUTFIT_RUN)/best/model.json $(DESIGN_RUNS)
	$(BIN)/modiste info $(WORLD)
	$(BIN)/modiste show $(WORLD) --out $(WORLD)-items.png
	$(BIN)/modiste show $(WORLD) --persons -n 18 --out $(WORLD)-persons.png
	$(BIN)/modiste eval rec --run $(RUN_DIR)
	$(BIN)/modiste recommend --run $(RUN_DIR) --user $(SHOW_USER) -k 10
	$(BIN)/modiste show recs --run $(RUN_DIR) --user $(SHOW_USER) --out $(RUN_DIR)-$(SHOW_USER).png
	$(BIN)/modiste outfit --run $(OUTFIT_RUN) --user $(SHOW_USER) --categories top,trousers,shoes,bag
	$(BIN)/modiste show outfit --run $(OUTFIT_RUN) --user $(SHOW_USER) --categories top,trousers,shoes,bag \
		--out $(OUTFIT_RUN)-$(SHOW_USER).png
	@echo "a shopper token for $(SHOW_USER) (send it as 'Authorization: Bearer <token>'):"
	@$(BIN)/modiste serve --data $(WORLD) --issue-token $(SHOW_USER)
	$(BIN)/modiste serve --data $(WORLD) --rec-run $(RUN_DIR) --outfit-run $(OUTFIT_RUN) $(DESIGN_ARGS) \
		--host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data .pytest_cache
