# The two commands of the README:  `make book`  (main job)  and  `make test`.
# Both set up everything on a fresh Debian machine (root): apt packages, .venv/, amlib (editable).
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
EXECUTED := book/executed

# The main job's pages, their order and parameters (model, dtype, n per page) live in amlib/book.py
# (`python -m amlib book-pages`): each page is executed by papermill and timed into
# book/executed/timing.{json,md}. Pages share one predictions folder, so nothing is evaluated twice
# and a second `make book` reuses every prediction.

.PHONY: setup book test notebooks plan clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml apt-packages.txt
	bash scripts/install_apt.sh apt-packages.txt
	test -x $(PY) || python3 -m venv $(VENV)
	@# KEEP_TORCH=1: keep the torch already in .venv (a CUDA build installed first, README "GPU users")
	@# instead of the pinned one; everything else as pinned
	if [ -n "$(KEEP_TORCH)" ]; then \
		$(PY) -c "import torch; print('keeping torch', torch.__version__)" && \
		grep -v '^torch==' requirements.txt > $(VENV)/requirements-keep-torch.txt && \
		$(PY) -m pip install --disable-pip-version-check -q -r $(VENV)/requirements-keep-torch.txt; \
	else \
		$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt; \
	fi
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 > /dev/null
	touch $(STAMP)

# The book's settings (amlib/book_settings.py), all optional: make book MODEL=Qwen/Qwen2.5-Omni-7B DEVICE=cuda
# DTYPE=bfloat16 DATA=released:/data/AudioMarathon PROFILE=gpu, SETTINGS=file.yaml for the rest;
# make plan: the same, without running anything.
BOOK_ARGS = $(if $(PROFILE),--profile $(PROFILE)) $(if $(SETTINGS),--settings $(SETTINGS)) \
	$(if $(MODEL),--model $(MODEL)) $(if $(DEVICE),--device $(DEVICE)) $(if $(DTYPE),--dtype $(DTYPE)) \
	$(if $(DATA),--data $(DATA))

notebooks: $(STAMP)
	$(PY) -m amlib book-pages --notebooks notebooks --executed $(EXECUTED) $(BOOK_ARGS)

plan: $(STAMP)
	$(PY) -m amlib book-pages --notebooks notebooks --executed $(EXECUTED) $(BOOK_ARGS) --dry-run

# -W -n --keep-going: any warning (a missing glue key, a broken cross-reference or download, a figure
# that did not render) fails the build, after listing them all.
book: notebooks
	start=$$(date +%s); $(VENV)/bin/jupyter-book build book/ --path-output book -W -n --keep-going && \
		echo "jupyter-book build: $$(( $$(date +%s) - start )) s"
	@echo "book: $(CURDIR)/book/_build/html/index.html"

test: $(STAMP)
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg -q

clean:
	rm -rf book/_build $(EXECUTED) results data/built
