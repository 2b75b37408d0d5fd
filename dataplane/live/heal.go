package live

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"
)

// healEvery is how often the control loop checks what others may have
// undone: the XDP program on each port, the pinned links and maps.
const healEvery = 10 // ticks: a second

// heal puts back what another process or an operator took away, each
// with one log line and a counter:
//   - a port without our program (its link detached, say by bpftool): the
//     program is attached again, so traffic flows through the workers
//     again instead of the kernel's stack;
//   - pinned files gone (bpffs unmounted and mounted again, a file
//     deleted): the ban map, its epoch and the links are pinned again, so
//     the next start still finds the bans.
//
// Control goroutine only.
func (r *Runner) heal() {
	id, err := r.objs.ProgramID()
	if err != nil {
		r.errs.log(r.cfg.Log, "heal", err)
		return
	}
	for i, p := range r.ports {
		l, err := netlink.LinkByIndex(p.Index)
		if err != nil {
			r.errs.log(r.cfg.Log, "heal", fmt.Errorf("%s: %w", p.Name, err))
			continue
		}
		if x := l.Attrs().Xdp; x != nil && x.Attached && x.ProgId == id {
			continue
		}
		fmt.Fprintf(r.cfg.Log, "swarmguard: %s: our XDP program is no longer attached (detached or replaced by another process); attaching it again\n", p.Name)
		if r.links[i] != nil {
			r.links[i].Unpin()
			r.links[i].Close()
		}
		nl, err := attach(r.objs.Program(), p, r.cfg.PinPath, r.cfg.Generic, r.cfg.Log)
		if err != nil {
			r.links[i] = nil
			r.count(func(s *Stats) { s.HealErrors++ })
			r.errs.log(r.cfg.Log, "reattach", err)
			continue
		}
		r.links[i] = nl
		r.count(func(s *Stats) { s.Reattached++ })
	}
	n, err := r.objs.Repin(r.cfg.PinPath)
	if err != nil {
		r.count(func(s *Stats) { s.HealErrors++ })
		r.errs.log(r.cfg.Log, "repin", err)
	}
	for i, l := range r.links {
		if l == nil {
			continue
		}
		path := filepath.Join(r.cfg.PinPath, "link_"+strings.ReplaceAll(r.ports[i].Name, ".", "_"))
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			continue
		}
		l.Unpin()
		if err := l.Pin(path); err != nil {
			r.count(func(s *Stats) { s.HealErrors++ })
			r.errs.log(r.cfg.Log, "repin link", err)
			continue
		}
		n++
	}
	if n > 0 {
		fmt.Fprintf(r.cfg.Log, "swarmguard: %d pinned objects were gone from %s (bpffs unmounted, files deleted): pinned again, bans kept\n", n, r.cfg.PinPath)
		r.count(func(s *Stats) { s.Repinned += uint64(n) })
	}
}
