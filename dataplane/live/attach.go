package live

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// attach attaches prog to a port through a bpf_link pinned in pinDir, so
// that the program outlives a crashed swarmguard and its fail-open path
// keeps the bridge forwarding. A link pinned by a previous run is reused:
// its program is replaced in place, without a moment unattached. Native XDP
// is tried first; generic is the fallback (or forced), with a log line
// saying which.
func attach(prog *ebpf.Program, ifi *net.Interface, pinDir string, generic bool, log io.Writer) (link.Link, error) {
	path := filepath.Join(pinDir, "link_"+strings.ReplaceAll(ifi.Name, ".", "_"))
	if old, err := link.LoadPinnedLink(path, nil); err == nil {
		if err := old.Update(prog); err == nil {
			fmt.Fprintf(log, "swarmguard: %s: took over the XDP link a previous run left attached\n", ifi.Name)
			return old, nil
		}
		old.Unpin()
		old.Close()
	}
	modes := []struct {
		flag link.XDPAttachFlags
		name string
	}{{link.XDPDriverMode, "native"}, {link.XDPGenericMode, "generic"}}
	if generic {
		modes = modes[1:]
	}
	var lastErr error
	for _, m := range modes {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifi.Index, Flags: m.flag})
		if err != nil {
			lastErr = err
			if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
				return nil, fmt.Errorf("%s: another XDP program is attached (ip link set dev %s xdp off, or is swarmguard already running?): %w", ifi.Name, ifi.Name, err)
			}
			continue
		}
		if err := l.Pin(path); err != nil {
			l.Close()
			return nil, fmt.Errorf("%s: pin XDP link: %w", ifi.Name, err)
		}
		fmt.Fprintf(log, "swarmguard: %s: %s XDP attached\n", ifi.Name, m.name)
		return l, nil
	}
	return nil, fmt.Errorf("%s: attach XDP (native and generic): %w", ifi.Name, lastErr)
}

// detach removes a link attached by attach: unpinned and closed, the program leaves the port.
func detach(l link.Link) error {
	if err := l.Unpin(); err != nil {
		l.Close()
		return fmt.Errorf("unpin XDP link: %w", err)
	}
	if err := l.Close(); err != nil {
		return fmt.Errorf("detach XDP: %w", err)
	}
	return nil
}

// xdpMode says how the kernel runs the XDP program on a port: native
// (driver), generic (skb), offload, or none.
func xdpMode(ifindex int) (string, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return "", fmt.Errorf("XDP mode: %w", err)
	}
	x := l.Attrs().Xdp
	if x == nil || !x.Attached {
		return "none", nil
	}
	switch x.AttachMode {
	case nl.XDP_ATTACHED_DRV:
		return "native", nil
	case nl.XDP_ATTACHED_SKB:
		return "generic", nil
	case nl.XDP_ATTACHED_HW:
		return "offload", nil
	}
	return fmt.Sprintf("mode %d", x.AttachMode), nil
}

// rxQueues counts a port's rx queues from sysfs.
func rxQueues(name string) int {
	ents, err := os.ReadDir(filepath.Join("/sys/class/net", name, "queues"))
	if err != nil {
		return 1
	}
	n := 0
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "rx-") {
			if _, err := strconv.Atoi(e.Name()[3:]); err == nil {
				n++
			}
		}
	}
	return max(n, 1)
}
