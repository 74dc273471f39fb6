# pixgate: set-up, demo and tests. `make demo` and `make test` set up .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are installed first and pinned so pip never resolves a multi-GB
# surprise; override on other platforms, e.g. make TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.pixgate-installed
RUN := out/golden.arrow
OLD_PORT ?= 8771
NEW_PORT ?= 8772
# The golden manifest adds expected text to the typography checks.
MANIFEST = --manifest golden/manifest.jsonl

.PHONY: setup system-deps demo test test-fast lint golden bench screenshot clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Tesseract's English data for the typography checks (the engine itself comes with
# tesserocr), Chromium for the report's browser test, and the fonts the typography tests
# draw with; Debian/Ubuntu packages.
system-deps:
	@if ! command -v tesseract >/dev/null || ! command -v chromium >/dev/null \
		|| [ ! -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
		|| [ ! -f /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq tesseract-ocr tesseract-ocr-eng chromium \
			fonts-dejavu-core fonts-liberation >/dev/null; \
	fi
	@tesseract --version | head -1
	@chromium --version

demo: $(STAMP)
	@mkdir -p out
	@if $(BIN)/pixgate weights --download; then \
		$(BIN)/pixgate score golden/baseline golden/candidate -o $(RUN) --overwrite $(MANIFEST); \
	else \
		echo; \
		echo "No AlexNet weights on this machine and no network to fetch them (see the ways listed above)."; \
		echo "Running every other check with --no-lpips; the lpips column will be null."; \
		echo; \
		$(BIN)/pixgate score golden/baseline golden/candidate -o $(RUN) --overwrite --no-lpips $(MANIFEST); \
	fi
	@echo "Run file: $(RUN)"
	@echo
	@$(BIN)/pixgate gate $(RUN) --policy golden/policy.toml --json out/golden-verdict.json \
		|| echo "(the golden candidates are built to break these rules: a fail is the expected verdict)"
	@$(BIN)/pixgate report $(RUN) --verdict out/golden-verdict.json -o out/golden-report.html
	@echo
	@echo "Staged check: the demo engine as the old generator, a degraded copy as the new one."
	@$(BIN)/pixgate demo-engine serve --port $(OLD_PORT) & old=$$!; \
	$(BIN)/pixgate demo-engine serve --port $(NEW_PORT) --degrade alpha,icc,mush --latency-ms 150 & new=$$!; \
	sleep 2; \
	if $(BIN)/pixgate weights >/dev/null 2>&1; then lp=; else lp=--no-lpips; fi; \
	$(BIN)/pixgate canary --old http://127.0.0.1:$(OLD_PORT)/ --new http://127.0.0.1:$(NEW_PORT)/ \
		--prompts golden/prompts.jsonl --policy golden/canary.toml -o out/canary $$lp; rc=$$?; \
	kill $$old $$new; \
	echo "canary exit code $$rc (1 = fail: the new engine drops alpha, swaps ICC and mushes small print)"

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

# docs/report.png, the README's picture of the golden report, from the Chromium test.
screenshot: $(STAMP)
	PIXGATE_WRITE_SCREENSHOT=1 $(BIN)/python -m pytest tests/report/test_html.py -k chromium

lint: $(STAMP)
	$(BIN)/ruff check engine kernels tests benchmarks golden
	$(BIN)/ruff format --check engine kernels tests benchmarks golden
	@# Links named as the packages are imported, for mypy (see pyproject.toml).
	@mkdir -p .typecheck && ln -sfn ../engine .typecheck/pixgate && ln -sfn ../kernels .typecheck/pixgate_kernels
	$(BIN)/mypy

golden: $(STAMP)
	$(BIN)/python golden/make_golden.py

bench: $(STAMP)
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.cpu_ratio
	$(BIN)/python -m benchmarks.cold_start
	$(BIN)/python -m benchmarks.typography
	$(BIN)/python -m benchmarks.decoders
	$(BIN)/python -m benchmarks.transport
	$(BIN)/python -m benchmarks.score_memory
	$(BIN)/python -m benchmarks.kernels
	$(BIN)/python -m benchmarks.report

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache .typecheck
