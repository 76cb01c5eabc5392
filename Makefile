# raylake: `make run` and `make test` work from a bare machine with Python >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := tests/fixtures/ray-2.60-scenario-a
LAKE ?= .lake/sample
HEAD_NODE := a7adc7d8d330156f3b83a38b0c44ded53f9781cc3dab953e8694bb36
WORKER_NODE := baecc821b4e2be4b05f9d2711297e15761d5a0fa665dd02790868f0e

.PHONY: setup run sample test lint bench clean

# A Debian package, installed when its command is missing (CI and new machines start
# bare): Debian's chromium for the browser tests (Playwright drives it; no browser
# download), redis-server for tests/test_ha.py (the external GCS store), and buildah
# and mmdebstrap for tests/test_image.py (the image, built without a Docker engine).
define apt_install
	@command -v $(1) >/dev/null 2>&1 || { \
		echo "installing Debian's $(2) for $(3)"; \
		sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$sudo apt-get update -qq >/dev/null && \
		DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends \
			$(2) >/tmp/raylake-$(1)-install.log 2>&1 || \
		{ echo "could not install $(2): see /tmp/raylake-$(1)-install.log"; exit 1; }; }
endef

setup: $(STAMP)
	$(call apt_install,chromium,chromium fonts-liberation,the browser tests)
	$(call apt_install,redis-server,redis-server,the GCS fault-tolerance test)
	$(call apt_install,buildah,buildah,the image test)
	$(call apt_install,mmdebstrap,mmdebstrap,the image test)

# The editable install also compiles ingest/columnar.pyx, ingest/eventids.pyx,
# ingest/jsonfill.pyx (with the vendored yyjson) and ingest/bodybuffer.pyx in place
# (Cython, then gcc).
$(STAMP): pyproject.toml ingest/columnar.pyx ingest/columnar.pxd ingest/eventids.pyx \
		ingest/eventids.pxd ingest/jsonfill.pyx ingest/bodybuffer.pyx
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "raylake needs Python >= 3.11 (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Build a lake from the bundled sample session (a real Ray 2.60 capture) and show it.
sample: setup
	$(BIN)/raylake ingest --lake $(LAKE) --namespace default --cluster demo $(SAMPLE)/posts \
		--node-id $(HEAD_NODE) --logs $(SAMPLE)/logs/head \
		--snapshot jobs=$(SAMPLE)/live/api_jobs_.json \
		--snapshot placement_groups=$(SAMPLE)/live/api_v0_placement_groups_detail_1_limit_10000.json \
		--snapshot version=$(SAMPLE)/live/api_version.json \
		--snapshot cluster_metadata=$(SAMPLE)/live/api_v0_cluster_metadata.json \
		--snapshot timezone=$(SAMPLE)/live/timezone.json
	$(BIN)/raylake ingest --lake $(LAKE) --namespace default --cluster demo \
		--session session_2026-11-21_20-42-42_066305_20083 \
		--node-id $(WORKER_NODE) --logs $(SAMPLE)/logs/worker

# Serve it: Ray's dashboard for the sample session at http://$(HOST):$(PORT).
HOST ?= 127.0.0.1
PORT ?= 8080
run: sample
	$(BIN)/raylake catalog --lake $(LAKE)
	@echo "raylake serves the sample session at http://$(HOST):$(PORT)/ (Ctrl-C stops it)"
	$(BIN)/raylake serve --lake $(LAKE) --host $(HOST) --port $(PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: setup lint
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/collector.py
	$(BIN)/python bench/query.py

clean:
	rm -rf $(VENV) .lake .pytest_cache .mypy_cache .ruff_cache build ingest/columnar.c \
		ingest/eventids.c ingest/jsonfill.c ingest/bodybuffer.c ingest/*.so
