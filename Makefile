# meshbroker: the two set-up commands are `make run` and `make test`.
NPM ?= npm
CONFIG ?= deploy/examples/meshbroker.conf
# The container image (deploy/Dockerfile): built by docker or podman when one answers, else by
# the buildah-based stand-in of the shared tools (no container engine on the dev machines).
IMAGE ?= meshbroker:dev
IMAGE_TOOLS ?= ../shared/tools
# Debian packages the test suite runs against: the reference nats-server (differential tests),
# redis-server (the cluster store), mosquitto clients (MQTT), chromium (browser WebSocket tests),
# openssl (throwaway test CAs), dnsmasq (a DNS server for edge discovery tests).
TEST_DEBS := nats-server:/usr/sbin/nats-server redis-server:/usr/bin/redis-server \
  mosquitto:/usr/sbin/mosquitto mosquitto-clients:/usr/bin/mosquitto_pub \
  chromium:/usr/bin/chromium openssl:/usr/bin/openssl dnsmasq-base:/usr/sbin/dnsmasq \
  prometheus:/usr/bin/prometheus

.PHONY: all install build run cluster test test-deps bench fuzz image test-image clean

all: build

node_modules/.installed: package.json package-lock.json
	$(NPM) ci --no-audit --no-fund
	@touch $@

install: node_modules/.installed

build: install
	npx tsc -p tsconfig.json

## Start the embedded broker (edge + router in one process) with the default config.
run: build
	bin/meshbroker -c $(CONFIG)

## A local cluster: redis-server, 2 routers and 2 edges (deploy/examples/cluster); Ctrl-C stops all.
cluster: build
	deploy/examples/cluster/run.sh

## Install what the tests need (apt, when missing), build, run every test.
test: test-deps build
	npx tsc -p tsconfig.tests.json
	npx vitest run
	npx vitest run -c vitest.fuzz.config.ts

test-deps:
	@missing=""; for entry in $(TEST_DEBS); do \
	  pkg=$${entry%%:*}; bin=$${entry#*:}; \
	  [ -x "$$bin" ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo -n"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing || \
	  { $$SUDO apt-get update -q && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; }; \
	fi

## Benchmarks against nats-server in the same run (not part of `make test`).
bench: test-deps build
	node dist/test/bench/run.js

## The long fuzz pass, every surface against a real broker (test/fuzz/run.ts): FUZZ_SECONDS per
## surface (default 300) or FUZZ_INPUTS (default 1000000), FUZZ_SEED, FUZZ_SURFACES=a,b;
## FUZZ_REPLAY=test/fuzz/corpus/<surface>/crash-….json plays one saved crash again (FUZZ_MINIMIZE=1 shrinks it).
export FUZZ_SEED FUZZ_INPUTS FUZZ_SECONDS FUZZ_SURFACES FUZZ_PROBE_EVERY FUZZ_REPLAY FUZZ_MINIMIZE
fuzz: build
	npx tsc -p tsconfig.fuzz.json
	node dist/test/fuzz/run.js

## Build the container image $(IMAGE) from deploy/Dockerfile.
image:
	@engine=""; for e in docker podman; do \
	  if command -v $$e >/dev/null 2>&1 && $$e info >/dev/null 2>&1; then engine=$$e; break; fi; \
	done; \
	if [ -n "$$engine" ]; then $$engine build -f deploy/Dockerfile -t $(IMAGE) .; \
	else $(IMAGE_TOOLS)/image-build -f deploy/Dockerfile -t $(IMAGE) .; fi

## Build the image with image-build and run it with image-run (not part of `make test`: minutes).
test-image: build
	IMAGE_TOOLS=$(IMAGE_TOOLS) npx vitest run --config test/image/vitest.config.ts

clean:
	rm -rf dist node_modules
