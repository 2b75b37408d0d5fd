package accuracy_test

import (
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/swarmguard/swarmguard/bench/accuracy"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/shard"
)

func corpusFiles(t testing.TB) []string {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "ndpi", "pcap", "*"))
	if err != nil || len(files) < 100 {
		t.Fatalf("corpus: %d files, %v", len(files), err)
	}
	sort.Strings(files)
	return files
}

func classifyAll(t testing.TB, files []string, workers int) []*shard.Result {
	t.Helper()
	var out []*shard.Result
	for _, f := range files {
		r, err := dataplane.ClassifyFile(f, shard.Options{Workers: workers, Worker: shard.Config{Model: classifier.DefaultModel()}})
		if err != nil {
			t.Fatal(err)
		}
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		out = append(out, r)
	}
	return out
}

// The corpus's must-show: every flow nDPI labels bittorrent that carries
// payload is p2p, and no flow nDPI labels other is p2p. Name-only labels
// (DNS.BitTorrent) and nDPI's unknowns are reported, not scored.
func TestCorpusAccuracy(t *testing.T) {
	labels, err := accuracy.LoadLabels(filepath.Join("..", "..", "testdata", "ndpi", "labels.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	sc := accuracy.Score(labels, classifyAll(t, corpusFiles(t), 1))
	var bt *accuracy.Row
	for i := range sc.Rows {
		if sc.Rows[i].Label == "bittorrent" {
			bt = &sc.Rows[i]
		}
	}
	if bt == nil || bt.Flows < 25 {
		t.Fatalf("too few scored BitTorrent flows: %+v", bt)
	}
	for _, m := range sc.BTMissed {
		t.Errorf("missed BitTorrent flow %s %s %s %s: %s p=%.3f", m.Label.Pcap, m.Label.Proto, m.Label.A, m.Label.B, m.Got.Label, m.Got.P)
	}
	for _, m := range sc.FalseP2P {
		t.Errorf("false p2p: %s %s %s %s (%s) p=%.3f", m.Label.Pcap, m.Label.Proto, m.Label.A, m.Label.B, m.Label.App, m.Got.P)
	}
	t.Logf("bittorrent %d/%d p2p; name-only labels reported: %d", bt.P2P, bt.Flows, len(sc.NameOnly))
}

// Sharding flows over workers and merging hosts per tick gives the same
// records as one worker.
func TestWorkersGiveSameLabels(t *testing.T) {
	files := corpusFiles(t)
	one := classifyAll(t, files, 1)
	three := classifyAll(t, files, 3)
	for i := range one {
		if !reflect.DeepEqual(one[i].Flows, three[i].Flows) {
			t.Errorf("%s: flow records differ between 1 and 3 workers", one[i].Pcap)
		}
		if !reflect.DeepEqual(one[i].Hosts, three[i].Hosts) {
			t.Errorf("%s: host records differ between 1 and 3 workers", one[i].Pcap)
		}
	}
}
