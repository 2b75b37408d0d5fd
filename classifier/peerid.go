package classifier

// Azureus-style client codes: "-XXnnnn-" (BEP 20). These are the clients
// seen in real swarms; an unknown code in the right shape is not counted.
var azureusClients = [...]string{
	"AG", "AZ", "BC", "BI", "BT", "BW", "CD", "DE", "FD", "FG", "FL", "FT", "FW", "HL", "KG", "KT",
	"LT", "lt", "LW", "MG", "MO", "PI", "qB", "QD", "QT", "RT", "SD", "ST", "SZ", "TB", "TL", "TR",
	"TT", "TX", "UE", "UM", "UT", "UW", "VG", "WD", "WT", "WW", "XL", "XX", "ZT", "BF", "BL", "A2",
	"7T", "AR", "AT", "BB", "BG", "BR", "BX", "CT", "EB", "ES", "HN", "HK", "IL", "JS", "JT", "KC",
	"LH", "LP", "MK", "MP", "MR", "MT", "NX", "OT", "PD", "RS", "RZ", "SB", "SM", "SS", "ST", "TN",
	"TS", "WY", "XF", "XS", "ZO",
}

// KnownPeerID reports whether b starts with a BitTorrent client's peer id
// prefix: the Azureus style "-XXnnnn-" with a known client code, or one of
// the Shadow-style and other fixed prefixes (Mainline "M1-2-3--").
func KnownPeerID(b []byte) bool {
	if len(b) < 8 {
		return false
	}
	if b[0] == '-' && b[7] == '-' {
		for i := 3; i < 7; i++ {
			c := b[i]
			if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z') {
				return false
			}
		}
		for _, c := range azureusClients {
			if b[1] == c[0] && b[2] == c[1] {
				return true
			}
		}
		return false
	}
	// Mainline: "M4-3-6--" / "T03I-----" style: a letter, then digits and dashes.
	if (b[0] == 'M' || b[0] == 'Q') && b[1] >= '0' && b[1] <= '9' && b[2] == '-' {
		return true
	}
	return false
}
