package compare

import (
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// frozen is a capture whose clock stands still after its first packet: a
// single tick of packet time holds all of it.
type frozen struct {
	r  *pcapsrc.Reader
	at time.Time
}

func (f *frozen) Next() ([]byte, packet.LinkType, time.Time, error) {
	b, l, ts, err := f.r.Next()
	if f.at.IsZero() {
		f.at = ts
	}
	return b, l, f.at, err
}

// Dense traffic (concurrent copies of a real capture, and the same with a
// clock that stands still) gives the same records on 1, 2 and 3 workers:
// the replay's pipeline hands the lanes whole ticks, and pieces of an
// over-long one, in the order one worker would see them.
func TestDenseReplaySameOnAnyWorkers(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dense.pcap")
	n, err := Overlay([]string{filepath.Join("..", "..", "testdata", "captures", "plain.pcap")}, 8, path)
	if err != nil {
		t.Fatal(err)
	}
	opt := func(w int) shard.Options {
		return shard.Options{Workers: w, Worker: shard.Config{Model: classifier.DefaultModel()}}
	}
	for _, clock := range []string{"capture", "frozen"} {
		var first *shard.Result
		for _, w := range []int{1, 2, 3} {
			var r *shard.Result
			if clock == "capture" {
				r, err = dataplane.ClassifyFile(path, opt(w))
			} else {
				src, oerr := pcapsrc.Open(path)
				if oerr != nil {
					t.Fatal(oerr)
				}
				r, err = shard.Replay(&frozen{r: src}, "dense.pcap", opt(w))
				src.Close()
			}
			if err != nil || r.Err != nil {
				t.Fatalf("%s clock, %d workers: %v %v", clock, w, err, r.Err)
			}
			if r.Packets != uint64(n) || len(r.Flows) == 0 {
				t.Fatalf("%s clock, %d workers: %d packets of %d, %d flows", clock, w, r.Packets, n, len(r.Flows))
			}
			if first == nil {
				first = r
				continue
			}
			if !reflect.DeepEqual(first.Flows, r.Flows) {
				t.Errorf("%s clock: flow records differ between 1 and %d workers", clock, w)
			}
			if !reflect.DeepEqual(first.Hosts, r.Hosts) {
				t.Errorf("%s clock: host records differ between 1 and %d workers", clock, w)
			}
		}
		t.Logf("%s clock: %d packets, %d flows, %d hosts, the same on 1, 2 and 3 workers", clock, first.Packets, len(first.Flows), len(first.Hosts))
	}
}
