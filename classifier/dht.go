package classifier

// KRPC is what the DHT recognizer found in one UDP payload (BEP 5, BEP 32).
type KRPC struct {
	Valid   bool // a complete bencoded dict with y in {q,r,e}, a t string and the body y asks for
	Query   bool // y = q with a known query name
	GetPeer bool // get_peers or announce_peer
	Nodes   int  // compact node records (26-byte nodes, 38-byte nodes6)
	Values  int  // peers in "values"
}

// dhtMaxLen bounds the payloads the recognizer reads.
const dhtMaxLen = 1500

// ParseKRPC recognises a DHT KRPC message by its structure: a top-level dict
// whose y, t and q/a/r/e entries have the types BEP 5 gives them, an id of 20
// bytes in a or r, and node lists whose lengths are whole records. Peers from
// "values" go to peers (may be nil).
func ParseKRPC(b []byte, peers *Peers) KRPC {
	var k KRPC
	if len(b) < 12 || len(b) > dhtMaxLen || b[0] != 'd' || b[len(b)-1] != 'e' {
		return k
	}
	var y byte
	hasT, idOK, bodyA, bodyR, bodyE, badNodes := false, false, false, false, false, false
	qname := 0
	n, ok := bwalk(b, func(p bpos, v bvalue) bool {
		switch p.depth {
		case 1:
			switch k1 := p.key(1); {
			case eq(k1, "y"):
				if v.kind != 's' || len(v.str) != 1 {
					return false
				}
				y = v.str[0]
			case eq(k1, "t"):
				hasT = v.kind == 's' && len(v.str) > 0 && len(v.str) <= 16
			case eq(k1, "q"):
				if v.kind != 's' {
					return false
				}
				switch string(v.str) {
				case "ping", "find_node", "get", "put", "sample_infohashes", "vote":
					qname = 1
				case "get_peers", "announce_peer":
					qname = 2
				}
			case eq(k1, "a"):
				bodyA = v.kind == 'd'
			case eq(k1, "r"):
				bodyR = v.kind == 'd'
			case eq(k1, "e"):
				bodyE = v.kind == 'l'
			}
		case 2:
			k1, k2 := p.key(1), p.key(2)
			if !eq(k1, "a") && !eq(k1, "r") {
				return true
			}
			switch {
			case eq(k2, "id"):
				idOK = v.kind == 's' && len(v.str) == 20
			case eq(k2, "nodes"):
				if v.kind != 's' || len(v.str)%26 != 0 {
					badNodes = true
				} else {
					k.Nodes += len(v.str) / 26
				}
			case eq(k2, "nodes6"):
				if v.kind != 's' || len(v.str)%38 != 0 {
					badNodes = true
				} else {
					k.Nodes += len(v.str) / 38
				}
			}
		case 3:
			if eq(p.key(1), "r") && eq(p.key(2), "values") && v.kind == 's' {
				if len(v.str) == 6 || len(v.str) == 18 {
					peers.addCompact(v.str, len(v.str) == 18)
					k.Values++
				}
			}
		}
		return true
	})
	if !ok || n != len(b) || !hasT || badNodes {
		return KRPC{}
	}
	switch y {
	case 'q':
		k.Valid = bodyA && idOK && qname > 0
		k.Query = k.Valid
		k.GetPeer = k.Valid && qname == 2
	case 'r':
		k.Valid = bodyR && idOK
	case 'e':
		k.Valid = bodyE
	}
	if !k.Valid {
		return KRPC{}
	}
	return k
}
