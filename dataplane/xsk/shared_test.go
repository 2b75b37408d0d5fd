package xsk

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// bridgeRig is rig's port A plus a port B into a sink namespace, with B's
// socket on A's UMEM and the XDP program on both ports.
type bridgeRig struct {
	*rig
	sink string
	b    *Socket
}

func newBridgeRig(t *testing.T) *bridgeRig {
	r := newRig(t, Options{Frames: 256, RingSize: 64})
	sink := r.env.NS("sink")
	portB := r.env.Veth("b", sink, "10.99.1.3/24", 1)
	r.env.Run("ip", "-n", sink, "neigh", "add", "10.99.1.4", "lladdr", "02:00:00:00:00:04", "dev", "eth0")
	r.env.Exec(sink, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	ifb, err := net.InterfaceByName(portB)
	if err != nil {
		t.Fatal(err)
	}
	b, err := OpenShared(ifb.Index, 0, r.s)
	if err != nil {
		t.Fatalf("a second socket on the first's UMEM: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	l, err := link.AttachXDP(link.XDPOptions{Program: r.objs.Program(), Interface: ifb.Index, Flags: link.XDPDriverMode})
	if err != nil {
		t.Skipf("native XDP on veth: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	if err := r.objs.SetPortBase(ifb.Index, 1); err != nil {
		t.Fatal(err)
	}
	if err := r.objs.SetSocket(1, b.FD()); err != nil {
		t.Fatal(err)
	}
	return &bridgeRig{rig: r, sink: sink, b: b}
}

func (br *bridgeRig) rxPackets(t *testing.T, ns string) int {
	out, err := br.env.Exec(ns, "cat", "/sys/class/net/eth0/statistics/rx_packets")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(out))
	return n
}

// forward receives on in and forwards every frame from out (its peer) by
// address until n test datagrams went through or 3 s passed.
func forward(t *testing.T, in *Socket, n int) int {
	descs := make([]unix.XDPDesc, 16)
	got := 0
	for deadline := time.Now().Add(3 * time.Second); got < n && time.Now().Before(deadline); {
		unix.Poll([]unix.PollFd{{Fd: int32(in.FD()), Events: unix.POLLIN}}, 50)
		k := in.Receive(descs)
		for _, d := range descs[:k] {
			if bytes.Contains(in.Frame(d.Addr, d.Len), []byte("swarmguard-xsk-test-")) {
				got++
			}
			if !in.Forward(d) {
				in.Fill([]uint64{d.Addr})
			}
		}
		if err := in.peer.Kick(); err != nil {
			t.Fatal(err)
		}
		in.peer.Reap()
	}
	return got
}

// Both ports' sockets on one UMEM: a frame received on one port leaves
// through the other as it is (no copy into a frame of the other's), both
// ways, more frames than either socket has, and every frame is back where
// it belongs at the end.
func TestSharedUMEMForwardsBothWays(t *testing.T) {
	br := newBridgeRig(t)
	if br.s.txFrames != 0 || br.b.rxFrames != 128 || !br.s.Shares(br.b) || !br.b.Shares(br.s) {
		t.Fatalf("sharing: owner tx %d, peer rx %d", br.s.txFrames, br.b.rxFrames)
	}
	self, _ := os.Executable()
	for _, dir := range []struct {
		from, to string
		in       *Socket
		dst      string
	}{{br.gen, br.sink, br.s, "10.99.1.2:7000"}, {br.sink, br.gen, br.b, "10.99.1.4:7000"}} {
		before := br.rxPackets(t, dir.to)
		// 300 datagrams: more than the 128 receive frames of either socket,
		// so frames must come back from the other port's completions.
		done := make(chan error, 1)
		go func() {
			out, err := br.env.Exec(dir.from, "env", fmt.Sprintf("SG_SEND=%s,300", dir.dst), self)
			if err != nil {
				err = fmt.Errorf("%v: %s", err, out)
			}
			done <- err
		}()
		got := forward(t, dir.in, 300)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		dir.in.peer.Reap()
		arrived := br.rxPackets(t, dir.to) - before
		if got < 300 || arrived < got {
			t.Fatalf("%s -> %s: %d test datagrams through the socket, %d frames arrived", dir.from, dir.to, got, arrived)
		}
	}
	if lost, doubled := Account(br.s, br.b); lost != 0 || doubled != 0 || br.s.lent != 0 || br.b.lent != 0 {
		t.Fatalf("frames: %d lost, %d owned twice (lent %d, %d)", lost, doubled, br.s.lent, br.b.lent)
	}
}
