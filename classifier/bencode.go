package classifier

// Bounded structural bencode. The walker visits the values of one buffer with
// a fixed-depth stack and a token limit; it never allocates, never recurses
// and never reads past the buffer. It does only what the recognizers need:
// it tells where each value sits (depth and the dict keys above it).

const (
	maxBDepth  = 8
	maxBTokens = 512
)

// bpath is the chain of dict keys from the top-level dict down to a value;
// a list level has a nil key.
type bpath struct {
	keys  [maxBDepth][]byte
	depth int
}

// bpos is where a visited value sits: its depth and the dict keys of the
// first three levels above it (all the recognizers look at). It is passed
// by value, so the walker's own path never escapes to the heap.
type bpos struct {
	depth      int
	k1, k2, k3 []byte
}

// key returns the key at level i (1 = inside the top-level dict; up to 3).
func (p bpos) key(i int) []byte {
	if i < 1 || i > p.depth {
		return nil
	}
	switch i {
	case 1:
		return p.k1
	case 2:
		return p.k2
	case 3:
		return p.k3
	}
	return nil
}

func (p *bpath) pos() bpos {
	return bpos{depth: p.depth, k1: p.keys[0], k2: p.keys[1], k3: p.keys[2]}
}

// bvalue is one visited value.
type bvalue struct {
	kind byte   // 'd', 'l', 's' or 'i'
	str  []byte // for 's'
	num  int64  // for 'i'
}

// bwalk walks a bencoded value at the start of b and calls visit for every
// value inside a dict or list (not for the outer value itself). It returns the
// number of bytes the outer value spans and whether it was complete and well
// formed within the limits. visit may return false to stop early (ok=false).
func bwalk(b []byte, visit func(p bpos, v bvalue) bool) (n int, ok bool) {
	var p bpath
	// isDict[d] says whether level d is a dict; wantKey[d] whether the next
	// string at that level is a key.
	var isDict, wantKey [maxBDepth + 1]bool
	i, tokens := 0, 0
	for {
		if i >= len(b) || tokens >= maxBTokens {
			return i, false
		}
		tokens++
		c := b[i]
		if c == 'e' {
			if p.depth == 0 || (isDict[p.depth] && !wantKey[p.depth]) {
				return i, false
			}
			i++
			p.depth--
			if p.depth == 0 {
				return i, true
			}
			continue
		}
		// A key must be a string.
		if p.depth > 0 && isDict[p.depth] && wantKey[p.depth] {
			s, next, good := bstring(b, i)
			if !good {
				return i, false
			}
			p.keys[p.depth-1] = s
			wantKey[p.depth] = false
			i = next
			continue
		}
		var v bvalue
		switch {
		case c == 'd' || c == 'l':
			v.kind = c
			i++
		case c == 'i':
			num, next, good := bint(b, i)
			if !good {
				return i, false
			}
			v.kind, v.num, i = 'i', num, next
		case c >= '0' && c <= '9':
			s, next, good := bstring(b, i)
			if !good {
				return i, false
			}
			v.kind, v.str, i = 's', s, next
		default:
			return i, false
		}
		if p.depth > 0 {
			if !isDict[p.depth] {
				p.keys[p.depth-1] = nil
			}
			if visit != nil && !visit(p.pos(), v) {
				return i, false
			}
			if isDict[p.depth] {
				wantKey[p.depth] = true
			}
		} else if v.kind != 'd' && v.kind != 'l' {
			return i, true // a bare scalar
		}
		if v.kind == 'd' || v.kind == 'l' {
			if p.depth == maxBDepth {
				return i, false
			}
			p.depth++
			isDict[p.depth] = v.kind == 'd'
			wantKey[p.depth] = v.kind == 'd'
		}
	}
}

func bstring(b []byte, i int) (s []byte, next int, ok bool) {
	n := 0
	j := i
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		if j-i >= 6 {
			return nil, 0, false // no string longer than 999999 bytes here
		}
		n = n*10 + int(b[j]-'0')
	}
	if j == i || j >= len(b) || b[j] != ':' || (b[i] == '0' && j-i > 1) {
		return nil, 0, false
	}
	j++
	if len(b)-j < n {
		return nil, 0, false
	}
	return b[j : j+n], j + n, true
}

func bint(b []byte, i int) (num int64, next int, ok bool) {
	j := i + 1
	neg := false
	if j < len(b) && b[j] == '-' {
		neg = true
		j++
	}
	start := j
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		if j-start >= 18 {
			return 0, 0, false
		}
		num = num*10 + int64(b[j]-'0')
	}
	if j == start || j >= len(b) || b[j] != 'e' {
		return 0, 0, false
	}
	if neg {
		num = -num
	}
	return num, j + 1, true
}

func eq(b []byte, s string) bool { return string(b) == s }
