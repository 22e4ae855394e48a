# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# torch is pinned to the CPU build here only to avoid a multi-GB CUDA download on CPU machines;
# the package itself needs torch>=2.3 (set TORCH_SPEC= to use whatever torch you have).
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(if $(TORCH_SPEC),$(BIN)/pip install -q "$(TORCH_SPEC)")
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/quickfit demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest -q

.PHONY: install demo lint test
