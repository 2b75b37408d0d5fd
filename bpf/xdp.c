//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// swarmguard XDP program: drops banned hosts, handles decided flows in the
// kernel (bypass map), and steers everything else to the AF_XDP socket of the
// worker that owns the flow. Fails open when userspace stops beating.
//
// Regenerate the Go bindings and object with `go generate ./bpf` (clang,
// libbpf-dev); both are committed so builds need no clang.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char __license[] SEC("license") = "Dual BSD/GPL";

#define MAX_VLAN 4
#define MAX_V6_EXT 6 // shard/packet.MaxIPv6ExtHdrs: the kernel keys the flows userspace keys
#define MAX_SOCKETS 256
#define MAX_OFF 4095 // parse offsets are bounded (a mask) for the verifier; frames are shorter

// shard/packet's Encap bits, the kinds mix_path folds in.
#define ENCAP_VLAN 1
#define ENCAP_PPPOE 8
#define ENCAP_GRE 32
#define ENCAP_VXLAN 256
#define ENCAP_GENEVE 512
#define MAX_MPLS 8 // shard/packet.MaxMPLSLabels

// Counter indexes (per CPU). Keep in sync with bpf.Counter in Go.
enum counter {
	C_RX = 0,         // every packet seen
	C_BAN_DROP,       // dropped: source or destination banned
	C_BYPASS_FWD,     // decided flow forwarded in the kernel
	C_BYPASS_PASS,    // decided flow passed to the stack
	C_BYPASS_DROP,    // decided flow dropped
	C_TO_XSK,         // redirected to a worker socket
	C_XSK_MISSING,    // no socket for the queue/slot: handled as fail-open
	C_FAILOPEN_FWD,   // heartbeat stale (or no socket): forwarded in the kernel
	C_FAILOPEN_PASS,  // heartbeat stale (or no socket): passed (monitor mode)
	C_NOT_IP,         // not IPv4/IPv6: forwarded/passed like fail-open
	C_TUNNEL,         // tunnelled (PPPoE, MPLS, IP-in-IP, GRE, GTP-U, VXLAN, Geneve, Teredo)
	C_TUNNEL_OPEN,    // ... and opened here: bypass and bans apply to the inner flow
	C_SHED,           // over this CPU's budget to the workers: forwarded/passed uninspected (overload)
	C_MAX,
};

// Modes.
#define MODE_BRIDGE 0
#define MODE_MONITOR 1

// Bypass actions.
#define BYPASS_FORWARD 1
#define BYPASS_PASS 2
#define BYPASS_DROP 3

struct config {
	__u32 mode;           // MODE_BRIDGE or MODE_MONITOR
	__u32 per_queue;      // sockets sharing each rx queue (>= 1)
	__u64 failopen_ns;    // heartbeat age after which the kernel takes over
	__u64 shed_cost_ns;   // budget each packet to a worker costs (1e9 / packets per second per CPU); 0: no budget
};

// The budget to the workers, per CPU: credit in ns, earned with time up to
// SHED_BURST_NS and spent shed_cost_ns a packet. A CPU out of credit sends a
// sixteenth of the flows (by hash) on and forwards or passes the rest
// uninspected (C_SHED): an overloaded box sheds on purpose and keeps its
// decisions, instead of overflowing the sockets' rings.
#define SHED_BURST_NS 100000000ULL
struct shed_credit {
	__u64 credit_ns;
	__u64 last_ns;
};

// A flow key with the fields of userspace's shard.Key, in its symmetric
// order: the endpoint with the lower (address, port) is lo. Addresses are
// 16 bytes, IPv4 mapped; the path (24 bits, path_lo | path_hi << 16) is
// shard's subscriber path: one VLAN tag's id, two tags' outer << 12 | inner,
// more folded by mix_path (packet.mixPath), 0 untagged. A decision on one
// path is never applied to the same 5-tuple on another.
// dataplane/live's kernel-key test runs this program against the Go key.
struct flow_key {
	__u8 lo[16];
	__u8 hi[16];
	__u16 lo_port;
	__u16 hi_port;
	__u16 path_lo;
	__u8 proto;
	__u8 path_hi;
};

// udp_tunnel reports whether UDP ports say GTP-U, VXLAN, Geneve or Teredo:
// the tunnels this program tries to open.
static __always_inline int udp_tunnel(__u16 sport, __u16 dport)
{
	return sport == 2152 || dport == 2152 || dport == 4789 || dport == 6081 || sport == 3544 || dport == 3544;
}

// mix_path folds a tag id into a path as packet.mixPath does (kind 1: VLAN).
static __always_inline __u32 mix_path(__u32 p, __u64 kind, __u32 id)
{
	__u64 h = ((__u64)p << 32 | id) ^ (kind << 48);
	h *= 0x9e3779b97f4a7c15ULL;
	return (__u32)(h >> 40) & 0xffffff;
}

// A bypass entry is keyed by its flow's 64-bit key hash (bypass_hash), so
// that the map hashes and compares 8 bytes instead of the 40-byte key;
// the key itself is kept here and compared, so a hash collision is a miss,
// never another flow's action.
//
// The counts are per direction, [0] from the key's lo end: one direction of
// a flow comes in on one rx queue, whose packets one CPU runs at a time
// (NAPI), so plain adds lose nothing where one pair of counters for both
// directions needed two atomic adds (~13 ns of a decided packet's ~70).
struct bypass_val {
	struct flow_key key;
	__u32 action;
	__u32 pad;
	__u64 packets[2];
	__u64 bytes[2];
	__u64 ban_epoch; // ban_epoch when this flow's endpoints were last checked
};

struct addr16 {
	__u8 a[16];
};

// Pinned by name in the pin path, so bans survive a restart of swarmguard.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 18);
	__type(key, struct addr16);
	__type(value, __u64); // expiry, CLOCK_MONOTONIC ns
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} bans SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, __u64); // bypass_hash of the flow key
	__type(value, struct bypass_val);
} bypass SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_SOCKETS);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

// The socket program (to_socket), the only one that names the XSKMAP,
// for the tail call of a packet that goes to a worker: on Linux 6.18 a
// program that references an XSKMAP pays ~17 ns on every run, whatever
// the packet's path (BENCHMARKS.md, issue 13 item 2), so the program
// attached to the ports does not. Set by userspace on load.
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} socket_prog SEC(".maps");

// The slot chosen for the packet being tail-called to to_socket: a tail
// call takes no arguments.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} socket_slot SEC(".maps");

// First XSKMAP slot of each port, keyed by ingress ifindex: two ports'
// sockets of the same queue number must not share a slot.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} port_base SEC(".maps");

// Egress port of a bridge, keyed by ingress ifindex.
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} peer_port SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, C_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct shed_credit);
} shed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct config);
} cfg SEC(".maps");

// Bumped by userspace at every change of the ban map: a bypassed flow whose
// entry saw the same epoch needs no ban lookups (pinned with the bans).
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ban_epoch SEC(".maps");

// Last heartbeat of userspace, CLOCK_MONOTONIC ns.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} heartbeat SEC(".maps");

static __always_inline void count(__u32 c)
{
	__u64 *v = bpf_map_lookup_elem(&counters, &c);
	if (v)
		*v += 1;
}

static __always_inline int banned(struct addr16 *a, __u64 now)
{
	__u64 *exp = bpf_map_lookup_elem(&bans, a);
	return exp && *exp > now;
}

// less orders (a, ap) < (b, bp) as userspace does (the address bytes as
// two big-endian words, then the port): two compares, not sixteen.
static __always_inline int less(const __u8 *a, __u16 ap, const __u8 *b, __u16 bp)
{
	__u64 a0, a1, b0, b1;
	__builtin_memcpy(&a0, a, 8);
	__builtin_memcpy(&a1, a + 8, 8);
	__builtin_memcpy(&b0, b, 8);
	__builtin_memcpy(&b1, b + 8, 8);
	a0 = bpf_be64_to_cpu(a0);
	b0 = bpf_be64_to_cpu(b0);
	if (a0 != b0)
		return a0 < b0;
	a1 = bpf_be64_to_cpu(a1);
	b1 = bpf_be64_to_cpu(b1);
	if (a1 != b1)
		return a1 < b1;
	return ap < bp;
}

static __always_inline __u64 mix(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

// tunnel_hash steers a tunnelled frame: a hash the same both ways of the
// tunnel, so that every inner flow's two directions reach one worker (the
// inner 5-tuple is userspace's to read; VXLAN's outer source port differs
// per direction, MPLS labels too). For IP tunnels the sorted outer
// addresses; for PPPoE and MPLS the sorted MACs and the PPPoE session.
static __always_inline __u32 tunnel_hash(struct flow_key *k, struct ethhdr *eth, __u32 session)
{
	__u64 a = 0, b = 0;
	if (k) {
		__u64 *w = (__u64 *)k;
		return (__u32)mix(mix(mix(mix(0x9e3779b97f4a7c15ULL ^ w[0]) ^ w[1]) ^ w[2]) ^ w[3]);
	}
	__builtin_memcpy(&a, eth->h_source, 6);
	__builtin_memcpy(&b, eth->h_dest, 6);
	if (a > b) {
		__u64 t = a;
		a = b;
		b = t;
	}
	return (__u32)mix(mix(a ^ 0x9e3779b97f4a7c15ULL) ^ b ^ ((__u64)session << 48));
}

// bypass_hash is the 64-bit hash of the symmetric key (the same for both
// directions of a flow): the bypass map's key, and the spread over a
// queue's workers. The five words are multiplied independently, so the
// products overlap in the pipeline, and mixed once (bpf.KeyHash is the
// same function in Go).
static __always_inline __u64 bypass_hash(struct flow_key *k)
{
	__u64 *w = (__u64 *)k;
	return mix(w[0] * 0x9e3779b97f4a7c15ULL ^ w[1] * 0xc2b2ae3d27d4eb4fULL ^ w[2] * 0x165667b19e3779f9ULL ^
		   w[3] * 0xd6e8feb86659fd93ULL ^ w[4] * 0xff51afd7ed558ccdULL);
}

static __always_inline int same_key(struct flow_key *a, struct flow_key *b)
{
	__u64 *x = (__u64 *)a, *y = (__u64 *)b;
	return ((x[0] ^ y[0]) | (x[1] ^ y[1]) | (x[2] ^ y[2]) | (x[3] ^ y[3]) | (x[4] ^ y[4])) == 0;
}

// fail_open is what happens to packets no worker will read.
static __always_inline int fail_open(struct xdp_md *ctx, struct config *c, __u32 ctr_fwd_or_pass);

// to_worker redirects to the socket of the worker that owns hash h on this
// rx queue, or fails open when nobody reads the sockets.
static __always_inline int to_worker(struct xdp_md *ctx, struct config *c, __u64 *hb, __u32 h)
{
	__u64 now = bpf_ktime_get_ns();
	// Nobody reads the sockets: the kernel takes over. A beat written on
	// another CPU after now was read is newer than now, not 2^64 ns old:
	// the unsigned difference would wrap and fail one packet open.
	__u64 beat = *hb;
	if (now > beat && now - beat > c->failopen_ns)
		return fail_open(ctx, c, C_FAILOPEN_FWD);
	__u32 per = c->per_queue ? c->per_queue : 1;
	__u32 ifidx = ctx->ingress_ifindex;
	__u32 *base = bpf_map_lookup_elem(&port_base, &ifidx);
	__u32 slot = (base ? *base : 0) + ctx->rx_queue_index * per + h % per;
	if (slot >= MAX_SOCKETS) {
		count(C_XSK_MISSING);
		return fail_open(ctx, c, C_FAILOPEN_FWD);
	}
	if (c->shed_cost_ns) {
		__u32 zero = 0;
		struct shed_credit *sc = bpf_map_lookup_elem(&shed, &zero);
		if (sc) {
			__u64 credit = sc->credit_ns + (now - sc->last_ns);
			if (credit > SHED_BURST_NS || now < sc->last_ns)
				credit = SHED_BURST_NS;
			sc->last_ns = now;
			if (credit >= c->shed_cost_ns)
				credit -= c->shed_cost_ns;
			else if (h >> 28) { // not the sampled sixteenth
				sc->credit_ns = credit;
				count(C_SHED);
				if (c->mode == MODE_MONITOR)
					return XDP_PASS;
				return bpf_redirect_map(&peer_port, ctx->ingress_ifindex, XDP_PASS);
			}
			sc->credit_ns = credit;
		}
	}
	__u32 zero = 0;
	__u32 *scratch = bpf_map_lookup_elem(&socket_slot, &zero);
	if (scratch) {
		*scratch = slot;
		bpf_tail_call(ctx, &socket_prog, 0);
	}
	// No socket program: nobody reads the sockets.
	count(C_XSK_MISSING);
	return fail_open(ctx, c, C_FAILOPEN_FWD);
}

// fail_open is what happens to packets no worker will read.
static __always_inline int fail_open(struct xdp_md *ctx, struct config *c, __u32 ctr_fwd_or_pass)
{
	if (c->mode == MODE_MONITOR) {
		count(C_FAILOPEN_PASS);
		return XDP_PASS;
	}
	count(ctr_fwd_or_pass);
	return bpf_redirect_map(&peer_port, ctx->ingress_ifindex, XDP_PASS);
}

// ip_out is what parse_ip reads of an IP header and the ports after it.
struct ip_out {
	struct addr16 src, dst;
	__u32 l4off;     // offset of the L4 header in the frame
	__s32 wire;      // L4 bytes on the wire
	__u16 sport, dport;
	__u8 l4proto;
	__u8 fragment;   // a non-first fragment: no ports
	__u16 pad;
};

// parse_ip reads the IPv4 (v6 == 0) or IPv6 header at offset off of the
// frame, IPv6's extension headers, and the TCP/UDP ports. A global function:
// the verifier checks it once, not once for every VLAN stack and tunnel the
// caller came through. Returns 0, or -1 when the header is cut short.
__attribute__((noinline)) int parse_ip(struct xdp_md *ctx, __u32 off, __u32 v6, struct ip_out *o)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (!o)
		return -1;
	off &= MAX_OFF; // a bound the verifier sees (headers lie within the first 4 KiB)
	void *l3 = data + off;
	void *l4;
	__u8 l4proto;
	int fragment = 0;
	if (!v6) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return -1;
		__builtin_memset(&o->src, 0, sizeof(o->src));
		__builtin_memset(&o->dst, 0, sizeof(o->dst));
		o->src.a[10] = o->src.a[11] = o->dst.a[10] = o->dst.a[11] = 0xff;
		__builtin_memcpy(&o->src.a[12], &ip->saddr, 4);
		__builtin_memcpy(&o->dst.a[12], &ip->daddr, 4);
		l4proto = ip->protocol;
		l4 = l3 + ip->ihl * 4;
		o->wire = (int)bpf_ntohs(ip->tot_len) - ip->ihl * 4;
		fragment = (ip->frag_off & bpf_htons(0x1fff)) != 0;
	} else {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(o->src.a, &ip6->saddr, 16);
		__builtin_memcpy(o->dst.a, &ip6->daddr, 16);
		l4proto = ip6->nexthdr;
		l4 = ip6 + 1;
		int plen = bpf_ntohs(ip6->payload_len);
		for (int i = 0; i < MAX_V6_EXT; i++) {
			if (l4proto != IPPROTO_HOPOPTS && l4proto != IPPROTO_ROUTING && l4proto != IPPROTO_DSTOPTS &&
			    l4proto != IPPROTO_FRAGMENT && l4proto != IPPROTO_AH)
				break;
			if (l4 + 8 > end)
				break;
			__u8 next = *(__u8 *)l4;
			if (l4proto == IPPROTO_FRAGMENT) {
				fragment = (*(__u16 *)(l4 + 2) & bpf_htons(0xfff8)) != 0;
				l4 += 8;
			} else if (l4proto == IPPROTO_AH) {
				l4 += (*(__u8 *)(l4 + 1) + 2) * 4;
			} else {
				l4 += (*(__u8 *)(l4 + 1) + 1) * 8;
			}
			l4proto = next;
		}
		o->wire = plen - (int)(l4 - (void *)(ip6 + 1)); // what the decoder has left after the extensions
	}
	o->l4proto = l4proto;
	o->fragment = fragment;
	o->sport = o->dport = 0;
	if (!fragment && (l4proto == IPPROTO_TCP || l4proto == IPPROTO_UDP) && l4 + 4 <= end) {
		o->sport = bpf_ntohs(*(__u16 *)l4);
		o->dport = bpf_ntohs(*(__u16 *)(l4 + 2));
	}
	o->l4off = (__u32)(l4 - data);
	return 0;
}

// inner_eth reads the Ethernet frame a tunnel carries at p, and its VLAN
// tags (folded into *path as shard/packet folds tags inside tunnels); it
// returns where its payload starts and sets *proto, or 0 when cut short.
static __always_inline void *inner_eth(void *p, void *end, __u16 *proto, __u32 *path)
{
	struct ethhdr *ie = p;
	if ((void *)(ie + 1) > end)
		return 0;
	__u16 et = ie->h_proto;
	void *next = ie + 1;
	for (int i = 0; i < MAX_VLAN; i++) {
		if (et != bpf_htons(ETH_P_8021Q) && et != bpf_htons(ETH_P_8021AD) && et != bpf_htons(0x9100))
			break;
		if (next + 4 > end)
			return 0;
		*path = mix_path(*path, ENCAP_VLAN, bpf_ntohs(*(__u16 *)next) & 0x0fff);
		et = *(__u16 *)(next + 2);
		next += 4;
	}
	*proto = et;
	return next;
}

// decide_flow applies the bypass map and the bans to flow k and sends it on;
// from_hi says the packet came from the key's hi end.
// The bans are checked on the key's two endpoints: the same pair as source
// and destination, in the key's order.
static __always_inline int decide_flow(struct xdp_md *ctx, struct config *c, __u64 *hb, struct flow_key *kp, int from_hi)
{
	// A decided packet reads no clock (an entry ages out of the LRU map, and
	// nobody read its last-seen time): the precise clock cost it 30 of its
	// 110 ns in a VM, the coarse one 4-10 of 70. Ban expiry (checked when
	// the ban map changed), the heartbeat and the shed budget read the
	// precise clock.
	__u32 zero = 0;
	if (!kp)
		return XDP_PASS;
	struct flow_key k = *kp;
	__u64 len = ctx->data_end - ctx->data;
	// A decided flow checks its endpoints' bans only when the ban map has
	// changed since it last did (the epoch): decided packets skip two lookups.
	__u64 *epoch = bpf_map_lookup_elem(&ban_epoch, &zero);
	__u64 ep = epoch ? *epoch : 0;
	__u64 kh = bypass_hash(&k);
	struct bypass_val *bv = bpf_map_lookup_elem(&bypass, &kh);
	if (bv && !same_key(&bv->key, &k))
		bv = 0; // another flow with the same hash: a miss
	if (!bv || bv->ban_epoch != ep || ep == 0) {
		__u64 now = bpf_ktime_get_ns();
		if (banned((struct addr16 *)k.lo, now) || banned((struct addr16 *)k.hi, now)) {
			count(C_BAN_DROP);
			return XDP_DROP;
		}
		if (bv)
			bv->ban_epoch = ep;
	}
	if (bv) {
		int d = from_hi & 1;
		bv->packets[d] += 1;
		bv->bytes[d] += len;
		switch (bv->action) {
		case BYPASS_DROP:
			count(C_BYPASS_DROP);
			return XDP_DROP;
		case BYPASS_PASS:
			count(C_BYPASS_PASS);
			return XDP_PASS;
		case BYPASS_FORWARD:
			if (c->mode == MODE_MONITOR) {
				count(C_BYPASS_PASS);
				return XDP_PASS;
			}
			count(C_BYPASS_FWD);
			return bpf_redirect_map(&peer_port, ctx->ingress_ifindex, XDP_PASS);
		}
	}

	return to_worker(ctx, c, hb, (__u32)kh);
}

SEC("xdp")
int swarmguard(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct config *c = bpf_map_lookup_elem(&cfg, &zero);
	__u64 *hb = bpf_map_lookup_elem(&heartbeat, &zero);
	if (!c || !hb)
		return XDP_PASS;
	count(C_RX);

	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return fail_open(ctx, c, C_NOT_IP);
	__u16 proto = eth->h_proto;

	// The light path: an untagged IPv4 header without options or IPv6
	// without extension headers, carrying TCP or UDP that is no tunnel this
	// program opens, makes its key here without the general parse (no
	// call, no copies): nearly every packet of an edge. The rest takes
	// the general path below, which keys the same packets the same way.
	struct flow_key k = {};
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) + 4 <= end && ip->ihl == 5 && !(ip->frag_off & bpf_htons(0x1fff)) &&
		    (ip->protocol == IPPROTO_TCP || ip->protocol == IPPROTO_UDP)) {
			__u16 sp = bpf_ntohs(*(__u16 *)(ip + 1)), dp = bpf_ntohs(*((__u16 *)(ip + 1) + 1));
			if (ip->protocol == IPPROTO_TCP || !udp_tunnel(sp, dp)) {
				__u32 s4 = bpf_ntohl(ip->saddr), d4 = bpf_ntohl(ip->daddr);
				k.proto = ip->protocol;
				k.lo[10] = k.lo[11] = k.hi[10] = k.hi[11] = 0xff;
				int from_hi = !(s4 < d4 || (s4 == d4 && sp < dp));
				if (!from_hi) {
					__builtin_memcpy(&k.lo[12], &ip->saddr, 4);
					__builtin_memcpy(&k.hi[12], &ip->daddr, 4);
					k.lo_port = sp;
					k.hi_port = dp;
				} else {
					__builtin_memcpy(&k.lo[12], &ip->daddr, 4);
					__builtin_memcpy(&k.hi[12], &ip->saddr, 4);
					k.lo_port = dp;
					k.hi_port = sp;
				}
				return decide_flow(ctx, c, hb, &k, from_hi);
			}
		}
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) + 4 <= end && (ip6->nexthdr == IPPROTO_TCP || ip6->nexthdr == IPPROTO_UDP)) {
			__u16 sp = bpf_ntohs(*(__u16 *)(ip6 + 1)), dp = bpf_ntohs(*((__u16 *)(ip6 + 1) + 1));
			if (ip6->nexthdr == IPPROTO_TCP || !udp_tunnel(sp, dp)) {
				k.proto = ip6->nexthdr;
				int from_hi = !less((__u8 *)&ip6->saddr, sp, (__u8 *)&ip6->daddr, dp);
				if (!from_hi) {
					__builtin_memcpy(k.lo, &ip6->saddr, 16);
					__builtin_memcpy(k.hi, &ip6->daddr, 16);
					k.lo_port = sp;
					k.hi_port = dp;
				} else {
					__builtin_memcpy(k.lo, &ip6->daddr, 16);
					__builtin_memcpy(k.hi, &ip6->saddr, 16);
					k.lo_port = dp;
					k.hi_port = sp;
				}
				return decide_flow(ctx, c, hb, &k, from_hi);
			}
		}
	}
	__u32 path = 0;
	void *l3 = eth + 1;
#pragma unroll
	for (int i = 0; i < MAX_VLAN; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD) && proto != bpf_htons(0x9100))
			break;
		if (l3 + 4 > end)
			return fail_open(ctx, c, C_NOT_IP);
		__u32 id = bpf_ntohs(*(__u16 *)l3) & 0x0fff;
		if (i == 0)
			path = id;
		else if (i == 1)
			path = path << 12 | id;
		else
			path = mix_path(path, ENCAP_VLAN, id);
		proto = *(__u16 *)(l3 + 2);
		l3 += 4;
	}

	// One tunnel of the simple kinds is opened here as shard/packet opens
	// it (the same path and inner key): a PPPoE session, and below IPv4
	// IP-in-IP, GRE (IP inside), GTP-U G-PDUs without optional fields and
	// VXLAN. Anything else tunnelled goes to a worker, which opens it.
	int tunnelled = 0;
	if (proto == bpf_htons(ETH_P_PPP_SES)) {
		if (l3 + 8 > end)
			return fail_open(ctx, c, C_NOT_IP);
		__u8 *p = l3;
		__u16 ppp = bpf_ntohs(*(__u16 *)(l3 + 6));
		if (p[0] != 0x11 || p[1] != 0 || (ppp != 0x0021 && ppp != 0x0057))
			return fail_open(ctx, c, C_NOT_IP); // discovery, LCP, ...: not IP
		path = mix_path(path, ENCAP_PPPOE, bpf_ntohs(*(__u16 *)(l3 + 2)));
		proto = ppp == 0x0021 ? bpf_htons(ETH_P_IP) : bpf_htons(ETH_P_IPV6);
		l3 += 8;
		tunnelled = 1;
	} else if (proto == bpf_htons(ETH_P_MPLS_UC) || proto == bpf_htons(ETH_P_MPLS_MC)) {
		// A label stack (labels differ per direction: no part of the path),
		// then IP by its nibble, or Ethernet after a pseudowire control
		// word (nibble 0) or without one.
		int bos = 0;
		for (int i = 0; i < MAX_MPLS; i++) {
			if (l3 + 4 > end)
				break;
			__u32 e = bpf_ntohl(*(__u32 *)l3);
			l3 += 4;
			if (e & 0x100) {
				bos = 1;
				break;
			}
		}
		if (!bos || l3 + 1 > end)
			return fail_open(ctx, c, C_NOT_IP); // the decoder calls it malformed
		__u8 v = *(__u8 *)l3 >> 4;
		if (v == 4) {
			proto = bpf_htons(ETH_P_IP);
		} else if (v == 6) {
			proto = bpf_htons(ETH_P_IPV6);
		} else {
			if (v == 0)
				l3 += 4;
			l3 = inner_eth(l3, end, &proto, &path);
			if (!l3 || (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))) {
				// Another tunnel inside, or ARP: the worker's to read.
				count(C_TUNNEL);
				return to_worker(ctx, c, hb, tunnel_hash(0, eth, 0));
			}
		}
		tunnelled = 1;
	}

	struct addr16 src = {}, dst = {};
	__u8 l4proto = 0;
	void *l4 = 0;
	int fragment = 0;
	__u16 sport = 0, dport = 0;
#pragma unroll
	for (int pass = 0; pass < 2; pass++) {
		if (proto != bpf_htons(ETH_P_IP) && proto != bpf_htons(ETH_P_IPV6))
			return fail_open(ctx, c, C_NOT_IP);
		struct ip_out o = {};
		if (l3 < data || l3 > end || parse_ip(ctx, (__u32)(l3 - data), proto == bpf_htons(ETH_P_IPV6), &o) != 0)
			return fail_open(ctx, c, C_NOT_IP);
		o.l4off &= MAX_OFF;
		src = o.src;
		dst = o.dst;
		l4proto = o.l4proto;
		fragment = o.fragment;
		sport = o.sport;
		dport = o.dport;
		int wire = o.wire;
		l4 = data + o.l4off;
		int tunnel = !fragment && (l4proto == IPPROTO_IPIP || l4proto == IPPROTO_IPV6 || l4proto == IPPROTO_GRE ||
					   (l4proto == IPPROTO_UDP && udp_tunnel(sport, dport)));
		if (!tunnel)
			break;
		if (pass == 0 && !tunnelled && wire >= 0) {
			void *next = 0;
			__u16 inner = 0;
			if (l4proto == IPPROTO_IPIP || l4proto == IPPROTO_IPV6) {
				next = l4;
				inner = 1; // by the version nibble, as the decoder reads it
			} else if (l4proto == IPPROTO_GRE && l4 + 4 <= end) {
				__u16 flags = bpf_ntohs(*(__u16 *)l4);
				__u16 gp = *(__u16 *)(l4 + 2);
				int hl = 4 + ((flags & 0xc000) ? 4 : 0);
				int ok = (flags & 7) == 0 && (gp == bpf_htons(ETH_P_IP) || gp == bpf_htons(ETH_P_IPV6) ||
							       gp == bpf_htons(0x6558) || gp == bpf_htons(0x88be) || gp == bpf_htons(0x22eb));
				if (ok && (flags & 0x2000)) {
					if (l4 + hl + 4 > end)
						return fail_open(ctx, c, C_NOT_IP);
					path = mix_path(path, ENCAP_GRE, bpf_ntohl(*(__u32 *)(l4 + hl)));
					hl += 4;
				}
				if (flags & 0x1000)
					hl += 4;
				void *b = l4 + hl;
				if (ok && (gp == bpf_htons(ETH_P_IP) || gp == bpf_htons(ETH_P_IPV6))) {
					next = b;
					inner = 1;
				} else if (ok && (gp == bpf_htons(0x6558) || (gp == bpf_htons(0x88be) && !(flags & 0x1000)))) {
					next = inner_eth(b, end, &inner, &path); // bridged Ethernet, ERSPAN type I
				} else if (ok && gp == bpf_htons(0x88be) && b + 8 <= end && (*(__u8 *)b >> 4) == 1) {
					next = inner_eth(b + 8, end, &inner, &path); // ERSPAN type II
				} else if (ok && gp == bpf_htons(0x22eb) && b + 12 <= end && (*(__u8 *)b >> 4) == 2) {
					int n = (*(__u8 *)(b + 11) & 1) ? 20 : 12; // ERSPAN type III, platform subheader
					next = inner_eth(b + n, end, &inner, &path);
				}
			} else if (l4proto == IPPROTO_UDP && l4 + 16 <= end) {
				int ulen = bpf_ntohs(*(__u16 *)(l4 + 4));
				if (ulen < 8 || ulen > wire)
					ulen = wire;
				__u8 *p = l4 + 8;
				if ((sport == 2152 || dport == 2152) && (p[0] >> 5) == 1 && (p[0] & 0x10) && p[1] == 0xff &&
				    (int)bpf_ntohs(*(__u16 *)(p + 2)) == ulen - 16) {
					// A G-PDU; the TEID differs per direction and is no part of
					// the path. Sequence, N-PDU and extension headers (at most
					// four) are skipped as the decoder skips them.
					int n = 8;
					if (p[0] & 0x07) {
						n = 12;
						if ((void *)p + 12 > end)
							return fail_open(ctx, c, C_NOT_IP);
						__u8 nx = p[11];
						for (int i = 0; i < 5 && nx; i++) {
							__u8 *e = (void *)p + n;
							if (i == 4 || (void *)(e + 1) > end || e[0] == 0 || n + 4 * e[0] > ulen - 8)
								return fail_open(ctx, c, C_NOT_IP);
							n += 4 * e[0];
							n &= 0xfff;
							if ((void *)p + n > end)
								return fail_open(ctx, c, C_NOT_IP);
							nx = *((__u8 *)p + n - 1);
						}
					}
					next = (void *)p + n;
					inner = 1;
				} else if (dport == 4789 && ulen >= 16 && p[0] == 0x08 && (p[1] | p[2] | p[3] | p[7]) == 0) {
					// (the header within the datagram's own length, as the decoder bounds it)
					__u32 vni = bpf_ntohl(*(__u32 *)(p + 4)) >> 8;
					path = mix_path(path, ENCAP_VXLAN, vni);
					next = inner_eth((void *)(p + 8), end, &inner, &path);
				} else if (dport == 6081 && ulen >= 16 && (p[0] >> 6) == 0 && p[7] == 0) {
					// Geneve: options (4-byte words), then Ethernet or IP, all
					// within the datagram as the decoder bounds it.
					int n = 8 + 4 * (p[0] & 0x3f);
					__u16 gp = *(__u16 *)(p + 2);
					if (n <= ulen - 8 && (void *)p + n <= end &&
					    (gp == bpf_htons(0x6558) || gp == bpf_htons(ETH_P_IP) || gp == bpf_htons(ETH_P_IPV6))) {
						path = mix_path(path, ENCAP_GENEVE, bpf_ntohl(*(__u32 *)(p + 4)) >> 8);
						next = (void *)p + n;
						if (gp != bpf_htons(0x6558))
							inner = 1;
						else
							next = inner_eth(next, end, &inner, &path);
					}
				} else if (sport == 3544 || dport == 3544) {
					// Teredo: an optional authentication header and origin
					// indication, then an IPv6 packet filling the datagram;
					// lengths as the decoder bounds them.
					int pl = ulen - 8;
					int cap = (int)((void *)end - (void *)p);
					int lp = cap < pl ? cap : pl;
					int n = 0;
					if (lp >= 13 && p[0] == 0 && p[1] == 1)
						n = 13 + p[2] + p[3];
					n &= 0x3ff;
					__u8 *q = (void *)p + n;
					if (lp >= n + 8 && (void *)(q + 2) <= end && q[0] == 0 && q[1] == 0)
						n += 8;
					n &= 0x3ff;
					q = (void *)p + n;
					if (lp >= n + 40 && (void *)(q + 6) <= end && (q[0] >> 4) == 6 &&
					    40 + (int)bpf_ntohs(*(__u16 *)(q + 4)) == pl - n) {
						next = q;
						inner = 1;
					}
				}
			}
			if (next && inner == 1) {
				// IP by its version nibble.
				if (next + 1 > end)
					return fail_open(ctx, c, C_NOT_IP);
				__u8 v = *(__u8 *)next >> 4;
				inner = v == 4 ? bpf_htons(ETH_P_IP) : v == 6 ? bpf_htons(ETH_P_IPV6) : 0;
			}
			if (next && (inner == bpf_htons(ETH_P_IP) || inner == bpf_htons(ETH_P_IPV6))) {
				l3 = next;
				proto = inner;
				tunnelled = 1;
				continue;
			}
		}
		// A tunnel this program does not open: the worker does.
		struct flow_key t = {};
		if (less(src.a, 0, dst.a, 0)) {
			__builtin_memcpy(t.lo, src.a, 16);
			__builtin_memcpy(t.hi, dst.a, 16);
		} else {
			__builtin_memcpy(t.lo, dst.a, 16);
			__builtin_memcpy(t.hi, src.a, 16);
		}
		count(C_TUNNEL);
		return to_worker(ctx, c, hb, tunnel_hash(&t, eth, 0));
	}
	if (tunnelled) {
		count(C_TUNNEL);
		count(C_TUNNEL_OPEN);
	}

	k.proto = l4proto;
	k.path_lo = path & 0xffff;
	k.path_hi = path >> 16;
	int from_hi = !less(src.a, sport, dst.a, dport);
	if (!from_hi) {
		__builtin_memcpy(k.lo, src.a, 16);
		__builtin_memcpy(k.hi, dst.a, 16);
		k.lo_port = sport;
		k.hi_port = dport;
	} else {
		__builtin_memcpy(k.lo, dst.a, 16);
		__builtin_memcpy(k.hi, src.a, 16);
		k.lo_port = dport;
		k.hi_port = sport;
	}

	return decide_flow(ctx, c, hb, &k, from_hi);
}

// to_socket redirects the packet the main program tail-called it with to
// the socket in the slot it chose (socket_slot), or fails open when no
// socket is bound there.
SEC("xdp")
int to_socket(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct config *c = bpf_map_lookup_elem(&cfg, &zero);
	__u32 *slot = bpf_map_lookup_elem(&socket_slot, &zero);
	if (!c || !slot)
		return XDP_PASS;
	__u32 s = *slot;
	if (!bpf_map_lookup_elem(&xsks, &s)) {
		count(C_XSK_MISSING);
		return fail_open(ctx, c, C_FAILOPEN_FWD);
	}
	count(C_TO_XSK);
	return bpf_redirect_map(&xsks, s, XDP_PASS);
}
