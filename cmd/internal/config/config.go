// Package config is the configuration of `swarmguard run`: one table of
// options, each with its YAML key, its flag, its default, its range and
// whether a reload changes it. The flags, the YAML file, `config check`,
// `config default`, the man page and the README's reference are all made
// from that table, so they cannot disagree.
package config

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DefaultPath is where `run` looks for its file when --config is not given.
const DefaultPath = "/etc/swarmguard/swarmguard.yaml"

// Config is everything `swarmguard run` takes.
type Config struct {
	Bridge  []string // two ports: an inline bridge
	Monitor string   // one mirror port
	Queues  int
	Workers int
	Generic bool
	Frames  int
	Ring    int

	Pin      string
	FailOpen time.Duration
	UserPPS  int // packets per second per CPU to the workers before the kernel sheds; 0: no budget

	MonitorOnly bool
	BanFor      time.Duration
	BanLocal    bool
	Local       []netip.Prefix
	AllowNets   []netip.Prefix
	AllowPorts  []uint16

	Weights   string
	P2PAt     float64 // 0: the model's THigh
	NormalAt  float64 // 0: the model's TLow
	FlowTable int     // flow slots per worker; 0: the engine's default
	NewFlows  int     // new flows per second per worker before shedding; 0: no bound
	MaxHosts  int

	MemoryLimit int64 // the Go runtime's soft memory limit; 0: none
	GCPercent   int   // the collector's GOGC

	LogFile    string // "-": stdout
	LogMaxSize int64
	LogKeep    int

	MetricsListen string // "": off
	StatusSocket  string // "": off

	Webhooks []string

	ClusterNATS     []string // NATS servers of the shared ban bucket; empty: this box alone
	ClusterBox      string   // this box's name in the cluster ("": the host name)
	ClusterUser     string
	ClusterPassword string
	ClusterReplicas int
	ClusterTLSCA    string // CA file of the NATS servers' certificates; "": no TLS
	ClusterTLSCert  string
	ClusterTLSKey   string
	ClusterNkeySeed string // file of this box's nkey seed

	BGPASN         int      // this box's AS number; with BGPPeers, bans are announced as RTBH routes
	BGPRouterID    string   // an IPv4 address
	BGPPeers       []string // ADDR[:PORT]@ASN of each router
	BGPPassword    string   // TCP MD5, when the routers want it
	BGPMax         int
	BGPRate        int
	WebhookTimeout time.Duration
	WebhookRetries int
	WebhookQueue   int

	AuditDir     string // "": off
	AuditPackets int
	AuditMaxSize int64
	AuditKeep    int
}

// Default is the configuration with every documented default.
func Default() *Config {
	return &Config{
		Pin: "/sys/fs/bpf/swarmguard", FailOpen: time.Second, UserPPS: 300_000,
		BanFor:    5 * time.Hour,
		Local:     mustPrefixes("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7", "fe80::/10"),
		AllowNets: []netip.Prefix{}, AllowPorts: []uint16{}, Bridge: []string{}, Webhooks: []string{}, ClusterNATS: []string{}, ClusterReplicas: 1, BGPPeers: []string{}, BGPMax: 10_000, BGPRate: 100,
		LogFile: "-", LogMaxSize: 100 << 20, LogKeep: 5,
		MetricsListen: "127.0.0.1:9425", StatusSocket: "/run/swarmguard/swarmguard.sock",
		WebhookTimeout: 5 * time.Second, WebhookRetries: 3, WebhookQueue: 1024,
		AuditPackets: 16, AuditMaxSize: 64 << 20, AuditKeep: 4,
		NewFlows: 50_000, MaxHosts: 1 << 17, MemoryLimit: 512 << 20, GCPercent: 400,
	}
}

// Option is one setting: its YAML key (dotted path), its flag, its help,
// and whether a reload applies it (otherwise it needs a restart).
type Option struct {
	Key, Flag, Help string
	Reload          bool
	val             value
}

// Value returns the option's value as text.
func (o *Option) Value() string { return o.val.String() }

// Kind names the option's type.
func (o *Option) Kind() string { return o.val.kind() }

// Options is c's table, bound to c's fields.
func (c *Config) Options() []Option {
	return []Option{
		{"interfaces.bridge", "bridge", "inline bridge: two ports, IF_A,IF_B", false, strList{&c.Bridge, ifname}},
		{"interfaces.monitor", "monitor", "mirror/SPAN port: classify and ban, forward nothing", false, strVal{&c.Monitor, ifnameOrEmpty}},
		{"interfaces.queues", "queues", "rx queues per port (0: all the port has)", false, intVal{p: &c.Queues, max: 256}},
		{"interfaces.workers", "workers", "workers in all, each on a CPU of its own (0: one per CPU but one, at least one per queue); more than the queues share each queue's flows by the flow hash", false, intVal{p: &c.Workers, max: 256}},
		{"interfaces.generic", "generic", "force generic (skb) XDP instead of the driver's native XDP", false, boolVal{&c.Generic}},
		{"sockets.frames", "frames", "UMEM frames per AF_XDP socket (0: 8192)", false, intVal{p: &c.Frames, max: 1 << 20}},
		{"sockets.ring", "ring", "entries per AF_XDP ring (0: 2048; a power of two)", false, intVal{p: &c.Ring, max: 1 << 16, pow2: true}},
		{"kernel.pin", "pin", "bpffs directory of the ban map and XDP links", false, strVal{&c.Pin, absPath}},
		{"kernel.fail_open", "fail-open", "heartbeat age after which the kernel forwards (bridge) or passes (monitor) everything", false, durVal{p: &c.FailOpen, min: 10 * time.Millisecond, max: time.Hour}},
		{"kernel.userspace_pps", "userspace-pps", "packets per second per CPU the XDP program sends to the workers; over it a sixteenth of the flows are still sent and the rest forwarded uninspected, counted as shed (0: no budget)", false, intVal{p: &c.UserPPS, max: 100_000_000}},
		{"policy.monitor_only", "monitor-only", "log decisions; drop and ban nothing", true, boolVal{&c.MonitorOnly}},
		{"policy.ban_for", "ban-for", "how long a ban lasts", true, durVal{p: &c.BanFor, min: time.Second, max: MaxBan}},
		{"policy.ban_local", "ban-local", "ban the local host of a p2p flow instead of its remote peer", true, boolVal{&c.BanLocal}},
		{"policy.local_networks", "local", "networks of local hosts: the other end of a flow is its remote peer", true, prefixList{&c.Local}},
		{"policy.allow_networks", "allow-net", "networks never dropped or banned", true, prefixList{&c.AllowNets}},
		{"policy.allow_ports", "allow-port", "ports never dropped or banned", true, portList{&c.AllowPorts}},
		{"classifier.weights", "weights", "weights file (empty: the built-in model)", true, strVal{p: &c.Weights}},
		{"classifier.p2p_threshold", "p2p-threshold", "probability at which a flow is p2p (0: the model's)", true, floatVal{p: &c.P2PAt, min: 0.5, max: 0.999}},
		{"classifier.normal_threshold", "normal-threshold", "probability at or under which a flow is normal (0: the model's)", true, floatVal{p: &c.NormalAt, min: 0.001, max: 0.5}},
		{"classifier.flow_table", "flow-table", "flow slots per worker (0: 65536); memory is about 128 B a slot", false, intVal{p: &c.FlowTable, max: 1 << 26}},
		{"classifier.new_flows_per_second", "new-flows", "new flows a worker inspects per second; over it one in sixteen is sampled and the rest pass uninspected, counted (0: no bound)", false, intVal{p: &c.NewFlows, max: 100_000_000}},
		{"classifier.max_hosts", "max-hosts", "hosts kept in the merged host state, the least recently active dropped first; about 2 KiB a host", false, intVal{p: &c.MaxHosts, min: 1024, max: 1 << 26}},
		{"process.memory_limit", "memory-limit", "soft limit of the Go heap (GOMEMLIMIT): the collector works harder near it; size it above flow tables + max_hosts x 2 KiB (0: none)", false, sizeVal{p: &c.MemoryLimit, max: 1 << 40}},
		{"process.gc_percent", "gc-percent", "the collector's GOGC: heap growth between collections, in percent of the live heap; memory_limit bounds the heap whatever it is, so a high value makes collections rarer without passing the limit", false, intVal{p: &c.GCPercent, min: 25, max: 10000}},
		{"log.file", "records", "decision log (EVE-like JSON lines): - for stdout (journald), or a file", false, strVal{&c.LogFile, nil}},
		{"log.max_size", "log-max-size", "rotate the log file at this size (0: never)", true, sizeVal{p: &c.LogMaxSize, max: 1 << 40}},
		{"log.keep", "log-keep", "rotated log files kept", true, intVal{p: &c.LogKeep, max: 1000}},
		{"metrics.listen", "metrics", "Prometheus /metrics address (empty: off)", false, strVal{&c.MetricsListen, hostPortOrEmpty}},
		{"status.socket", "status-socket", "unix socket of status and reload (empty: off)", false, strVal{&c.StatusSocket, absPathOrEmpty}},
		{"cluster.nats", "cluster-nats", "NATS servers (nats://host:port) of the ban bucket the boxes of one edge share (docs/SCALEOUT.md); empty: this box alone", false, strList{&c.ClusterNATS, natsURL}},
		{"cluster.box", "cluster-box", "this box's name among the boxes (empty: the host name)", false, strVal{&c.ClusterBox, boxName}},
		{"cluster.user", "cluster-user", "NATS user (with cluster.password); keep the file readable by root only", false, strVal{&c.ClusterUser, nil}},
		{"cluster.password", "cluster-password", "NATS password", false, strVal{&c.ClusterPassword, nil}},
		{"cluster.tls_ca", "cluster-tls-ca", "CA file (PEM) that signed the NATS servers' certificates: the connection is TLS and verified (empty: plain)", false, strVal{&c.ClusterTLSCA, absPathOrEmpty}},
		{"cluster.tls_cert", "cluster-tls-cert", "this box's client certificate file (PEM), when the NATS servers want one", false, strVal{&c.ClusterTLSCert, absPathOrEmpty}},
		{"cluster.tls_key", "cluster-tls-key", "the client certificate's key file (PEM)", false, strVal{&c.ClusterTLSKey, absPathOrEmpty}},
		{"cluster.nkey_seed", "cluster-nkey-seed", "file of this box's nkey seed, when the NATS servers authenticate boxes by nkey (readable by root only)", false, strVal{&c.ClusterNkeySeed, absPathOrEmpty}},
		{"cluster.replicas", "cluster-replicas", "copies of the ban bucket in the NATS cluster (3 for a three-node cluster)", false, intVal{p: &c.ClusterReplicas, min: 1, max: 5}},
		{"bgp.asn", "bgp-asn", "this box's AS number for announcing its bans to the routers as RTBH routes (0: off)", false, intVal{p: &c.BGPASN, max: 1<<32 - 1}},
		{"bgp.router_id", "bgp-router-id", "BGP router id (an IPv4 address)", false, strVal{&c.BGPRouterID, ipv4OrEmpty}},
		{"bgp.peers", "bgp-peer", "routers to announce to: ADDR[:PORT]@ASN; each ban as a /32 or /128 with the BLACKHOLE community, withdrawn at its end", false, strList{&c.BGPPeers, bgpPeer}},
		{"bgp.password", "bgp-password", "TCP MD5 password of the BGP sessions", false, strVal{&c.BGPPassword, nil}},
		{"bgp.max_announcements", "bgp-max", "most bans announced at once; past it they are not announced, counted", false, intVal{p: &c.BGPMax, min: 1, max: 1 << 24}},
		{"bgp.rate", "bgp-rate", "most new announcements a second", false, intVal{p: &c.BGPRate, min: 1, max: 1 << 20}},
		{"webhooks.urls", "webhook", "URLs that get a JSON POST on ban, unban and host turned p2p", true, strList{&c.Webhooks, httpURL}},
		{"webhooks.timeout", "webhook-timeout", "time allowed for one POST", true, durVal{p: &c.WebhookTimeout, min: 100 * time.Millisecond, max: time.Minute}},
		{"webhooks.retries", "webhook-retries", "retries of a failed POST, with doubling backoff", true, intVal{p: &c.WebhookRetries, max: 10}},
		{"webhooks.queue", "webhook-queue", "notices waiting to be sent; more are dropped and counted", false, intVal{p: &c.WebhookQueue, min: 1, max: 1 << 20}},
		{"audit.dir", "audit-dir", "directory of the audit capture: the first packets of every p2p flow (empty: off)", false, strVal{&c.AuditDir, absPathOrEmpty}},
		{"audit.packets", "audit-packets", "packets kept of each p2p flow (its first, from the worker's ring of recent frames)", false, intVal{p: &c.AuditPackets, min: 1, max: 1024}},
		{"audit.max_size", "audit-max-size", "rotate the audit capture at this size", true, sizeVal{p: &c.AuditMaxSize, min: 1 << 16, max: 1 << 40}},
		{"audit.keep", "audit-keep", "rotated audit captures kept", true, intVal{p: &c.AuditKeep, max: 1000}},
	}
}

// MaxBan bounds ban durations: a year.
const MaxBan = 365 * 24 * time.Hour

// Check reports problems between options, one error per problem, each
// naming its key.
func (c *Config) Check() []error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &Problem{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	switch {
	case len(c.Bridge) == 0 && c.Monitor == "":
		bad("interfaces", "give either interfaces.bridge (two ports) or interfaces.monitor (--bridge or --monitor)")
	case len(c.Bridge) > 0 && c.Monitor != "":
		bad("interfaces", "interfaces.bridge and interfaces.monitor are both set; give one")
	case len(c.Bridge) > 0 && (len(c.Bridge) != 2 || c.Bridge[0] == c.Bridge[1]):
		bad("interfaces.bridge", "want two different ports, got %q", strings.Join(c.Bridge, ","))
	}
	if c.P2PAt != 0 && c.NormalAt != 0 && c.NormalAt >= c.P2PAt {
		bad("classifier.normal_threshold", "%g is not under classifier.p2p_threshold %g", c.NormalAt, c.P2PAt)
	}
	if c.LogFile != "-" && c.LogFile != "" && !filepath.IsAbs(c.LogFile) && strings.ContainsRune(c.LogFile, 0) {
		bad("log.file", "not a path")
	}
	return errs
}

// Problem is one bad setting, by key.
type Problem struct {
	Key  string
	Line int // in the file; 0 for a flag or a check between options
	Msg  string
}

func (p *Problem) Error() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", p.Key, p.Line, p.Msg)
	}
	return p.Key + ": " + p.Msg
}

// Flags binds every option to a flag of fs, on c's fields.
func (c *Config) Flags(fs *flag.FlagSet) {
	for _, o := range c.Options() {
		fs.Var(o.val, o.Flag, o.Help)
	}
}

// Load reads path over the defaults, then applies the flags the command
// line set (set, in the order given), so flags override the file. All
// problems come back, one per key.
func Load(path string, set [][2]string) (*Config, []error) {
	c := Default()
	var errs []error
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, []error{fmt.Errorf("config: %w", err)}
		}
		errs = c.decode(b)
		if len(errs) == 1 && errs[0].(*Problem).Key == "(file)" {
			return nil, errs // not YAML: nothing else to say
		}
	}
	byFlag := map[string]value{}
	for _, o := range c.Options() {
		byFlag[o.Flag] = o.val
	}
	for _, kv := range set {
		if v, ok := byFlag[kv[0]]; ok {
			if err := v.Set(kv[1]); err != nil {
				errs = append(errs, &Problem{Key: "--" + kv[0], Msg: err.Error()})
			}
		}
	}
	return c, append(errs, c.Check()...)
}

// RestartOnly reports the restart-only keys whose values differ between c
// and n: a reload keeps their running values and says so.
func (c *Config) RestartOnly(n *Config) []string {
	var keys []string
	co, no := c.Options(), n.Options()
	for i := range co {
		if !co[i].Reload && co[i].val.String() != no[i].val.String() {
			keys = append(keys, co[i].Key)
		}
	}
	return keys
}

// KeepRestartOnly copies c's restart-only values into n.
func (c *Config) KeepRestartOnly(n *Config) {
	co, no := c.Options(), n.Options()
	for i := range co {
		if !co[i].Reload {
			if err := no[i].val.Set(co[i].val.String()); err != nil {
				panic(fmt.Sprintf("config: %s: the running value %q does not parse: %v", co[i].Key, co[i].val.String(), err))
			}
		}
	}
}

func ifname(s string) error {
	if s == "" || len(s) >= 16 || strings.ContainsAny(s, "/ \t,:") {
		return fmt.Errorf("%q is not an interface name", s)
	}
	return nil
}

func ifnameOrEmpty(s string) error {
	if s == "" {
		return nil
	}
	return ifname(s)
}

func absPath(s string) error {
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q: want an absolute path", s)
	}
	return nil
}

func absPathOrEmpty(s string) error {
	if s == "" {
		return nil
	}
	return absPath(s)
}

func hostPortOrEmpty(s string) error {
	if s == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("%q is not host:port", s)
	}
	return nil
}

func ipv4OrEmpty(s string) error {
	if s == "" {
		return nil
	}
	if a, err := netip.ParseAddr(s); err != nil || !a.Is4() {
		return fmt.Errorf("%q is not an IPv4 address", s)
	}
	return nil
}

// BGPPeer splits ADDR[:PORT]@ASN.
func BGPPeer(s string) (addr string, port uint32, asn uint32, err error) {
	hp, as, ok := strings.Cut(s, "@")
	if !ok {
		return "", 0, 0, fmt.Errorf("%q: want ADDR[:PORT]@ASN", s)
	}
	n, err := strconv.ParseUint(as, 10, 32)
	if err != nil || n == 0 {
		return "", 0, 0, fmt.Errorf("%q: %q is not an AS number", s, as)
	}
	port = 179
	if ap, err := netip.ParseAddrPort(hp); err == nil {
		return ap.Addr().String(), uint32(ap.Port()), uint32(n), nil
	}
	a, err := netip.ParseAddr(hp)
	if err != nil {
		return "", 0, 0, fmt.Errorf("%q: %q is not an address", s, hp)
	}
	return a.String(), port, uint32(n), nil
}

func bgpPeer(s string) error {
	_, _, _, err := BGPPeer(s)
	return err
}

func natsURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
		return fmt.Errorf("%q is not a nats:// or tls:// URL", s)
	}
	return nil
}

func boxName(s string) error {
	if strings.ContainsAny(s, " .*>\t") {
		return fmt.Errorf("%q: a box name has no spaces, dots, * or >", s)
	}
	return nil
}

func httpURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

func mustPrefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// Join makes one error of problems, one line each.
func Join(errs []error) error { return errors.Join(errs...) }

// FlagNames lists every option's flag, for callers that reject unknown ones.
func FlagNames() []string {
	var out []string
	for _, o := range Default().Options() {
		out = append(out, o.Flag)
	}
	slices.Sort(out)
	return out
}
