package main

import (
	"debug/elf"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/internal/netnstest"
	"github.com/swarmguard/swarmguard/internal/testbin"
)

// unitCaps reads the capabilities the systemd unit grants.
func unitCaps(t *testing.T) []string {
	b, err := os.ReadFile("../../contrib/swarmguard.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^AmbientCapabilities=(.*)$`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no AmbientCapabilities in the unit")
	}
	return strings.Fields(string(m[1]))
}

// setprivCaps is caps as setpriv takes them: +bpf,+net_admin,...
func setprivCaps(caps []string) string {
	var out []string
	for _, c := range caps {
		out = append(out, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	return strings.Join(out, ",")
}

// The unit runs swarmguard as a dedicated user with only its
// AmbientCapabilities: run that way (nobody, setpriv, the unit's list), the
// bridge attaches, says READY=1 on NOTIFY_SOCKET after the attach (Type=
// notify) and STOPPING=1 at SIGTERM. With one capability fewer, run refuses
// at once, naming it.
func TestRunWithTheUnitsCapabilities(t *testing.T) {
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux)")
	}
	env := netnstest.New(t)
	a := env.Veth("a", env.NS("gen"), "10.99.8.1/24", 1)
	b := env.Veth("b", env.NS("sink"), "10.99.8.2/24", 1)
	bin := testbin.Build(t)
	// The unprivileged child reaches its binary and the notify socket: a
	// directory of its own under /tmp, not the test's 0700 one.
	dir, err := os.MkdirTemp("", "sgunit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	exe := filepath.Join(dir, "swarmguard")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(exe, data, 0o755)
	pin := fmt.Sprintf("/sys/fs/bpf/sgunit%d", time.Now().UnixNano())
	os.MkdirAll(pin, 0o750)
	os.Chown(pin, 65534, 65534)
	t.Cleanup(func() { os.RemoveAll(pin) })
	caps := unitCaps(t)

	// One fewer: refused before anything is touched.
	less := setprivCaps(caps[1:])
	out, err := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=" + less, "--ambient-caps=" + less,
		exe}, append(runArgs, "--bridge", a+","+b, "--pin", pin)...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), caps[0]) || strings.Count(string(out), "\n") != 1 {
		t.Fatalf("without %s: %v: %s", caps[0], err, out)
	}

	notify := filepath.Join(dir, "notify")
	nl, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	os.Chmod(notify, 0o777)
	all := setprivCaps(caps)
	cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=" + all, "--ambient-caps=" + all,
		exe}, append(runArgs, "--bridge", a+","+b, "--pin", pin, "--records", os.DevNull)...)...)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+notify)
	c := startCmd(t, cmd)
	errb := &c.out
	msg := func() string {
		nl.SetReadDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 512)
		n, _, err := nl.ReadFromUnix(buf)
		if err != nil {
			t.Fatalf("no notification: %v: %s", err, errb.String())
		}
		return string(buf[:n])
	}
	if m := msg(); !strings.HasPrefix(m, "READY=1") || !strings.Contains(errb.String(), "XDP attached") {
		t.Fatalf("first notification %q, log %s", m, errb.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if m := msg(); m != "STOPPING=1" {
		t.Fatalf("at SIGTERM: %q", m)
	}
	// Another SIGTERM while stopping (stop sends one) is only noted.
	if err := c.stop(t); err != nil || !strings.Contains(errb.String(), "stopped") {
		t.Fatalf("stop: %v %s", err, errb.String())
	}
}

// make deb builds a package that installs: the static binary answers
// version and checks the shipped configuration, the unit passes
// systemd-analyze verify with an exposure score of at most 3.0, and a purge
// removes it all, the service user included.
func TestDebInstallsAndPurges(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to install a package")
	}
	for _, tool := range []string{"dpkg-deb", "dpkg", "systemd-analyze", "make"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
	if exec.Command("dpkg", "-s", "swarmguard").Run() == nil {
		t.Skip("a swarmguard package is installed on this machine; not touching it")
	}
	out := t.TempDir()
	mk := exec.Command("make", "-C", "../..", "deb", "DEB_OUT="+out)
	if b, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make deb: %v\n%s", err, b)
	}
	debs, _ := filepath.Glob(filepath.Join(out, "swarmguard_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	t.Cleanup(func() {
		if b, err := exec.Command("dpkg", "--purge", "swarmguard").CombinedOutput(); err != nil {
			t.Errorf("purge: %v %s", err, b)
		}
	})
	if b, err := exec.Command("dpkg", "-i", debs[0]).CombinedOutput(); err != nil {
		t.Fatalf("dpkg -i: %v\n%s", err, b)
	}
	run := func(name string, args ...string) string {
		b, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, b)
		}
		return string(b)
	}
	if v := run("/usr/sbin/swarmguard", "version"); !strings.HasPrefix(v, "swarmguard ") {
		t.Fatalf("version: %q", v)
	}
	if c := run("/usr/sbin/swarmguard", "config", "check", "/etc/swarmguard/swarmguard.yaml"); !strings.HasSuffix(strings.TrimSpace(c), ": ok") {
		t.Fatalf("config check: %q", c)
	}
	if static, err := isStatic("/usr/sbin/swarmguard"); err != nil || !static {
		t.Errorf("/usr/sbin/swarmguard is not a static binary (%v)", err)
	}
	if _, err := os.Stat("/usr/share/man/man8/swarmguard.8.gz"); err != nil {
		t.Errorf("man page: %v", err)
	}
	if u := run("getent", "passwd", "swarmguard"); !strings.Contains(u, "nologin") {
		t.Errorf("service user: %s", u)
	}
	run("systemd-analyze", "verify", "/lib/systemd/system/swarmguard.service")
	sec := run("systemd-analyze", "security", "--offline=yes", "/lib/systemd/system/swarmguard.service")
	m := regexp.MustCompile(`Overall exposure level for swarmguard.service: ([0-9.]+)`).FindStringSubmatch(sec)
	if m == nil {
		t.Fatalf("no exposure score:\n%s", sec)
	}
	if score, _ := strconv.ParseFloat(m[1], 64); score > 3.0 {
		t.Errorf("exposure %s, want at most 3.0", m[1])
	}
	t.Logf("systemd-analyze security: exposure %s", m[1])
	if b, err := exec.Command("dpkg", "--purge", "swarmguard").CombinedOutput(); err != nil {
		t.Fatalf("purge: %v %s", err, b)
	}
	for _, p := range []string{"/usr/sbin/swarmguard", "/etc/swarmguard/swarmguard.yaml", "/lib/systemd/system/swarmguard.service"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left after purge", p)
		}
	}
	if exec.Command("getent", "passwd", "swarmguard").Run() == nil {
		t.Error("the service user is left after purge")
	}
}

// bans says what it did: an empty list says so, add names the expiry, del
// says whether there was a ban, a ban set by hand is listed as such.
func TestBansSayWhatTheyDid(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (bpffs)")
	}
	pin := fmt.Sprintf("/sys/fs/bpf/sgbans%d", time.Now().UnixNano())
	objs, err := bpf.Load(bpf.Options{PinPath: pin})
	if err != nil {
		t.Skipf("load: %v", err)
	}
	defer objs.Close()
	t.Cleanup(func() { os.RemoveAll(pin) })
	sock := filepath.Join(t.TempDir(), "none.sock") // no service: the map alone
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bans", "list"}, "no bans\n"},
		{[]string{"bans", "add", "192.0.2.7", "--for", "1h"}, "banned 192.0.2.7 until "},
		{[]string{"bans", "list"}, "set by hand or by an earlier run"},
		{[]string{"bans", "show", "192.0.2.7"}, "192.0.2.7 "},
		{[]string{"bans", "show", "192.0.2.8"}, "192.0.2.8 is not banned\n"},
		{[]string{"bans", "del", "192.0.2.7"}, "unbanned 192.0.2.7\n"},
		{[]string{"bans", "del", "192.0.2.7"}, "192.0.2.7 was not banned\n"},
		{[]string{"bans", "add", "2001:db8::1"}, "banned 2001:db8::1 until "},
		{[]string{"bans", "flush"}, "removed 1 bans\n"},
		{[]string{"bans", "list"}, "no bans\n"},
	} {
		var out, errb strings.Builder
		args := append(c.args, "--pin", pin, "--socket", sock)
		if err := run(args, &out, &errb); err != nil || !strings.Contains(out.String(), c.want) {
			t.Fatalf("%v: %v, said %q, want %q", c.args, err, out.String(), c.want)
		}
	}
}

// isStatic says whether an ELF executable has no interpreter (no dynamic loader).
func isStatic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return false, nil
		}
	}
	return true, nil
}
