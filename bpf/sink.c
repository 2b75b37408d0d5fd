//go:build ignore

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Benchmark programs for the veth harness (bench veth):
//   sink_count  counts every packet (and bytes) in a per-CPU map and drops it:
//               the sink measures what arrived instead of assuming it;
//               also the XDP_DROP baseline at port A.
//   fwd_devmap  redirects every packet to the other port: the in-kernel
//               devmap-forward baseline.

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

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
