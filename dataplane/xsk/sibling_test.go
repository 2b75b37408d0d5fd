package xsk

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/swarmguard/swarmguard/bpf"
)

// sendFlows is the sender of SG_FLOWS=local,remote,lport,rport,flows,rounds:
// flows UDP sockets, local:lport+i to remote:rport+i, each sending one
// test datagram a round. Both ends of the bridge run one with the
// addresses and ports swapped, so each flow goes both ways.
func sendFlows(spec string) int {
	var local, remote string
	var lport, rport, flows, rounds int
	if _, err := fmt.Sscanf(strings.ReplaceAll(spec, ",", " "), "%s %s %d %d %d %d", &local, &remote, &lport, &rport, &flows, &rounds); err != nil {
		fmt.Fprintln(os.Stderr, "SG_FLOWS:", err)
		return 2
	}
	conns := make([]*net.UDPConn, flows)
	for i := range conns {
		c, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(fmt.Sprintf("%s:%d", local, lport+i))),
			net.UDPAddrFromAddrPort(netip.MustParseAddrPort(fmt.Sprintf("%s:%d", remote, rport+i))))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		conns[i] = c
	}
	for r := 0; r < rounds; r++ {
		for i, c := range conns {
			fmt.Fprintf(c, "swarmguard-xsk-test-%03d", r)
			if i%8 == 7 {
				time.Sleep(time.Millisecond) // a burst never fills the 64-entry rx ring
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // the other end's last datagrams find a socket, not an ICMP error
	return 0
}

// siblingRig is a bridge of two veth ports, each with one rx queue and two
// sockets on it (A0, B0 on one UMEM as in bridgeRig, A1 and B1 their
// siblings), and the XDP program spreading each queue's flows over the two
// sockets by the flow hash.
type siblingRig struct {
	*bridgeRig
	a1, b1 *Socket
}

func newSiblingRig(t *testing.T) *siblingRig {
	br := newBridgeRig(t)
	a1, err := OpenSibling(br.s, nil)
	if err != nil {
		t.Fatalf("a second socket on port A's queue: %v", err)
	}
	t.Cleanup(func() { a1.Close() })
	b1, err := OpenSibling(br.b, a1)
	if err != nil {
		t.Fatalf("a second socket on port B's queue: %v", err)
	}
	t.Cleanup(func() { b1.Close() })
	if !a1.Shares(b1) || !b1.Shares(a1) {
		t.Fatal("the siblings are not a bridge pair")
	}
	ifb, err := net.InterfaceByName(br.env.Name("b"))
	if err != nil {
		t.Fatal(err)
	}
	// Port A's slots are 0 and 1, port B's 2 and 3.
	br.objs.Configure(bpf.Monitor, 2, time.Hour, 0)
	br.objs.Beat()
	for slot, s := range []*Socket{br.s, a1, br.b, b1} {
		if err := br.objs.SetSocket(slot, s.FD()); err != nil {
			t.Fatal(err)
		}
	}
	if err := br.objs.SetPortBase(ifb.Index, 2); err != nil {
		t.Fatal(err)
	}
	// One L2 segment: the sink end answers as 10.99.1.2 with its own MAC,
	// so that each flow's reply is the same 5-tuple reversed.
	macOf := func(ns string) string {
		out, err := br.env.Exec(ns, "cat", "/sys/class/net/eth0/address")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(out)
	}
	br.env.Run("ip", "-n", br.sink, "addr", "add", "10.99.1.2/32", "dev", "eth0")
	br.env.Run("ip", "-n", br.gen, "neigh", "replace", "10.99.1.2", "lladdr", macOf(br.sink), "dev", "eth0")
	br.env.Run("ip", "-n", br.sink, "neigh", "replace", "10.99.1.1", "lladdr", macOf(br.gen), "dev", "eth0")
	return &siblingRig{bridgeRig: br, a1: a1, b1: b1}
}

// pairWorker forwards between its pair of sockets, as a live worker does,
// and notes which test flows it saw in which direction.
type pairWorker struct {
	in        [2]*Socket
	dirs      map[uint16]uint8 // flow (the gen end's UDP port) -> bit 1: A to B, bit 2: B to A
	forwarded int
}

func (w *pairWorker) run(stop *atomic.Bool) error {
	descs := make([]unix.XDPDesc, 64)
	pfds := []unix.PollFd{{Fd: int32(w.in[0].FD()), Events: unix.POLLIN}, {Fd: int32(w.in[1].FD()), Events: unix.POLLIN}}
	for idle := 0; idle < 20 || !stop.Load(); {
		got := 0
		for side, s := range w.in {
			n := s.Receive(descs)
			got += n
			for _, d := range descs[:n] {
				f := s.Frame(d.Addr, d.Len)
				// Ethernet, IPv4 without options, UDP, the test payload.
				if len(f) > 42+20 && f[23] == 17 && strings.HasPrefix(string(f[42:]), "swarmguard-xsk-test-") {
					port := binary.BigEndian.Uint16(f[34+2*side:]) // the gen end's port
					w.dirs[port] |= 1 << side
					w.forwarded++
				}
				if !s.Forward(d) {
					s.Fill([]uint64{d.Addr})
				}
			}
			if err := s.peer.Kick(); err != nil {
				return err
			}
		}
		for _, s := range w.in {
			s.Reap()
			s.Fill(nil)
		}
		if got == 0 {
			idle++
			unix.Poll(pfds, 10)
		} else {
			idle = 0
		}
	}
	return nil
}

// Two sockets on each port's only queue, one UMEM for all four: the XDP
// program spreads the flows over both workers, each flow's two directions
// to the same worker, and the workers, each forwarding between its own
// pair, share the queues' fill and completion rings. After thousands of
// frames went round each frame many times, every frame is in exactly one
// place: none lost, none owned twice.
func TestSiblingsSplitFlowsAndShareFrames(t *testing.T) {
	r := newSiblingRig(t)
	const flows, rounds = 64, 40
	workers := []*pairWorker{
		{in: [2]*Socket{r.s, r.b}, dirs: map[uint16]uint8{}},
		{in: [2]*Socket{r.a1, r.b1}, dirs: map[uint16]uint8{}},
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	for i, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = w.run(&stop)
		}()
	}
	self, _ := os.Executable()
	sent := make(chan error, 2)
	for _, end := range []struct{ ns, spec string }{
		{r.gen, fmt.Sprintf("10.99.1.1,10.99.1.2,20000,30000,%d,%d", flows, rounds)},
		{r.sink, fmt.Sprintf("10.99.1.2,10.99.1.1,30000,20000,%d,%d", flows, rounds)},
	} {
		go func() {
			out, err := r.env.Exec(end.ns, "env", "SG_FLOWS="+end.spec, self)
			if err != nil {
				err = fmt.Errorf("sender in %s: %v: %s", end.ns, err, out)
			}
			sent <- err
		}()
	}
	for range 2 {
		if err := <-sent; err != nil {
			stop.Store(true)
			wg.Wait()
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	owner := map[uint16]int{}
	total := 0
	for i, w := range workers {
		total += w.forwarded
		if len(w.dirs) == 0 {
			t.Errorf("worker %d saw no flow", i)
		}
		for port, dirs := range w.dirs {
			if j, ok := owner[port]; ok {
				t.Errorf("flow %d on workers %d and %d", port, j, i)
			}
			owner[port] = i
			if dirs != 3 {
				t.Errorf("flow %d: only direction %b on worker %d", port, dirs, i)
			}
		}
	}
	t.Logf("%d flows, %d and %d on the workers; %d test frames forwarded of %d sent", len(owner), len(workers[0].dirs), len(workers[1].dirs), total, 2*flows*rounds)
	// A worker starved on a busy machine lets the kernel drop a few
	// datagrams (a 64-entry rx ring): what must hold is the split and the
	// frames' accounting, not every datagram.
	if len(owner) < flows*9/10 || total < 2*flows*rounds/2 {
		t.Fatalf("%d of %d flows, %d of %d frames forwarded", len(owner), flows, total, 2*flows*rounds)
	}
	time.Sleep(100 * time.Millisecond) // the last sends complete
	if lost, doubled := Account(r.s, r.b, r.a1, r.b1); lost != 0 || doubled != 0 {
		t.Fatalf("after %d frames through %d UMEM frames: %d frames lost, %d owned twice", total, r.s.frames, lost, doubled)
	}
}

// Account finds a frame given back twice and one that went missing.
func TestAccountFindsLostAndDoubledFrames(t *testing.T) {
	r := newSiblingRig(t)
	if lost, doubled := Account(r.s, r.b, r.a1, r.b1); lost != 0 || doubled != 0 {
		t.Fatalf("fresh: %d lost, %d doubled", lost, doubled)
	}
	a := r.b.rxPending[len(r.b.rxPending)-1]
	r.b.rxPending = r.b.rxPending[:len(r.b.rxPending)-1]
	if lost, doubled := Account(r.s, r.b, r.a1, r.b1); lost != 1 || doubled != 0 {
		t.Fatalf("one frame dropped: %d lost, %d doubled", lost, doubled)
	}
	r.a1.rxPending = append(r.a1.rxPending, a, r.s.rxLo)
	if lost, doubled := Account(r.s, r.b, r.a1, r.b1); lost != 0 || doubled != 1 {
		t.Fatalf("one frame back, one given twice: %d lost, %d doubled", lost, doubled)
	}
}
