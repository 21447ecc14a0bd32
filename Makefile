# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv themselves.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test

.PHONY: demo test ui serve install clean-data

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $(STAMP)

# The test-only packages (pytest, playwright, ruff, ...: pyproject's `test` extra), for `make test` only.
$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(TEST_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hm-recsys demo

# The browser test drives Debian's chromium (Playwright cannot download its own browser here).
CHROMIUM := /usr/bin/chromium

$(CHROMIUM):
	apt-get update -q && apt-get install -y -q chromium

# The cluster-profile test (hm_recsys_tests/services.py) starts its own Redis broker (PostgreSQL 15 is on the image).
REDIS := /usr/bin/redis-server

$(REDIS):
	apt-get update -q && apt-get install -y -q redis-server

# Lint first (seconds), then every test; the 25 slowest are listed at the end (pyproject: --durations).
test: $(TEST_STAMP) $(CHROMIUM) $(REDIS)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

ui: $(STAMP)
	$(VENV)/bin/hm-recsys ui

# The recommendations API on http://127.0.0.1:8000 (the production week's snapshot; `make demo` builds it).
serve: $(STAMP)
	$(VENV)/bin/hm-recsys serve

clean-data:
	rm -rf data
