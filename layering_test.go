// Package swarmguard_test holds the tests of the repository as a whole. The
// import layering below is the design's data path as packages: a packet
// meets shard (decode, flow table, worker), which calls classifier and
// hostmerge; dataplane feeds shard from pcap files and AF_XDP sockets and
// writes the kernel maps of bpf; cmd wires it all.
package swarmguard_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/swarmguard/swarmguard"

// allowed lists, for each top-level directory, the other top-level
// directories its packages may import (tests included). A package may
// always import packages of its own directory. Product code (everything but
// bench and cmd) never imports bench; internal holds test-only helpers, which
// only _test.go files may import, from any directory.
var allowed = map[string][]string{
	"classifier": {},
	"hostmerge":  {"classifier"},
	"shard":      {"classifier", "hostmerge"},
	"dataplane":  {"shard", "hostmerge", "classifier", "bpf"},
	"bpf":        {},
	"internal":   {},
	"bench":      {"dataplane", "shard", "hostmerge", "classifier", "bpf"},
	"cmd":        {"bench", "dataplane", "shard", "hostmerge", "classifier", "bpf", "cluster"},
	// cluster shares what a box proved with the others (NATS JetStream,
	// BGP) and writes the bans it receives into the kernel's ban map.
	"cluster": {"bpf"},
}

// testOnly are the directories only test files may import.
var testOnly = []string{"internal"}

type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// top is the top-level directory of a package of this module ("" for the
// module root, which holds only this test).
func top(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	dir, _, _ := strings.Cut(rest, "/")
	return dir, true
}

// TestImportLayering reads the import graph with go list and fails on any
// arrow the layering does not allow.
func TestImportLayering(t *testing.T) {
	out, err := exec.Command("go", "list", "-json", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	seen := 0
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		seen++
		from, _ := top(p.ImportPath)
		if from == "" {
			continue
		}
		ok, known := allowed[from]
		if !known {
			t.Errorf("%s: top-level directory %q is not in the layering (add it to allowed, with a reason)", p.ImportPath, from)
			continue
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to, mine := top(imp)
				if !mine || to == from {
					continue
				}
				switch {
				case slices.Contains(testOnly, to):
					if !test {
						t.Errorf("%s imports %s outside its tests: %s holds test-only helpers", p.ImportPath, imp, to)
					}
				case !slices.Contains(ok, to):
					t.Errorf("%s imports %s: %s may import only %v", p.ImportPath, imp, from, ok)
				}
			}
		}
		check(p.Imports, false)
		check(p.TestImports, true)
		check(p.XTestImports, true)
	}
	if seen < 10 {
		t.Fatalf("go list listed %d packages", seen)
	}
}
