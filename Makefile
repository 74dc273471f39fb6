# pixgate: set-up, demo and tests. `make demo` and `make test` set up .venv on first use.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision are installed first and pinned so pip never resolves a multi-GB
# surprise; override on other platforms, e.g. make TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.pixgate-installed
# Where `make demo` writes its run, verdict, report and canary.
OUT := out
RUN = $(OUT)/golden.arrow
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

# System packages (Debian/Ubuntu names). The typography checks need Tesseract's English
# data (the engine itself comes with tesserocr); the tests also open the report in
# Chromium and draw with these fonts.
DEMO_PACKAGES := tesseract-ocr tesseract-ocr-eng
TEST_PACKAGES := $(DEMO_PACKAGES) chromium fonts-dejavu-core fonts-liberation
OTHER_PLATFORMS := Fedora: dnf install tesseract tesseract-langpack-eng chromium dejavu-sans-fonts \
	liberation-sans-fonts; macOS: brew install tesseract chromium font-dejavu font-liberation
# Exits 0 when pixgate finds Tesseract's English data (wherever it was installed).
HAS_OCR = $(BIN)/python -c "from pixgate.scoring.ocr import find_tesseract; find_tesseract('eng')" >/dev/null 2>&1
HAS_TEST_DEPS = $(HAS_OCR) && command -v chromium >/dev/null \
	&& [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] \
	&& [ -f /usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf ]
APT_GET ?= apt-get
# Installs packages $(1) with apt-get (as root, or through sudo without a password);
# where that cannot be done, says so in one line, ending with $(2), and fails.
define APT_INSTALL
if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo=none; fi; \
if [ "$$sudo" = none ] || ! command -v $(APT_GET) >/dev/null; then \
	echo "pixgate: cannot install $(1) here (needs $(APT_GET), as root or with sudo); install them yourself ($(OTHER_PLATFORMS))$(2)"; \
	exit 1; \
fi; \
echo "pixgate: installing $(1) with $(APT_GET)"; \
$$sudo $(APT_GET) update -qq && DEBIAN_FRONTEND=noninteractive $$sudo $(APT_GET) install -y -qq $(1) >/dev/null
endef
# Sets typo to --no-typography when Tesseract's English data cannot be had.
define DEMO_OCR
if $(HAS_OCR); then typo=; \
elif ! ( $(call APT_INSTALL,$(DEMO_PACKAGES),; going on with --no-typography) ); then typo=--no-typography; \
elif $(HAS_OCR); then typo=; \
else echo "pixgate: no Tesseract English data even after the install; going on with --no-typography"; \
	typo=--no-typography; fi
endef

# What `make test` needs from the system, installed when something is missing.
system-deps: $(STAMP)
	@if ! { $(HAS_TEST_DEPS); }; then $(call APT_INSTALL,$(TEST_PACKAGES)); fi
	@$(HAS_TEST_DEPS) || { echo "pixgate: still missing after the install: Tesseract's English data, chromium or the fonts"; exit 1; }

demo: $(STAMP)
	@mkdir -p $(OUT)
	@$(DEMO_OCR); \
	if $(BIN)/pixgate weights --download; then lp=; else \
		echo; \
		echo "No AlexNet weights on this machine and no network to fetch them (see the ways listed above)."; \
		echo "Running every other check with --no-lpips; the lpips column will be null."; \
		echo; \
		lp=--no-lpips; \
	fi; \
	$(BIN)/pixgate score golden/baseline golden/candidate -o $(RUN) --overwrite $(MANIFEST) $$lp $$typo
	@echo "Run file: $(RUN)"
	@echo
	@$(BIN)/pixgate gate $(RUN) --policy golden/policy.toml --json $(OUT)/golden-verdict.json \
		|| echo "(the golden candidates are built to break these rules: a fail is the expected verdict)"
	@$(BIN)/pixgate report $(RUN) --verdict $(OUT)/golden-verdict.json -o $(OUT)/golden-report.html
	@echo
	@echo "Staged check: the demo engine as the old generator, a degraded copy as the new one."
	@$(BIN)/pixgate demo-engine serve --port $(OLD_PORT) & old=$$!; \
	$(BIN)/pixgate demo-engine serve --port $(NEW_PORT) --degrade alpha,icc,mush --latency-ms 150 & new=$$!; \
	sleep 2; \
	if $(BIN)/pixgate weights >/dev/null 2>&1; then lp=; else lp=--no-lpips; fi; \
	if $(HAS_OCR); then typo=; else typo=--no-typography; fi; \
	$(BIN)/pixgate canary --old http://127.0.0.1:$(OLD_PORT)/ --new http://127.0.0.1:$(NEW_PORT)/ \
		--prompts golden/prompts.jsonl --policy golden/canary.toml -o $(OUT)/canary $$lp $$typo; rc=$$?; \
	kill $$old $$new; \
	echo "canary exit code $$rc (1 = fail: the new engine drops alpha, swaps ICC and mushes small print)"

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

test-fast: $(STAMP) system-deps
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
	$(BIN)/python -m benchmarks.detection

clean:
	rm -rf $(OUT) .pytest_cache .mypy_cache .ruff_cache .typecheck
