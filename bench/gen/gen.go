// Package gen is the veth harness's traffic generator: AF_XDP transmit on
// every queue of an interface, each flow on the queue its symmetric hash
// picks (so a flow lands on one rx queue behind a veth), replaying packets
// taken from captures (their bytes and sizes) or fixed 64-byte frames,
// rewritten into F flows across H hosts, paced or flat out, bounded in
// packets and time.
package gen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Options shape the traffic.
type Options struct {
	Interface string
	Queues    int // tx queues to use (default 1)
	Flows     int // concurrent flows (default 1024)
	Hosts     int // source hosts the flows spread over (default 16)
	// Train is how many packets of a flow go in a row before the next
	// flow's (default 1: the flows in turn, each packet's flow another).
	// Real links carry trains: TCP sends a window, TSO and GRO a burst.
	Train    int
	Pcaps    []string      // templates; empty: fixed 64-byte UDP frames
	Rate     int           // packets per second; 0: flat out
	Packets  uint64        // at most (default 1e6)
	Duration time.Duration // at most (default 5 s)
	// Flood makes every packet a new flow, as a random-source flood does:
	// "udp", "syn", "udp6", "syn6" or "mix" (the four in turn). Addresses
	// are 10.96.0.0/12 (fd00:96::/32), never the harness's own; Seed varies
	// the tuples between runs.
	Flood string
	Seed  uint64
	// FloodHosts, when set, draws a flood's addresses from that many hosts
	// a side (new flows from a steady population, not new hosts).
	FloodHosts int
	// Malformed sends the malformed corpus (MalformedCorpus) in turn,
	// over 256 variations of its addresses.
	Malformed bool
	// Spoof sends the spoofing corpus (SpoofCorpus) once, in order.
	Spoof bool
}

// floodKinds are the frames of a flood, in turn for "mix".
var floodKinds = map[string][]int{"udp": {kUDP4}, "syn": {kSYN4}, "udp6": {kUDP6}, "syn6": {kSYN6}, "mix": {kUDP4, kSYN4, kUDP6, kSYN6}}

const (
	kUDP4 = iota
	kSYN4
	kUDP6
	kSYN6
)

// mix64 is splitmix64's finalizer: a bijection, so packet k's tuple is
// distinct from every other packet's.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// floodFrame writes packet k of a flood into b and returns its length.
func floodFrame(b []byte, mac net.HardwareAddr, kind int, k uint64, hosts uint64) int {
	x, y := mix64(k), mix64(^k)
	if hosts > 0 {
		// Addresses from a fixed population; ports (from x and y before
		// folding) keep every packet a new flow.
		sp, dp := x%64000, y%65535
		x, y = (x>>16)%hosts<<16|sp, (y>>16)%hosts<<16|dp
	}
	for i := 0; i < 6; i++ {
		b[i] = 0x02
	}
	copy(b[6:12], mac)
	sp, dp := uint16(1024+x%64000), uint16(1+y%65535)
	switch kind {
	case kUDP4, kSYN4:
		src := 10<<24 | 96<<16 | uint32(x>>16)&0x000fffff // 10.96.0.0/12
		dst := 10<<24 | 112<<16 | uint32(y>>16)&0x000fffff
		if kind == kUDP4 {
			frame(b[:60], mac, src, dst, sp, dp)
			return 60
		}
		frame(b[:60], mac, src, dst, sp, dp)
		ip := b[14:34]
		ip[9] = 6
		binary.BigEndian.PutUint16(ip[2:], 40)
		fixChecksum(ip)
		tcp := b[34:54]
		clear(tcp)
		binary.BigEndian.PutUint16(tcp[0:], sp)
		binary.BigEndian.PutUint16(tcp[2:], dp)
		binary.BigEndian.PutUint32(tcp[4:], uint32(x))
		tcp[12], tcp[13] = 5<<4, 0x02 // SYN
		binary.BigEndian.PutUint16(tcp[14:], 64240)
		clear(b[54:60])
		return 60
	default:
		b[12], b[13] = 0x86, 0xdd
		ip := b[14:54]
		clear(ip)
		ip[0] = 0x60
		ip[7] = 64
		ip[8], ip[9] = 0xfd, 0x00
		ip[10], ip[11] = 0x00, 0x96
		binary.BigEndian.PutUint64(ip[16:], x>>16)
		ip[24], ip[25] = 0xfd, 0x00
		ip[26], ip[27] = 0x01, 0x12
		binary.BigEndian.PutUint64(ip[32:], y>>16)
		l4 := b[54:]
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
		if kind == kUDP6 {
			ip[6] = 17
			binary.BigEndian.PutUint16(ip[4:], 8+8)
			binary.BigEndian.PutUint16(l4[4:], 16)
			clear(l4[6:16])
			return 54 + 16
		}
		ip[6] = 6
		binary.BigEndian.PutUint16(ip[4:], 20)
		clear(l4[4:20])
		binary.BigEndian.PutUint32(l4[4:], uint32(x))
		l4[12], l4[13] = 5<<4, 0x02
		binary.BigEndian.PutUint16(l4[14:], 64240)
		return 54 + 20
	}
}

// Result says what was sent.
type Result struct {
	Sent    uint64        `json:"sent"`
	Bytes   uint64        `json:"bytes"`
	Elapsed time.Duration `json:"elapsed_ns"`
	TxFull  uint64        `json:"tx_full"` // frames not sent at once: ring or frames exhausted (retried)
}

// Template is a captured packet to replay: its bytes as captured (a
// snaplen may have cut them) and its length on the wire.
type Template struct {
	Data    []byte
	WireLen int
}

// Templates reads up to limit Ethernet IPv4 TCP/UDP packets from captures.
func Templates(files []string, limit int) ([]Template, error) {
	var out []Template
	for _, f := range files {
		r, err := pcapsrc.Open(f)
		if err != nil {
			return nil, err
		}
		var m packet.Meta
		for len(out) < limit {
			frame, link, _, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				r.Close()
				return nil, err
			}
			if link != packet.LinkEthernet || len(frame) < 34 || frame[12] != 0x08 || frame[13] != 0 ||
				packet.Decode(link, frame, &m) != packet.OK || m.IPv6 {
				continue
			}
			wire := min(max(14+m.WireLen, 60), 1514)
			out = append(out, Template{Data: append([]byte(nil), frame[:min(len(frame), wire)]...), WireLen: wire})
		}
		r.Close()
	}
	if len(out) == 0 {
		return nil, errors.New("gen: no IPv4 Ethernet frames in the captures")
	}
	return out, nil
}

// flowQueue picks a queue symmetrically in the two endpoints.
func flowQueue(a, b uint32, pa, pb uint16, queues int) int {
	x := uint64(a^b)*0x9e3779b97f4a7c15 ^ uint64(uint32(pa)*uint32(pb))*0xc2b2ae3d27d4eb4f
	x ^= x >> 29
	return int(x % uint64(queues))
}

// Run sends until Packets or Duration is reached.
func Run(o Options) (Result, error) {
	var res Result
	if o.Queues <= 0 {
		o.Queues = 1
	}
	if o.Flows <= 0 {
		o.Flows = 1024
	}
	if o.Hosts <= 0 {
		o.Hosts = 16
	}
	if o.Packets == 0 {
		o.Packets = 1_000_000
	}
	if o.Duration <= 0 {
		o.Duration = 5 * time.Second
	}
	var bad [][]byte
	if o.Malformed {
		for v := uint32(0); v < 256; v++ {
			for _, m := range MalformedCorpus(net.HardwareAddr{2, 0, 0, 0, 0, 1}, v) {
				bad = append(bad, m.Frame)
			}
		}
	}
	if o.Spoof {
		bad = SpoofCorpus(net.HardwareAddr{2, 0, 0, 0, 0, 1})
		o.Packets = uint64(len(bad))
	}
	kinds, flood := floodKinds[o.Flood]
	if o.Flood != "" && !flood {
		return res, fmt.Errorf("gen: flood %q: want udp, syn, udp6, syn6 or mix", o.Flood)
	}
	var tmpl []Template
	if len(o.Pcaps) > 0 {
		var err error
		if tmpl, err = Templates(o.Pcaps, 100_000); err != nil {
			return res, err
		}
	}
	ifi, err := net.InterfaceByName(o.Interface)
	if err != nil {
		return res, fmt.Errorf("gen: %s: %w", o.Interface, err)
	}
	socks := make([]*xsk.Socket, o.Queues)
	for q := range socks {
		if socks[q], err = xsk.Open(ifi.Index, q, xsk.Options{Frames: 4096, RingSize: 2048}); err != nil {
			return res, fmt.Errorf("gen: %w", err)
		}
		defer socks[q].Close()
	}
	// Flow i: 10.98.h.x:sport -> 10.97.y.z:dport, UDP.
	type flow struct {
		src, dst uint32
		sp, dp   uint16
		q        int
	}
	if flood {
		o.Flows = 1 // a flood makes its tuples per packet
	}
	flows := make([]flow, o.Flows)
	for i := range flows {
		h := uint32(i % o.Hosts)
		f := flow{
			src: 10<<24 | 98<<16 | h<<8 | 1,
			dst: 10<<24 | 97<<16 | uint32(i/250%250)<<8 | uint32(i%250+1),
			sp:  uint16(10000 + i%50000),
			dp:  uint16(1024 + (i*7919)%60000),
		}
		f.q = flowQueue(f.src, f.dst, f.sp, f.dp, o.Queues)
		flows[i] = f
	}
	var gap time.Duration
	if o.Rate > 0 {
		gap = time.Second / time.Duration(o.Rate)
	}
	start := time.Now()
	deadline := start.Add(o.Duration)
	mac := ifi.HardwareAddr
	const batch = 64
	train := uint64(max(o.Train, 1))
	for res.Sent < o.Packets {
		now := time.Now()
		if now.After(deadline) {
			break
		}
		for i := 0; i < batch && res.Sent < o.Packets; i++ {
			k := res.Sent
			f := &flows[k/train%uint64(len(flows))]
			s := socks[f.q]
			if flood || o.Malformed || o.Spoof {
				// A flood's frames spread over the queues by packet.
				s = socks[int(k%uint64(len(socks)))]
			}
			addr, buf, ok := s.TxFrame()
			if !ok {
				res.TxFull++
				s.Kick()
				break
			}
			size := 60
			switch {
			case len(bad) > 0:
				f := bad[k%uint64(len(bad))]
				size = copy(buf, f)
				copy(buf[6:12], mac)
			case flood:
				size = floodFrame(buf, mac, kinds[k%uint64(len(kinds))], k+o.Seed<<40, uint64(o.FloodHosts))
			case len(tmpl) > 0:
				t := &tmpl[k%uint64(len(tmpl))]
				size = t.WireLen
				replayed(buf[:size], t, mac, f.src, f.dst, f.sp, f.dp)
			default:
				frame(buf[:size], mac, f.src, f.dst, f.sp, f.dp)
			}
			if !s.Send(addr, uint32(size)) {
				res.TxFull++
				break
			}
			res.Sent++
			res.Bytes += uint64(size)
		}
		for _, s := range socks {
			s.Kick()
		}
		if gap > 0 {
			if next := start.Add(time.Duration(res.Sent) * gap); time.Until(next) > 0 {
				time.Sleep(time.Until(next))
			}
		}
	}
	for i := 0; i < 50; i++ { // drain what is queued
		for _, s := range socks {
			s.Kick()
		}
		time.Sleep(time.Millisecond)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// frame writes an Ethernet/IPv4/UDP frame of len(b) bytes.
func frame(b []byte, src net.HardwareAddr, s, d uint32, sp, dp uint16) {
	for i := 0; i < 6; i++ {
		b[i] = 0x02 // a locally administered unicast address nobody owns
	}
	copy(b[6:12], src)
	b[12], b[13] = 0x08, 0x00
	ip := b[14:34]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	ip[4], ip[5], ip[6], ip[7] = 0, 0, 0, 0
	ip[8], ip[9] = 64, 17
	binary.BigEndian.PutUint32(ip[12:], s)
	binary.BigEndian.PutUint32(ip[16:], d)
	fixChecksum(ip)
	u := b[34:42]
	binary.BigEndian.PutUint16(u[0:], sp)
	binary.BigEndian.PutUint16(u[2:], dp)
	binary.BigEndian.PutUint16(u[4:], uint16(len(b)-34))
	u[6], u[7] = 0, 0
}

// replayed writes template t into b (len(b) = t.WireLen, zero-filled past
// what was captured) with the flow's addresses and ports, the lengths and
// the IP header checksum made right.
func replayed(b []byte, t *Template, src net.HardwareAddr, s, d uint32, sp, dp uint16) {
	n := copy(b, t.Data)
	for i := n; i < len(b); i++ {
		b[i] = 0
	}
	for i := 0; i < 6; i++ {
		b[i] = 0x02
	}
	copy(b[6:12], src)
	ip := b[14:]
	ihl := int(ip[0]&0x0f) * 4
	binary.BigEndian.PutUint16(ip[2:], uint16(len(b)-14))
	binary.BigEndian.PutUint32(ip[12:], s)
	binary.BigEndian.PutUint32(ip[16:], d)
	fixChecksum(ip[:ihl])
	l4 := ip[ihl:]
	if len(l4) >= 8 {
		binary.BigEndian.PutUint16(l4[0:], sp)
		binary.BigEndian.PutUint16(l4[2:], dp)
		if ip[9] == 17 {
			binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
			l4[6], l4[7] = 0, 0
		}
	}
}
