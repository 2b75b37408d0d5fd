//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Benchmark programs for the veth harness (bench veth):
//   sink_count  counts every IPv4 packet (and bytes) in a per-CPU map and
//               drops it: the sink measures what arrived instead of assuming
//               it; also the XDP_DROP baseline at port A. ARP and the latency
//               probe (UDP port 7) pass to the stack.
//   fwd_devmap  redirects every packet to the other port: the in-kernel
//               devmap-forward baseline.

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

SEC("xdp")
int fwd_devmap(struct xdp_md *ctx)
{
	return bpf_redirect_map(&fwd_port, ctx->ingress_ifindex, XDP_DROP);
}
