package classifier

import "encoding/binary"

// HandshakePrefix is the start of the plaintext peer wire handshake (BEP 3):
// the byte 19 and "BitTorrent protocol".
const HandshakePrefix = "\x13BitTorrent protocol"

// HandshakeLen is the full handshake: prefix, 8 reserved bytes, info_hash, peer_id.
const HandshakeLen = 68

// MatchHandshake continues matching the handshake prefix at the start of a
// direction's byte stream. matched is how many prefix bytes earlier segments
// matched; it returns the new count, or -1 when the stream cannot be a
// handshake. A count of len(HandshakePrefix) is a full match.
func MatchHandshake(matched int, b []byte) int {
	if matched < 0 || matched >= len(HandshakePrefix) {
		return matched
	}
	for _, c := range b {
		if c != HandshakePrefix[matched] {
			return -1
		}
		matched++
		if matched == len(HandshakePrefix) {
			break
		}
	}
	return matched
}

// Peer wire message ids (BEP 3, BEP 6 FAST, BEP 10 extension protocol).
const (
	msgChoke         = 0
	msgUnchoke       = 1
	msgInterested    = 2
	msgNotInterested = 3
	msgHave          = 4
	msgBitfield      = 5
	msgRequest       = 6
	msgPiece         = 7
	msgCancel        = 8
	msgPort          = 9
	msgSuggest       = 13
	msgHaveAll       = 14
	msgHaveNone      = 15
	msgReject        = 16
	msgAllowedFast   = 17
	msgExtended      = 20
	maxPieceMsg      = 1<<17 + 9 // blocks are 16 KiB; some clients allow 128 KiB
	maxBitfieldMsg   = 1 << 20
	maxExtendedMsg   = 1 << 20
)

// WireResult is what the message grammar found in one segment.
type WireResult struct {
	Messages int  // complete, valid messages
	Fixed    int  // of those, messages whose id fixes their length (have, request, ...)
	Fast     bool // a BEP 6 FAST message
	ExtHS    bool // a BEP 10 extension handshake (extended id 0, bencoded dict with "m")
	PEX      bool // a ut_pex message (bencoded dict with added/added6/dropped)
	Tiled    bool // the messages cover the segment exactly (a trailing partial piece/bitfield/extended allowed)
}

// fixedLen returns the only valid length of a message id, or 0 when the length varies.
func fixedLen(id byte) uint32 {
	switch id {
	case msgChoke, msgUnchoke, msgInterested, msgNotInterested, msgHaveAll, msgHaveNone:
		return 1
	case msgHave, msgSuggest, msgAllowedFast:
		return 5
	case msgRequest, msgCancel, msgReject:
		return 13
	case msgPort:
		return 3
	}
	return 0
}

// ParseWire walks length-prefixed peer wire messages from the start of b,
// which must begin at a message boundary. It stops at the first message that
// breaks the grammar. peers, if not nil, receives PEX-announced peers.
func ParseWire(b []byte, peers *Peers) WireResult {
	var r WireResult
	for len(b) > 0 {
		if len(b) < 4 {
			return r
		}
		n := binary.BigEndian.Uint32(b)
		if n == 0 { // keep-alive
			b = b[4:]
			r.Messages++
			continue
		}
		if len(b) < 5 {
			return r
		}
		id := b[4]
		if fl := fixedLen(id); fl != 0 {
			if n != fl {
				return r
			}
			if id >= msgSuggest && id <= msgAllowedFast {
				r.Fast = true
			}
			r.Fixed++
		} else {
			switch id {
			case msgBitfield:
				if n < 2 || n > maxBitfieldMsg {
					return r
				}
			case msgPiece:
				if n < 9 || n > maxPieceMsg {
					return r
				}
			case msgExtended:
				if n < 2 || n > maxExtendedMsg {
					return r
				}
			default:
				return r
			}
		}
		body := b[5:]
		complete := uint64(len(body)) >= uint64(n-1)
		if complete {
			body = body[:n-1]
		}
		if id == msgExtended && len(body) >= 2 {
			checkExtended(body, complete, peers, &r)
		}
		if !complete {
			// Only a long message may run past the segment.
			r.Tiled = fixedLen(id) == 0 && r.Messages > 0
			return r
		}
		r.Messages++
		b = b[4+n:]
	}
	r.Tiled = r.Messages > 0
	return r
}

// checkExtended looks at a BEP 10 message body: ext id, then a bencoded dict.
func checkExtended(body []byte, complete bool, peers *Peers, r *WireResult) {
	if body[1] != 'd' {
		return
	}
	dict := body[1:]
	if body[0] == 0 {
		// Extension handshake: a dict with an "m" dict of extension names.
		hasM := false
		bwalk(dict, func(p bpos, v bvalue) bool {
			if p.depth == 1 && eq(p.key(1), "m") && v.kind == 'd' {
				hasM = true
				return false
			}
			return true
		})
		r.ExtHS = hasM
		return
	}
	// Any other extended message: ut_pex is recognised by its keys. The ids
	// are per connection (assigned in the handshake), so structure decides.
	pex := false
	_, ok := bwalk(dict, func(p bpos, v bvalue) bool {
		if p.depth != 1 || v.kind != 's' {
			return true
		}
		switch k := p.key(1); {
		case eq(k, "added"):
			pex = peers.addCompact(v.str, false) || pex
		case eq(k, "added6"):
			pex = peers.addCompact(v.str, true) || pex
		case eq(k, "dropped"), eq(k, "dropped6"):
			pex = true
		}
		return true
	})
	r.PEX = pex && (ok || !complete)
}
