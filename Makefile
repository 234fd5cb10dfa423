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
DEMO_PASSWORD := var/demo_password
# The listeners of configs/dev.yaml, for the commands make run prints (keep
# them in step; TestMakeRun checks that they are).
DEV_SFTP_PORT := 2022
DEV_FTPS_PORT := 2121
DEV_CERT   := var/state/ftps_cert.pem
SFTP_CMD   := sftp -P $(DEV_SFTP_PORT) -i $(DEMO_KEY) -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile=var/known_hosts demo@127.0.0.1
# The FTPS commands read the password from its file when run, and check the
# self-signed certificate the first start generates in state_dir. They are
# printed between single quotes: $$(...) reaches the terminal as written.
LFTP_CMD   := lftp -u "demo,$$(cat $(DEMO_PASSWORD))" -p $(DEV_FTPS_PORT) -e "set ftp:ssl-force true; set ftp:ssl-protect-data true; set ssl:ca-file $(DEV_CERT)" 127.0.0.1
CURL_CMD   := curl --ssl-reqd --cacert $(DEV_CERT) -u "demo:$$(cat $(DEMO_PASSWORD))" ftp://127.0.0.1:$(DEV_FTPS_PORT)/

.PHONY: all build run run-s3 test lint fuzz bench clean

all: build

build:
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/wharf

# The demo key pair is generated once; the private key never leaves var/.
$(DEMO_KEY):
	@mkdir -p var
	ssh-keygen -q -t ed25519 -N "" -C demo@wharf -f $@

# The demo password is generated once (20 characters of base64url, 120
# bits), readable by its owner only; the config gets only its hash.
$(DEMO_PASSWORD):
	@mkdir -p var
	@umask 077 && head -c 15 /dev/urandom | base64 | tr '/+' '_-' > $@.tmp && mv $@.tmp $@
	@echo "generated the demo password in $@"

# var/dev.yaml is configs/dev.yaml with the "# - DEMO_PUBLIC_KEY" comment line
# replaced by the generated key and the "# password_hash: DEMO_PASSWORD_HASH"
# line, if the file has one, by the demo password's argon2id hash (from the
# wharf just built). awk's index/substr copy both literally, so the "/", "+",
# "$" and "=" in them need no escaping; a missing key placeholder fails.
var/%.yaml: configs/%.yaml $(DEMO_KEY) $(DEMO_PASSWORD) | build
	@key="$$(cat $(DEMO_KEY).pub)" && \
	hash="$$(./$(BIN) hash-password < $(DEMO_PASSWORD))" && \
	awk -v key="$$key" -v hash="$$hash" ' \
		{ i = index($$0, "# - DEMO_PUBLIC_KEY") } \
		i { $$0 = substr($$0, 1, i - 1) "- \"" key "\""; n++ } \
		{ j = index($$0, "# password_hash: DEMO_PASSWORD_HASH") } \
		j { $$0 = substr($$0, 1, j - 1) "password_hash: \"" hash "\""; m++ } \
		{ print } \
		END { if (n != 1 || m > 1) { print "DEMO_PUBLIC_KEY placeholder not found exactly once, or DEMO_PASSWORD_HASH more than once" > "/dev/stderr"; exit 1 } }' \
		$< > $@.tmp || { rm -f $@.tmp; exit 1; }; \
	mv $@.tmp $@
	@echo "rendered $@ with the public key of $(DEMO_KEY) and the hash of $(DEMO_PASSWORD)"

run: build $(DEV_RENDER)
	@echo
	@echo "wharf is starting: SFTP on 127.0.0.1:$(DEV_SFTP_PORT), explicit FTPS on 127.0.0.1:$(DEV_FTPS_PORT) (Ctrl-C stops it)."
	@echo "From the repository root, in another terminal:"
	@echo
	@echo "  SFTP with the demo key:"
	@echo '  $(SFTP_CMD)'
	@echo
	@echo "  FTPS with the demo password (in $(DEMO_PASSWORD)):"
	@echo '  $(LFTP_CMD)'
	@echo '  $(CURL_CMD)'
	@echo
	@echo "  The onboarding packet a partner would get (its README):"
	@echo '  ./$(BIN) user onboard demo --config $(DEV_RENDER) --host 127.0.0.1'
	@echo
	./$(BIN) serve --config $(DEV_RENDER)

# The same with every home in a bucket of a local versitygw (scripts/run-s3.sh).
run-s3: build $(DEV_S3_RENDER)
	@echo
	@echo "wharf is starting on 127.0.0.1:$(DEV_SFTP_PORT) over versitygw on 127.0.0.1:7070 (Ctrl-C stops both). Connect with:"
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
	@echo "var/ (demo key and password, host keys, uploaded files) is kept; remove it by hand to start over"
