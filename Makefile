# Everything a user runs starts here, and bootstraps what it needs: a .venv with the project installed, the
# protobuf code generated from proto/, and (for the tests) a redis-server binary.
#
#   make demo    the main job, end to end, on the embedded SQLite store
#   make test    the whole test suite (what CI runs)
#   make bench   benchmarks against baselines in the same run (QUICK=1 for the short form)
#   make soak    a bounded load test on loopback (about 25 minutes): rates held at p99 < 200 ms, memory over time

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

PROTOS    := $(shell find proto -name '*.proto')
INSTALLED := $(VENV)/.installed
GENERATED := exposure/.generated

.PHONY: all gen demo test bench soak redis-server nginx clean

all: $(INSTALLED)

# Bootstrap order: a venv with the code generator, then the generated package `exposure` (from proto/), then
# the project itself in editable mode, so that the installed project sees the generated code.
$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed; found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet 'grpcio-tools>=1.62'

$(GENERATED): $(PROTOS) | $(PY)
	rm -rf exposure
	$(PY) -m grpc_tools.protoc -I proto --python_out=. --pyi_out=. --grpc_python_out=. $(PROTOS)
	find exposure -type d -exec touch {}/__init__.py \;
	@touch $@

$(INSTALLED): pyproject.toml $(GENERATED)
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

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

test: $(INSTALLED) redis-server
	$(BIN)/pytest

bench: $(INSTALLED) redis-server $(if $(QUICK),,nginx)
	$(BIN)/python -m bench $(if $(QUICK),--quick)

# Writes bench/soak-results.md; stops by itself.
soak: $(INSTALLED)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) exposure build *.egg-info .pytest_cache .hypothesis
