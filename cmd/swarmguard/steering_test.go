package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
	"github.com/swarmguard/swarmguard/shard"
)

// oneDirection writes the packets of capture in that go from the lower
// (address, port) of their flow to the higher: what a box sees of every
// flow when the routers steer each direction of a subscriber's traffic
// through a different box.
func oneDirection(t *testing.T, in, out string) int {
	t.Helper()
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcapgo.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	o, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	w := pcapgo.NewWriterNanos(o)
	if err := w.WriteFileHeader(65535, r.LinkType()); err != nil {
		t.Fatal(err)
	}
	kept := 0
	for {
		data, ci, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(data, r.LinkType(), gopacket.DecodeOptions{Lazy: true, NoCopy: true})
		nl, tl := p.NetworkLayer(), p.TransportLayer()
		if nl == nil || tl == nil {
			continue
		}
		src, dst := nl.NetworkFlow().Src().Raw(), nl.NetworkFlow().Dst().Raw()
		sp, dp := tl.TransportFlow().Src().Raw(), tl.TransportFlow().Dst().Raw()
		if c := bytes.Compare(src, dst); c > 0 || c == 0 && bytes.Compare(sp, dp) >= 0 {
			continue
		}
		if _, ok := tl.(*layers.TCP); !ok {
			if _, ok := tl.(*layers.UDP); !ok {
				continue
			}
		}
		if err := w.WritePacket(ci, data); err != nil {
			t.Fatal(err)
		}
		kept++
	}
	return kept
}

// The one-sided count tells the two views of one capture apart: of the
// flows of a real swarm that reach four packets, none went one way when
// both directions are there, and all did when only one is.
func TestSidedCountsOneWayFlows(t *testing.T) {
	full := "../../testdata/captures/encrypted.pcap"
	half := filepath.Join(t.TempDir(), "one-direction.pcap")
	oneDirection(t, full, half)
	opt := shard.Options{Workers: 1, Worker: shard.Config{Model: classifier.DefaultModel()}}
	both, err := dataplane.ClassifyFile(full, opt)
	if err != nil {
		t.Fatal(err)
	}
	one, err := dataplane.ClassifyFile(half, opt)
	if err != nil {
		t.Fatal(err)
	}
	if both.Stats.Sided < 10 || both.Stats.OneSided != 0 || one.Stats.Sided < 10 || one.Stats.OneSided != one.Stats.Sided {
		t.Fatalf("both directions: %d of %d flows one-sided; one direction: %d of %d", both.Stats.OneSided, both.Stats.Sided, one.Stats.OneSided, one.Stats.Sided)
	}
}

// A box given one direction of its traffic (the routers steering each
// direction of a subscriber through a different box, docs/SCALEOUT.md)
// says so: nearly every flow that reaches four packets is counted
// one-sided in swarmguard_flows_sided_total, so that the shipped alert
// (contrib/prometheus-alerts.yml) fires; and it bans nobody, though the
// traffic is a real encrypted swarm that the same box bans from when it
// sees both directions.
func TestOneDirectionIsCountedAndBansNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	capFile, err := filepath.Abs("../../testdata/captures/encrypted.pcap")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	half := filepath.Join(dir, "one-direction.pcap")
	if n := oneDirection(t, capFile, half); n < 1000 {
		t.Fatalf("%d packets kept of one direction", n)
	}
	env := netnstest.New(t)
	nets := newBridgeNets(t, env, "", 88)
	gen, pa, pb := nets.gen, nets.a, nets.b
	bin := testbin.Build(t)
	pin := fmt.Sprintf("/sys/fs/bpf/sgod%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	mport := testbin.FreePort(t)
	conf := filepath.Join(dir, "box.yaml")
	body := fmt.Sprintf("interfaces:\n  bridge: [%s, %s]\nkernel:\n  pin: %s\nlog:\n  file: %s\nmetrics:\n  listen: 127.0.0.1:%d\nstatus:\n  socket: \"\"\n",
		pa, pb, pin, filepath.Join(dir, "box.json"), mport)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	sg := start(t, bin, "run", "--config", conf)
	if !waitFor(&sg.out, "running", 30*time.Second) {
		t.Skipf("the box did not start (no XDP here?): %s", sg.out.String())
	}
	if err := replaySwarm(bin, gen, half); err != nil {
		t.Fatal(err)
	}
	sided := func() (one, both float64) {
		for series, v := range scrape(mport) {
			switch {
			case !strings.HasPrefix(series, "swarmguard_flows_sided_total{"):
			case strings.Contains(series, `sides="one"`):
				one += v
			default:
				both += v
			}
		}
		return
	}
	// The counters are published at the merge ticks.
	var one, both float64
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if one, both = sided(); one >= 5 {
			break
		}
	}
	if one < 5 || one < 0.9*(one+both) {
		t.Fatalf("one direction of a swarm: %v flows one-sided, %v both ways", one, both)
	}
	if l := activeBans(t, pin); len(l) != 0 {
		t.Fatalf("one direction only, yet banned %v", l)
	}
	t.Logf("one direction of the swarm: %v flows one-sided, %v both ways; no ban", one, both)
}
