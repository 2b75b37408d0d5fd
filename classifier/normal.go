package classifier

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// Recognizers of common non-P2P protocols. Knowing a flow is TLS, SSH,
// DNS, QUIC or STUN is evidence against P2P, and it is what lets host context
// raise suspicion of a flow without ever labelling a TLS or SSH flow p2p on
// its own (see Gate in model.go).

// IsTLS recognises a TLS record header: handshake, change-cipher-spec, alert
// or application data, record version 3.0-3.4 (TLS 1.3 writes 3.1/3.3 here),
// and a length that fits a record.
func IsTLS(b []byte) bool {
	if len(b) < 5 || b[1] != 3 || b[2] > 4 {
		return false
	}
	switch b[0] {
	case 20, 21, 22, 23:
		n := binary.BigEndian.Uint16(b[3:5])
		return n > 0 && n <= 1<<14+2048
	}
	return false
}

// IsSSH recognises the SSH identification string.
func IsSSH(b []byte) bool { return bytes.HasPrefix(b, []byte("SSH-")) }

// IsDNS recognises a DNS message on port 53 or mDNS/LLMNR: sane counts and an
// opcode in use. The port is part of the protocol's position, as with LSD.
func IsDNS(sport, dport uint16, b []byte) bool {
	if !(sport == 53 || dport == 53 || sport == 5353 || dport == 5353 || sport == 5355 || dport == 5355) {
		return false
	}
	if len(b) < 12 {
		return false
	}
	op := (b[2] >> 3) & 0x0f
	qd := binary.BigEndian.Uint16(b[4:6])
	an := binary.BigEndian.Uint16(b[6:8])
	return op <= 5 && qd <= 16 && an <= 256 && (qd > 0 || an > 0)
}

// IsQUIC recognises a QUIC long header: form and fixed bits set, a known
// version (1, 2, drafts, Google QUIC Q0xx), and connection id lengths <= 20.
func IsQUIC(b []byte) bool {
	if len(b) < 7 || b[0]&0xc0 != 0xc0 {
		return false
	}
	v := binary.BigEndian.Uint32(b[1:5])
	switch {
	case v == 1, v == 0x6b3343cf, v>>8 == 0xff0000, v>>8 == 0x513034 /* "Q04" */, v>>8 == 0x513035, v == 0:
	default:
		return false
	}
	if b[1] == 'Q' { // gQUIC Q046 keeps the long header layout
		return true
	}
	dcil := int(b[5])
	return dcil <= 20 && len(b) > 6+dcil && int(b[6+dcil]) <= 20
}

// IsSTUN recognises a STUN/TURN message with the RFC 5389 magic cookie, or a
// TURN ChannelData frame is not distinguishable and is left alone.
func IsSTUN(b []byte) bool {
	return len(b) >= 20 && b[0]&0xc0 == 0 && binary.BigEndian.Uint32(b[4:8]) == 0x2112a442 &&
		int(binary.BigEndian.Uint16(b[2:4]))+20 <= len(b)
}

// Printable reports whether most of the first 64 bytes are printable ASCII,
// as in a text protocol; ciphertext and MSE key exchange are not.
func Printable(b []byte) bool {
	b = b[:min(len(b), 64)]
	if len(b) < 8 {
		return false
	}
	n := 0
	for _, c := range b {
		if c >= 0x20 && c < 0x7f || c == '\r' || c == '\n' || c == '\t' {
			n++
		}
	}
	return n*10 >= len(b)*9
}

// LengthFramed reports whether a payload starts with a big-endian length of
// 2 or 4 bytes that counts exactly the bytes after it (or, for 4 bytes, the
// whole payload). Many protocols frame their first message so (RLPx EIP-8,
// DNS over TCP, RPCs, peer wire); MSE/PE starts with a random 768-bit
// number, which matches by chance once in 65536 flows.
func LengthFramed(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	if int(binary.BigEndian.Uint16(b)) == len(b)-2 {
		return true
	}
	n := binary.BigEndian.Uint32(b)
	return n == uint32(len(b)-4) || n == uint32(len(b))
}

// Random reports whether the first 96 bytes of b look like a random number,
// as MSE/PE's Ya and Yb (768-bit Diffie-Hellman values) do: 96 random bytes
// take about 80 distinct values (sd ~4), structured messages (length fields,
// zero padding, ASCII commands) far fewer. Shorter payloads are not judged.
func Random(b []byte) bool {
	if len(b) < 64 {
		return false
	}
	b = b[:min(len(b), 96)]
	var seen [4]uint64
	for _, c := range b {
		seen[c>>6] |= 1 << (c & 63)
	}
	n := bits.OnesCount64(seen[0]) + bits.OnesCount64(seen[1]) + bits.OnesCount64(seen[2]) + bits.OnesCount64(seen[3])
	return n*100 >= len(b)*65
}
