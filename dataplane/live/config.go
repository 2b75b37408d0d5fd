// Package live puts the engine on the wire: the XDP program steers packets
// to AF_XDP sockets, one per port and worker, by rx queue and flow hash;
// each worker (locked to its OS thread and pinned to a CPU) runs the same
// shard.Worker as offline classification, host deltas merge every 100 ms,
// and decisions go back to the kernel as bypass entries and bans.
package live

import (
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
	"github.com/swarmguard/swarmguard/shard"
)

// Config configures a Runner. Zero fields take the documented defaults.
type Config struct {
	// Bridge is an inline two-port bridge: what enters Bridge[0] leaves
	// Bridge[1] and back. Monitor is a mirror port: classify and ban only.
	// Exactly one of them is set.
	Bridge  [2]string
	Monitor string
	// Queues is the number of rx queues used on each port (default: all the
	// port has; on a bridge, the smaller count of the two).
	Queues int
	// Workers is how many workers read the queues (default: one per CPU
	// but one, at least one per queue). More workers than queues share
	// each queue (Workers/Queues each, rounded down): the XDP program
	// spreads a queue's flows over them, so a 1-queue port still uses the
	// box's cores.
	Workers int
	Socket  xsk.Options
	// Generic forces generic (skb) XDP; by default native XDP is tried
	// first and generic used when the driver has no native XDP.
	Generic bool
	// FailOpen is the heartbeat age after which the kernel forwards (bridge)
	// or passes (monitor) everything itself (default 1 s).
	FailOpen time.Duration
	// PinPath is the bpffs directory of the pinned ban map and XDP links
	// (default /sys/fs/bpf/swarmguard).
	PinPath string
	// BanFor is how long a ban lasts (default 5 h). BanLocal bans the local
	// host of a p2p flow instead of its remote peer; MonitorOnly logs and
	// bans nothing, drops nothing.
	BanFor      time.Duration
	BanLocal    bool
	MonitorOnly bool
	// Local are the networks of local hosts (default: RFC 1918, RFC 6598,
	// ULA and link-local): the other endpoint of a flow is its remote peer.
	Local []netip.Prefix
	// AllowNets and AllowPorts are never dropped or banned.
	AllowNets  []netip.Prefix
	AllowPorts []uint16
	// Flows sizes each worker's flow table and its new-flow budget
	// (default DefaultNewPerSecond); Model is the scoring model.
	Flows shard.TableConfig
	// UserPPS is each CPU's budget of packets per second sent to the
	// workers (default DefaultUserPPS; negative: no budget). Over it the XDP
	// program sends a sixteenth of the flows on and forwards (bridge) or
	// passes (monitor) the rest uninspected, counted as shed.
	UserPPS int
	// MaxHosts bounds the merged host state (default DefaultMaxHosts); the
	// least recently active go first.
	MaxHosts int
	Model    *classifier.Model
	// Records receives decision records (JSON lines); nil discards them.
	Records io.Writer
	// Log receives one-line operational messages; nil discards them.
	Log io.Writer
	// Notify, when set, gets every ban, unban, host and failopen event
	// from the control goroutine; it must not block (webhooks queue).
	Notify func(*Event)
	// OnRecord, when set, sees every flow record after it is logged, from
	// the control goroutine; it must not block.
	OnRecord func(*Record)
	// Audit, when > 0, keeps up to that many of the first frames of every
	// p2p flow (those still in the worker's ring of recent frames) and
	// hands them to OnAudit with the flow's record, from the control
	// goroutine.
	Audit   int
	OnAudit func(*Record, []AuditFrame)
}

// Defaults.
const (
	DefaultFailOpen = time.Second
	DefaultBanFor   = 5 * time.Hour
	// DefaultNewPerSecond is each worker's new-flow budget: over it, new
	// flows are sampled (one in sixteen) and the rest pass uninspected.
	DefaultNewPerSecond = 50_000
	// DefaultMaxHosts bounds the host state (about 1 KiB a host,
	// BENCHMARKS.md).
	DefaultMaxHosts = 1 << 17
	// DefaultUserPPS is each CPU's budget of packets to the workers.
	DefaultUserPPS = 300_000
	// DefaultGCPercent is the collector's GOGC for a process running the
	// dataplane, with the memory limit as the bound: the host state is a
	// large heap of pointers, and every cycle reads all of it. At the
	// runtime's 100 a flood of new hosts made a cycle every second or two,
	// and merges that met one ran twice as long (bench stress hosts).
	DefaultGCPercent = 400
)

// DefaultLocal are the address ranges taken as local by default.
func DefaultLocal() []string {
	return []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10"}
}

func (c *Config) check() error {
	if (c.Monitor == "") == (c.Bridge[0] == "") {
		return fmt.Errorf("want either a bridge (two ports) or a monitor port")
	}
	if c.Bridge[0] != "" && (c.Bridge[1] == "" || c.Bridge[0] == c.Bridge[1]) {
		return fmt.Errorf("a bridge needs two different ports")
	}
	if c.FailOpen <= 0 {
		c.FailOpen = DefaultFailOpen
	}
	if c.BanFor <= 0 {
		c.BanFor = DefaultBanFor
	}
	if c.PinPath == "" {
		c.PinPath = "/sys/fs/bpf/swarmguard"
	}
	if c.Local == nil {
		for _, s := range DefaultLocal() {
			c.Local = append(c.Local, netip.MustParsePrefix(s))
		}
	}
	if c.Model == nil {
		c.Model = classifier.DefaultModel()
	}
	if c.MaxHosts == 0 {
		c.MaxHosts = DefaultMaxHosts
	}
	if c.UserPPS == 0 {
		c.UserPPS = DefaultUserPPS
	} else if c.UserPPS < 0 {
		c.UserPPS = 0
	}
	if c.Flows.NewPerSecond == 0 {
		c.Flows.NewPerSecond = DefaultNewPerSecond
	} else if c.Flows.NewPerSecond < 0 {
		c.Flows.NewPerSecond = 0 // no bound
	}
	if c.Records == nil {
		c.Records = io.Discard
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	return nil
}

func (c *Config) ports() []string {
	if c.Monitor != "" {
		return []string{c.Monitor}
	}
	return c.Bridge[:]
}

func inAny(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
