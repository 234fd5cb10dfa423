# wharf — developer entry points. Every target runs from the repository root.

GO         ?= go
BIN        ?= bin/wharf
FUZZTIME   ?= 20s
# Bounds the shrinking of each new input, so a run ends near FUZZTIME.
FUZZMINTIME ?= 5s
FUZZPKGS   ?= ./internal/config ./internal/auth ./internal/vfs ./internal/s3store
BENCHFLAGS ?=
# Stamped into `wharf version`.
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# `make run` keeps everything it creates under var/ (git-ignored).
DEV_CONFIG := configs/dev.yaml
DEV_RENDER := var/dev.yaml
DEV_S3_CONFIG := configs/dev-s3.yaml
DEV_S3_RENDER := var/dev-s3.yaml
DEMO_KEY   := var/demo_ed25519
SFTP_CMD   := sftp -P 2022 -i $(DEMO_KEY) -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=var/known_hosts demo@127.0.0.1

.PHONY: all build run run-s3 test lint fuzz bench clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/wharf

# The demo key pair is generated once; the private key never leaves var/.
$(DEMO_KEY):
	@mkdir -p var
	ssh-keygen -q -t ed25519 -N "" -C demo@wharf -f $@

# var/dev.yaml is configs/dev.yaml with the "# - DEMO_PUBLIC_KEY" comment line
# replaced by the generated key. awk's index/substr copy the key literally, so
# the "/", "+" and "=" of base64 need no escaping; a missing placeholder fails.
var/%.yaml: configs/%.yaml $(DEMO_KEY)
	@key="$$(cat $(DEMO_KEY).pub)" && \
	awk -v key="$$key" ' \
		{ i = index($$0, "# - DEMO_PUBLIC_KEY") } \
		i { $$0 = substr($$0, 1, i - 1) "- \"" key "\""; n++ } \
		{ print } \
		END { if (n != 1) { print "DEMO_PUBLIC_KEY placeholder not found exactly once" > "/dev/stderr"; exit 1 } }' \
		$< > $@.tmp || { rm -f $@.tmp; exit 1; }; \
	mv $@.tmp $@
	@echo "rendered $@ with the public key of $(DEMO_KEY)"

run: build $(DEV_RENDER)
	@echo
	@echo "wharf is starting on 127.0.0.1:2022 (Ctrl-C stops it). Connect with:"
	@echo
	@echo "  $(SFTP_CMD)"
	@echo
	./$(BIN) serve --config $(DEV_RENDER)

# The same with every home in a bucket of a local versitygw (scripts/run-s3.sh).
run-s3: build $(DEV_S3_RENDER)
	@echo
	@echo "wharf is starting on 127.0.0.1:2022 over versitygw on 127.0.0.1:7070 (Ctrl-C stops both). Connect with:"
	@echo
	@echo "  $(SFTP_CMD)"
	@echo
	./scripts/run-s3.sh ./$(BIN) $(DEV_S3_RENDER)

test:
	$(GO) test -race -count=1 -timeout 30m ./...

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@command -v staticcheck >/dev/null 2>&1 || { \
		echo "staticcheck is not on PATH; install it with:"; \
		echo "  $(GO) install honnef.co/go/tools/cmd/staticcheck@latest"; \
		echo "(it lands in $$($(GO) env GOPATH)/bin: add that to PATH)"; \
		exit 1; }
	staticcheck ./...

# Each package's fuzz targets are listed by `go test -list`, so a new target is
# fuzzed without editing this file. -fuzz takes one target at a time, anchored.
# A failure fails the target, except one: go1.26's fuzz coordinator sometimes
# fails a clean run with a bare "context deadline exceeded" as -fuzztime ends
# (golang/go#75804, fixed in go1.27). That run wrote no failing input into
# testdata/fuzz, so it is reported as a warning. A crasher is always written
# there, and fails the target.
fuzz:
	@set -e; out="$$(mktemp)"; trap 'rm -f "$$out"' EXIT; \
	for pkg in $(FUZZPKGS); do \
		targets="$$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true)"; \
		if [ -z "$$targets" ]; then echo "no fuzz targets in $$pkg"; exit 1; fi; \
		for t in $$targets; do \
			echo "== $$pkg $$t ($(FUZZTIME))"; \
			corpus="$$pkg/testdata/fuzz/$$t"; \
			before="$$(ls -A "$$corpus" 2>/dev/null | wc -l)"; \
			rc=0; $(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) \
				-fuzzminimizetime $(FUZZMINTIME) $$pkg >"$$out" 2>&1 || rc=$$?; \
			cat "$$out"; \
			[ "$$rc" -eq 0 ] && continue; \
			after="$$(ls -A "$$corpus" 2>/dev/null | wc -l)"; \
			if [ "$$after" = "$$before" ] && ! grep -q 'Failing input written' "$$out" \
				&& [ "$$(grep -c '^--- FAIL' "$$out")" = 1 ] \
				&& grep -qx '    context deadline exceeded' "$$out"; then \
				echo "warning: $$t: bare \"context deadline exceeded\" with no failing input (golang/go#75804); not a finding"; \
				continue; \
			fi; \
			echo "fuzz: $$pkg $$t failed"; exit 1; \
		done; \
	done

# The benchmark measures the binary `make build` stamped, so its table names the commit.
bench: build
	$(GO) run ./cmd/wharf-bench -wharf $(BIN) $(BENCHFLAGS)

clean:
	rm -rf bin
	@echo "var/ (demo key, host keys, uploaded files) is kept; remove it by hand to start over"
