# swarmguard: see README.md. `make demo` and `make test` do everything on a
# fresh Debian machine (.ci/run installs the packages first).
GO        ?= go
BIN       := bin/swarmguard
CORPUS    := testdata/ndpi
FUZZTIME  ?= 3s

.PHONY: race fuzz-long reliability all build static install deb demo demo-offline demo-cluster test vet unit fuzz bench train accuracy captures generate clean

all: build

# The version is git describe at build time (swarmguard version prints it
# with the module's build information).
DESCRIBE  := $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
LDFLAGS   := -X main.describe=$(DESCRIBE)

build:
	$(GO) build -buildvcs=auto -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/swarmguard

# The shipped binary: static (no cgo), stripped, reproducible paths.
static:
	CGO_ENABLED=0 $(GO) build -buildvcs=auto -trimpath -ldflags "-s -w $(LDFLAGS)" -o bin/swarmguard-static ./cmd/swarmguard

# make install [PREFIX=/usr/local] [DESTDIR=...]: the static binary, the
# systemd unit, a default configuration (not overwritten), the man page
# the Grafana dashboard and the Prometheus alert rules.
PREFIX    ?= /usr/local
DESTDIR   ?=
UNITDIR   ?= $(PREFIX)/lib/systemd/system
install: static
	install -D -m 0755 bin/swarmguard-static $(DESTDIR)$(PREFIX)/sbin/swarmguard
	install -D -m 0644 contrib/swarmguard.service $(DESTDIR)$(UNITDIR)/swarmguard.service
	sed -i 's#/usr/sbin/swarmguard#$(PREFIX)/sbin/swarmguard#g' $(DESTDIR)$(UNITDIR)/swarmguard.service
	install -d -m 0750 $(DESTDIR)/etc/swarmguard
	test -e $(DESTDIR)/etc/swarmguard/swarmguard.yaml || install -m 0640 contrib/swarmguard.yaml $(DESTDIR)/etc/swarmguard/swarmguard.yaml
	install -D -m 0644 docs/swarmguard.8 $(DESTDIR)$(PREFIX)/share/man/man8/swarmguard.8
	install -D -m 0644 contrib/grafana-swarmguard.json $(DESTDIR)$(PREFIX)/share/swarmguard/grafana-swarmguard.json
	install -D -m 0644 contrib/prometheus-alerts.yml $(DESTDIR)$(PREFIX)/share/swarmguard/prometheus-alerts.yml

# make deb: bin/swarmguard_VERSION_ARCH.deb with dpkg-deb (DEB_OUT sets the
# directory). The version is 0.1.0+git<revision>.
DEB_OUT   ?= bin
DEB_VER   := 0.1.0+git$(shell git rev-parse --short=12 HEAD 2>/dev/null || echo 0)
DEB_ARCH  := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
deb:
	rm -rf build/deb
	$(MAKE) install DESTDIR=$(CURDIR)/build/deb PREFIX=/usr UNITDIR=/lib/systemd/system
	gzip -9n build/deb/usr/share/man/man8/swarmguard.8
	install -d build/deb/DEBIAN
	install -m 0755 contrib/deb/postinst contrib/deb/prerm contrib/deb/postrm build/deb/DEBIAN/
	echo /etc/swarmguard/swarmguard.yaml > build/deb/DEBIAN/conffiles
	printf 'Package: swarmguard\nVersion: %s\nArchitecture: %s\nMaintainer: swarmguard developers <swarmguard@localhost>\nInstalled-Size: %s\nDepends: passwd\nSection: net\nPriority: optional\nHomepage: https://github.com/swarmguard/swarmguard\nDescription: recognize and block BitTorrent and encrypted P2P traffic at line rate\n swarmguard classifies flows from packet patterns and, as an AF_XDP bridge\n or on a mirror port, drops p2p flows and bans their peers in the kernel.\n' \
	  '$(DEB_VER)' '$(DEB_ARCH)' "$$(du -sk build/deb | cut -f1)" > build/deb/DEBIAN/control
	mkdir -p $(DEB_OUT)
	dpkg-deb --root-owner-group -Zxz --build build/deb $(DEB_OUT)/swarmguard_$(DEB_VER)_$(DEB_ARCH).deb

# As root: swarmguard as an AF_XDP bridge between two namespaces it creates,
# bundled captures replayed through it, decisions and bans printed, all
# removed after. Without root: the offline classification of the captures.
demo: build
	bash bench/demo/bridge.sh

# Three bridges as one (docs/SCALEOUT.md), as root: three swarmguard run
# processes on a three-node NATS cluster, Debian's gobgpd as the router in a
# namespace, a real swarm through the first box; prints what propagated
# where (the test TestBoxesShareBans, whose "demo:" lines these are).
demo-cluster:
	bash bench/deps.sh
	$(GO) test -count=1 -run TestBoxesShareBans -v ./cmd/swarmguard | grep -E 'demo:|^(ok|FAIL|--- )'

# Classify the bundled captures and print the summary and accuracy tables.
demo-offline: build
	$(BIN) classify --quiet --labels $(CORPUS)/labels.jsonl,testdata/captures/labels.jsonl $(CORPUS)/pcap/* testdata/captures/*.pcap

test: vet unit race fuzz

# staticcheck is pinned; go run fetches it through the module proxy.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

unit:
	$(GO) test -count=1 ./...

# The race detector over the engine with two workers (shard, hostmerge) and
# over the live runner on a veth bridge (dataplane/live, as root).
race:
	$(GO) test -count=1 -race ./shard/ ./hostmerge/ ./dataplane/live/

# Every fuzz target for 10 minutes (FUZZTIME=10m make fuzz); crashers are
# saved under the package's testdata/fuzz and become seed corpus entries.
fuzz-long:
	$(MAKE) fuzz FUZZTIME=10m

# Every fuzz target runs for FUZZTIME on its seed corpus plus new inputs.
# A failure prints the fuzzer's output. A crash always saves its input under
# the package's testdata/fuzz and fails the build; a failure that saved no
# input (a fuzz worker killed or timed out on a loaded machine) is retried once.
fuzz:
	@set -e; out=$$(mktemp); trap 'rm -f $$out' EXIT; \
	for pkg in $$($(GO) list ./...); do \
	  dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$t"; \
	    for try in 1 2; do \
	      if $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg > $$out 2>&1; then break; fi; \
	      cat $$out; \
	      if [ -d "$$dir/testdata/fuzz/$$t" ] || [ $$try = 2 ]; then exit 1; fi; \
	      echo "fuzz $$t: failed without a saved input; once more"; \
	    done; \
	  done; done

bench: build
	bash bench/deps.sh
	$(GO) test -run '^$$' -bench . -benchmem ./dataplane/ ./shard/ ./classifier/ ./hostmerge/
	$(BIN) bench compare --repeat 1,8
	$(BIN) bench memory --flows 100000
	$(BIN) bench memory --flows 1000000
	$(BIN) bench veth

# Refit the weights. Host rows depend on the labels of the embedded model,
# so the fit is repeated with the new weights until it no longer moves.
train: build
	for i in 1 2 3 4 5; do \
	  $(BIN) bench train --out classifier/weights.json.new || exit 1; \
	  if cmp -s classifier/weights.json.new classifier/weights.json; then rm classifier/weights.json.new; exit 0; fi; \
	  mv classifier/weights.json.new classifier/weights.json; $(GO) build -o $(BIN) ./cmd/swarmguard || exit 1; \
	done; echo "train: weights still moving after 5 fits" >&2; exit 1

# RELIABILITY.md: the full reliability scenarios against the live bridge
# (root; a few minutes); make test runs their short versions.
reliability: build
	bash bench/deps.sh
	$(BIN) bench stress --full --append RELIABILITY.md all

# ACCURACY.md: flows, hosts and bytes per capture and per client.
accuracy: build
	$(BIN) bench accuracy --out ACCURACY.md

# Re-record the real-client captures (root; namespaces; a few minutes).
captures: build
	bash bench/capture/deps.sh
	SG=$(CURDIR)/$(BIN) bash bench/capture/capture.sh testdata/captures
	$(BIN) bench labels --captures testdata/captures

# Regenerate the XDP object and bindings (needs clang and libbpf-dev).
generate:
	$(GO) generate ./bpf

clean:
	rm -rf bin
