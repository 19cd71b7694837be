# PowerView: `make demo` runs the parser on the bundled samples, `make test` runs every test
# (after `make lint` and `make typecheck`).
# Both create the virtual environment they need (.venv) on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: venv demo test lint typecheck bench clean

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

# A dry run over a copy of the bundled logger files: nothing is written or moved. Exit code 1
# only means that some sample files are refused, as they should be (an empty file...); any
# other code fails the target. The points of several companies share demo/points.lp: a
# "# bucket: <company>" comment line (skipped by `influx write`) starts each file's block.
demo: $(STAMP)
	rm -rf demo && mkdir -p demo && cp -R examples/data demo/data && chmod -R u+w demo
	$(BIN)/python tsv_parser.py --dataFolder demo/data --dry-run --min-age 0 \
		--lp-out demo/points.lp > demo/report.json || [ $$? -eq 1 ]
	@echo "JSON run report: demo/report.json; line protocol: demo/points.lp" \
		"(each file's points after a '# bucket: <company>' comment line)"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Static types of core/ and the entry points; what is checked, and how, is in pyproject.toml.
typecheck: $(STAMP)
	$(BIN)/mypy

# The Flux checker of tests/flux (InfluxData's compiler as WebAssembly), pinned by its lockfile.
FLUX_CHECKER := tests/flux/node_modules/.package-lock.json

$(FLUX_CHECKER): tests/flux/package.json tests/flux/package-lock.json
	npm ci --prefix tests/flux --no-audit --no-fund

test: lint typecheck $(FLUX_CHECKER)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_engine.py

clean:
	rm -rf $(VENV) demo .pytest_cache .ruff_cache .mypy_cache tests/flux/node_modules
