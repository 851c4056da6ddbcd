# oci-normalize — the two commands that matter: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SCALE_MODES ?= to,inplace

.PHONY: help venv test unit lint demo bench bench-memory bench-scale bench-serve bench-startup clean

help:
	@echo "make venv   - create $(VENV) with the package and its test extras"
	@echo "make demo   - repair a Kaniko-style mixed image on a throwaway local registry"
	@echo "make test   - lint (ruff, mypy, vulture, import layers) and run every test (real registry + peers)"
	@echo "make unit   - only the tests that need no registry"
	@echo "make bench  - in place vs the GET+PUT floor and a skopeo loop; big-layer copy vs skopeo copy;"
	@echo "              batch --to vs skopeo sync (side by side, one run; see bench/README.md)"
	@echo "make bench-memory - peak RSS converting a 1 GiB-layer schema1 image and docker-archive"
	@echo "make bench-scale  - batch and batch --to peak RSS and time per reference, 1,000 to 100,000 refs"
	@echo "                    (SCALE_MODES=reconcile,resume: serve's sweep; a million-line journal resume)"
	@echo "make bench-serve  - serve: push-to-OCI latency p50/p99, events/s, RSS idle and under load"
	@echo "make bench-startup - --version and check start-up against the previous release, side by side"
	@echo "make image  - build the OCI image oci-normalize:VERSION (buildah + mmdebstrap, as root)"

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'

venv: $(PY)

lint: $(PY)
	$(PY) -m ruff check oci_normalize tests scripts bench
	$(PY) -m ruff format --check oci_normalize tests scripts bench
	$(PY) -m mypy
	$(PY) -m vulture oci_normalize scripts/vulture_allow.py --min-confidence 60
	$(VENV)/bin/lint-imports --no-cache

# Four workers on two cores: most tests wait on a registry, a peer or a subprocess, so the suite
# takes about a third of its serial time (each worker starts its own registries).
test: lint
	$(PY) -m pytest -q -ra -n 4

unit: $(PY)
	$(PY) -m pytest -q -m "not registry"

demo: $(PY)
	$(PY) scripts/demo.py

bench: $(PY)
	$(PY) bench/batch.py --scale 500,1000
	$(PY) bench/bigcopy.py
	$(PY) bench/migrate.py --rounds 3

bench-memory: $(PY)
	$(PY) bench/memory.py

bench-scale: $(PY)
	$(PY) bench/scale.py --modes $(SCALE_MODES)

bench-serve: $(PY)
	$(PY) bench/serve.py

bench-startup: $(PY)
	$(PY) bench/startup.py

.PHONY: image
image: $(PY)
	WHEEL_PYTHON=$(PY) image/build.sh

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
