# Two commands a newcomer needs: `make demo` and `make test`. Both build .venv themselves.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: demo test ui serve install clean-data

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -c constraints.txt torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -c constraints.txt -e .
	touch $(STAMP)

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

test: $(STAMP) $(CHROMIUM) $(REDIS)
	$(VENV)/bin/pytest -q

ui: $(STAMP)
	$(VENV)/bin/hm-recsys ui

# The recommendations API on http://127.0.0.1:8000 (the production week's snapshot; `make demo` builds it).
serve: $(STAMP)
	$(VENV)/bin/hm-recsys serve

clean-data:
	rm -rf data
