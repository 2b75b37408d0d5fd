# swarmguard: see README.md. `make demo` and `make test` do everything on a
# fresh Debian machine (.ci/run installs the packages first).
GO        ?= go
BIN       := bin/swarmguard
CORPUS    := testdata/ndpi
FUZZTIME  ?= 3s

.PHONY: all build demo demo-offline test vet unit fuzz bench train accuracy captures generate clean

all: build

build:
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/swarmguard

# As root: swarmguard as an AF_XDP bridge between two namespaces it creates,
# bundled captures replayed through it, decisions and bans printed, all
# removed after. Without root: the offline classification of the captures.
demo: build
	bash bench/demo/bridge.sh

# Classify the bundled captures and print the summary and accuracy tables.
demo-offline: build
	$(BIN) classify --quiet --labels $(CORPUS)/labels.jsonl,testdata/captures/labels.jsonl $(CORPUS)/pcap/* testdata/captures/*.pcap

test: vet unit fuzz

# staticcheck is pinned; go run fetches it through the module proxy.
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

vet:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

unit:
	$(GO) test -count=1 ./...

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
