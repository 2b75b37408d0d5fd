package classifier

// Evidence bits kept in FlowState.Evidence. Each is set by a recognizer at
// the protocol position where it applies and never cleared.
const (
	EvHandshake      uint32 = 1 << iota // plaintext peer wire handshake (BEP 3)
	EvPeerWire                          // valid peer wire message framing (length + id)
	EvExtension                         // BEP 10 extension handshake, ut_pex or BEP 6 FAST message
	EvDHT                               // DHT KRPC (BEP 5)
	EvUTP                               // uTP packets that continue one connection (BEP 29)
	EvUDPTracker                        // UDP tracker (BEP 15)
	EvHTTPTracker                       // HTTP tracker announce/scrape or bencoded reply
	EvLSD                               // local service discovery (BEP 14)
	EvPeerID                            // a client peer-id prefix at a protocol position
	EvBTAgent                           // BitTorrent User-Agent (announce, webseed)
	EvPredicted                         // the flow goes to a peer a tracker/DHT/PEX answer announced
	EvTLS                               // TLS records
	EvSSH                               // SSH identification
	EvHTTP                              // HTTP that is not BitTorrent
	EvDNS                               // DNS
	EvQUIC                              // QUIC long header
	EvSTUN                              // STUN / TURN
	EvTextFirst                         // first payload is printable text of no known protocol
	EvServerFirst                       // the responder spoke first (SMTP, FTP, SSH servers, ...)
	EvUTPShape                          // a single uTP-shaped packet (needs EvUTP to count)
	EvUDPTrackerConn                    // a UDP tracker connect was seen (announce may follow)
	EvTrackerReq                        // the flow carried an HTTP tracker request (reply may follow)
	EvFramed                            // a first payload starts with its own length (2 or 4 bytes): plaintext framing, not MSE
)

// evPlainBT are the signatures that identify BitTorrent by themselves: what a
// flow must carry to be p2p from structure alone.
const evPlainBT = EvHandshake | EvExtension | EvDHT | EvUTP | EvUDPTracker | EvHTTPTracker | EvLSD | EvPredicted | EvBTAgent

// EvPeerSources are flows whose later packets may announce peers: tracker
// answers, DHT responses, PEX after a peer wire handshake.
const EvPeerSources = EvTrackerReq | EvUDPTrackerConn | EvDHT | EvHandshake | EvExtension

// evNormal are protocols that are not BitTorrent.
const evNormal = EvTLS | EvSSH | EvHTTP | EvDNS | EvQUIC | EvSTUN

// evPeer are the signs of a peer connection, as opposed to discovery
// (trackers, DHT, LSD), whose servers are not peers.
const evPeer = EvHandshake | EvPeerWire | EvExtension | EvUTP | EvPredicted

// EvHostStrong are the signatures a host's features count (distinct peers,
// hostmerge): plaintext BitTorrent structure, discovery protocols, uTP
// after its dynamics, a predicted peer. An answered flow (or an LSD
// announce, which nobody answers) is needed for them to count.
const EvHostStrong = EvHandshake | EvExtension | EvDHT | EvUTP | EvUDPTracker | EvHTTPTracker | EvLSD | EvBTAgent | EvPredicted
