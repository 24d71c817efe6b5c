# Everything a user runs starts here, and bootstraps what it needs: a .venv with the project installed, the
# protobuf code generated from proto/, and (for the tests) a redis-server binary.
#
#   make demo    the main job, end to end, on the embedded SQLite store
#   make test    the static checks (make lint), then the whole test suite (what CI runs)
#   make test-fast  unit and store-contract tests only
#   make bench   benchmarks against baselines in the same run (QUICK=1 for the short form)
#   make soak    a bounded load test on loopback (about 25 minutes): rates held at p99 < 200 ms, memory over time

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

PROTOS    := $(shell find proto -name '*.proto')
LOCKED    := $(VENV)/.locked
INSTALLED := $(VENV)/.installed
GENERATED := exposure/.generated

.PHONY: all gen lock lint demo test test-fast bench soak redis-server nginx clean

all: $(INSTALLED)

# Bootstrap order: a venv with exactly the tested versions (requirements.lock, every file checked against its
# hash), then the generated package `exposure` (from proto/), then the project itself in editable mode without
# resolving anything again, so that the installed project sees the generated code. mypy-protobuf's plugins write
# the type stubs (.pyi) of the messages and of the gRPC stubs and servicers, which mypy checks the code against.
$(LOCKED): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; found " + sys.version.split()[0])'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements.lock
	@touch $@

$(GENERATED): $(PROTOS) Makefile | $(LOCKED)
	rm -rf exposure
	$(PY) -m grpc_tools.protoc -I proto --plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy \
	  --plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc \
	  --python_out=. --grpc_python_out=. --mypy_out=quiet:. --mypy_grpc_out=quiet:. $(PROTOS)
	find exposure -type d -exec touch {}/__init__.py \;
	@touch $@

$(INSTALLED): pyproject.toml $(LOCKED) $(GENERATED)
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $@

# Regenerates requirements.lock from pyproject.toml (all extras, hashes of every published file) after a
# dependency changes; `make` then installs exactly that.
lock: $(LOCKED)
	$(BIN)/pip-compile --quiet --all-extras --generate-hashes --allow-unsafe --strip-extras \
	  --index-url https://pypi.org/simple --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml

gen: $(GENERATED)

# Storage and integration tests start their own redis-server (and join cluster nodes with redis-cli, which comes
# with it); this makes sure both binaries exist.
redis-server:
	@{ command -v redis-server && command -v redis-cli; } >/dev/null 2>&1 || { \
	  echo "redis-server not found: installing it with apt-get"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null; } \
	  || { echo "could not install redis-server; install it with: sudo apt-get install redis-server"; exit 1; }; }

# The distribution benchmark compares the service with nginx serving the same bytes over TLS.
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  echo "nginx not found: installing it with apt-get"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; } \
	  || { echo "could not install nginx; install it with: sudo apt-get install nginx"; exit 1; }; }

demo: $(INSTALLED)
	$(BIN)/python -m matcher.demo

# The static gate: lint and format (ruff), types (mypy, strict for matcher/ and clients/). make test runs it first.
lint: $(INSTALLED)
	$(BIN)/ruff check matcher clients tests bench
	$(BIN)/ruff format --check matcher clients tests bench
	$(BIN)/mypy

test: lint $(INSTALLED) redis-server
	$(BIN)/pytest

# The fast part, for a developer's edit-run loop: unit and store-contract tests (a minute or two).
test-fast: $(INSTALLED) redis-server
	$(BIN)/pytest tests/unit tests/contract

bench: $(INSTALLED) redis-server $(if $(QUICK),,nginx)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# Writes bench/soak-results.md; stops by itself.
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) exposure build *.egg-info .pytest_cache .hypothesis
