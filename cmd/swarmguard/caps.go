package main

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// runCaps are the capabilities `run` needs, and nothing more: the systemd
// unit grants exactly these to its dedicated user (contrib/swarmguard.service;
// TestRunWithTheUnitsCapabilities runs it so).
//   - CAP_BPF, CAP_PERFMON: load the XDP program and its maps (and the
//     packet-pointer arithmetic the verifier allows only with PERFMON)
//   - CAP_NET_ADMIN: attach XDP, read link state over netlink
//   - CAP_NET_RAW: open AF_XDP sockets
//   - CAP_IPC_LOCK: register UMEM beyond RLIMIT_MEMLOCK
//
// Each was shown needed by running without it (setpriv, a veth bridge):
// without PERFMON the verifier refuses the program's pointer comparisons,
// without IPC_LOCK XDP_UMEM_REG fails with ENOBUFS at an 8 MiB memlock
// limit. Pinning workers to CPUs needs nothing (a thread's own affinity).
var runCaps = []struct {
	bit  uint
	name string
}{
	{unix.CAP_BPF, "CAP_BPF"}, {unix.CAP_PERFMON, "CAP_PERFMON"}, {unix.CAP_NET_ADMIN, "CAP_NET_ADMIN"},
	{unix.CAP_NET_RAW, "CAP_NET_RAW"}, {unix.CAP_IPC_LOCK, "CAP_IPC_LOCK"},
}

// missingCaps names the capabilities of want the process does not have in
// its effective set (root normally has them all).
func missingCaps(want []struct {
	bit  uint
	name string
}) (string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return "", fmt.Errorf("capget: %w", err)
	}
	var miss []string
	for _, c := range want {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			miss = append(miss, c.name)
		}
	}
	return strings.Join(miss, ", "), nil
}
