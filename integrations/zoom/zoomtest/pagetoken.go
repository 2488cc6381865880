package zoomtest

import (
	"encoding/base64"
	"strconv"
	"strings"
)

// Page tokens are opaque to clients; this one binds the offset to the user
// and list type so a token cannot be replayed against another listing.
func encodePageToken(offset int, userID, typ string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(offset) + "\x00" + userID + "\x00" + typ))
}

func decodePageToken(tok, userID, typ string) (int, bool) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, false
	}
	parts := strings.Split(string(b), "\x00")
	if len(parts) != 3 || parts[1] != userID || parts[2] != typ {
		return 0, false
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
