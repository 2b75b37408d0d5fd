package cluster

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/swarmguard/swarmguard/internal/natstest"
)

func natsServer(t testing.TB, user, password string) string {
	return natstest.Server(t, user, password)
}

// watcher collects what Watch passes on.
type watcher struct {
	mu      sync.Mutex
	bans    map[netip.Addr]Ban
	removed map[netip.Addr]bool
	changed chan struct{}
}

func watch(t *testing.T, b *Bans) *watcher {
	w := &watcher{bans: map[netip.Addr]Ban{}, removed: map[netip.Addr]bool{}, changed: make(chan struct{}, 64)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- b.Watch(ctx, func(ban Ban) {
			w.mu.Lock()
			w.bans[ban.Addr] = ban
			delete(w.removed, ban.Addr)
			w.mu.Unlock()
			w.changed <- struct{}{}
		}, func(a netip.Addr) {
			w.mu.Lock()
			delete(w.bans, a)
			w.removed[a] = true
			w.mu.Unlock()
			w.changed <- struct{}{}
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return w
}

// until waits (at most d) for cond to hold after a change.
func (w *watcher) until(d time.Duration, cond func() bool) bool {
	deadline := time.After(d)
	for {
		w.mu.Lock()
		ok := cond()
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-w.changed:
		case <-deadline:
			return false
		}
	}
}

func open(t *testing.T, url, box string, refuse func(netip.Addr) bool) *Bans {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := OpenBans(ctx, Config{URLs: []string{url}, Box: box, Refuse: refuse})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// A ban box A writes reaches box B's watch, whole, within 2 s, and a box
// that starts later finds it in the bucket.
func TestBanReachesOtherBoxes(t *testing.T) {
	url := natsServer(t, "", "")
	a, b := open(t, url, "box-a", nil), open(t, url, "box-b", nil)
	wb := watch(t, b)
	peer := netip.MustParseAddr("198.51.100.7")
	v6 := netip.MustParseAddr("2001:db8::77")
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	began := time.Now()
	for _, p := range []netip.Addr{peer, v6} {
		if err := a.Publish(context.Background(), Ban{Addr: p, Expires: exp, Reason: "mse, 12 answered p2p flows"}); err != nil {
			t.Fatal(err)
		}
	}
	if !wb.until(2*time.Second, func() bool { return len(wb.bans) == 2 }) {
		t.Fatalf("box B has %v after 2 s", wb.bans)
	}
	t.Logf("two bans reached box B in %v", time.Since(began).Round(time.Millisecond))
	got := wb.bans[peer]
	if !got.Expires.Equal(exp) || got.Origin != "box-a" || got.Reason != "mse, 12 answered p2p flows" {
		t.Fatalf("ban as box B got it: %+v", got)
	}
	c := open(t, url, "box-c", nil)
	wc := watch(t, c)
	if !wc.until(2*time.Second, func() bool { _, ok := wc.bans[v6]; return ok && len(wc.bans) == 2 }) {
		t.Fatalf("a box started later has %v", wc.bans)
	}
}

// A ban ends everywhere with its own TTL: the watchers hear of its end.
func TestBanEndsEverywhere(t *testing.T) {
	url := natsServer(t, "", "")
	a, b := open(t, url, "box-a", nil), open(t, url, "box-b", nil)
	wb := watch(t, b)
	peer := netip.MustParseAddr("203.0.113.9")
	end := time.Now().Add(1500 * time.Millisecond)
	if err := a.Publish(context.Background(), Ban{Addr: peer, Expires: end}); err != nil {
		t.Fatal(err)
	}
	if !wb.until(2*time.Second, func() bool { _, ok := wb.bans[peer]; return ok }) {
		t.Fatal("the ban never reached box B")
	}
	// The server expires per-key TTLs on its own clock, about a second.
	if !wb.until(8*time.Second, func() bool { return wb.removed[peer] }) {
		t.Fatalf("box B still has %v 8 s after the ban's end", wb.bans)
	}
	if early := time.Until(end); early > 0 {
		t.Fatalf("the ban ended %v before its time", early)
	}
}

// A box never applies a ban for an address it must not block, whoever
// wrote it; it counts the refusal.
func TestRefusedBanIsNotApplied(t *testing.T) {
	url := natsServer(t, "", "")
	allowed := netip.MustParsePrefix("10.0.0.0/8")
	a, b := open(t, url, "box-a", nil), open(t, url, "box-b", allowed.Contains)
	wb := watch(t, b)
	exp := time.Now().Add(time.Hour)
	for _, p := range []string{"10.1.2.3", "198.51.100.8"} {
		if err := a.Publish(context.Background(), Ban{Addr: netip.MustParseAddr(p), Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if !wb.until(2*time.Second, func() bool { return len(wb.bans) == 1 }) || b.Refused.Load() != 1 {
		t.Fatalf("box B applied %v, refused %d", wb.bans, b.Refused.Load())
	}
	if _, ok := wb.bans[netip.MustParseAddr("10.1.2.3")]; ok {
		t.Fatal("box B applied a ban for its allow-listed network")
	}
}

// With a user on the servers, a client without credentials, or with the
// wrong password (a forged box), gets no ban into the bucket; one with
// them does.
func TestNoCredentialsNoBans(t *testing.T) {
	url := natsServer(t, "box", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good, err := OpenBans(ctx, Config{URLs: []string{url}, Box: "box-a", User: "box", Password: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	forged := netip.MustParseAddr("192.0.2.66")
	for _, c := range []Config{{Box: "forged"}, {Box: "forged", User: "box", Password: "wrong"}} {
		c.URLs = []string{url}
		refused(t, c, "user "+c.User)
	}
	if err := good.Publish(ctx, Ban{Addr: netip.MustParseAddr("198.51.100.50"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	in, err := good.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := in[forged]; ok || len(in) != 1 {
		t.Fatalf("the bucket holds %v", in)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "198.51.100.7", "255.255.255.255", "2001:db8::1", "::", "fe80::1", "::ffff:1.2.3.4"} {
		a := netip.MustParseAddr(s)
		got, err := AddrOf(KeyOf(a))
		if err != nil || got != a.Unmap() {
			t.Fatalf("%s -> %s -> %v %v", s, KeyOf(a), got, err)
		}
	}
	for _, k := range []string{"", "v4-1-2-3", "v4-1-2-3-256", "v4-01-2-3-4", "v4-+1-2-3-4", "v6-20010DB8000000000000000000000001", "v6-00", "v6-00000000000000000000ffff01020304", "x-1"} {
		if a, err := AddrOf(k); err == nil {
			t.Fatalf("key %q parsed as %v", k, a)
		}
	}
}

// Keys come off the network: any key parses or is refused, and what parses
// is the key of its address.
func FuzzAddrOf(f *testing.F) {
	for _, k := range []string{"v4-198-51-100-7", "v6-20010db8000000000000000000000001", "v4-1-2-3", "v6-zz"} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, k string) {
		a, err := AddrOf(k)
		if err != nil {
			return
		}
		if KeyOf(a) != k {
			t.Fatalf("key %q parsed as %v, whose key is %q", k, a, KeyOf(a))
		}
	})
}

func natsCluster(t testing.TB) ([]*server.Server, []string) { return natstest.Cluster(t, 3) }

// Three NATS nodes, the bucket on all three: bans propagate between boxes
// connected to different nodes, and still do with one node gone.
func TestBansSurviveANodeLost(t *testing.T) {
	servers, urls := natsCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	openOn := func(u []string, box string) *Bans {
		var b *Bans
		var err error
		// The bucket's replicas need the cluster settled: retry a little.
		for try := 0; try < 50; try++ {
			if b, err = OpenBans(ctx, Config{URLs: u, Box: box, Replicas: 3}); err == nil {
				t.Cleanup(b.Close)
				return b
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s: %v", box, err)
		return nil
	}
	// Box A on node 0 (then 1), box B on node 2 (then 1).
	a := openOn([]string{urls[0], urls[1]}, "box-a")
	b := openOn([]string{urls[2], urls[1]}, "box-b")
	wb := watch(t, b)
	exp := time.Now().Add(time.Hour)
	first, second := netip.MustParseAddr("198.51.100.21"), netip.MustParseAddr("198.51.100.22")
	if err := a.Publish(ctx, Ban{Addr: first, Expires: exp}); err != nil {
		t.Fatal(err)
	}
	if !wb.until(2*time.Second, func() bool { _, ok := wb.bans[first]; return ok }) {
		t.Fatal("the ban did not cross the cluster in 2 s")
	}
	// Node 0 goes: box A reconnects to node 1; the bucket keeps a quorum.
	servers[0].Shutdown()
	servers[0].WaitForShutdown()
	began := time.Now()
	var err error
	for try := 0; try < 60; try++ {
		pctx, pcancel := context.WithTimeout(ctx, time.Second)
		err = a.Publish(pctx, Ban{Addr: second, Expires: exp})
		pcancel()
		if err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no ban written with one node of three gone: %v", err)
	}
	// A watch whose consumer lived on the lost node is made again by the
	// client when its heartbeats stop: seconds, not a tick.
	if !wb.until(30*time.Second, func() bool { _, ok := wb.bans[second]; return ok }) {
		t.Fatalf("30 s after a node went, box B has %v", wb.bans)
	}
	t.Logf("with node 0 gone, a ban reached box B %v after the node went", time.Since(began).Round(time.Millisecond))
}

// The peer-reputation bucket works as the ban bucket, apart from it: a
// peer one box proved reaches another's watch, and the ban watch does not
// see it.
func TestPeersBucketApart(t *testing.T) {
	url := natsServer(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pa, err := OpenPeers(ctx, Config{URLs: []string{url}, Box: "box-a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pa.Close)
	pb, err := OpenPeers(ctx, Config{URLs: []string{url}, Box: "box-b"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pb.Close) // after the watch on it ends (cleanups run last first)
	bans := watch(t, open(t, url, "box-b", nil))
	wp := watch(t, pb)
	peer := netip.MustParseAddr("198.51.100.90")
	if err := pa.Publish(ctx, Ban{Addr: peer, Expires: time.Now().Add(PeerTTL), Reason: "confirmed p2p"}); err != nil {
		t.Fatal(err)
	}
	if !wp.until(2*time.Second, func() bool { _, ok := wp.bans[peer]; return ok }) {
		t.Fatal("the reputed peer did not reach box B in 2 s")
	}
	time.Sleep(200 * time.Millisecond)
	bans.mu.Lock()
	n := len(bans.bans)
	bans.mu.Unlock()
	if n != 0 {
		t.Fatal("a reputed peer showed in the ban bucket")
	}
}

// With nkeys on the server, a box with its seed shares bans; one without
// cannot connect.
func TestBansWithNkey(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	seedFile := filepath.Join(t.TempDir(), "box.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	url := natstest.ServerOpts(t, func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	good, err := OpenBans(ctx, Config{URLs: []string{url}, Box: "box-a", NkeySeed: seedFile})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	if err := good.Publish(ctx, Ban{Addr: netip.MustParseAddr("198.51.100.97"), Expires: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("with the seed: %v", err)
	}
	refused(t, Config{URLs: []string{url}, Box: "box-x"}, "without a seed")
}

// refused wants a box with config c (lacking what the servers ask for)
// unconnected and its ban not written.
func refused(t *testing.T, c Config, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bad, err := OpenBans(ctx, c)
	if err != nil {
		t.Fatal(err) // the connection is retried in the background
	}
	defer bad.Close()
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	defer pcancel()
	if err := bad.Publish(pctx, Ban{Addr: netip.MustParseAddr("198.51.100.99"), Expires: time.Now().Add(time.Hour)}); err == nil || bad.Connected() {
		t.Fatalf("%s: connected %v, publish %v", what, bad.Connected(), err)
	}
}
