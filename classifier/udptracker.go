package classifier

import "encoding/binary"

// UDPTrackerProtocolID is the magic constant of a BEP 15 connect request.
const UDPTrackerProtocolID = 0x41727101980

// UDP tracker actions.
const (
	actConnect  = 0
	actAnnounce = 1
	actScrape   = 2
	actError    = 3
)

// UDPTracker is what the BEP 15 recognizer found.
type UDPTracker struct {
	Request  bool // connect (magic id), announce (98+ bytes) or scrape from the client
	Response bool // a response of the right size for its action
	Peers    int  // peers in an announce response
}

// ParseUDPTrackerRequest recognises a client's packet. The connect request is
// exact (16 bytes with the protocol id); announce and scrape need the flow to
// have shown a connect before (connected), since their first 8 bytes are a
// random connection id.
func ParseUDPTrackerRequest(b []byte, connected bool) UDPTracker {
	switch {
	case len(b) == 16 && binary.BigEndian.Uint64(b) == UDPTrackerProtocolID && binary.BigEndian.Uint32(b[8:]) == actConnect:
		return UDPTracker{Request: true}
	case !connected || len(b) < 16:
		return UDPTracker{}
	}
	switch binary.BigEndian.Uint32(b[8:]) {
	case actAnnounce:
		return UDPTracker{Request: len(b) >= 98}
	case actScrape:
		return UDPTracker{Request: (len(b)-16)%20 == 0 && len(b) > 16}
	}
	return UDPTracker{}
}

// ParseUDPTrackerResponse recognises a tracker's answer in a flow whose
// client sent a request. Announce responses hand their peers to peers
// (IPv4 records of 6 bytes; IPv6 of 18 when v6).
func ParseUDPTrackerResponse(b []byte, v6 bool, peers *Peers) UDPTracker {
	if len(b) < 8 {
		return UDPTracker{}
	}
	switch binary.BigEndian.Uint32(b) {
	case actConnect:
		return UDPTracker{Response: len(b) == 16}
	case actAnnounce:
		if len(b) < 20 {
			return UDPTracker{}
		}
		rec := 6
		if v6 {
			rec = 18
		}
		body := b[20:]
		if len(body)%rec != 0 {
			return UDPTracker{}
		}
		peers.addCompact(body, v6)
		return UDPTracker{Response: true, Peers: len(body) / rec}
	case actScrape:
		return UDPTracker{Response: (len(b)-8)%12 == 0}
	case actError:
		return UDPTracker{Response: len(b) > 8}
	}
	return UDPTracker{}
}
