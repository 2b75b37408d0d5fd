package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// value is one option's typed, range-checked setting. It is a flag.Value,
// so a flag and a YAML key set it through the same Set and the same checks.
type value interface {
	String() string
	Set(string) error
	// kind names the type for the reference ("duration", "list of networks").
	kind() string
}

type durVal struct {
	p        *time.Duration
	min, max time.Duration
	zeroOK   bool // 0 means "off" or "default"
}

func (v durVal) String() string { return fmtDur(*v.p) }
func (v durVal) kind() string   { return "duration" }
func (v durVal) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration (like 500ms, 30s, 5h)", s)
	}
	if d == 0 && v.zeroOK {
		*v.p = 0
		return nil
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("%s: want %s to %s", fmtDur(d), fmtDur(v.min), fmtDur(v.max))
	}
	*v.p = d
	return nil
}

// fmtDur prints durations the way an operator writes them: 5h, not 5h0m0s.
func fmtDur(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}

type intVal struct {
	p        *int
	min, max int
	pow2     bool // a ring size: 0 (default) or a power of two
}

func (v intVal) String() string { return strconv.Itoa(*v.p) }
func (v intVal) kind() string   { return "integer" }
func (v intVal) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not an integer", s)
	}
	if n < v.min || n > v.max {
		return fmt.Errorf("%d: want %d to %d", n, v.min, v.max)
	}
	if v.pow2 && n&(n-1) != 0 {
		return fmt.Errorf("%d: want 0 (default) or a power of two up to %d", n, v.max)
	}
	*v.p = n
	return nil
}

type floatVal struct {
	p        *float64
	min, max float64
}

func (v floatVal) String() string { return strconv.FormatFloat(*v.p, 'g', -1, 64) }
func (v floatVal) kind() string   { return "number" }
func (v floatVal) Set(s string) error {
	x, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", s)
	}
	if x != 0 && (x < v.min || x > v.max) {
		return fmt.Errorf("%g: want 0 (the model's) or %g to %g", x, v.min, v.max)
	}
	*v.p = x
	return nil
}

type boolVal struct{ p *bool }

func (v boolVal) String() string   { return strconv.FormatBool(*v.p) }
func (v boolVal) kind() string     { return "boolean" }
func (v boolVal) IsBoolFlag() bool { return true }
func (v boolVal) Set(s string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v.p = b
	return nil
}

type strVal struct {
	p     *string
	check func(string) error // nil: any string
}

func (v strVal) String() string { return *v.p }
func (v strVal) kind() string   { return "string" }
func (v strVal) Set(s string) error {
	s = strings.TrimSpace(s)
	if v.check != nil {
		if err := v.check(s); err != nil {
			return err
		}
	}
	*v.p = s
	return nil
}

// sizeVal is a byte count: 64MiB, 1GiB, 500kB or a plain number.
type sizeVal struct {
	p        *int64
	min, max int64
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"GB", 1e9}, {"MB", 1e6}, {"kB", 1e3}, {"B", 1}}

func (v sizeVal) String() string { return fmtSize(*v.p) }
func (v sizeVal) kind() string   { return "size" }
func (v sizeVal) Set(s string) error {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > v.max/mult {
		if err == nil {
			return fmt.Errorf("%s: want %s to %s", s, fmtSize(v.min), fmtSize(v.max))
		}
		return fmt.Errorf("%q is not a size (like 64MiB)", s)
	}
	if n*mult < v.min {
		return fmt.Errorf("%s: want %s to %s", s, fmtSize(v.min), fmtSize(v.max))
	}
	*v.p = n * mult
	return nil
}

func fmtSize(n int64) string {
	for _, u := range sizeUnits[:3] {
		if n >= u.mult && n%u.mult == 0 {
			return strconv.FormatInt(n/u.mult, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// List values take a comma-separated flag or a YAML sequence; a Set
// replaces the whole list, so a flag overrides the file's list.

type prefixList struct{ p *[]netip.Prefix }

func (v prefixList) kind() string { return "list of networks" }
func (v prefixList) String() string {
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}
func (v prefixList) Set(s string) error {
	out := []netip.Prefix{}
	for _, e := range splitList(s) {
		pfx, err := netip.ParsePrefix(e)
		if err != nil {
			a, aerr := netip.ParseAddr(e)
			if aerr != nil {
				return fmt.Errorf("%q is not a network", e)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		if pfx != pfx.Masked() {
			return fmt.Errorf("%s has host bits set (did you mean %s?)", pfx, pfx.Masked())
		}
		out = append(out, pfx)
	}
	*v.p = out
	return nil
}

type portList struct{ p *[]uint16 }

func (v portList) kind() string { return "list of ports" }
func (v portList) String() string {
	s := make([]string, len(*v.p))
	for i, p := range *v.p {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}
func (v portList) Set(s string) error {
	out := []uint16{}
	for _, e := range splitList(s) {
		n, err := strconv.ParseUint(e, 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%q is not a port (1-65535)", e)
		}
		out = append(out, uint16(n))
	}
	*v.p = out
	return nil
}

type strList struct {
	p     *[]string
	check func(string) error
}

func (v strList) kind() string   { return "list of strings" }
func (v strList) String() string { return strings.Join(*v.p, ",") }
func (v strList) Set(s string) error {
	out := []string{}
	for _, e := range splitList(s) {
		if v.check != nil {
			if err := v.check(e); err != nil {
				return err
			}
		}
		out = append(out, e)
	}
	*v.p = out
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
