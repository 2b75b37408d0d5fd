//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Benchmark programs for the veth harness (bench veth):
//   sink_count  counts every IPv4 packet (and bytes) in a per-CPU map and
//               drops it: the sink measures what arrived instead of assuming
//               it; also the XDP_DROP baseline at port A. ARP and the latency
//               probe (UDP port 7) pass to the stack.
//   fwd_devmap  redirects every packet to the other port: the in-kernel
//               devmap-forward baseline.
//   fwd_lookup  looks the packet's flow up in an LRU hash (inserting it on a
//               miss), then redirects as fwd_devmap: the floor of any design
//               that keeps per-flow state in a kernel hash map, against which
//               swarmguard's decided-flow path is measured (BenchmarkXDPPath).

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The latency probe's echo port: its packets, and anything not IPv4 (ARP),
// go to the stack instead of being counted and dropped.
#define ECHO_PORT 7

char __license[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2); // 0: packets, 1: bytes
	__type(key, __u32);
	__type(value, __u64);
} sink_counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u32);
} fwd_port SEC(".maps");

SEC("xdp")
int sink_count(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end)
		return XDP_DROP;
	if (ip->protocol == IPPROTO_UDP && ip->ihl == 5) {
		struct udphdr *u = (void *)(ip + 1);
		if ((void *)(u + 1) <= end && u->dest == bpf_htons(ECHO_PORT))
			return XDP_PASS;
	}
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&sink_counts, &k);
	if (v)
		*v += 1;
	k = 1;
	v = bpf_map_lookup_elem(&sink_counts, &k);
	if (v)
		*v += ctx->data_end - ctx->data;
	return XDP_DROP;
}

// A flow's entry: the size of swarmguard's bypass entry, key kept in it.
struct flow_val {
	__u64 key[5];
	__u32 action;
	__u32 pad;
	__u64 packets;
	__u64 bytes;
	__u64 epoch;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1 << 20);
	__type(key, __u64);
	__type(value, struct flow_val);
} flows SEC(".maps");

SEC("xdp")
int fwd_lookup(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) + 4 > end)
		return XDP_PASS;
	__u64 k = ((__u64)ip->saddr << 32 | ip->daddr) * 0x9e3779b97f4a7c15ULL ^
		  (__u64)(*(__u32 *)(ip + 1) | (__u64)ip->protocol << 32) * 0xc2b2ae3d27d4eb4fULL;
	k ^= k >> 33;
	struct flow_val *v = bpf_map_lookup_elem(&flows, &k);
	if (!v) {
		struct flow_val nv = {};
		bpf_map_update_elem(&flows, &k, &nv, BPF_ANY);
		return XDP_DROP;
	}
	return bpf_redirect_map(&fwd_port, ctx->ingress_ifindex, XDP_DROP);
}

SEC("xdp")
int fwd_devmap(struct xdp_md *ctx)
{
	return bpf_redirect_map(&fwd_port, ctx->ingress_ifindex, XDP_DROP);
}
