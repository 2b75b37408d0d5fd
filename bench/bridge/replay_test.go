package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/bench/capture"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
	"github.com/swarmguard/swarmguard/shard"
)

// bridgeEnv is gen-ns (NET.1) -- A [swarmguard] B -- sink-ns (NET.2), every
// link with the given MTU (room for tunnels' outer headers above 1500).
func bridgeEnv(t *testing.T, net string, mtu int) (env *netnstest.Env, gen, a, b string) {
	env = netnstest.New(t)
	gen, sink := env.NS("gen"), env.NS("sink")
	a = env.Veth("a", gen, net+".1/24", 1)
	b = env.Veth("b", sink, net+".2/24", 1)
	for _, ns := range []string{gen, sink} {
		if out, err := env.Exec(ns, "ethtool", "-K", "eth0", "gro", "on", "tx", "off"); err != nil {
			t.Fatalf("ethtool in %s (bench/deps.sh installs it): %v %s", ns, err, out)
		}
		if out, err := env.Exec(ns, "ip", "link", "set", "eth0", "mtu", fmt.Sprint(mtu)); err != nil {
			t.Fatalf("mtu: %v %s", err, out)
		}
	}
	env.Run("ip", "link", "set", a, "mtu", fmt.Sprint(mtu))
	env.Run("ip", "link", "set", b, "mtu", fmt.Sprint(mtu))
	return env, gen, a, b
}

// TestHiddenSwarmLiveMatchesOffline replays the six-client hidden swarm
// (MSE required, HTTPS tracker only) through the live bridge with its own
// timing (twice as fast) and classifies the same capture offline: one
// engine, one clock, the same labels. Every flow the bridge decided has
// the label classify gives it; every BitTorrent peer flow with >= 4 payload
// packets ends p2p live too (re-decisions included), and no normal flow does.
func TestHiddenSwarmLiveMatchesOffline(t *testing.T) {
	file, err := filepath.Abs(filepath.Join("..", "..", "testdata", "captures", "hidden-mix.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	env, gen, a, b := bridgeEnv(t, "10.99.4", 1500)
	bin := testbin.Build(t)
	pin := fmt.Sprintf("/sys/fs/bpf/sgreplay%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	var recs testbin.Buffer
	var logb testbin.Buffer
	// Monitor-only: the bridge bans and drops nothing, so every flow of the
	// capture reaches the engine, as it does offline (with bans the swarm's
	// peers are cut off within a second and their later flows never start).
	r, err := live.Start(live.Config{Bridge: [2]string{a, b}, PinPath: pin, Records: &recs, Log: &logb, MonitorOnly: true})
	if err != nil {
		t.Skipf("start: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			r.Stop()
		}
	})
	out, err := env.Exec(gen, bin, "bench", "replay", "--iface", "eth0", "--speed", "2", "--pad", "--timeout", "90s", file)
	if err != nil {
		t.Fatalf("replay: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	st := r.Stats()
	if err := r.Stop(); err != nil {
		t.Logf("stop: %v", err)
	}
	stopped = true
	type key struct{ proto, a, b string }
	liveLabel := map[key]live.Record{}
	dec := json.NewDecoder(bytes.NewReader(recs.Bytes()))
	for {
		var rec live.Record
		if err := dec.Decode(&rec); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("records: %v", err)
		}
		if !rec.IsFlow() {
			continue
		}
		liveLabel[key{rec.Proto, rec.A, rec.B}] = rec // the last decision of a flow counts
	}
	off, err := dataplane.ClassifyFile(file, shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}})
	if err != nil || off.Err != nil {
		t.Fatal(err, off.Err)
	}
	compared, redecided := 0, 0
	for _, f := range off.Flows {
		l, ok := liveLabel[key{f.Proto, f.A, f.B}]
		bt := capture.Label(netip.MustParseAddrPort(f.A), netip.MustParseAddrPort(f.B)) == "bittorrent"
		switch {
		case bt && f.PayloadPackets >= 4 && (!ok || l.Label != "p2p"):
			t.Errorf("peer flow %s %s %s: live %q (%s), offline %s", f.Proto, f.A, f.B, l.Label, l.Action, f.Label)
		case !bt && ok && l.Label == "p2p":
			t.Errorf("normal flow %s %s %s is p2p live (%v)", f.Proto, f.A, f.B, l.Reasons)
		case ok && l.Label != f.Label:
			t.Errorf("flow %s %s %s: live %s, offline %s (p %.3f / %.3f)", f.Proto, f.A, f.B, l.Label, f.Label, l.P, f.P)
		}
		if ok {
			compared++
			if l.Redecided {
				redecided++
			}
		}
	}
	if compared < len(off.Flows)/2 {
		t.Errorf("only %d of %d flows decided live (kernel %+v, rx %d)", compared, len(off.Flows), st.Kernel, st.RxFrames)
	}
	t.Logf("%s; %d flows decided live and offline alike (%d re-decided live), of %d offline", out, compared, redecided, len(off.Flows))
}
