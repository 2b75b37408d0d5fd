// Package capacity turns measured per-packet costs into the cores a
// swarmguard box needs for a line rate: how many packets a second the rate
// carries at a frame size, what share of them reach a worker once flows are
// decided (the rest the XDP program forwards from its bypass map), and what
// each path costs.
//
// Measured afresh by Measure: the XDP program's time per packet on the
// decided-flow and to-worker paths (BPF_PROG_RUN over fixed frames, beside
// a bare devmap redirect), the share of packets that reach a worker when
// the bundled real-client captures are replayed through the engine, and
// the engine's time per such packet. Assumed, and printed with the
// estimate: the NIC driver's receive and transmit cost per packet under
// native XDP (DriverNs) and AF_XDP zero-copy's per packet (SocketNs); the
// veth harness cannot measure either (veth is a software driver, and its
// AF_XDP runs in copy mode).
package capacity

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
	"github.com/swarmguard/swarmguard/shard"
	"github.com/swarmguard/swarmguard/shard/packet"
)

// Inputs are the per-packet figures the estimate uses, in ns.
type Inputs struct {
	BypassNs  float64 // XDP program, a decided flow forwarded from the bypass map
	WorkerNs  float64 // XDP program, a packet redirected to a worker's socket
	DevmapNs  float64 // a bare devmap redirect program (the baseline)
	EngineNs  float64 // the engine's time per packet of a flow not yet decided (what reaches a worker)
	DecidedNs float64 // the engine's time per packet of a decided flow (offline; the XDP program forwards these live)
	TickNs    float64 // the engine's time per tick offline (every 100 ms of packet time; live, of wall time)
	// Share is the fraction of packets that reach a worker: the captures'
	// packets of flows not yet decided, over all their packets.
	Share float64
	// MixShare is Share for an Internet-like mix of flow sizes with the
	// captures' packets to a decision (MixShare), see SyntheticShare.
	MixShare float64
	ToDecide float64 // mean packets a flow sends before its decision, in the captures
	DriverNs float64 // assumed: NIC receive + transmit per packet under native XDP
	SocketNs float64 // assumed: AF_XDP zero-copy receive + transmit per packet
	Captures int     // captures replayed for Share and EngineNs
}

// Default assumptions (see the package comment): a modern 10-40 Gbps NIC
// forwards with XDP_REDIRECT at 10-14 Mpps a core (70-100 ns a packet),
// and AF_XDP zero-copy moves 15-25 Mpps a core through a socket (40-65 ns).
const (
	DefaultDriverNs = 80
	DefaultSocketNs = 100
)

// Frame sizes: 64 B and the simple IMIX (7 x 64, 4 x 576, 1 x 1500 B).
var Sizes = []struct {
	Name  string
	Bytes float64
}{{"64 B", 64}, {"IMIX", (7*64 + 4*576 + 1500) / 12.0}}

// Row is the estimate for one line rate and frame size.
type Row struct {
	Gbps      float64
	Size      string
	Mpps      float64
	NsPerPkt  float64 // mean CPU ns per packet, both paths weighted
	Cores     float64 // with the captures' share of packets to workers
	MixCores  float64 // with the Internet-like mix's share
	Bound     float64 // cores if every packet went to a worker (nothing decided)
	KernelPct float64 // the kernel's (XDP and driver) part of the cores
}

// Estimate computes the rows for each line rate at each frame size.
func Estimate(in Inputs, gbps []float64) []Row {
	var rows []Row
	for _, g := range gbps {
		for _, s := range Sizes {
			// Every frame on the wire has 20 more bytes: preamble and gap.
			pps := g * 1e9 / 8 / (s.Bytes + 20)
			fast := in.DriverNs + in.BypassNs
			slow := in.DriverNs + in.WorkerNs + in.SocketNs + in.EngineNs
			ns := (1-in.Share)*fast + in.Share*slow
			mix := (1-in.MixShare)*fast + in.MixShare*slow
			rows = append(rows, Row{
				Gbps: g, Size: s.Name, Mpps: pps / 1e6, NsPerPkt: ns,
				Cores:     pps * ns / 1e9,
				MixCores:  pps * mix / 1e9,
				Bound:     pps * slow / 1e9,
				KernelPct: 100 * ((1-in.Share)*fast + in.Share*(in.DriverNs+in.WorkerNs)) / ns,
			})
		}
	}
	return rows
}

// SyntheticShare is the share of packets that reach a worker when flow
// sizes follow a heavy-tailed Internet-like mix (a discrete Pareto with
// shape 1.1 from 1 packet up to 10^6, the common fit of flow sizes: most
// flows are a few packets, most packets are in a few large flows) and
// every flow sends toDecide packets before its decision (all of a shorter
// flow's go to a worker).
func SyntheticShare(toDecide float64) float64 {
	const alpha, maxN = 1.1, 1e6
	var all, slow float64
	// Integrate over log-spaced flow sizes.
	for x := 0.0; x < math.Log(maxN); x += 0.001 {
		n := math.Exp(x)
		w := alpha * math.Pow(n, -alpha) * 0.001 // density in log space: f(n) n dx
		all += w * n
		slow += w * math.Min(n, toDecide)
	}
	return slow / all
}

// Options configure Measure.
type Options struct {
	Captures []string // real-client captures to replay (the bundled ones)
	// Short are captures of mostly short flows (the nDPI corpus): with
	// Captures, two mixes of slow- and fast-path packets from which the
	// engine's cost of each is solved.
	Short    []string
	DriverNs float64
	SocketNs float64
}

// Measure runs the measurements (needs root for BPF_PROG_RUN).
func Measure(o Options) (Inputs, error) {
	in := Inputs{DriverNs: o.DriverNs, SocketNs: o.SocketNs}
	if in.DriverNs <= 0 {
		in.DriverNs = DefaultDriverNs
	}
	if in.SocketNs <= 0 {
		in.SocketNs = DefaultSocketNs
	}
	var err error
	if in.BypassNs, in.WorkerNs, in.DevmapNs, err = xdpPaths(); err != nil {
		return in, err
	}
	if len(o.Captures) == 0 || len(o.Short) == 0 {
		return in, errors.New("capacity: no captures to replay")
	}
	// Four replays: the real-client captures (long flows, decided early)
	// and the nDPI corpus (short flows, mostly undecided), each with its
	// own clock and with the clock stopped (one tick a capture). Each
	// took a·slow + b·decided + c·ticks, the engine's start-up (an empty
	// replay) taken off; least squares gives a, b and c. Offline the tick
	// comes with every 100 ms of packet time, which the corpus's sparse
	// captures have more of than packets; live it comes every 100 ms of
	// wall time, nothing per packet.
	empty, err := replay(nil, false)
	if err != nil {
		return in, err
	}
	var runs []run
	for _, files := range [][]string{o.Captures, o.Short} {
		for _, frozen := range []bool{false, true} {
			r, err := replay(files, frozen)
			if err != nil {
				return in, err
			}
			r.took -= empty.took
			runs = append(runs, r)
		}
	}
	long := runs[0]
	if long.packets == 0 || long.toWorker == 0 || long.flows == 0 {
		return in, errors.New("capacity: the captures had no IP packets")
	}
	in.Captures = len(o.Captures)
	in.Share = float64(long.toWorker) / float64(long.packets)
	in.ToDecide = float64(long.toDecide) / float64(long.flows)
	in.MixShare = SyntheticShare(in.ToDecide)
	var x [][3]float64
	var y []float64
	for _, r := range runs {
		x = append(x, [3]float64{float64(r.toWorker), float64(r.packets - r.toWorker), float64(r.ticks)})
		y = append(y, float64(r.took.Nanoseconds()))
	}
	c, ok := leastSquares3(x, y)
	if !ok || c[0] <= 0 || c[1] <= 0 {
		return in, fmt.Errorf("capacity: the replays' times do not separate the paths (slow %.0f, decided %.0f, tick %.0f ns): the machine was too busy, run again", c[0], c[1], c[2])
	}
	in.EngineNs, in.DecidedNs, in.TickNs = c[0], c[1], c[2]
	return in, nil
}

// leastSquares3 fits y = x·c for three unknowns (normal equations).
func leastSquares3(x [][3]float64, y []float64) ([3]float64, bool) {
	var a [3][4]float64
	for k := range x {
		for i := range 3 {
			for j := range 3 {
				a[i][j] += x[k][i] * x[k][j]
			}
			a[i][3] += x[k][i] * y[k]
		}
	}
	// Gaussian elimination with partial pivoting.
	for col := range 3 {
		p := col
		for r := col + 1; r < 3; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		a[col], a[p] = a[p], a[col]
		if a[col][col] == 0 {
			return [3]float64{}, false
		}
		for r := range 3 {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for j := col; j < 4; j++ {
				a[r][j] -= f * a[col][j]
			}
		}
	}
	return [3]float64{a[0][3] / a[0][0], a[1][3] / a[1][1], a[2][3] / a[2][2]}, true
}

// run is what one replay of a chain of captures took and counted.
type run struct {
	took                                      time.Duration
	packets, toWorker, flows, toDecide, ticks uint64
}

// replay runs the captures through one engine, one after the other (each
// an hour after the previous, as bench compare merges them), best of 5.
func replay(files []string, frozen bool) (run, error) {
	var best run
	for i := range 5 {
		src := &chain{files: files, frozen: frozen}
		began := time.Now()
		r, err := shard.Replay(src, "capacity", shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}, NoReasons: true})
		took := time.Since(began)
		src.close()
		if err == nil {
			err = errors.Join(src.err, r.Err)
		}
		if err != nil {
			return best, fmt.Errorf("capacity: %w", err)
		}
		if i > 0 && took >= best.took {
			continue
		}
		st := r.Stats
		// What the XDP program does not keep: everything but the packets
		// of decided flows and what is not IP (forwarded in the kernel).
		cur := run{took: took, packets: r.Packets, toWorker: r.Packets - st.Decided - st.NotIP, ticks: src.ticks}
		for _, f := range r.Flows {
			cur.flows++
			// A flow never decided sent all of its packets to a worker.
			if f.DecidedAt > 0 {
				cur.toDecide += uint64(min(uint32(f.DecidedAt), f.Packets))
			} else {
				cur.toDecide += uint64(f.Packets)
			}
		}
		best = cur
	}
	return best, nil
}

// chain reads capture files one after the other as one source, each an
// hour of packet time after the previous; Ethernet ones only.
type chain struct {
	files  []string
	frozen bool   // every packet of a capture at its first packet's time
	ticks  uint64 // 100 ms intervals of packet time the packets fall in
	last   int64  // the last packet's interval
	r      *pcapsrc.Reader
	base   time.Time
	first  time.Time
	err    error
}

func (c *chain) Next() ([]byte, packet.LinkType, time.Time, error) {
	for {
		if c.r == nil {
			if len(c.files) == 0 {
				return nil, 0, time.Time{}, io.EOF
			}
			r, err := pcapsrc.Open(c.files[0])
			c.files = c.files[1:]
			if err != nil {
				c.err = err
				return nil, 0, time.Time{}, io.EOF
			}
			c.r, c.first = r, time.Time{}
			if c.base.IsZero() {
				c.base = time.Unix(1_600_000_000, 0)
			}
		}
		b, l, ts, err := c.r.Next()
		if err != nil || l != packet.LinkEthernet {
			if err != nil && !errors.Is(err, io.EOF) {
				c.err = err
			}
			c.close()
			c.base = c.base.Add(time.Hour)
			continue
		}
		if c.first.IsZero() {
			c.first = ts
		}
		at := c.base
		if !c.frozen {
			at = at.Add(max(0, ts.Sub(c.first)))
		}
		if iv := at.UnixNano() / int64(100*time.Millisecond); iv != c.last {
			c.ticks++
			c.last = iv
		}
		return b, l, at, nil
	}
}

func (c *chain) close() {
	if c.r != nil {
		c.r.Close()
		c.r = nil
	}
}

// xdpPaths times the XDP program's decided-flow and to-worker paths and a
// bare devmap redirect over one fixed 64-byte frame each (BPF_PROG_RUN
// with repeat: every map warm, the kernel's own timing).
func xdpPaths() (bypass, worker, devmap float64, err error) {
	o, err := bpf.Load(bpf.Options{})
	if err != nil {
		return 0, 0, 0, fmt.Errorf("capacity: %w", err)
	}
	defer o.Close()
	b, err := bpf.LoadBench()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("capacity: %w", err)
	}
	defer b.Close()
	host, normal, other := netip.MustParseAddrPort("10.0.0.5:40000"), netip.MustParseAddrPort("10.0.0.7:8443"), netip.MustParseAddrPort("10.0.0.6:443")
	err = errors.Join(o.SetPeerPort(1, 1), b.SetForward(1, 1), o.Configure(bpf.Bridge, 1, time.Hour, 0), o.Beat(),
		o.SetBypass(bpf.FlowKey{Lo: host.Addr().As16(), Hi: normal.Addr().As16(), LoPort: host.Port(), HiPort: normal.Port(), Proto: 17}, bpf.Forward))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("capacity: %w", err)
	}
	timeIt := func(p interface {
		Benchmark([]byte, int, func()) (uint32, time.Duration, error)
	}, pkt []byte) (float64, error) {
		best := math.Inf(1)
		for range 5 {
			_, d, err := p.Benchmark(pkt, 1<<16, nil)
			if err != nil {
				return 0, fmt.Errorf("capacity: BPF_PROG_RUN: %w", err)
			}
			best = math.Min(best, float64(d.Nanoseconds()))
		}
		return best, nil
	}
	if bypass, err = timeIt(o.Program(), udpFrame(host, normal)); err != nil {
		return
	}
	// No socket is bound here: the to-worker path ends in a redirect to
	// the other port instead of a socket, the same work.
	if worker, err = timeIt(o.Program(), udpFrame(host, other)); err != nil {
		return
	}
	devmap, err = timeIt(b.Forward(), udpFrame(host, other))
	return
}

// udpFrame is a 64-byte Ethernet/IPv4/UDP frame from src to dst.
func udpFrame(src, dst netip.AddrPort) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], 50)
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:], s[:])
	copy(ip[16:], d[:])
	binary.BigEndian.PutUint16(ip[20:], src.Port())
	binary.BigEndian.PutUint16(ip[22:], dst.Port())
	binary.BigEndian.PutUint16(ip[24:], 30)
	return b
}

// BundledCaptures are the real-client captures under root/testdata/captures
// and the nDPI corpus's under root/testdata/ndpi/pcap (short flows).
func BundledCaptures(root string) (long, short []string, err error) {
	long, _ = filepath.Glob(filepath.Join(root, "testdata", "captures", "*.pcap"))
	short, _ = filepath.Glob(filepath.Join(root, "testdata", "ndpi", "pcap", "*"))
	if len(long) == 0 || len(short) == 0 {
		return nil, nil, fmt.Errorf("capacity: no captures in %s/testdata (run from the repository)", root)
	}
	return long, short, nil
}

// Markdown renders the inputs and the rows.
func Markdown(in Inputs, rows []Row) string {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "Measured on %s (%d CPUs, %s/%s):\n\n", host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "- XDP program per packet (BPF_PROG_RUN, warm): decided flow %.1f ns, to a worker %.1f ns; bare devmap redirect %.1f ns\n", in.BypassNs, in.WorkerNs, in.DevmapNs)
	fmt.Fprintf(&b, "- packets that reach a worker: %.1f %% of the %d real-client captures' (flows send %.1f packets before their decision); %.1f %% of an Internet-like mix of flow sizes (Pareto 1.1) at that depth\n", 100*in.Share, in.Captures, in.ToDecide, 100*in.MixShare)
	fmt.Fprintf(&b, "- engine per packet: %.0f ns for one of a flow not yet decided (what reaches a worker), %.0f ns for one of a decided flow (offline only; live, the XDP program forwards those), a tick %.0f us; fitted to four replays (the real-client captures and the nDPI corpus's short flows, each with its clock and with it stopped)\n", in.EngineNs, in.DecidedNs, in.TickNs/1e3)
	fmt.Fprintf(&b, "- assumed: NIC driver receive + transmit under native XDP %.0f ns a packet, AF_XDP zero-copy %.0f ns a packet, the packet data in the cache (DDIO)\n\n", in.DriverNs, in.SocketNs)
	b.WriteString("| line rate | frames | Mpps | ns/packet | cores (captures' share) | cores (Internet mix) | cores if nothing were decided | kernel's part |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %.0f Gbps | %s | %.2f | %.0f | %.1f | %.1f | %.1f | %.0f %% |\n", r.Gbps, r.Size, r.Mpps, r.NsPerPkt, r.Cores, r.MixCores, r.Bound, r.KernelPct)
	}
	return b.String()
}
