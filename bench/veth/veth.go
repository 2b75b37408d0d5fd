// Package veth is the benchmark harness on veth pairs: gen-ns -> port A,
// port B -> sink-ns (no default routes, 10.96.0.0/16 inside namespaces it
// creates). It runs the generator (bench/gen) in gen-ns, a counting XDP sink
// in sink-ns, and in between, in turn: the XDP_DROP and devmap-forward
// kernel baselines, a null AF_XDP forwarder, and swarmguard with and
// without the bypass map on 1 and 2 workers, and swarmguard's XDP program
// alone on its ban-drop and fail-open paths. Every figure is from the same
// run; loss is measured at the sink, not assumed. With the kernel's BPF
// statistics on for the run, each configuration also reports its XDP
// program's own time per packet (run_time_ns / run_cnt), which the
// generator sharing the cores does not blur the way packets/s is blurred.
package veth

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/swarmguard/swarmguard/bench/gen"
	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
)

// Options configure a harness run.
type Options struct {
	Self     string           // this binary, re-executed in the namespaces
	Duration time.Duration    // per configuration (default 3 s)
	Rate     int              // generator packets/s, 0 = flat out
	Flows    int              // concurrent flows (default 4096)
	Hosts    int              // source hosts (default 64)
	Train    int              // packets of a flow in a row (default 1)
	Mix      []string         // captures whose sizes make the realistic mix
	Configs  []string         // configurations to run (default all)
	Sizes    []string         // "64" and/or "mix" (default both)
	Latency  bool             // also measure round trips through each path
	Stop     <-chan os.Signal // when it fires, Run stops after the configuration under way
	Log      io.Writer
	// NoSink leaves sink-ns's eth0 to its stack (no counting XDP program,
	// no echo): for traffic that needs real endpoints there (bench stress).
	NoSink bool
}

// Configurations, in the order they run.
// sg-ban and sg-failopen are swarmguard's XDP program with no process
// behind it: every generator source banned (each packet dropped on the
// ban lookup), or no heartbeat (each packet forwarded by the kernel).
var AllConfigs = []string{"xdp-drop", "devmap", "null-1w", "null-2w", "sg-1w", "sg-1w-bypass", "sg-2w", "sg-2w-bypass", "sg-2w1q", "sg-ban", "sg-failopen"}

// Row is one configuration at one frame size.
type Row struct {
	Config    string  `json:"config"`
	Size      string  `json:"size"`
	Sent      uint64  `json:"sent"`
	Delivered uint64  `json:"delivered"`
	Dropped   uint64  `json:"dropped"` // counted drops: bans, bypass drops, worker verdicts, tx ring full
	Lost      int64   `json:"lost"`    // sent - delivered - dropped: what nobody counted
	Seconds   float64 `json:"seconds"`
	Mpps      float64 `json:"mpps"`
	CPUns     float64 `json:"cpu_ns_per_packet,omitempty"` // this process's CPU per delivered packet
	UserShare float64 `json:"userspace_share,omitempty"`   // packets that reached a worker / packets
	RTTp50us  float64 `json:"rtt_p50_us,omitempty"`        // round trip of a ping-pong flow through the path
	RTTp99us  float64 `json:"rtt_p99_us,omitempty"`
	// KernelNs is the XDP program's run time per run on port A and B
	// (bpf_stats: run_time_ns / run_cnt), packets of every path it took.
	KernelNs  float64 `json:"xdp_ns_per_packet,omitempty"`
	KernelRun uint64  `json:"xdp_runs,omitempty"`
	VsNull    float64 `json:"vs_null,omitempty"`
	VsDevmap  float64 `json:"vs_devmap,omitempty"`
}

// Env is the harness's namespaces and ports.
type Env struct {
	prefix    string
	gen, sink string
	a, b      string
	sinkCmd   *exec.Cmd
	echoCmd   *exec.Cmd
	sinkIn    io.WriteCloser
	sinkOut   *bufio.Reader
	log       io.Writer
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func setup(o *Options) (*Env, error) {
	e := &Env{prefix: fmt.Sprintf("sgv%d", os.Getpid()%100000), log: o.Log}
	e.gen, e.sink, e.a, e.b = e.prefix+"gen", e.prefix+"sink", e.prefix+"A", e.prefix+"B"
	steps := [][]string{
		{"ip", "netns", "add", e.gen}, {"ip", "netns", "add", e.sink},
		{"ip", "link", "add", e.a, "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", "eth0", "netns", e.gen, "numtxqueues", "2", "numrxqueues", "2"},
		{"ip", "link", "add", e.b, "numtxqueues", "2", "numrxqueues", "2", "type", "veth", "peer", "name", "eth0", "netns", e.sink, "numtxqueues", "2", "numrxqueues", "2"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			e.cleanup()
			return nil, err
		}
	}
	for _, ns := range []string{e.gen, e.sink} {
		// No IPv6 autoconfiguration chatter: the sink counts only the generator's frames.
		run("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		run("ip", "-n", ns, "link", "set", "lo", "up")
		run("ip", "-n", ns, "addr", "add", map[string]string{e.gen: "10.96.0.1/24", e.sink: "10.96.0.2/24"}[ns], "dev", "eth0")
		run("ip", "-n", ns, "link", "set", "eth0", "up")
		// A devmap redirect into a veth needs NAPI on the receiver (GRO on);
		// the stack's UDP must carry finished checksums (tx offload off),
		// since frames copied through AF_XDP keep partial ones.
		run("ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "gro", "on", "tx", "off")
	}
	for _, p := range []string{e.a, e.b} {
		// Our ports too: IPv6 autoconfiguration would send frames of their own out of B.
		run("sysctl", "-qw", "net.ipv6.conf."+p+".disable_ipv6=1")
		if err := run("ip", "link", "set", p, "up"); err != nil {
			e.cleanup()
			return nil, err
		}
	}
	if o.NoSink {
		return e, nil
	}
	// The sink: an XDP counter on sink-ns's eth0, in a process of its own.
	e.sinkCmd = exec.Command("ip", "netns", "exec", e.sink, o.Self, "bench", "sink", "--iface", "eth0")
	e.sinkIn, _ = e.sinkCmd.StdinPipe()
	out, _ := e.sinkCmd.StdoutPipe()
	e.sinkCmd.Stderr = o.Log
	if err := e.sinkCmd.Start(); err != nil {
		e.cleanup()
		return nil, fmt.Errorf("start sink: %w", err)
	}
	e.sinkOut = bufio.NewReader(out)
	if line, _ := e.sinkOut.ReadString('\n'); !strings.HasPrefix(line, "ready") {
		e.cleanup()
		return nil, fmt.Errorf("sink did not start: %q", line)
	}
	// The latency probe's echo, beside the sink (which passes its port).
	e.echoCmd = exec.Command("ip", "netns", "exec", e.sink, o.Self, "bench", "echo", "--listen", "10.96.0.2:7", "--seconds", "3600")
	if err := e.echoCmd.Start(); err != nil {
		e.cleanup()
		return nil, fmt.Errorf("start echo: %w", err)
	}
	return e, nil
}

// Setup builds the harness's namespaces and ports (and, unless NoSink,
// the sink); Close removes them.
func Setup(o Options) (*Env, error) {
	if o.Log == nil {
		o.Log = io.Discard
	}
	return setup(&o)
}

// Ports are the bridge's two ports, in the current namespace.
func (e *Env) Ports() (a, b string) { return e.a, e.b }

// Namespaces are the generator's and the sink's (10.96.0.1 and 10.96.0.2).
func (e *Env) Namespaces() (gen, sink string) { return e.gen, e.sink }

// Close removes everything Setup made.
func (e *Env) Close() { e.cleanup() }

// counted asks the sink for its packet count.
func (e *Env) counted() (uint64, error) {
	if _, err := io.WriteString(e.sinkIn, "\n"); err != nil {
		return 0, fmt.Errorf("sink: %w", err)
	}
	line, err := e.sinkOut.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("sink: %w", err)
	}
	return strconv.ParseUint(strings.Fields(line)[0], 10, 64)
}

func (e *Env) cleanup() {
	if e.echoCmd != nil && e.echoCmd.Process != nil {
		e.echoCmd.Process.Kill()
		e.echoCmd.Wait()
	}
	if e.sinkCmd != nil && e.sinkCmd.Process != nil {
		e.sinkIn.Close()
		e.sinkCmd.Process.Signal(syscall.SIGTERM)
		e.sinkCmd.Wait()
	}
	for _, p := range []string{e.a, e.b} {
		exec.Command("ip", "link", "del", p).Run()
	}
	for _, ns := range []string{e.gen, e.sink} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
}

// generate runs the generator in gen-ns.
func (e *Env) generate(o *Options, queues int, size string) (gen.Result, error) {
	args := []string{"netns", "exec", e.gen, o.Self, "bench", "gen", "--iface", "eth0",
		"--queues", fmt.Sprint(queues), "--flows", fmt.Sprint(o.Flows), "--hosts", fmt.Sprint(o.Hosts),
		"--train", fmt.Sprint(max(o.Train, 1)), "--rate", fmt.Sprint(o.Rate), "--seconds", fmt.Sprint(o.Duration.Seconds()), "--packets", "100000000"}
	if size == "mix" {
		args = append(args, "--mix", strings.Join(o.Mix, ","))
	}
	out, err := exec.Command("ip", args...).Output()
	if err != nil {
		return gen.Result{}, fmt.Errorf("generator: %w", err)
	}
	var r gen.Result
	if err := json.Unmarshal(out, &r); err != nil {
		return r, fmt.Errorf("generator output %q: %w", out, err)
	}
	return r, nil
}

// Run runs every configuration at every size and returns the rows.
func Run(o Options) ([]Row, error) {
	if o.Duration <= 0 {
		o.Duration = 3 * time.Second
	}
	if o.Flows <= 0 {
		o.Flows = 4096
	}
	if o.Hosts <= 0 {
		o.Hosts = 64
	}
	if len(o.Configs) == 0 {
		o.Configs = AllConfigs
	}
	if len(o.Sizes) == 0 {
		o.Sizes = []string{"64", "mix"}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	e, err := setup(&o)
	if err != nil {
		return nil, err
	}
	defer e.cleanup()
	// The kernel counts programs' run time only while someone holds this
	// (BPF_ENABLE_STATS; kernel.bpf_stats_enabled is the sysctl of it).
	if st, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err != nil {
		fmt.Fprintf(o.Log, "bench veth: no XDP run-time figures: enable BPF statistics: %v\n", err)
	} else {
		defer st.Close()
	}
	var rows []Row
	for _, size := range o.Sizes {
		var null, devmap float64
		for _, c := range o.Configs {
			select {
			case s := <-o.Stop:
				return rows, fmt.Errorf("stopped by %v", s)
			default:
			}
			row, err := e.one(&o, c, size)
			if err != nil {
				return rows, fmt.Errorf("%s at %s: %w", c, size, err)
			}
			switch c {
			case "null-1w":
				null = row.Mpps
			case "devmap":
				devmap = row.Mpps
			}
			rows = append(rows, row)
			fmt.Fprintf(o.Log, "bench veth: %-13s %-4s sent %d delivered %d (%.3f Mpps)\n", c, size, row.Sent, row.Delivered, row.Mpps)
		}
		for i := range rows {
			if rows[i].Size != size {
				continue
			}
			if null > 0 {
				rows[i].VsNull = rows[i].Mpps / null
			}
			if devmap > 0 {
				rows[i].VsDevmap = rows[i].Mpps / devmap
			}
		}
	}
	return rows, nil
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// one runs one configuration at one size.
func (e *Env) one(o *Options, config, size string) (Row, error) {
	row := Row{Config: config, Size: size}
	// sg-2w1q is two workers sharing one rx queue (the XDP program
	// spreads its flows over them); the others have a queue per worker.
	workers, queues := 1, 1
	if strings.HasSuffix(config, "-2w") || strings.HasSuffix(config, "-2w-bypass") {
		workers, queues = 2, 2
	}
	if config == "sg-2w1q" {
		workers = 2
	}
	var (
		r       *live.Runner
		objs    *bpf.Bench
		kobjs   *bpf.Objects // swarmguard's program with no process (sg-ban, sg-failopen)
		l       link.Link
		atA     bool // the kernel baseline counts at port A, not at the sink
		cleanup = func() {}
	)
	ifA, err := net.InterfaceByName(e.a)
	if err != nil {
		return row, err
	}
	ifB, _ := net.InterfaceByName(e.b)
	switch {
	case config == "xdp-drop" || config == "devmap":
		if objs, err = bpf.LoadBench(); err != nil {
			return row, err
		}
		prog := objs.Sink()
		atA = config == "xdp-drop"
		if !atA {
			prog = objs.Forward()
			objs.SetForward(ifA.Index, ifB.Index)
		}
		if l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifA.Index, Flags: link.XDPDriverMode}); err != nil {
			objs.Close()
			return row, fmt.Errorf("attach: %w", err)
		}
		cleanup = func() { l.Close(); objs.Close() }
		if !atA {
			// The way back, for the latency probe's answers (and ARP).
			objs.SetForward(ifB.Index, ifA.Index)
			lb, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifB.Index, Flags: link.XDPDriverMode})
			if err != nil {
				cleanup()
				return row, fmt.Errorf("attach: %w", err)
			}
			cleanup = func() { lb.Close(); l.Close(); objs.Close() }
		}
	case config == "sg-ban" || config == "sg-failopen":
		if kobjs, err = kernelOnly(o, config == "sg-ban", ifA.Index, ifB.Index); err != nil {
			return row, err
		}
		la, err := link.AttachXDP(link.XDPOptions{Program: kobjs.Program(), Interface: ifA.Index, Flags: link.XDPDriverMode})
		if err != nil {
			kobjs.Close()
			return row, fmt.Errorf("attach: %w", err)
		}
		lb, err := link.AttachXDP(link.XDPOptions{Program: kobjs.Program(), Interface: ifB.Index, Flags: link.XDPDriverMode})
		if err != nil {
			la.Close()
			kobjs.Close()
			return row, fmt.Errorf("attach: %w", err)
		}
		cleanup = func() { lb.Close(); la.Close(); kobjs.Close() }
	default:
		pin := fmt.Sprintf("/sys/fs/bpf/%s%s", e.prefix, strings.ReplaceAll(config, "-", ""))
		cfg := live.Config{Bridge: [2]string{e.a, e.b}, Queues: queues, Workers: workers, PinPath: pin}
		mode := live.Harness{Null: strings.HasPrefix(config, "null"), NoBypass: !strings.HasSuffix(config, "bypass")}
		// The previous configuration's sockets are closed, but the kernel
		// releases their queue bindings a moment later.
		for try := 0; ; try++ {
			r, err = live.StartHarness(cfg, mode)
			if err == nil || !errors.Is(err, xsk.ErrQueueBusy) || try == 30 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			os.RemoveAll(pin)
			return row, err
		}
		cleanup = func() { r.Stop(); os.RemoveAll(pin) }
	}
	defer cleanup()
	time.Sleep(200 * time.Millisecond)
	before, err := e.counted()
	if err != nil {
		return row, err
	}
	var k0 [bpf.NumCounters]uint64
	if r != nil {
		k0 = r.Stats().Kernel
	}
	if kobjs != nil {
		if k0, err = kobjs.Counters(); err != nil {
			return row, err
		}
	}
	prog, err := xdpProgram(e.a)
	if err != nil {
		return row, err
	}
	defer prog.Close()
	ps0, perr := prog.Stats()
	cpu0 := cpuNow()
	g, err := e.generate(o, queues, size)
	if err != nil {
		return row, err
	}
	time.Sleep(300 * time.Millisecond) // let queued frames drain
	cpu := cpuNow() - cpu0
	if ps1, err := prog.Stats(); perr == nil && err == nil && ps1.RunCount > ps0.RunCount && ps1.Runtime > ps0.Runtime {
		row.KernelRun = ps1.RunCount - ps0.RunCount
		row.KernelNs = float64(ps1.Runtime-ps0.Runtime) / float64(row.KernelRun)
	}
	after, err := e.counted()
	if err != nil {
		return row, err
	}
	row.Sent, row.Seconds = g.Sent, g.Elapsed.Seconds()
	row.Delivered = after - before
	if atA {
		p, _, err := objs.Counted()
		if err != nil {
			return row, err
		}
		row.Delivered = p
	}
	if r != nil {
		time.Sleep(150 * time.Millisecond) // one more merge tick for the counters
		st := r.Stats()
		k := st.Kernel
		for i := range k {
			k[i] -= k0[i]
		}
		row.Dropped = k[bpf.BanDrop] + k[bpf.BypassDrop] + st.Worker.Dropped + st.TxFull
		if seen := k[bpf.RX]; seen > 0 {
			row.UserShare = float64(k[bpf.ToXSK]) / float64(seen)
		}
		if row.Delivered > 0 {
			row.CPUns = float64(cpu.Nanoseconds()) / float64(row.Delivered)
		}
	}
	if kobjs != nil {
		k, err := kobjs.Counters()
		if err != nil {
			return row, err
		}
		row.Dropped = k[bpf.BanDrop] - k0[bpf.BanDrop]
	}
	row.Lost = int64(row.Sent) - int64(row.Delivered) - int64(row.Dropped)
	if !atA && config != "sg-ban" && o.Latency {
		out, err := exec.Command("ip", "netns", "exec", e.gen, o.Self, "bench", "ping", "--to", "10.96.0.2:7", "--count", "400").Output()
		var lr struct {
			P50 int64 `json:"p50_ns"`
			P99 int64 `json:"p99_ns"`
		}
		if err == nil && json.Unmarshal(out, &lr) == nil {
			row.RTTp50us, row.RTTp99us = float64(lr.P50)/1e3, float64(lr.P99)/1e3
		} else {
			fmt.Fprintf(o.Log, "bench veth: %s: latency probe: %v %s\n", config, err, out)
		}
	}
	if row.Seconds > 0 {
		row.Mpps = float64(row.Delivered) / row.Seconds / 1e6
	}
	return row, nil
}

// Markdown renders rows as a table.
func Markdown(rows []Row) string {
	var b strings.Builder
	b.WriteString("| config | size | sent | delivered | dropped (counted) | lost | Mpps | x null fwd | x devmap | userspace share | CPU ns/pkt (this process) | XDP ns/run (bpf_stats) | RTT p50/p99 us |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		rtt := "-"
		if r.RTTp50us > 0 {
			rtt = fmt.Sprintf("%.0f / %.0f", r.RTTp50us, r.RTTp99us)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %.3f | %.2f | %.2f | %s | %s | %s | %s |\n", r.Config, r.Size, r.Sent, r.Delivered, r.Dropped, r.Lost,
			r.Mpps, r.VsNull, r.VsDevmap, pct(r.UserShare, r.Config), ns(r.CPUns), ns1(r.KernelNs), rtt)
	}
	return b.String()
}

func pct(x float64, c string) string {
	if strings.HasPrefix(c, "xdp") || c == "devmap" || c == "sg-ban" || c == "sg-failopen" {
		return "-"
	}
	return fmt.Sprintf("%.1f %%", 100*x)
}

func ns(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", x)
}

func ns1(x float64) string {
	if x == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", x)
}

// xdpProgram is the XDP program attached to the interface name.
func xdpProgram(name string) (*ebpf.Program, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("xdp program of %s: %w", name, err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached || x.ProgId == 0 {
		return nil, fmt.Errorf("xdp program of %s: none attached", name)
	}
	p, err := ebpf.NewProgramFromID(ebpf.ProgramID(x.ProgId))
	if err != nil {
		return nil, fmt.Errorf("xdp program of %s (id %d): %w", name, x.ProgId, err)
	}
	return p, nil
}

// kernelOnly loads swarmguard's program for the configurations with no
// process: ban (a live heartbeat, every generator source banned for an
// hour, so each packet drops on the ban lookup) or fail-open (no heartbeat,
// so each packet is forwarded to the other port by the kernel).
func kernelOnly(o *Options, ban bool, a, b int) (*bpf.Objects, error) {
	k, err := bpf.Load(bpf.Options{})
	if err != nil {
		return nil, err
	}
	failOpen := 10 * time.Millisecond
	if ban {
		failOpen = time.Hour
	}
	err = errors.Join(k.SetPeerPort(a, b), k.SetPeerPort(b, a), k.Configure(bpf.Bridge, 1, failOpen, 0))
	if ban {
		err = errors.Join(err, k.Beat())
		until := bpf.Monotonic() + uint64(time.Hour)
		for h := range min(o.Hosts, 256) {
			// The generator's sources (bench/gen: 10.98.h.1).
			err = errors.Join(err, k.Ban(netip.AddrFrom4([4]byte{10, 98, byte(h), 1}), until))
		}
	}
	if err != nil {
		k.Close()
		return nil, fmt.Errorf("swarmguard program alone: %w", err)
	}
	return k, nil
}
