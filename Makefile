# The two commands of the README:  `make book`  (main job)  and  `make test`.
# Both set up everything on a fresh Debian machine (root): apt packages, .venv/, amlib (editable).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PAPERMILL := $(VENV)/bin/papermill -k python3 --cwd notebooks --log-level WARNING
EXECUTED := book/executed

# Settings of the main job's run (the notebooks' defaults are the small nbval settings).
# The baseline evaluates the reference model on every item of the built test split; notebook 00
# runs after it with the same predictions folder, so it reuses those rows (the runner resumes).
BOOK_DATA := ../data/built/offline-test
BOOK_BUILD := -p per_task 20 -p min_seconds 90.0 -p max_seconds 300.0 -p seed 0
BOOK_MODEL := amlib-reference-whisper-tiny-smollm2
BOOK_LIMIT := None
BOOK_RESULTS := ../results/baseline
# The pruning page: all four methods at 0.3/0.6/0.9 on a subset that fits the book's CPU budget
# (vanilla rows are reused from the baseline run: same folder, same file).
BOOK_PRUNING := -y "tasks: [SGR, ER, SD, MC]" -p limit 3 -p output_dir $(BOOK_RESULTS)
# The eviction page: the paper's four presses at 0.5 and 0.9 under both protocols, on a subset that
# fits the book's CPU budget (vanilla rows reused from the baseline run).
BOOK_EVICTION := -y "tasks: [SGR, MC]" -y "ratio: [0.5, 0.9]" -p limit 2 -p output_dir $(BOOK_RESULTS)

.PHONY: setup book test notebooks clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml apt-packages.txt
	bash scripts/install_apt.sh apt-packages.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

notebooks: $(STAMP)
	mkdir -p $(EXECUTED)
	$(PAPERMILL) notebooks/01_dataset_construction.ipynb $(EXECUTED)/01_dataset_construction.ipynb \
		-p source offline -p out $(BOOK_DATA) $(BOOK_BUILD)
	$(PAPERMILL) notebooks/02_baseline_eval.ipynb $(EXECUTED)/02_baseline_eval.ipynb \
		-p data_source offline -p data_dir $(BOOK_DATA) $(BOOK_BUILD) -p limit $(BOOK_LIMIT) \
		-p model $(BOOK_MODEL) -p output_dir $(BOOK_RESULTS)
	$(PAPERMILL) notebooks/00_reference_model.ipynb $(EXECUTED)/00_reference_model.ipynb \
		-p data_dir $(BOOK_DATA) $(BOOK_BUILD) -p tasks None -p limit $(BOOK_LIMIT) -p output_dir $(BOOK_RESULTS)
	$(PAPERMILL) notebooks/04_pruning.ipynb $(EXECUTED)/04_pruning.ipynb \
		-p data_source offline -p data_dir $(BOOK_DATA) $(BOOK_BUILD) -p model $(BOOK_MODEL) $(BOOK_PRUNING)
	$(PAPERMILL) notebooks/05_eviction.ipynb $(EXECUTED)/05_eviction.ipynb \
		-p data_source offline -p data_dir $(BOOK_DATA) $(BOOK_BUILD) -p model $(BOOK_MODEL) $(BOOK_EVICTION)
	$(PAPERMILL) notebooks/08_encoding_granularity.ipynb $(EXECUTED)/08_encoding_granularity.ipynb

book: notebooks
	$(VENV)/bin/jupyter-book build book/ --path-output book
	@echo "book: $(CURDIR)/book/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -q

clean:
	rm -rf book/_build $(EXECUTED) results data/built
