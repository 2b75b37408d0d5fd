package packet

import "encoding/binary"

// AddrFrom16 converts 16 address bytes (the decoder reads words straight
// from the header; tests build addresses from netip).
func AddrFrom16(b [16]byte) Addr16 {
	return Addr16{binary.BigEndian.Uint64(b[0:8]), binary.BigEndian.Uint64(b[8:16])}
}
