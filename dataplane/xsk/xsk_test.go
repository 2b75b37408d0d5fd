package xsk

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/internal/netnstest"
)

// TestMain lets the test binary act as a UDP sender inside a namespace
// (ip netns exec NS TEST_BINARY with SG_SEND=addr,count).
func TestMain(m *testing.M) {
	if spec := os.Getenv("SG_SEND"); spec != "" {
		os.Exit(send(spec))
	}
	if spec := os.Getenv("SG_FLOWS"); spec != "" {
		os.Exit(sendFlows(spec))
	}
	os.Exit(m.Run())
}

func send(spec string) int {
	var addr string
	var n int
	fmt.Sscanf(spec, "%s", &addr)
	if i := bytes.IndexByte([]byte(spec), ','); i > 0 {
		addr = spec[:i]
		n, _ = strconv.Atoi(spec[i+1:])
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := 0; i < n; i++ {
		fmt.Fprintf(c, "swarmguard-xsk-test-%03d", i)
		time.Sleep(2 * time.Millisecond)
	}
	return 0
}

// rig is a socket on a veth port behind the XDP program in monitor mode,
// and a namespace that sends to it.
type rig struct {
	env  *netnstest.Env
	gen  string
	s    *Socket
	objs *bpf.Objects
}

func newRig(t *testing.T, o Options) *rig {
	env := netnstest.New(t)
	gen := env.NS("gen")
	port := env.Veth("a", gen, "10.99.1.1/24", 1)
	// Nobody answers ARP on the port: tell the sender where 10.99.1.2 is.
	env.Run("ip", "-n", gen, "neigh", "add", "10.99.1.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0")
	// No IPv6 chatter (router and multicast listener messages) taking frames.
	env.Exec(gen, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	ifi, err := net.InterfaceByName(port)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { objs.Close() })
	objs.Configure(bpf.Monitor, 1, time.Hour, 0)
	objs.Beat()
	l, err := link.AttachXDP(link.XDPOptions{Program: objs.Program(), Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		t.Skipf("native XDP on veth: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	s, err := Open(ifi.Index, 0, o)
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := objs.SetSocket(0, s.FD()); err != nil {
		t.Fatal(err)
	}
	return &rig{env: env, gen: gen, s: s, objs: objs}
}

// send has the namespace send n test datagrams.
func (r *rig) send(t *testing.T, n int) {
	self, _ := os.Executable()
	if out, err := r.env.Exec(r.gen, "env", fmt.Sprintf("SG_SEND=10.99.1.2:7000,%d", n), self); err != nil {
		t.Fatalf("sender: %v %s", err, out)
	}
}

// receive takes frames until n test datagrams came or 3 s passed, and
// returns the frames' addresses; refill gives each frame straight back.
func (r *rig) receive(n int, refill bool) (got int, addrs []uint64) {
	descs := make([]unix.XDPDesc, 64)
	for deadline := time.Now().Add(3 * time.Second); got < n && time.Now().Before(deadline); {
		unix.Poll([]unix.PollFd{{Fd: int32(r.s.FD()), Events: unix.POLLIN}}, 100)
		k := r.s.Receive(descs)
		batch := make([]uint64, 0, k)
		for _, d := range descs[:k] {
			if bytes.Contains(r.s.Frame(d.Addr, d.Len), []byte("swarmguard-xsk-test-")) {
				got++
			}
			batch = append(batch, d.Addr)
		}
		addrs = append(addrs, batch...)
		if refill {
			r.s.Fill(batch)
		}
	}
	return got, addrs
}

func TestReceiveThroughXDPRedirect(t *testing.T) {
	r := newRig(t, Options{Frames: 256, RingSize: 128})
	r.send(t, 20)
	if got, _ := r.receive(20, true); got != 20 {
		t.Fatalf("received %d of 20 test packets", got)
	}
}

// Half the UMEM is for receiving, which can be more frames than the fill
// ring holds: the rest wait and go to the ring once it has room, so a
// worker that still holds a full ring's worth of frames keeps receiving.
func TestEveryReceiveFrameIsUsed(t *testing.T) {
	r := newRig(t, Options{Frames: 64, RingSize: 16}) // 32 receive frames, a 16-entry fill ring
	if p := len(r.s.rxPending); p != 16 {
		t.Fatalf("%d frames pending after Open, want 16 (32 receive frames, 16 in the ring)", p)
	}
	r.send(t, 16)
	got1, held := r.receive(16, false) // keep every frame: the ring is empty now
	r.s.Fill(nil)                      // the pending frames go in
	if p := len(r.s.rxPending); p != 0 {
		t.Fatalf("%d frames still pending after a fill into an empty ring", p)
	}
	r.send(t, 16)
	got2, more := r.receive(16, false)
	if got1 != 16 || got2 != 16 {
		t.Fatalf("received %d, then %d of 16 test packets while holding the first frames", got1, got2)
	}
	seen := map[uint64]bool{}
	for _, a := range append(held, more...) {
		seen[a] = true
	}
	if len(seen) < 32 {
		t.Errorf("%d distinct frames in use, want all 32 receive frames", len(seen))
	}
}

// udpFrame is an Ethernet/IPv4/UDP frame of flow i.
func udpFrame(i int) []byte {
	b := make([]byte, 60)
	b[12], b[13] = 0x08, 0x00
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	ip[3] = 46
	copy(ip[12:16], []byte{10, 99, byte(i >> 8), byte(i)})
	copy(ip[16:20], []byte{10, 98, 0, 1})
	ip[20], ip[21] = byte(i>>8)|0x80, byte(i)
	ip[22], ip[23] = 0x1b, 0x58
	ip[25] = 26
	return b
}

// Over a CPU's budget to the workers, the program sends the sampled
// sixteenth of the flows on (XDP_REDIRECT to the socket) and passes the rest
// uninspected (monitor mode), counted as shed; without a budget, or within
// it, every flow goes to the socket.
func TestOverBudgetFlowsAreShed(t *testing.T) {
	r := newRig(t, Options{Frames: 256, RingSize: 128})
	runAll := func() (redirected, passed int) {
		for i := range 3200 {
			ret, err := r.objs.Program().Run(&ebpf.RunOptions{Data: udpFrame(i), Context: &xdpMD{DataEnd: 60, IngressIfindex: 1}})
			if err != nil {
				t.Fatal(err)
			}
			switch ret {
			case 4: // XDP_REDIRECT
				redirected++
			case 2: // XDP_PASS
				passed++
			default:
				t.Fatalf("flow %d: action %d", i, ret)
			}
		}
		return
	}
	r.objs.Configure(bpf.Monitor, 1, time.Hour, 1) // one packet a second: nothing is within budget
	r.objs.Beat()
	c0, _ := r.objs.Counters()
	red, pass := runAll()
	c1, _ := r.objs.Counters()
	if red < 3200/16/2 || red > 3200/16*2 || c1[bpf.Shed]-c0[bpf.Shed] != uint64(pass) || c1[bpf.FailOpenPass] != c0[bpf.FailOpenPass] {
		t.Fatalf("over budget: %d to the socket, %d passed, shed counter %d", red, pass, c1[bpf.Shed]-c0[bpf.Shed])
	}
	for _, pps := range []int{0, 1_000_000_000} {
		r.objs.Configure(bpf.Monitor, 1, time.Hour, pps)
		if red, pass := runAll(); red != 3200 || pass != 0 {
			t.Fatalf("budget %d pps: %d to the socket, %d passed", pps, red, pass)
		}
	}
}

type xdpMD struct {
	Data, DataEnd, DataMeta      uint32
	IngressIfindex, RxQueueIndex uint32
	EgressIfindex                uint32
}
