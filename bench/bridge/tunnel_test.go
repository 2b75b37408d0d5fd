package bridge

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/bench/wrap"
	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// TestTunnelledSwarmThroughBridge replays nDPI's bittorrent.pcap and a
// browser's chrome.pcap, both inside PPPoE and then inside VXLAN, through
// the live bridge: the BitTorrent flows are p2p and dropped, from their
// bypass entries in the kernel once it opens the tunnel, and the browser's
// flows pass. Before, PPPoE frames were forwarded unseen as "not IP". (No
// ban here: these flows are p2p from their first packet, before any
// answer, and a ban needs an answered flow.)
func TestTunnelledSwarmThroughBridge(t *testing.T) {
	corpus := func(n string) string { return filepath.Join("..", "..", "testdata", "ndpi", "pcap", n) }
	for _, kind := range []string{wrap.PPPoE, wrap.VXLAN} {
		t.Run(kind, func(t *testing.T) {
			tunnelThroughBridge(t, kind, []string{corpus("bittorrent.pcap"), corpus("chrome.pcap")}, false)
		})
	}
}

// TestEncryptedSwarmWrappedThroughBridge unwraps the VXLAN swarm capture.sh
// recorded (transmission-daemon, MSE required) and replays it inside PPPoE,
// MPLS, GRE and GTP-U through the live bridge: its encrypted peer flows are
// decided once answered, so their peers are banned, while the HTTPS
// downloads in the same tunnel pass.
func TestEncryptedSwarmWrappedThroughBridge(t *testing.T) {
	bare := filepath.Join(t.TempDir(), "bare.pcap")
	if _, err := wrap.Unwrap(filepath.Join("..", "..", "testdata", "captures", "vxlan-swarm.pcap"), bare); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{wrap.PPPoE, wrap.MPLS, wrap.GRE, wrap.GTPU} {
		t.Run(kind, func(t *testing.T) { tunnelThroughBridge(t, kind, []string{bare}, true) })
	}
}

func tunnelThroughBridge(t *testing.T, kind string, inputs []string, wantBans bool) {
	// Room for the outer headers around full-size inner frames, as a
	// tunnel's underlay has.
	env, gen, a, b := bridgeEnv(t, "10.99.5", 1600)
	dir := t.TempDir()
	var files []string
	for _, in := range inputs {
		out := filepath.Join(dir, kind+"-"+filepath.Base(in))
		if _, err := wrap.File(kind, in, out); err != nil {
			t.Fatal(err)
		}
		files = append(files, out)
	}
	bin := testbin.Build(t)
	pin := fmt.Sprintf("/sys/fs/bpf/sgtun%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	var recs testbin.Buffer
	var logb testbin.Buffer
	r, err := live.Start(live.Config{Bridge: [2]string{a, b}, PinPath: pin, Records: &recs, Log: &logb})
	if err != nil {
		t.Skipf("start: %v", err)
	}
	defer r.Stop()
	out, err := env.Exec(gen, append([]string{bin, "bench", "replay", "--iface", "eth0", "--rate", "2000", "--pad"}, files...)...)
	if err != nil {
		t.Fatalf("replay: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	st := r.Stats()
	r.Stop()
	var p2p, banned, normal int
	dec := json.NewDecoder(bytes.NewReader(recs.Bytes()))
	for {
		var rec live.Record
		if err := dec.Decode(&rec); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if !rec.IsFlow() {
			continue
		}
		if rec.Tunnel == "" {
			t.Errorf("record without its tunnel: %+v", rec.FlowRecord)
		}
		switch {
		case rec.Label == "p2p":
			p2p++
			if rec.Action != live.ActDrop && rec.Action != live.ActBan {
				t.Errorf("p2p flow %s %s: action %s", rec.A, rec.B, rec.Action)
			}
			if rec.Ban != "" {
				banned++
				if rec.Ban == "192.168.77.1" || rec.Ban == "192.168.77.2" || rec.Ban == "192.168.77.50" {
					t.Errorf("%s: banned %s, a server or the browsing client", kind, rec.Ban)
				}
			}
		case rec.A == "" || rec.B == "":
		default:
			normal++
			if rec.Action != live.ActBypass {
				t.Errorf("normal flow %s %s: action %s", rec.A, rec.B, rec.Action)
			}
		}
	}
	dropped := st.Kernel[bpf.BypassDrop]
	if wantBans {
		// Once a peer is banned, the kernel drops its frames before any
		// bypass entry (in the tunnel it opened).
		dropped = st.Kernel[bpf.BanDrop]
		if banned == 0 {
			t.Errorf("%s: no peer banned", kind)
		}
	}
	if p2p < 2 || normal < 3 || st.Kernel[bpf.TunnelOpen] == 0 || dropped == 0 {
		t.Fatalf("%s: %d p2p (%d banning), %d normal records; kernel %v; worker %+v\n%s", kind, p2p, banned, normal, st.Kernel, st.Worker, recs.String())
	}
	t.Logf("%s: %d p2p flows dropped (%d banning their peer), %d normal flows passed; %d tunnelled frames opened in the kernel, %d dropped there by bypass entries and %d by bans, %d dropped by workers",
		kind, p2p, banned, normal, st.Kernel[bpf.TunnelOpen], st.Kernel[bpf.BypassDrop], st.Kernel[bpf.BanDrop], st.Worker.Dropped)
}
