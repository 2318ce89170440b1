# gwm: two commands. `make run` materializes the whole asset graph; `make test` runs the tests.
# Both set up the virtual environment first (once; a second `make setup` takes a moment).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.gwm-setup
# torch is installed first and pinned: on this kind of machine pip's find-links holds the CPU wheel of
# 2.13.0; elsewhere pip takes it from the index. For a CPU-only build on a machine with internet:
#   make setup TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_VERSION  ?= 2.13.0
TORCH_PIP_ARGS ?=

export DAGSTER_HOME := $(CURDIR)/dagster_home
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup run test test-ui browser ui bench lint clean distclean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "torch==$(TORCH_VERSION)" $(TORCH_PIP_ARGS)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# the US Treasury curve of the embedded default lives inside this wheel: download it, never install it
	$(BIN)/python -m pip download --quiet --no-deps "zipline-reloaded==3.2.1" -d $(VENV)/share/gwm-wheels \
	  || echo "gwm: could not download the zipline-reloaded wheel; the Treasury curve will be missing"
	@touch $(STAMP)
	@echo "gwm: environment ready in $(VENV)"

run: setup
	$(BIN)/dagster asset materialize -m gwm_assets.definitions --select '*'
	@$(BIN)/gwm sql "select kind, count(*) as fields, count(distinct layer) as layers from fields group by kind order by kind"
	@$(BIN)/gwm sql "select source, count(*) as observations, count(distinct field_path) as fields, min(ts) as first, max(ts) as last from observations group by source order by source"
	@$(BIN)/gwm sql "select node, tier, n_fields, n_fields_with_data, round(presence_share, 4) as presence_share, n_steps, frequency, data_version from canvases order by tier, node"
	@$(BIN)/gwm sql "select node, tier, parents, steps, round(val_skill, 3) as val_skill, round(median_group_skill, 3) as median_group_skill, groups_scored as groups, groups_worse_than_naive as worse, groups_beating_ar as beat_ar, merge_method, round(worst_surviving_share, 3) as gain_kept, round(seconds, 1) as seconds from checkpoints order by tier, node"
	@$(BIN)/gwm sql "select node, count(*) filter (kind = 'live') as live, count(*) filter (kind = 'backtest') as backtest, count(distinct field_path) as fields, max(as_of) filter (kind = 'live') as as_of from forecasts group by node order by node"

test: setup
	$(BIN)/ruff check gwm_model gwm_assets tests bench
	$(BIN)/python -m pytest -q -m "not ui"

# The Dagster UI in headless Chromium (tests/ui); screenshots land in build/ui-test/.
test-ui: setup browser
	$(BIN)/python -m pytest -q -m ui tests/ui

# Debian's Chromium for the UI tests (as root, or with sudo); Playwright drives it, downloading no browser.
CHROMIUM ?= /usr/bin/chromium
browser:
	@test -x $(CHROMIUM) || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get install -y -q chromium >/dev/null || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }; \
	  elif command -v sudo >/dev/null; then sudo apt-get install -y -q chromium; \
	  else echo "gwm: the UI tests need Chromium at $(CHROMIUM): install Debian's chromium package"; exit 1; fi; }
	@$(CHROMIUM) --version

ui: setup
	$(BIN)/gwm ui

# `make bench` runs every benchmark; `make bench scale` (or any benchmark names after `bench`) runs only those.
BENCH_ONLY := $(filter-out bench setup run test test-ui browser ui lint clean distclean,$(MAKECMDGOALS))
bench: setup
	$(BIN)/python -m bench $(BENCH_ONLY)

ifneq ($(filter bench,$(MAKECMDGOALS)),)
ifneq ($(BENCH_ONLY),)
.PHONY: $(BENCH_ONLY)
$(BENCH_ONLY):
	@:
endif
endif

lint: setup
	$(BIN)/ruff check gwm_model gwm_assets tests bench
	$(BIN)/lint-imports --no-cache

clean:
	rm -rf warehouse/gwm.duckdb warehouse/gwm.duckdb.wal warehouse/canvases warehouse/checkpoints
	find dagster_home -mindepth 1 ! -name dagster.yaml -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache bench/results *.egg-info
	find . -name __pycache__ -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
