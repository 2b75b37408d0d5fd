package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/swarmguard/swarmguard/internal/natstest"

	"github.com/swarmguard/swarmguard/bpf"
)

// kernel loads the XDP program's objects: their ban map is a box's.
func kernel(t *testing.T) *bpf.Objects {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	o, err := bpf.Load(bpf.Options{})
	if errors.Is(err, bpf.ErrNoBPF) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// boxes is two boxes, A and B, each with its kernel ban map, its bucket
// client and its Sync running until the test ends.
type boxes struct {
	ka, kb *bpf.Objects
	a, b   *Bans
	sa, sb *Sync
}

func twoBoxes(t *testing.T, url string, refuseB func(netip.Addr) bool) boxes {
	var x boxes
	x.ka, x.kb = kernel(t), kernel(t)
	x.a, x.b = open(t, url, "box-a", nil), open(t, url, "box-b", refuseB)
	x.sa, x.sb = NewSync(x.a, x.ka.Bans()), NewSync(x.b, x.kb.Bans())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, s := range []*Sync{x.sa, x.sb} {
		go func() { s.Run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() { cancel(); <-done; <-done })
	return x
}

// until polls cond every 20 ms for at most d.
func until(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func banned(t *testing.T, o *bpf.Objects, a netip.Addr) bool {
	list, err := o.BanList()
	if err != nil {
		t.Fatal(err)
	}
	until, ok := list[a]
	return ok && until > bpf.Monotonic()
}

// Two boxes, each with its own kernel ban map and a Sync: a ban box A
// makes reaches box B's kernel map within 2 s and leaves it when it ends;
// box A's own map is never touched by its own ban coming back; a ban for
// box B's allow-listed network stays out of B's map.
func TestSyncKernelMaps(t *testing.T) {
	url := natsServer(t, "", "")
	allowed := netip.MustParsePrefix("10.0.0.0/8")
	x := twoBoxes(t, url, allowed.Contains)
	ka, kb, b, sa, sb := x.ka, x.kb, x.b, x.sa, x.sb

	peer, local := netip.MustParseAddr("198.51.100.31"), netip.MustParseAddr("10.2.3.4")
	// Box A bans as the bridge does: the kernel first, then sharing.
	end := time.Now().Add(2 * time.Second)
	for _, p := range []netip.Addr{peer, local} {
		if err := ka.Ban(p, bpf.Monotonic()+uint64(time.Until(end))); err != nil {
			t.Fatal(err)
		}
		sa.Local(Ban{Addr: p, Expires: end, Reason: "test"})
	}
	began := time.Now()
	if !until(2*time.Second, func() bool { return banned(t, kb, peer) }) {
		t.Fatalf("box B's kernel map lacks the ban after 2 s (applied %d, kernel errors %d)", sb.Applied.Load(), sb.KernelErrors.Load())
	}
	t.Logf("box A's ban in box B's kernel map after %v", time.Since(began).Round(time.Millisecond))
	if banned(t, kb, local) || b.Refused.Load() == 0 {
		t.Fatalf("box B applied a ban for its allow-listed network (refused %d)", b.Refused.Load())
	}
	if sa.Applied.Load() != 0 {
		t.Fatalf("box A applied %d bans from the bucket: its own came back", sa.Applied.Load())
	}
	// The end: gone from B's map (the kernel ignores it once over; the
	// bucket's end removes the entry).
	if !until(10*time.Second, func() bool {
		list, _ := kb.BanList()
		_, ok := list[peer]
		return !ok
	}) {
		t.Fatal("box B still holds the ban 8 s after its end")
	}
	if sb.Removed.Load() != 1 || sa.Published.Load() != 2 {
		t.Fatalf("removed %d on B, published %d on A", sb.Removed.Load(), sa.Published.Load())
	}
}

// NATS gone: a box's ban stays in its own kernel map and waits in its
// queue; when NATS is back (the same server, its store kept) the ban goes
// out and reaches the other box, which also catches up by re-listing.
func TestSyncCatchesUpAfterNATSComesBack(t *testing.T) {
	store := t.TempDir()
	s1 := startNATS(t, store, -1)
	url := s1.ClientURL()
	port := s1.Addr().(*net.TCPAddr).Port
	x := twoBoxes(t, url, nil)
	ka, kb, sa := x.ka, x.kb, x.sa

	s1.Shutdown()
	s1.WaitForShutdown()
	peer := netip.MustParseAddr("198.51.100.41")
	end := time.Now().Add(time.Hour)
	if err := ka.Ban(peer, bpf.Monotonic()+uint64(time.Hour)); err != nil {
		t.Fatal(err)
	}
	sa.Local(Ban{Addr: peer, Expires: end})
	time.Sleep(500 * time.Millisecond)
	if !banned(t, ka, peer) || banned(t, kb, peer) {
		t.Fatal("with NATS down, the ban should be in box A's map only")
	}
	startNATS(t, store, port)
	began := time.Now()
	// Reconnect (250 ms steps), publish, then the watch or the re-list.
	if !until(20*time.Second, func() bool { return banned(t, kb, peer) }) {
		t.Fatalf("20 s after NATS came back, box B lacks the ban (published %d)", sa.Published.Load())
	}
	t.Logf("after NATS came back, the ban reached box B in %v", time.Since(began).Round(time.Millisecond))
}

// startNATS starts a JetStream server on store and port (-1: any).
func startNATS(t *testing.T, store string, port int) *server.Server {
	return natstest.Start(t, store, port)
}
