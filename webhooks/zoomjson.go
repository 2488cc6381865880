package webhooks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// This file holds the decoder behind DecodeZoom: a strict JSON scanner that
// knows the shape of a Zoom event notification. It validates the whole body
// in one pass, keeps only the positions of the fields DecodeZoom reads and
// copies those into one string at the end; everything else is checked and
// skipped. It accepts and rejects exactly what encoding/json.Unmarshal into
// the structs zoomjson_std_test.go keeps as the reference does
// (FuzzDecodeZoomMatchesStd compares the two):
//
//   - the whole input must be valid JSON (RFC 8259 grammar, at most 10000
//     nested arrays and objects, nothing but white space after the value);
//     invalid UTF-8 inside strings is accepted and each bad byte becomes
//     U+FFFD, as does a lone UTF-16 surrogate escape;
//   - keys match field names as encoding/json matches struct tags: exactly
//     or else case-insensitively (bytes.EqualFold, after unescaping), so
//     "Event", "EVENT" and "\u0065vent" fill Event; when a key repeats, the
//     last value wins, and repeated objects are merged into one;
//   - null leaves a string, an integer, the id and "payload" as they were
//     and removes "object", "old_object", "participant" and "duration";
//   - a value of the wrong type in a known field is an error (the id may be
//     a string or an integer number that fits an int64, kept as written).

// zoomMaxDepth is encoding/json's limit on nested arrays and objects.
const zoomMaxDepth = 10000

// zoomSpan is where a value sits in the body: the content of a string
// between its quotes, or the text of a number.
type zoomSpan struct {
	start, end int
	// esc: the content has escapes or invalid UTF-8 and must go through
	// appendUnquoted; otherwise it is the value as is.
	esc bool
}

func (s zoomSpan) empty() bool { return s.start == s.end }

type zoomParticipantSpans struct {
	present                                  bool
	userID, userName, id, email, join, leave zoomSpan
}

type zoomMeetingSpans struct {
	present                         bool
	id, uuid, topic, start, end, tz zoomSpan
	hasDuration                     bool
	duration                        int
	participant                     zoomParticipantSpans
}

type zoomEventSpans struct {
	event                           zoomSpan
	ts                              int64
	accountID, operator, plainToken zoomSpan
	object, old                     zoomMeetingSpans
}

// The JSON names of the fields, in the order of the cases in the decoder's
// switches.
var (
	zoomEventKeys       = zoomKeys("event", "event_ts", "payload")
	zoomPayloadKeys     = zoomKeys("account_id", "operator", "plainToken", "object", "old_object")
	zoomMeetingKeys     = zoomKeys("id", "uuid", "topic", "start_time", "end_time", "duration", "timezone", "participant")
	zoomParticipantKeys = zoomKeys("user_id", "user_name", "id", "email", "join_time", "leave_time")
)

func zoomKeys(names ...string) [][]byte {
	keys := make([][]byte, len(names))
	for i, n := range names {
		keys[i] = []byte(n)
	}
	return keys
}

// decodeZoomJSON decodes body into the positions of the fields of a Zoom
// event; see the top of this file for what it accepts.
func decodeZoomJSON(body []byte, ev *zoomEventSpans) error {
	d := zoomDecoder{data: body}
	d.ws()
	switch d.peek() {
	case '{':
		if err := d.event(ev); err != nil {
			return err
		}
	case 0:
		return d.syntaxError("unexpected end of JSON input")
	default:
		// null would decode to no event, anything else is not an object:
		// both are errors whatever follows.
		return errors.New("not a JSON object")
	}
	d.ws()
	if d.i < len(body) {
		return d.syntaxError("invalid character %s after top-level value", quoteByte(body[d.i]))
	}
	return nil
}

type zoomDecoder struct {
	data []byte
	i    int
}

// peek returns the byte at the read position, 0 at the end (0 is never
// valid there).
func (d *zoomDecoder) peek() byte {
	if d.i < len(d.data) {
		return d.data[d.i]
	}
	return 0
}

func (d *zoomDecoder) ws() {
	for d.i < len(d.data) {
		switch d.data[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

func (d *zoomDecoder) syntaxError(format string, args ...any) error {
	return fmt.Errorf("invalid JSON at offset %d: %s", d.i, fmt.Sprintf(format, args...))
}

// unexpected reports the byte at the read position (or the end) where
// something else was expected.
func (d *zoomDecoder) unexpected(context string) error {
	if d.i >= len(d.data) {
		return d.syntaxError("unexpected end of JSON input")
	}
	return d.syntaxError("invalid character %s %s", quoteByte(d.data[d.i]), context)
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < utf8.RuneSelf {
		return fmt.Sprintf("%q", rune(c))
	}
	return fmt.Sprintf("0x%02x", c)
}

// typeError reports a known field whose value has the wrong type. The
// value has not been checked: it may not even be valid JSON, but the body
// is undecodable either way.
func (d *zoomDecoder) typeError(field []byte, want string) error {
	return fmt.Errorf("%s: want %s at offset %d", field, want, d.i)
}

// Objects of known shape are read with members (open, key, the value or
// skip, next, until the closing brace); skip reads unknown ones the same
// way with no keys.

// open reads the '{' of an object at the read position, reporting whether
// a member follows.
func (d *zoomDecoder) open() bool {
	d.i++
	d.ws()
	if d.peek() == '}' {
		d.i++
		return false
	}
	return true
}

// members reads the members of the object at the read position: field
// reads the value of the member named keys[k]; a member no key names is
// checked and skipped at depth.
func (d *zoomDecoder) members(keys [][]byte, depth int, field func(k int, key []byte) error) error {
	for more := d.open(); more; {
		k, err := d.key(keys)
		if err != nil {
			return err
		}
		if k < 0 {
			err = d.skip(depth)
		} else {
			err = field(k, keys[k])
		}
		if err != nil {
			return err
		}
		if more, err = d.next(); err != nil {
			return err
		}
	}
	return nil
}

// key reads the key of a member and the colon after it; it returns the
// index in keys of the name the key fills (see match), -1 for none.
func (d *zoomDecoder) key(keys [][]byte) (int, error) {
	if d.peek() != '"' {
		return -1, d.unexpected("looking for beginning of object key string")
	}
	key, ascii, err := d.str()
	if err != nil {
		return -1, err
	}
	d.ws()
	if d.peek() != ':' {
		return -1, d.unexpected("after object key")
	}
	d.i++
	d.ws()
	return d.match(key, ascii, keys), nil
}

// next reads what follows the value of a member, reporting whether another
// member follows.
func (d *zoomDecoder) next() (bool, error) {
	d.ws()
	switch d.peek() {
	case ',':
		d.i++
		d.ws()
		return true, nil
	case '}':
		d.i++
		return false, nil
	}
	return false, d.unexpected("after object key:value pair")
}

// match returns the index of the key in keys that the object key at s
// fills, -1 if none: as encoding/json, an exact match or else one under
// Unicode case folding (bytes.EqualFold) of the unescaped key. No two keys
// of a struct fold alike, so the first match is the only one.
func (d *zoomDecoder) match(s zoomSpan, ascii bool, keys [][]byte) int {
	if len(keys) == 0 {
		return -1
	}
	key := d.data[s.start:s.end]
	if ascii && !s.esc {
		// The common case: an ASCII key can only match a name of its length.
		for k, name := range keys {
			if len(name) == len(key) && asciiEqualFold(key, name) {
				return k
			}
		}
		return -1
	}
	if s.esc {
		var buf [64]byte
		key = appendUnquoted(buf[:0], key)
	}
	for k, name := range keys {
		if bytes.EqualFold(key, name) {
			return k
		}
	}
	return -1
}

func asciiEqualFold(a, b []byte) bool {
	for i, c := range a {
		if c|0x20 != b[i]|0x20 {
			return false
		}
		// c|0x20 == b|0x20 also holds for pairs like '@'/'`' and '_'/DEL:
		// only letters may differ.
		if c != b[i] && (c|0x20 < 'a' || c|0x20 > 'z') {
			return false
		}
	}
	return true
}

func (d *zoomDecoder) event(ev *zoomEventSpans) error {
	return d.members(zoomEventKeys, 2, func(k int, key []byte) error {
		var err error
		switch k {
		case 0:
			err = d.string(&ev.event, key)
		case 1:
			var n int64
			var null bool
			if n, null, err = d.integer(key); !null {
				ev.ts = n
			}
		case 2:
			err = d.payload(ev)
		}
		return err
	})
}

func (d *zoomDecoder) payload(ev *zoomEventSpans) error {
	switch d.peek() {
	case 'n':
		return d.literal("null") // leaves the payload as it was
	case '{':
	default:
		return d.typeError([]byte("payload"), "an object")
	}
	return d.members(zoomPayloadKeys, 3, func(k int, key []byte) error {
		var err error
		switch k {
		case 0:
			err = d.string(&ev.accountID, key)
		case 1:
			err = d.string(&ev.operator, key)
		case 2:
			err = d.string(&ev.plainToken, key)
		case 3:
			err = d.meeting(&ev.object, key)
		case 4:
			err = d.meeting(&ev.old, key)
		}
		return err
	})
}

func (d *zoomDecoder) meeting(m *zoomMeetingSpans, name []byte) error {
	switch d.peek() {
	case 'n':
		*m = zoomMeetingSpans{}
		return d.literal("null")
	case '{':
	default:
		return d.typeError(name, "an object")
	}
	// A repeated object is decoded into the same meeting, as encoding/json
	// decodes into the struct a non-nil pointer already points to.
	m.present = true
	return d.members(zoomMeetingKeys, 4, func(k int, key []byte) error {
		var err error
		switch k {
		case 0:
			err = d.id(&m.id, key)
		case 1:
			err = d.string(&m.uuid, key)
		case 2:
			err = d.string(&m.topic, key)
		case 3:
			err = d.string(&m.start, key)
		case 4:
			err = d.string(&m.end, key)
		case 5:
			var n int64
			var null bool
			if n, null, err = d.integer(key); err == nil {
				if int64(int(n)) != n {
					return d.typeError(key, "an int")
				}
				m.hasDuration, m.duration = !null, int(n)
			}
		case 6:
			err = d.string(&m.tz, key)
		case 7:
			err = d.participant(&m.participant)
		}
		return err
	})
}

func (d *zoomDecoder) participant(p *zoomParticipantSpans) error {
	switch d.peek() {
	case 'n':
		*p = zoomParticipantSpans{}
		return d.literal("null")
	case '{':
	default:
		return d.typeError([]byte("participant"), "an object")
	}
	p.present = true
	return d.members(zoomParticipantKeys, 5, func(k int, key []byte) error {
		var err error
		switch k {
		case 0:
			err = d.string(&p.userID, key)
		case 1:
			err = d.string(&p.userName, key)
		case 2:
			err = d.string(&p.id, key)
		case 3:
			err = d.string(&p.email, key)
		case 4:
			err = d.string(&p.join, key)
		case 5:
			err = d.string(&p.leave, key)
		}
		return err
	})
}

// string reads a string field; null leaves it as it was.
func (d *zoomDecoder) string(dst *zoomSpan, name []byte) error {
	switch d.peek() {
	case '"':
		s, _, err := d.str()
		if err != nil {
			return err
		}
		*dst = s
		return nil
	case 'n':
		return d.literal("null")
	}
	return d.typeError(name, "a string")
}

// id reads a meeting id: a string, or an integer number (kept as written);
// null leaves it as it was.
func (d *zoomDecoder) id(dst *zoomSpan, name []byte) error {
	switch c := d.peek(); {
	case c == '"':
		s, _, err := d.str()
		if err != nil {
			return err
		}
		*dst = s
		return nil
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		s, isInt, err := d.number()
		if err != nil {
			return err
		}
		if _, ok := parseInt64(d.data[s.start:s.end]); !isInt || !ok {
			return fmt.Errorf("id %s is not an integer", d.data[s.start:s.end])
		}
		*dst = s
		return nil
	}
	return d.typeError(name, "a string or a number")
}

// integer reads an integer number that fits an int64, or null.
func (d *zoomDecoder) integer(name []byte) (n int64, null bool, err error) {
	switch c := d.peek(); {
	case c == 'n':
		return 0, true, d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		s, isInt, err := d.number()
		if err != nil {
			return 0, false, err
		}
		n, ok := parseInt64(d.data[s.start:s.end])
		if !isInt || !ok {
			return 0, false, fmt.Errorf("%s: number %s is not an int64", name, d.data[s.start:s.end])
		}
		return n, false, nil
	}
	return 0, false, d.typeError(name, "a number")
}

// parseInt64 parses the text of a JSON number without fraction or exponent.
func parseInt64(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	limit := uint64(1<<63 - 1)
	if neg {
		limit = 1 << 63
	}
	var n uint64
	for _, c := range b {
		digit := uint64(c - '0')
		if n > (limit-digit)/10 {
			return 0, false
		}
		n = n*10 + digit
	}
	if neg {
		return int64(-n), true
	}
	return int64(n), true
}

// literal reads true, false or null.
func (d *zoomDecoder) literal(word string) error {
	for j := 0; j < len(word); j++ {
		if d.i >= len(d.data) || d.data[d.i] != word[j] {
			return d.unexpected("in literal " + word)
		}
		d.i++
	}
	return nil
}

// skip reads any value; depth is the nesting depth an array or object
// there would have.
func (d *zoomDecoder) skip(depth int) error {
	switch c := d.peek(); {
	case c == '"':
		_, _, err := d.str()
		return err
	case c == '{':
		if depth > zoomMaxDepth {
			return d.syntaxError("exceeded max depth")
		}
		for more := d.open(); more; {
			if _, err := d.key(nil); err != nil {
				return err
			}
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			var err error
			if more, err = d.next(); err != nil {
				return err
			}
		}
		return nil
	case c == '[':
		if depth > zoomMaxDepth {
			return d.syntaxError("exceeded max depth")
		}
		d.i++
		d.ws()
		if d.peek() == ']' {
			d.i++
			return nil
		}
		for {
			if err := d.skip(depth + 1); err != nil {
				return err
			}
			d.ws()
			switch d.peek() {
			case ',':
				d.i++
				d.ws()
			case ']':
				d.i++
				return nil
			default:
				return d.unexpected("after array element")
			}
		}
	case c == 't':
		return d.literal("true")
	case c == 'f':
		return d.literal("false")
	case c == 'n':
		return d.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		_, _, err := d.number()
		return err
	}
	return d.unexpected("looking for beginning of value")
}

// number reads a number, reporting whether it is an integer (has neither
// fraction nor exponent).
func (d *zoomDecoder) number() (s zoomSpan, isInt bool, err error) {
	data, i := d.data, d.i
	s.start = d.i
	digits := func() {
		for i < len(data) && '0' <= data[i] && data[i] <= '9' {
			i++
		}
	}
	fail := func(context string) (zoomSpan, bool, error) {
		d.i = i
		return zoomSpan{}, false, d.unexpected(context)
	}
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		digits()
	default:
		return fail("in numeric literal")
	}
	isInt = true
	if i < len(data) && data[i] == '.' {
		isInt = false
		i++
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return fail("after decimal point in numeric literal")
		}
		digits()
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		isInt = false
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		if i >= len(data) || data[i] < '0' || data[i] > '9' {
			return fail("in exponent of numeric literal")
		}
		digits()
	}
	d.i = i
	s.end = i
	return s, isInt, nil
}

// zoomPlain marks the bytes a string holds as they are: printable ASCII
// but the quote and the backslash.
var zoomPlain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads the string at the read position ('"'), reporting whether its
// text is all ASCII.
func (d *zoomDecoder) str() (s zoomSpan, ascii bool, err error) {
	data := d.data
	i := d.i + 1
	s.start = i
	ascii = true
	for {
		// Runs of plain ASCII, sixteen and eight bytes at a time while they
		// last.
		for i+16 <= len(data) && zoomNotPlain(binary.LittleEndian.Uint64(data[i:]))|zoomNotPlain(binary.LittleEndian.Uint64(data[i+8:])) == 0 {
			i += 16
		}
		for i+8 <= len(data) && zoomPlain8(data[i:i+8]) {
			i += 8
		}
		for i < len(data) && zoomPlain[data[i]] {
			i++
		}
		if i >= len(data) {
			d.i = i
			return zoomSpan{}, false, d.syntaxError("unexpected end of JSON input")
		}
		switch c := data[i]; {
		case c == '"':
			s.end = i
			d.i = i + 1
			return s, ascii, nil
		case c == '\\':
			s.esc = true
			if i+1 >= len(data) {
				d.i = i + 1
				return zoomSpan{}, false, d.syntaxError("unexpected end of JSON input")
			}
			switch data[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				i += 2
				for end := i + 4; i < end; i++ {
					if i >= len(data) {
						d.i = i
						return zoomSpan{}, false, d.syntaxError("unexpected end of JSON input")
					}
					if !isHex(data[i]) {
						d.i = i
						return zoomSpan{}, false, d.unexpected(`in \u hexadecimal character escape`)
					}
				}
			default:
				d.i = i + 1
				return zoomSpan{}, false, d.unexpected("in string escape code")
			}
		case c < 0x20:
			d.i = i
			return zoomSpan{}, false, d.unexpected("in string literal")
		default: // c >= utf8.RuneSelf
			ascii = false
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				s.esc = true // becomes U+FFFD
			}
			i += size
		}
	}
}

// zoomPlain8 reports whether all eight bytes are plain (see zoomPlain).
func zoomPlain8(b []byte) bool {
	return zoomNotPlain(binary.LittleEndian.Uint64(b)) == 0
}

// zoomNotPlain returns v, eight bytes, with the high bit of a byte set
// when it is below 0x20, a quote, a backslash or not ASCII, and every other
// bit clear; or rather, it flags the first such byte and maybe some above:
// a subtraction that wraps a byte (below 0x20, or the quote or backslash
// xored to 0) borrows from the next. On a word of plain bytes no
// subtraction wraps and none sets a high bit.
func zoomNotPlain(v uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	return ((v - ones*0x20) | v | (v ^ ones*'"' - ones) | (v ^ ones*'\\' - ones)) & highs
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexValue(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c >= 'a':
			c -= 'a' - 10
		default:
			c -= 'A' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// appendUnquoted appends the value of the content s of a valid JSON string
// to dst as encoding/json decodes it: invalid UTF-8 bytes and UTF-16
// surrogate escapes that are not a valid pair each become U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	for r := 0; r < len(s); {
		switch c := s[r]; {
		case c == '\\':
			switch e := s[r+1]; e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				rr := hexValue(s[r+2:])
				r += 6
				if utf16.IsSurrogate(rr) {
					if r+6 <= len(s) && s[r] == '\\' && s[r+1] == 'u' {
						if dec := utf16.DecodeRune(rr, hexValue(s[r+2:])); dec != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, dec)
							r += 6
							continue
						}
					}
					rr = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, rr)
				continue
			default: // '"', '\\', '/'
				dst = append(dst, e)
			}
			r += 2
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			r++
		default:
			rr, size := utf8.DecodeRune(s[r:])
			dst = utf8.AppendRune(dst, rr)
			r += size
		}
	}
	return dst
}

// zoomStrings sets dst[k] to the value at spans[k], for every k (at most
// 32), copying them all into one string: one allocation for all of an
// event's strings. With alias, only the values with escapes are copied; the
// others point into body (which must never be modified afterwards).
func zoomStrings(body []byte, spans []zoomSpan, dst []string, alias bool) {
	size := 0
	for _, s := range spans {
		if s.esc || !alias {
			size += s.end - s.start // the length of the value unless it has escapes
		}
	}
	var (
		b    strings.Builder
		ends [32]int
		buf  [128]byte
	)
	b.Grow(size)
	for k, s := range spans {
		raw := body[s.start:s.end]
		switch {
		case len(raw) == 0:
		case s.esc:
			b.Write(appendUnquoted(buf[:0], raw))
		case alias:
			dst[k] = unsafe.String(&raw[0], len(raw))
		default:
			b.Write(raw)
		}
		ends[k] = b.Len()
	}
	all, start := b.String(), 0
	for k, s := range spans {
		if !alias || s.esc || s.end == s.start {
			dst[k] = all[start:ends[k]]
		}
		start = ends[k]
	}
}

// zoomValueIs reports whether the string at s is v.
func zoomValueIs(body []byte, s zoomSpan, v string) bool {
	raw := body[s.start:s.end]
	if s.esc {
		var buf [64]byte
		raw = appendUnquoted(buf[:0], raw)
	}
	return string(raw) == v
}
