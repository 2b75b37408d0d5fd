// Package bpf holds swarmguard's XDP program (xdp.c), its generated
// bindings (xdp_bpfel.go, xdp_bpfel.o: `go generate ./bpf`) and a small API
// over its maps: bans with expiry (pinned), the bypass map of decided flows
// with the kernel's packet and byte counts, the bridge's peer ports, the
// per-CPU counters and the heartbeat that keeps the program from failing open.
package bpf
