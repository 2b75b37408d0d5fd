package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/swarmguard/swarmguard/cluster"
	"github.com/swarmguard/swarmguard/internal/bgptest"
	"github.com/swarmguard/swarmguard/internal/natstest"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// Three `swarmguard run` bridges sharing their bans through a real
// three-node NATS cluster (cluster.nats, the bucket on all three nodes,
// each box on its own node), box A announcing its bans to Debian's gobgpd
// in a router namespace: a real swarm replayed through box A gets its
// peers banned on A, within 2 s in box B's and C's kernel ban maps (no
// packet of the swarm crossed them), as blackhole routes on the router,
// as reputed peers on B, and as events in the stream. make demo-cluster
// runs it and prints the "demo:" lines.
func TestBoxesShareBans(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	natsNodes, natsURLs := natstest.Cluster(t, 3)
	env := netnstest.New(t)
	rt := bgptest.Start(t, env)

	capFile, err := filepath.Abs("../../testdata/captures/encrypted.pcap")
	if err != nil {
		t.Fatal(err)
	}
	bin := testbin.Build(t)
	dir := t.TempDir()
	type box struct {
		name, gen, pin string
		conf           string
		metrics        int
		sg             *child
	}
	var boxes []*box
	for i, name := range []string{"box-a", "box-b", "box-c"} {
		nets := newBridgeNets(t, env, fmt.Sprint(i), 80+i)
		gen, pa, pb := nets.gen, nets.a, nets.b
		pin := fmt.Sprintf("/sys/fs/bpf/sgcl%d%d", i, time.Now().UnixNano())
		t.Cleanup(func() { os.RemoveAll(pin) })
		conf := filepath.Join(dir, name+".yaml")
		mport := testbin.FreePort(t)
		body := fmt.Sprintf(`interfaces:
  bridge: [%s, %s]
kernel:
  pin: %s
log:
  file: %s
metrics:
  listen: 127.0.0.1:%d
status:
  socket: ""
cluster:
  nats: [%s]
  box: %s
  replicas: 3
`, pa, pb, pin, filepath.Join(dir, name+".json"), mport, strings.Join(append([]string{natsURLs[i]}, slices.Delete(slices.Clone(natsURLs), i, i+1)...), ", "), name)
		if i == 0 {
			body += fmt.Sprintf("bgp:\n  asn: %d\n  router_id: %s\n  peers: [\"%s@%d\"]\n", bgptest.BoxAS, rt.BoxAddr, rt.Addr, bgptest.RouterAS)
		}
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		sg := start(t, bin, "run", "--config", conf)
		if !waitFor(&sg.out, "sharing bans", 30*time.Second) || !waitFor(&sg.out, "running", 30*time.Second) {
			t.Skipf("%s did not start (no XDP here?): %s", name, sg.out.String())
		}
		boxes = append(boxes, &box{name: name, gen: gen, pin: pin, conf: conf, metrics: mport, sg: sg})
	}
	a, b, c := boxes[0], boxes[1], boxes[2]
	if err := replaySwarm(bin, a.gen, capFile); err != nil {
		t.Fatal(err)
	}
	list := func(pin string) map[string]bool { return activeBans(t, pin) }
	var onA map[string]bool
	for end := time.Now().Add(10 * time.Second); len(onA) == 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		onA = list(a.pin)
	}
	if len(onA) == 0 {
		t.Fatalf("box A banned nobody:\n%s", a.sg.out.String())
	}
	// hasAll waits until box x's kernel map has every address of want,
	// at most d after since, and returns whether it did and what it had.
	hasAll := func(x *box, want map[string]bool, since time.Time, d time.Duration) (map[string]bool, bool) {
		var got map[string]bool
		for end := since.Add(d); ; time.Sleep(20 * time.Millisecond) {
			got = list(x.pin)
			missing := false
			for p := range want {
				missing = missing || !got[p]
			}
			if !missing {
				return got, true
			}
			if time.Now().After(end) {
				return got, false
			}
		}
	}
	seen := time.Now()
	t.Logf("demo: box A banned %d peers of the swarm it carried: %v", len(onA), slices.Sorted(maps.Keys(onA)))
	for _, other := range []*box{b, c} {
		if got, ok := hasAll(other, onA, seen, 2*time.Second); !ok {
			t.Fatalf("2 s after box A banned %v, %s has %v", onA, other.name, got)
		}
		t.Logf("demo: %s's kernel ban map has all of them %v after box A's (no packet of the swarm crossed %s)", other.name, time.Since(seen).Round(time.Millisecond), other.name)
	}
	// The router has box A's bans as /32s with the BLACKHOLE community.
	var announced int
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		r := rt.RIB("ipv4")
		announced = 0
		for p := range onA {
			if strings.Contains(r, p+"/32") {
				announced++
			}
		}
		if announced == len(onA) && strings.Contains(r, bgptest.BlackholeJSON) {
			break
		}
	}
	if announced < len(onA) {
		t.Fatalf("gobgpd's RIB has %d of box A's %d bans:\n%s", announced, len(onA), rt.RIB("ipv4"))
	}
	t.Logf("demo: the router (gobgpd) has them as /32 routes with the BLACKHOLE community 65535:666 %v after box A's bans", time.Since(seen).Round(time.Millisecond))
	// The router restarts: the session comes back and box A announces
	// its bans again.
	rt.Restart()
	reset := time.Now()
	for end := reset.Add(30 * time.Second); time.Now().Before(end); time.Sleep(250 * time.Millisecond) {
		r := rt.RIB("ipv4")
		announced = 0
		for p := range onA {
			if strings.Contains(r, p+"/32") {
				announced++
			}
		}
		if announced == len(onA) {
			break
		}
	}
	if announced < len(onA) {
		t.Fatalf("30 s after the router restarted it has %d of box A's %d bans:\n%s", announced, len(onA), rt.RIB("ipv4"))
	}
	t.Logf("demo: the router restarted (every session reset): box A's routes back %v later", time.Since(reset).Round(time.Millisecond))
	// Box B holds box A's banned peers as reputed peers too (evidence for
	// its own flows to them, were they not banned).
	reputed := 0.0
	for end := time.Now().Add(10 * time.Second); reputed < float64(len(onA)) && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		reputed = scrape(b.metrics)["swarmguard_reputed_peers"]
	}
	if reputed < float64(len(onA)) {
		t.Fatalf("box B holds %v reputed peers, want %d", reputed, len(onA))
	}
	t.Logf("demo: box B holds them as reputed peers (evidence for its own flows to them): swarmguard_reputed_peers %v", reputed)
	// And box A's ban events are in the stream for consumers.
	nc, err := nats.Connect(strings.Join(natsURLs, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var banEvents uint64
	for banEvents < uint64(len(onA)) && ctx.Err() == nil {
		if st, err := js.Stream(ctx, cluster.EventStream); err == nil {
			if info, err := st.Info(ctx, jetstream.WithSubjectFilter("sg.events.box-a.ban")); err == nil {
				banEvents = info.State.Subjects["sg.events.box-a.ban"]
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if banEvents < uint64(len(onA)) {
		t.Fatalf("%d ban events of box A in %s, want %d", banEvents, cluster.EventStream, len(onA))
	}
	t.Logf("demo: the %s stream has box A's %d ban events for SIEM consumers", cluster.EventStream, banEvents)

	// One NATS node goes (box C's first): another swarm through box A, its
	// peers still reach B and C (C on another node now).
	natsNodes[2].Shutdown()
	natsNodes[2].WaitForShutdown()
	second, err := filepath.Abs("../../testdata/captures/hidden-lt.pcap")
	if err != nil {
		t.Fatal(err)
	}
	if err := replaySwarm(bin, a.gen, second); err != nil {
		t.Fatal(err)
	}
	var more map[string]bool
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if more = list(a.pin); len(more) > len(onA) {
			break
		}
	}
	if len(more) <= len(onA) {
		t.Fatalf("box A banned no new peer in the second swarm: %v", more)
	}
	lost := time.Now()
	for _, other := range []*box{b, c} {
		// The watch of a box whose node went may wait for its heartbeats;
		// the re-list every 5 s catches it up.
		if got, ok := hasAll(other, more, lost, 30*time.Second); !ok {
			t.Fatalf("with a NATS node gone, %s has %v, box A %v", other.name, got, more)
		}
		t.Logf("demo: one NATS node of three gone: box A's %d bans of a second swarm in %s's map %v after A's", len(more)-len(onA), other.name, time.Since(lost).Round(time.Millisecond))
	}

	// Box C restarted with its pinned ban map gone: it rebuilds the map
	// from the bucket.
	if err := c.sg.stop(t); err != nil {
		t.Fatalf("box C did not stop cleanly: %v", err)
	}
	if err := os.RemoveAll(c.pin); err != nil {
		t.Fatal(err)
	}
	c.sg = start(t, bin, "run", "--config", c.conf)
	if !waitFor(&c.sg.out, "running", 30*time.Second) {
		t.Fatalf("box C did not start again: %s", c.sg.out.String())
	}
	restarted := time.Now()
	if back, ok := hasAll(c, more, restarted, 10*time.Second); !ok {
		t.Fatalf("box C restarted with an empty map has %v 10 s later, want %v", back, more)
	}
	t.Logf("demo: box C, restarted with its ban map gone, had them back from the bucket %v after it was running", time.Since(restarted).Round(time.Millisecond))
}

// expireFloorSlack is how much later than its ban's end a route may be
// seen gone: the runner's expiry pass floor (5 s), a tick, the router's own
// update, and the test's RIB polls on a busy machine.
const expireFloorSlack = 10 * time.Second

// A ban's route leaves the routers when the ban ends: a box announcing to
// Debian's gobgpd with policy.ban_for 3s has its banned peers' /32s in the
// router's RIB, then gone within the expiry pass's floor after the bans
// ended, and its kernel map empty of them.
func TestRouteWithdrawnAtBanExpiry(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	env := netnstest.New(t)
	rt := bgptest.Start(t, env)
	capFile, err := filepath.Abs("../../testdata/captures/encrypted.pcap")
	if err != nil {
		t.Fatal(err)
	}
	bin := testbin.Build(t)
	dir := t.TempDir()
	nets := newBridgeNets(t, env, "", 85)
	gen, pa, pb := nets.gen, nets.a, nets.b
	pin := fmt.Sprintf("/sys/fs/bpf/sgwd%d", time.Now().UnixNano())
	t.Cleanup(func() { os.RemoveAll(pin) })
	conf := filepath.Join(dir, "box.yaml")
	body := fmt.Sprintf(`interfaces:
  bridge: [%s, %s]
kernel:
  pin: %s
log:
  file: %s
status:
  socket: ""
policy:
  ban_for: 3s
bgp:
  asn: %d
  router_id: %s
  peers: ["%s@%d"]
`, pa, pb, pin, filepath.Join(dir, "box.json"), bgptest.BoxAS, rt.BoxAddr, rt.Addr, bgptest.RouterAS)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	sg := start(t, bin, "run", "--config", conf)
	if !waitFor(&sg.out, "running", 30*time.Second) {
		t.Skipf("the box did not start (no XDP here?): %s", sg.out.String())
	}
	// The session is up before the swarm comes (a ban announced before
	// it would reach the router only when the session opens).
	time.Sleep(2 * time.Second)
	host := regexp.MustCompile(`10\.77\.[0-9]+\.[0-9]+/32`) // the capture's peers
	routes := func() []string { return host.FindAllString(rt.RIB("ipv4"), -1) }
	// The replay takes longer than a ban lasts: the routes are watched
	// while it runs.
	replayed := make(chan error, 1)
	go func() { replayed <- replaySwarm(bin, gen, capFile) }()
	// When each route came and went: a route stays while its ban lasts
	// (3 s, or more when the peer was banned again) and goes at the next
	// expiry pass (at most 5 s) after the ban ended.
	came, went := map[string]time.Time{}, map[string]time.Time{}
	watch := func() {
		now, up := time.Now(), map[string]bool{}
		for _, r := range routes() {
			up[r] = true
			if _, ok := came[r]; !ok || !went[r].IsZero() {
				came[r], went[r] = now, time.Time{}
			}
		}
		for r := range came {
			if !up[r] && went[r].IsZero() {
				went[r] = now
			}
		}
	}
	for done := false; !done; {
		select {
		case err := <-replayed:
			if err != nil {
				t.Fatal(err)
			}
			done = true
		case <-time.After(100 * time.Millisecond):
		}
		watch()
	}
	if len(came) == 0 {
		events, _ := os.ReadFile(filepath.Join(dir, "box.json"))
		t.Fatalf("no ban announced to the router; box log:\n%s\nevents:\n%s", sg.out.String(), events)
	}
	for end := time.Now().Add(3*time.Second + expireFloorSlack + 3*time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		watch()
		gone := 0
		for r := range came {
			if !went[r].IsZero() {
				gone++
			}
		}
		if gone == len(came) {
			break
		}
	}
	// A peer may be banned again while its route is up (another flow of
	// the swarm): its route then stays for the last ban. The box's ban
	// events say when each ban began.
	lastBan := map[string]time.Time{}
	events, err := os.ReadFile(filepath.Join(dir, "box.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(events), "\n") {
		var e struct {
			Time      time.Time `json:"time"`
			EventType string    `json:"event_type"`
			Host      string    `json:"host"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.EventType == "ban" && e.Time.After(lastBan[e.Host]) {
			lastBan[e.Host] = e.Time
		}
	}
	for r, at := range came {
		if went[r].IsZero() {
			t.Fatalf("route %s still on the router 16 s after the replay (announced %v)", r, at.Format(time.StampMilli))
		}
		banned, ok := lastBan[strings.TrimSuffix(r, "/32")]
		if !ok {
			t.Fatalf("route %s on the router, but the box logged no ban of it:\n%s", r, events)
		}
		// Not early: a route seen late (a slow poll) shortens what is seen
		// of its 3 s, hence 1.5 s; not late: the ban's 3 s after its last
		// ban, plus at most the expiry pass's floor.
		if d := went[r].Sub(banned); d < 1500*time.Millisecond || d > 3*time.Second+expireFloorSlack {
			t.Errorf("route %s gone %v after its last ban: want the ban's 3 s, plus at most the expiry pass's floor", r, d.Round(100*time.Millisecond))
		}
		t.Logf("route %s: on the router for %v, gone %v after its last ban", r, went[r].Sub(at).Round(100*time.Millisecond), went[r].Sub(banned).Round(100*time.Millisecond))
	}
	if l := activeBans(t, pin); len(l) != 0 {
		t.Fatalf("kernel ban map after the expiry: %v", l)
	}
}

// All of NATS gone: two `swarmguard run` bridges sharing bans through one
// NATS server that is stopped, a real swarm through box A meanwhile. Box A
// keeps forwarding (the sink gets the swarm's packets), banning (its
// kernel map) and recording (its flow records); its bans and events wait
// in its queues (swarmguard_cluster_queued). When the server is back (its
// store kept), box A's bans reach box B's kernel map and its ban events
// the stream.
func TestBoxesWorkWithoutNATS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (namespaces, XDP, AF_XDP)")
	}
	store := t.TempDir()
	srv := natstest.Start(t, store, -1)
	url, port := srv.ClientURL(), srv.Addr().(*net.TCPAddr).Port
	env := netnstest.New(t)
	capFile, err := filepath.Abs("../../testdata/captures/encrypted.pcap")
	if err != nil {
		t.Fatal(err)
	}
	bin := testbin.Build(t)
	dir := t.TempDir()
	type box struct {
		name, gen, sink, pin, records string
		metrics                       int
		sg                            *child
	}
	var boxes []*box
	for i, name := range []string{"box-a", "box-b"} {
		nets := newBridgeNets(t, env, fmt.Sprint(i), 86+i)
		pa, pb := nets.a, nets.b
		x := &box{name: name, gen: nets.gen, sink: nets.sink, pin: fmt.Sprintf("/sys/fs/bpf/sgnn%d%d", i, time.Now().UnixNano()),
			records: filepath.Join(dir, name+".json"), metrics: testbin.FreePort(t)}
		t.Cleanup(func() { os.RemoveAll(x.pin) })
		conf := filepath.Join(dir, name+".yaml")
		body := fmt.Sprintf("interfaces:\n  bridge: [%s, %s]\nkernel:\n  pin: %s\nlog:\n  file: %s\nmetrics:\n  listen: 127.0.0.1:%d\nstatus:\n  socket: \"\"\ncluster:\n  nats: [%s]\n  box: %s\n",
			pa, pb, x.pin, x.records, x.metrics, url, name)
		if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		x.sg = start(t, bin, "run", "--config", conf)
		if !waitFor(&x.sg.out, "sharing bans", 30*time.Second) || !waitFor(&x.sg.out, "running", 30*time.Second) {
			t.Skipf("%s did not start (no XDP here?): %s", name, x.sg.out.String())
		}
		boxes = append(boxes, x)
	}
	a, b := boxes[0], boxes[1]
	metric := func(x *box, series string) float64 {
		if v, ok := scrape(x.metrics)[series]; ok {
			return v
		}
		return -1
	}
	rxPackets := func(ns string) int {
		out, err := env.Exec(ns, "cat", "/sys/class/net/eth0/statistics/rx_packets")
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(strings.TrimSpace(out))
		return n
	}
	list := func(pin string) map[string]bool { return activeBans(t, pin) }

	srv.Shutdown()
	srv.WaitForShutdown()
	for end := time.Now().Add(10 * time.Second); metric(a, "swarmguard_cluster_connected") != 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
	}
	if up := metric(a, "swarmguard_cluster_connected"); up != 0 {
		t.Fatalf("box A says connected (%v) with NATS down", up)
	}
	sunk := rxPackets(a.sink)
	if err := replaySwarm(bin, a.gen, capFile); err != nil {
		t.Fatal(err)
	}
	var onA map[string]bool
	for end := time.Now().Add(10 * time.Second); len(onA) == 0 && time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		onA = list(a.pin)
	}
	records, _ := os.ReadFile(a.records)
	flows := strings.Count(string(records), `"event_type":"flow"`)
	forwarded := rxPackets(a.sink) - sunk
	if len(onA) == 0 || flows == 0 || forwarded < 100 {
		t.Fatalf("with NATS down box A banned %v, recorded %d flows, forwarded %d packets to its sink", onA, flows, forwarded)
	}
	queued := metric(a, `swarmguard_cluster_queued{what="events"}`)
	if len(list(b.pin)) != 0 || queued <= 0 {
		t.Fatalf("with NATS down: box B has bans %v; box A holds %v events", list(b.pin), queued)
	}
	t.Logf("NATS down: box A forwarded %d packets, recorded %d flows, banned %v, holds %v events and %v bans for NATS", forwarded, flows,
		slices.Sorted(maps.Keys(onA)), queued, metric(a, `swarmguard_cluster_queued{what="bans"}`))

	natstest.Start(t, store, port)
	back := time.Now()
	var onB map[string]bool
	for end := back.Add(30 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		onB = list(b.pin)
		if len(onB) >= len(onA) {
			break
		}
	}
	for p := range onA {
		if !onB[p] {
			t.Fatalf("30 s after NATS came back box B has %v, box A %v", onB, onA)
		}
	}
	t.Logf("NATS back: box A's bans in box B's kernel map %v later", time.Since(back).Round(time.Millisecond))
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var banEvents uint64
	for end := time.Now().Add(20 * time.Second); banEvents < uint64(len(onA)) && time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if st, err := js.Stream(ctx, cluster.EventStream); err == nil {
			if info, err := st.Info(ctx, jetstream.WithSubjectFilter("sg.events.box-a.ban")); err == nil {
				banEvents = info.State.Subjects["sg.events.box-a.ban"]
			}
		}
		cancel()
	}
	if banEvents < uint64(len(onA)) {
		t.Fatalf("%d of box A's ban events in %s after NATS came back, want %d", banEvents, cluster.EventStream, len(onA))
	}
	t.Logf("NATS back: box A's %d ban events made while it was down are in the stream; %v events still queued", banEvents, metric(a, `swarmguard_cluster_queued{what="events"}`))
}
