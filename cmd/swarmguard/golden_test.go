package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// updateGolden rewrites testdata/golden instead of comparing with it:
// go test ./cmd/swarmguard -run Golden -update-golden. Only for a change
// meant to move records or weights; say which and why in the commit.
var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/golden from this build")

const goldenClassify = "../../testdata/golden/classify.sha256"

// TestClassifyGolden pins the records `classify` writes for every bundled
// capture (corpus and real-client) to the hashes committed before a
// refactor: a change that should not move behaviour must leave every one
// byte-identical. Two workers must give the same bytes as one.
func TestClassifyGolden(t *testing.T) {
	files, _ := filepath.Glob("../../testdata/ndpi/pcap/*")
	caps, _ := filepath.Glob("../../testdata/captures/*.pcap")
	files = append(files, caps...)
	if len(files) < 100 {
		t.Fatalf("found %d captures: is testdata complete?", len(files))
	}
	sort.Strings(files)
	got := map[string]string{}
	var lines []string
	for _, f := range files {
		for _, workers := range []string{"1", "2"} {
			var out, errb bytes.Buffer
			if err := run([]string{"classify", "--workers", workers, f}, &out, &errb); err != nil && code(err) != 2 {
				t.Fatalf("classify %s: %v", f, err)
			}
			sum := sha256.Sum256(out.Bytes())
			h := hex.EncodeToString(sum[:])
			if workers == "1" {
				got[filepath.Base(f)] = h
				lines = append(lines, h+"  "+filepath.Base(f))
			} else if h != got[filepath.Base(f)] {
				t.Errorf("%s: --workers 2 writes other records than --workers 1", filepath.Base(f))
			}
		}
	}
	if *updateGolden {
		if err := os.WriteFile(goldenClassify, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want := readGolden(t, goldenClassify)
	for name, h := range got {
		if w, ok := want[name]; !ok {
			t.Errorf("%s: no golden hash (run with -update-golden if the capture is new)", name)
		} else if w != h {
			t.Errorf("%s: classify records changed (sha256 %s, golden %s)", name, h[:12], w[:12])
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			t.Errorf("%s: golden hash but no capture", name)
		}
	}
}

// TestTrainReproducesWeights refits the weights from the bundled data and
// compares them with classifier/weights.json byte for byte: the embedded
// model is what `make train` makes, and a refactor must not move it.
func TestTrainReproducesWeights(t *testing.T) {
	if testing.Short() {
		t.Skip("refits the model (~10 s)")
	}
	var out, errb bytes.Buffer
	err := run([]string{"bench", "train", "--corpus", "../../testdata/ndpi", "--captures", "../../testdata/captures", "--out", "-"}, &out, &errb)
	if err != nil {
		t.Fatalf("bench train: %v\n%s", err, errb.String())
	}
	want, err := os.ReadFile("../../classifier/weights.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("bench train writes other weights than classifier/weights.json (%d vs %d bytes): run make train and say why they moved", out.Len(), len(want))
	}
}

func readGolden(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		h, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", path, sc.Text())
		}
		m[name] = h
	}
	return m
}
