package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Counter indexes of the per-CPU counters (enum counter in xdp.c).
type Counter uint32

// Counters kept by the XDP program.
const (
	RX Counter = iota
	BanDrop
	BypassForward
	BypassPass
	BypassDrop
	ToXSK
	XSKMissing
	FailOpenForward
	FailOpenPass
	NotIP
	Tunnel     // tunnelled frames (the outer header never meets a bypass entry or ban)
	TunnelOpen // ... opened in the kernel: bypass and bans apply to the inner flow
	Shed       // over a CPU's budget to the workers: forwarded or passed uninspected
	NumCounters
)

var counterNames = [NumCounters]string{"rx", "ban_drop", "bypass_forward", "bypass_pass", "bypass_drop",
	"to_xsk", "xsk_missing", "failopen_forward", "failopen_pass", "not_ip", "tunnel", "tunnel_open", "shed"}

func (c Counter) String() string {
	if c < NumCounters {
		return counterNames[c]
	}
	return fmt.Sprintf("counter(%d)", uint32(c))
}

// Mode says what the kernel does with packets nobody reads.
type Mode uint32

// Modes.
const (
	Bridge  Mode = 0 // forward to the other port
	Monitor Mode = 1 // pass to the stack (a mirror port forwards nothing)
)

// Action of a bypass entry for a decided flow.
type Action uint32

// Bypass actions.
const (
	Forward Action = 1 // to the other bridge port, in the kernel
	Pass    Action = 2 // to the local stack
	Drop    Action = 3
)

// Options configure Load.
type Options struct {
	// PinPath is a directory in bpffs where the ban map is pinned (and
	// found again after a restart). Empty: nothing is pinned.
	PinPath string
}

// Objects are the loaded XDP program and its maps.
type Objects struct {
	objs xdpObjects // unexported: every write goes through a method that keeps the maps' invariants (a ban bumps the epoch)
}

// Close releases the program and the maps (pinned maps stay pinned).
func (o *Objects) Close() error { return o.objs.Close() }

// ErrNoBPF means the kernel refused to load the program (no BPF, or no
// privileges).
var ErrNoBPF = errors.New("cannot load BPF programs (needs root/CAP_BPF and a kernel with XDP)")

// Load loads the program and its maps into the kernel.
func Load(o Options) (*Objects, error) {
	spec, err := loadXdp()
	if err != nil {
		return nil, fmt.Errorf("load XDP spec: %w", err)
	}
	var opts ebpf.CollectionOptions
	if o.PinPath != "" {
		if err := EnsureBPFFS(o.PinPath); err != nil {
			return nil, err
		}
		opts.Maps.PinPath = o.PinPath
	} else {
		spec.Maps["bans"].Pinning = ebpf.PinNone
		spec.Maps["ban_epoch"].Pinning = ebpf.PinNone
	}
	var objs Objects
	if err := spec.LoadAndAssign(&objs.objs, &opts); err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("load XDP program: %w: %w", ErrNoBPF, err)
		}
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	// Packets for the workers leave through the socket program (the only
	// one that names the XSKMAP).
	if err := objs.objs.SocketProg.Put(uint32(0), objs.objs.ToSocket); err != nil {
		objs.Close()
		return nil, fmt.Errorf("load XDP program: socket program: %w", err)
	}
	// The epoch starts at 1 or more: at 0 the program checks every decided
	// packet's bans (a ban map no epoch has seen, as after the epoch's pin
	// was lost), which cost a box that had never banned anyone two hash
	// lookups on every bypassed packet.
	if err := objs.bans().touch(); err != nil {
		objs.Close()
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	return &objs, nil
}

// Repin pins the ban map and its epoch in dir again when their files are
// gone (the file deleted, bpffs unmounted and mounted again): the maps
// live on in the kernel as long as the program holds them, and the next
// start finds them, and the bans, where it looks. It returns how many it
// pinned.
func (o *Objects) Repin(dir string) (int, error) {
	n := 0
	for name, m := range map[string]*ebpf.Map{"bans": o.objs.Bans, "ban_epoch": o.objs.BanEpoch} {
		path := filepath.Join(dir, name)
		if _, err := os.Stat(path); err == nil || !os.IsNotExist(err) {
			continue
		}
		if err := EnsureBPFFS(dir); err != nil {
			return n, err
		}
		if err := m.Unpin(); err != nil {
			return n, fmt.Errorf("repin %s: %w", name, err)
		}
		if err := m.Pin(path); err != nil {
			return n, fmt.Errorf("repin %s: %w", name, err)
		}
		n++
	}
	return n, nil
}

// ProgramID is the kernel's id of the loaded XDP program.
func (o *Objects) ProgramID() (uint32, error) {
	info, err := o.objs.Swarmguard.Info()
	if err != nil {
		return 0, fmt.Errorf("program info: %w", err)
	}
	id, _ := info.ID()
	return uint32(id), nil
}

// DefaultPinPath is where swarmguard pins its ban map.
const DefaultPinPath = "/sys/fs/bpf/swarmguard"

// EnsureBPFFS makes dir, a directory inside a bpffs mount, mounting bpffs on
// /sys/fs/bpf first when nothing is mounted there.
func EnsureBPFFS(dir string) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/bpf", &st); err == nil && st.Type != unix.BPF_FS_MAGIC {
		if err := unix.Mount("bpf", "/sys/fs/bpf", "bpf", 0, ""); err != nil {
			return fmt.Errorf("mount bpffs on /sys/fs/bpf: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pin path %s: %w", dir, err)
	}
	return nil
}

// Program is the XDP program to attach.
func (o *Objects) Program() *ebpf.Program { return o.objs.Swarmguard }

// Configure sets the mode, the sockets per rx queue, the fail-open timeout
// and each CPU's budget of packets per second to the workers (0: none).
func (o *Objects) Configure(mode Mode, perQueue int, failOpen time.Duration, userPPS int) error {
	c := xdpConfig{Mode: uint32(mode), PerQueue: uint32(max(perQueue, 1)), FailopenNs: uint64(failOpen)}
	if userPPS > 0 {
		c.ShedCostNs = uint64(max(1, int(time.Second)/userPPS))
	}
	if err := o.objs.Cfg.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("configure XDP program: %w", err)
	}
	return nil
}

// Monotonic is the clock the program compares with: CLOCK_MONOTONIC in ns.
func Monotonic() uint64 {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Beat tells the program that userspace is alive now.
func (o *Objects) Beat() error {
	if err := o.objs.Heartbeat.Put(uint32(0), Monotonic()); err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

func addr16(a netip.Addr) xdpAddr16 { return xdpAddr16{A: a.As16()} }

// Ban drops every packet from or to a until the given monotonic time (ns).
func (o *Objects) Ban(a netip.Addr, until uint64) error { return o.bans().Add(a, until) }

// Unban removes a's ban; a missing ban is not an error.
func (o *Objects) Unban(a netip.Addr) error {
	if err := o.bans().Del(a); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// BanList returns every ban with its expiry (monotonic ns).
func (o *Objects) BanList() (map[netip.Addr]uint64, error) { return o.bans().List() }

func (o *Objects) bans() *Bans { return &Bans{m: o.objs.Bans, epoch: o.objs.BanEpoch} }

// Bans is the loaded program's ban map with its epoch (not to be closed:
// the objects own it).
func (o *Objects) Bans() *Bans { return o.bans() }

// TouchBans bumps the ban epoch, so that decided flows check their
// endpoints' bans again (Ban, Unban and the bans command do it themselves).
func (o *Objects) TouchBans() error { return o.bans().touch() }

// FlowKey is a symmetric flow key as the program builds it (the fields of
// shard.Key; dataplane/live converts one into the other).
type FlowKey = xdpFlowKey

// BypassStats are the kernel's counters of a bypassed flow.
type BypassStats struct {
	Action         Action
	Packets, Bytes uint64 // both directions
	// FromLo counts the packets and bytes from the key's Lo end, the rest
	// came from Hi.
	FromLo struct{ Packets, Bytes uint64 }
}

// KeyHash is the bypass map's key for flow k: the program's bypass_hash,
// over the key's five 64-bit words as the kernel lays them out.
func KeyHash(k FlowKey) uint64 {
	var b [40]byte
	copy(b[0:16], k.Lo[:])
	copy(b[16:32], k.Hi[:])
	binary.LittleEndian.PutUint16(b[32:], k.LoPort)
	binary.LittleEndian.PutUint16(b[34:], k.HiPort)
	binary.LittleEndian.PutUint16(b[36:], k.PathLo)
	b[38], b[39] = k.Proto, k.PathHi
	w := func(i int) uint64 { return binary.LittleEndian.Uint64(b[8*i:]) }
	return mix(w(0)*0x9e3779b97f4a7c15 ^ w(1)*0xc2b2ae3d27d4eb4f ^ w(2)*0x165667b19e3779f9 ^
		w(3)*0xd6e8feb86659fd93 ^ w(4)*0xff51afd7ed558ccd)
}

// mix is the program's mix (a 64-bit finalizer).
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// SetBypass makes the kernel handle flow k with action from now on. A
// flow whose key hashes like k's loses its entry (it goes back to the
// workers, who decide it again).
func (o *Objects) SetBypass(k FlowKey, action Action) error {
	v := xdpBypassVal{Key: k, Action: uint32(action)}
	if err := o.objs.Bypass.Put(KeyHash(k), &v); err != nil {
		return fmt.Errorf("bypass: %w", err)
	}
	return nil
}

// BypassOf returns the kernel's counters of a bypassed flow.
func (o *Objects) BypassOf(k FlowKey) (BypassStats, error) {
	var v xdpBypassVal
	if err := o.objs.Bypass.Lookup(KeyHash(k), &v); err != nil {
		return BypassStats{}, fmt.Errorf("bypass lookup: %w", err)
	}
	if v.Key != k {
		return BypassStats{}, fmt.Errorf("bypass lookup: %w (another flow has the hash)", ebpf.ErrKeyNotExist)
	}
	st := BypassStats{Action: Action(v.Action), Packets: v.Packets[0] + v.Packets[1], Bytes: v.Bytes[0] + v.Bytes[1]}
	st.FromLo.Packets, st.FromLo.Bytes = v.Packets[0], v.Bytes[0]
	return st, nil
}

// RangeBypass calls fn for every flow in the bypass map with its action
// (a reload revisits drop entries).
func (o *Objects) RangeBypass(fn func(k FlowKey, a Action)) error {
	var h uint64
	var v xdpBypassVal
	it := o.objs.Bypass.Iterate()
	for it.Next(&h, &v) {
		fn(v.Key, Action(v.Action))
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("bypass: iterate: %w", err)
	}
	return nil
}

// SetPeerPort makes in's packets forwarded by the kernel leave through out.
func (o *Objects) SetPeerPort(in, out int) error {
	if err := o.objs.PeerPort.Put(uint32(in), uint32(out)); err != nil {
		return fmt.Errorf("bridge port %d -> %d: %w", in, out, err)
	}
	return nil
}

// SetSocket registers an AF_XDP socket fd at slot base+queue*perQueue+i of
// the port whose first slot is base (SetPortBase).
func (o *Objects) SetSocket(slot, fd int) error {
	if err := o.objs.Xsks.Put(uint32(slot), uint32(fd)); err != nil {
		return fmt.Errorf("register socket in slot %d: %w", slot, err)
	}
	return nil
}

// SetPortBase gives the port ifindex its first XSKMAP slot.
func (o *Objects) SetPortBase(ifindex, base int) error {
	if err := o.objs.PortBase.Put(uint32(ifindex), uint32(base)); err != nil {
		return fmt.Errorf("port %d base slot: %w", ifindex, err)
	}
	return nil
}

// MaxSockets is the XSKMAP size.
const MaxSockets = 256

// Counters sums the per-CPU counters.
func (o *Objects) Counters() ([NumCounters]uint64, error) {
	var out [NumCounters]uint64
	for c := Counter(0); c < NumCounters; c++ {
		var per []uint64
		if err := o.objs.Counters.Lookup(uint32(c), &per); err != nil {
			return out, fmt.Errorf("counter %s: %w", c, err)
		}
		for _, v := range per {
			out[c] += v
		}
	}
	return out, nil
}

// Bans is the pinned ban map with its epoch, opened on its own (swarmguard
// bans) or from the loaded objects. Every change bumps the epoch: the XDP
// program checks the bans of a decided flow only when the epoch moved.
type Bans struct{ m, epoch *ebpf.Map }

// OpenBans opens the ban map pinned in dir by a running or previous swarmguard.
func OpenBans(dir string) (*Bans, error) {
	m, err := ebpf.LoadPinnedMap(dir+"/bans", nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned ban map in %s (has swarmguard run?): %w", dir, err)
	}
	e, err := ebpf.LoadPinnedMap(dir+"/ban_epoch", nil)
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open pinned ban epoch in %s: %w", dir, err)
	}
	return &Bans{m: m, epoch: e}, nil
}

// touch bumps the epoch (concurrent bumps may merge: any change is enough).
func (b *Bans) touch() error {
	var v uint64
	if err := b.epoch.Lookup(uint32(0), &v); err != nil {
		return fmt.Errorf("ban epoch: %w", err)
	}
	if err := b.epoch.Put(uint32(0), v+1); err != nil {
		return fmt.Errorf("ban epoch: %w", err)
	}
	return nil
}

// List returns every ban and its expiry (monotonic ns).
func (b *Bans) List() (map[netip.Addr]uint64, error) {
	out := map[netip.Addr]uint64{}
	var k xdpAddr16
	var v uint64
	it := b.m.Iterate()
	for it.Next(&k, &v) {
		out[netip.AddrFrom16(k.A).Unmap()] = v
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list bans: %w", err)
	}
	return out, nil
}

// Add bans a until the monotonic time until (ns).
func (b *Bans) Add(a netip.Addr, until uint64) error {
	k := addr16(a)
	if err := b.m.Put(&k, until); err != nil {
		return fmt.Errorf("ban %s: %w", a, err)
	}
	return b.touch()
}

// Del removes a's ban.
func (b *Bans) Del(a netip.Addr) error {
	k := addr16(a)
	if err := b.m.Delete(&k); err != nil {
		return fmt.Errorf("unban %s: %w", a, err)
	}
	return b.touch()
}

// Flush removes every ban.
func (b *Bans) Flush() error {
	list, err := b.List()
	if err != nil {
		return err
	}
	for a := range list {
		if err := b.Del(a); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the maps (the pins stay).
func (b *Bans) Close() error {
	b.epoch.Close()
	return b.m.Close()
}
