# Two commands: `make run` (the pipeline on the embedded CDNOW data) and `make test`.
# Both create the virtual environment from requirements.lock when it is missing.

PYTHON ?= $(shell command -v python3.10 >/dev/null 2>&1 && python3.10 -c '' 2>/dev/null && echo python3.10 || ls $(HOME)/.pyenv/versions/3.10*/bin/python3.10 2>/dev/null | tail -n 1)
VENV := .venv
BIN := $(VENV)/bin
export TF_USE_LEGACY_KERAS := 1
export FEAST_USAGE := False
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: run test lint bench env clean image-gpu

$(BIN)/rqvalue: requirements.lock pyproject.toml
	@test -n "$(PYTHON)" || (echo "Python 3.10 is required (TFX 1.16 supports Python < 3.11); set PYTHON=/path/to/python3.10" && exit 1)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip==24.2"
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	$(BIN)/pip check
	touch $@

env: $(BIN)/rqvalue

run: env
	$(BIN)/rqvalue run $(ARGS)

# Lint first (pyflakes and import order, pyproject.toml [tool.ruff]), then the suite.
test: lint
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: env
	$(BIN)/ruff check .

# RQ-Reg against the networks, LightGBM, gbdt and BG/NBD on both CDNOW tasks at full size, 2 seeds, paired
# bootstrap intervals (under 45 min on 2 cores): writes benchmarks/RESULTS.md and results.json.
bench: env
	$(BIN)/rqvalue bench $(ARGS)

# The pipeline image and its GPU variant (docker/gpu.Dockerfile, CUDA 12.3 / cuDNN 8.9); needs a Docker engine.
image-gpu:
	docker build -f docker/Dockerfile -t rqvalue-pipeline:$(VERSION) .
	docker build -f docker/gpu.Dockerfile --build-arg PIPELINE_IMAGE=rqvalue-pipeline:$(VERSION) -t rqvalue-pipeline-gpu:$(VERSION) .

clean:
	rm -rf runs .pytest_cache
