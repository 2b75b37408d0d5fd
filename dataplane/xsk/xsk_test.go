package xsk

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
	"time"

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

func TestReceiveThroughXDPRedirect(t *testing.T) {
	env := netnstest.New(t)
	gen := env.NS("gen")
	port := env.Veth("a", gen, "10.99.1.1/24", 1)
	// Nobody answers ARP on the port: tell the sender where 10.99.1.2 is.
	env.Run("ip", "-n", gen, "neigh", "add", "10.99.1.2", "lladdr", "02:00:00:00:00:02", "dev", "eth0")
	ifi, err := net.InterfaceByName(port)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := bpf.Load(bpf.Options{})
	if err != nil {
		t.Skip(err)
	}
	defer objs.Close()
	objs.Configure(bpf.Monitor, 1, time.Second)
	objs.Beat()
	l, err := link.AttachXDP(link.XDPOptions{Program: objs.Program(), Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		t.Skipf("native XDP on veth: %v", err)
	}
	defer l.Close()
	s, err := Open(ifi.Index, 0, Options{Frames: 256, RingSize: 128})
	if err != nil {
		t.Skip(err)
	}
	defer s.Close()
	if err := objs.Xsks.Put(uint32(0), uint32(s.FD())); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	cmd := []string{"env", "SG_SEND=10.99.1.2:7000,20", self}
	if out, err := env.Exec(gen, cmd...); err != nil {
		t.Fatalf("sender: %v %s", err, out)
	}
	got := 0
	descs := make([]unix.XDPDesc, 64)
	deadline := time.Now().Add(3 * time.Second)
	for got < 20 && time.Now().Before(deadline) {
		unix.Poll([]unix.PollFd{{Fd: int32(s.FD()), Events: unix.POLLIN}}, 100)
		n := s.Receive(descs)
		addrs := make([]uint64, 0, n)
		for _, d := range descs[:n] {
			f := s.Frame(d.Addr, d.Len)
			if bytes.Contains(f, []byte("swarmguard-xsk-test-")) {
				got++
			}
			addrs = append(addrs, d.Addr)
		}
		s.Fill(addrs)
	}
	if got != 20 {
		c, _ := objs.Counters()
		t.Fatalf("received %d of 20 test packets; counters %v", got, c)
	}
}
