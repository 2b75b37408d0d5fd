package live

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// mseServer answers each connection as an MSE/PE responder would in size:
// 307 random bytes to the first message, FOURTH to the third, then 68 per
// read.
func mseServer(addr, ms, fourth string) int {
	n, _ := strconv.Atoi(ms)
	f, _ := strconv.Atoi(fourth)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return 1
	}
	go func() { time.Sleep(time.Duration(n) * time.Millisecond); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return 0
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Duration(n) * time.Millisecond))
			buf := make([]byte, 4096)
			for i := 0; ; i++ {
				if _, err := c.Read(buf); err != nil {
					return
				}
				size := 68
				switch i {
				case 0:
					size = 96 + 211
				case 1:
					size = f
				}
				c.Write(randomBytes(size))
			}
		}()
	}
}

// mseClient is the initiator: 133 random bytes (Ya and PadA), 150 (the
// hashes, VC, crypto_provide, IA), then ROUNDS of 1200 bytes each answered;
// after PAUSE_MS, ROUNDS2 more. It prints the replies of each phase.
func mseClient(a []string) int {
	rounds, _ := strconv.Atoi(a[1])
	pause, _ := strconv.Atoi(a[2])
	rounds2, _ := strconv.Atoi(a[3])
	c, err := net.DialTimeout("tcp", a[0], 2*time.Second)
	if err != nil {
		fmt.Print("connect-failed")
		return 0
	}
	defer c.Close()
	buf := make([]byte, 4096)
	exchange := func(size int) bool {
		c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write(randomBytes(size)); err != nil {
			return false
		}
		_, err := c.Read(buf)
		return err == nil
	}
	exchange(133)
	exchange(150)
	got := 0
	for range rounds {
		if exchange(1200) {
			got++
		}
	}
	time.Sleep(time.Duration(pause) * time.Millisecond)
	got2 := 0
	for range rounds2 {
		if exchange(1200) {
			got2++
		}
	}
	fmt.Printf("%d,%d", got, got2)
	return 0
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// records decodes the records written to b so far.
func records(b *testbin.Buffer) []Record {
	var out []Record
	dec := json.NewDecoder(bytes.NewReader(b.Bytes()))
	for {
		var r Record
		if err := dec.Decode(&r); err == io.EOF || err != nil {
			return out
		}
		out = append(out, r)
	}
}

// An encrypted flow decided normal while its host was calm is handed to the
// kernel (bypass, forward). When its host then shows what it is, an MSE
// exchange with six peers and BitTorrent handshakes (on an allowed port,
// so that nothing but the re-decision can stop the flow), the host turns
// p2p, the flow is re-decided p2p at the next tick with no packet of its
// own, its bypass entry becomes a drop, and its later packets never cross.
func TestBypassedFlowDroppedWhenHostTurnsP2P(t *testing.T) {
	env, gen, sink, a, b := bridgeEnv(t)
	peers := []string{"10.99.3.11", "10.99.3.12", "10.99.3.13", "10.99.3.14", "10.99.3.15", "10.99.3.16"}
	for _, p := range peers {
		if out, err := env.Exec(sink, "ip", "addr", "add", p+"/24", "dev", "eth0"); err != nil {
			t.Fatalf("address %s: %v %s", p, err, out)
		}
	}
	// With the fitted weights an MSE-shaped flow between high ports is
	// already unknown on its own; the bias is lowered by 3 so that it is
	// first decided normal (as a flow with less evidence of its own would
	// be), whatever the current fit.
	m := *classifier.DefaultModel()
	m.Bias -= 3
	var recs testbin.Buffer
	r := start(t, Config{Bridge: [2]string{a, b}, Records: &recs, AllowPorts: []uint16{51413}, Model: &m})
	// Servers for the whole test.
	var servers sync.WaitGroup
	serve := func(args ...string) {
		servers.Add(1)
		go func() { defer servers.Done(); role(t, env, sink, args...) }()
	}
	// The flow's responder answers MSE's third message with 10 bytes, less
	// than MSE's fourth: its shape is MSE's, but it never counts as an MSE
	// peer of its hosts, so however the ticks fall the flow is decided on
	// a calm host context first. The peers answer as MSE does.
	serve("mse-server", "10.99.3.2:40000", "16000", "10")
	for _, p := range peers {
		serve("mse-server", p+":51413", "16000", "40")
	}
	serve("bt-server", "10.99.3.11:51414", "16000")
	time.Sleep(300 * time.Millisecond)
	// Both hosts seen, calm, before the flow.
	role(t, env, gen, "send", "10.99.3.2:7000", "3", "warm-up")
	time.Sleep(400 * time.Millisecond)
	// The flow: exchange and six rounds now, six more rounds 8 s later.
	xdone := make(chan string, 1)
	go func() { xdone <- role(t, env, gen, "mse-client", "10.99.3.2:40000", "6", "8000", "6") }()
	var x Record
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) && x.Action == "" {
		time.Sleep(100 * time.Millisecond)
		for _, rec := range records(&recs) {
			if strings.HasSuffix(rec.B, ":40000") || strings.HasSuffix(rec.A, ":40000") {
				x = rec
			}
		}
	}
	if x.Action != ActBypass || x.Label != "normal" {
		t.Fatalf("the flow was not first decided normal and bypassed: %+v\nrecords: %+v", x, records(&recs))
	}
	// The host shows what it is.
	for _, p := range peers {
		role(t, env, gen, "mse-client", p+":51413", "3", "0", "0")
	}
	for range 4 {
		role(t, env, gen, "bt-client", "10.99.3.11:51414")
	}
	got := <-xdone
	var redecided Record
	for _, rec := range records(&recs) {
		if (strings.HasSuffix(rec.B, ":40000") || strings.HasSuffix(rec.A, ":40000")) && rec.Redecided {
			redecided = rec
		}
	}
	if redecided.Label != "p2p" || !strings.HasPrefix(redecided.Action, ActDrop) {
		t.Fatalf("flow not re-decided p2p and dropped: %+v\nrecords: %+v\nstats %+v", redecided, records(&recs), r.Stats())
	}
	ka, kb := netip.MustParseAddrPort(x.A), netip.MustParseAddrPort(x.B)
	by, err := r.objs.BypassOf(keyOf(ka, kb, 6, 0))
	if err != nil || by.Action != bpf.Drop {
		t.Fatalf("bypass entry after the re-decision: %+v, %v", by, err)
	}
	if got != "6,0" {
		t.Fatalf("client replies before,after the re-decision: %s, want 6,0 (the later rounds must not cross)", got)
	}
	t.Logf("re-decided: %+v; kernel entry %+v", redecided, by)
	servers.Wait()
}
