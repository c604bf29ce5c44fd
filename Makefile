# make test  : create .venv if missing, install, lint, run the test suite (what CI runs)
# make demo  : install, train the demo config on the bundled clips (~10 min on 2 CPU cores), synthesise
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint format demo clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -q

DEMO_RUN := runs/demo
DEMO_OUT := outputs/demo

# Train configs/demo.yaml on demo/clips for train.max_minutes (8), then synthesise the held-out clips with the
# last checkpoint: outputs/demo/*.wav, mel plots (ground truth | synthesis) *.png, report.json.
demo: install
	rm -rf $(DEMO_RUN) $(DEMO_OUT)
	$(BIN)/python train.py -c configs/demo.yaml --run-dir $(DEMO_RUN)
	$(BIN)/python -m waveglow.evaluate --checkpoint "$$(ls $(DEMO_RUN)/checkpoints/step_*.pt | tail -n 1)" \
		demo/validation.txt --output $(DEMO_OUT)
	@echo "training curves: $(DEMO_RUN)/loss.png   TensorBoard: $(BIN)/tensorboard --logdir $(DEMO_RUN)/tensorboard"

clean:
	rm -rf $(VENV) .pytest_cache
