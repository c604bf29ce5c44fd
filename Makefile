# make test  : create .venv if missing, install, lint, run the test suite (what CI runs)
# make demo  : install, synthesise the held-out demo clips with the bundled voice (allison-light), score them
#              beside Griffin-Lim, plot the mels (seconds on a CPU)
# make demo-train / demo-train-light : train configs/demo.yaml / configs/light.yaml on the demo clips (8 min)
# make voice-data / train-voice : rebuild the bundled voice's data, train (or continue) it
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install test lint format demo demo-train demo-train-light voice-data train-voice clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/activate
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip install -q -e ".[metrics]"  # DNSMOS for the reports (optional for users)
	touch $@

install: $(VENV)/.installed

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest -q

DEMO_RUN := runs/demo
DEMO_OUT := outputs/demo
VOICE_RUN := runs/allison-light

# The main job with the model that ships in the package: copy synthesis of the 4 held-out demo clips,
# outputs/demo/*.wav, mel plots (ground truth | synthesis), report.json / report.md with the Griffin-Lim row.
demo: install
	rm -rf $(DEMO_OUT)
	$(BIN)/python -m waveglow.evaluate --checkpoint allison-light demo/validation.txt \
		--baseline griffin-lim --output $(DEMO_OUT)

# Train configs/demo.yaml (a small WaveGlow) on demo/clips for train.max_minutes (8), then synthesise the
# held-out clips with the last checkpoint: outputs/demo-train/*.wav, mel plots, report.json.
demo-train: install
	rm -rf $(DEMO_RUN) outputs/demo-train
	$(BIN)/python train.py -c configs/demo.yaml --run-dir $(DEMO_RUN)
	$(BIN)/python -m waveglow.evaluate --checkpoint "$$(ls $(DEMO_RUN)/checkpoints/step_*.pt | tail -n 1)" \
		demo/validation.txt --output outputs/demo-train
	@echo "training curves: $(DEMO_RUN)/loss.png   TensorBoard: $(BIN)/tensorboard --logdir $(DEMO_RUN)/tensorboard"

# The same with the light flow (configs/light.yaml), for the comparison in README.
demo-train-light: install
	rm -rf $(DEMO_RUN)-light outputs/demo-train-light
	$(BIN)/python train.py -c configs/light.yaml --run-dir $(DEMO_RUN)-light
	$(BIN)/python -m waveglow.evaluate --checkpoint "$$(ls $(DEMO_RUN)-light/checkpoints/step_*.pt | tail -n 1)" \
		demo/validation.txt --output outputs/demo-train-light

# The bundled voice: rebuild its data from the Debian package, then train or continue it (runs until stopped).
voice-data: install
	$(BIN)/python -m waveglow.data voice data/allison

train-voice: install
	test -f data/allison/train.txt || $(MAKE) voice-data
	$(BIN)/python train.py -c configs/allison_light.yaml --run-dir $(VOICE_RUN) \
		$$(test -d $(VOICE_RUN)/checkpoints && echo --resume)

clean:
	rm -rf $(VENV) .pytest_cache
