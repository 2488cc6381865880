package webhooks

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// zoomBodies are real Zoom event notifications (shaped as Zoom documents
// them, with the fields the gateway ignores) and variants that exercise the
// corners of JSON and of encoding/json's decoding; zoomBadBodies must not
// decode.
var zoomBodies = []string{
	// meeting.started, as Zoom sends it.
	`{"event":"meeting.started","payload":{"account_id":"AAAAAABBBB","object":{"duration":60,"start_time":"2026-12-08T10:00:00Z","timezone":"America/Los_Angeles","topic":"My Meeting","id":"85746065","type":2,"uuid":"4444AAAiAAAAAiAiAiiAii==","host_id":"x1yCzABCDEfg23HiJKl4mN"}},"event_ts":1765188000572}`,
	// meeting.ended, pretty-printed.
	"{\n  \"event\": \"meeting.ended\",\n  \"event_ts\": 1765191600000,\n  \"payload\": {\n    \"account_id\": \"AAAAAABBBB\",\n    \"object\": {\n      \"id\": \"85746065\",\n      \"uuid\": \"4444AAAiAAAAAiAiAiiAii==\",\n      \"host_id\": \"x1yCzABCDEfg23HiJKl4mN\",\n      \"topic\": \"My Meeting\",\n      \"type\": 2,\n      \"start_time\": \"2026-12-08T10:00:00Z\",\n      \"end_time\": \"2026-12-08T11:00:00Z\",\n      \"duration\": 60,\n      \"timezone\": \"Europe/Berlin\"\n    }\n  }\n}\r\n",
	// meeting.updated: numeric id, settings, recurrence and occurrences nobody reads, old_object.
	`{"event":"meeting.updated","event_ts":1765188000123,"payload":{"account_id":"acc","operator":"admin@example.com","operator_id":"z8yCxjabcdEFGHfp8uQ","operation":"single","scope":"meeting","object":{"id":85746065,"uuid":"u==","topic":"Weekly \"sync\"","start_time":"2026-12-08T10:00:00+01:00","duration":45,"timezone":"Europe/Berlin","settings":{"host_video":true,"join_before_host":false,"approval_type":2,"alternative_hosts":"","waiting_room":null,"meeting_invitees":[{"email":"a@b.c"}]},"recurrence":{"type":2,"repeat_interval":1,"weekly_days":"2,4","end_times":7},"occurrences":[{"occurrence_id":"1648194360000","start_time":"2026-12-15T10:00:00Z","duration":60,"status":"available"}],"agenda":"line one\nline two\ttabbed \\ backslash \/ slash","password":"12.5e-3"},"old_object":{"id":85746065,"start_time":"2026-12-08T09:00:00Z","duration":30,"topic":"old"},"time_stamp":1765188000000}}`,
	// meeting.deleted with a string id and an operator.
	`{"event":"meeting.deleted","event_ts":1765188000000,"payload":{"account_id":"acc","operator":"ann@example.com","operator_id":"x","operation":"all","object":{"uuid":"u/+==","id":"85746065","host_id":"h","topic":"Gone","type":8,"start_time":"2026-12-08T10:00:00Z","duration":60,"timezone":"UTC","occurrences":[]}}}`,
	// participant_joined and participant_left.
	`{"event":"meeting.participant_joined","event_ts":1765188060000,"payload":{"account_id":"acc","object":{"id":"85746065","uuid":"u==","host_id":"h","topic":"My Meeting","type":2,"start_time":"2026-12-08T10:00:00Z","timezone":"UTC","duration":60,"participant":{"user_id":"16778240","user_name":"Jill Chill","id":"iFxeBPYun6SAiWUzBcEkX","participant_uuid":"55555AAAiAAAAAiAiAiiAii","join_time":"2026-12-08T10:01:00Z","email":"jchill@example.com","registrant_id":"abcdefghij0-klmnopq23456","participant_user_id":"rstuvwxyza789-cde","customer_key":"349589LkJyeW","phone_number":"8615250064084","public_ip":"1.2.3.4"}}}}`,
	`{"event":"meeting.participant_left","event_ts":1765191000000,"payload":{"account_id":"acc","object":{"id":85746065,"uuid":"u==","participant":{"user_id":"16778240","user_name":"Jill Chill","id":"iFx","join_time":"2026-12-08T10:01:00Z","leave_time":"2026-12-08T10:50:00.123-05:00","leave_reason":"Jill Chill left the meeting.<br>Reason : left the meeting","email":""}}}}`,
	// endpoint.url_validation, with and without the rest.
	`{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}`,
	`{"event":"endpoint.url_validation","payload":{"plainToken":"abc","account_id":"a","object":{"id":"1","start_time":"not a time","duration":-5}}}`,
	`{"event":"endpoint.url_validation","payload":{"plainToken":"` + strings.Repeat("t", 256) + `"}}`,
	`{"event":"endpoint.url_validation","payload":{"plainToken":"` + strings.Repeat("é", 128) + `"}}`,
	`{"event":"endpoint.\u0075rl_validation","payload":{"plainToken":"\u00e9"}}`,
	// Escapes in every form: surrogate pairs, lone and misordered surrogates, invalid UTF-8.
	`{"event":"meeting.started","payload":{"object":{"id":"1","topic":"caf\u00e9 \ud83d\ude00 \ud83d x \ude00 \ud83d\u0041 \ud83d\ud83d\ude00 \uDBFF\uDFFF \u0000 \b\f\n\r\t\"\\\/","uuid":"\u002F"}}}`,
	"{\"event\":\"meeting.started\",\"payload\":{\"object\":{\"id\":\"1\",\"topic\":\"bad \xff\xfe utf8 \xe2\x82 and \xed\xa0\x80 surrogate \xf4\x90\x80\x80\",\"timezone\":\"\xc3\xa9\"}}}",
	`{"event":"meeting.started","payload":{"object":{"id":"1","topic":"\ud83d"}}}`,
	`{"event":"meeting.started","payload":{"object":{"id":"1","topic":"\ud83d\\"}}}`,
	`{"event":"meeting.started","payload":{"object":{"id":"\uDE00\uD83D","topic":"\u12aB\uFFFF\uFFFE"}}}`,
	// Nulls.
	`{"event":"meeting.started","event_ts":null,"payload":{"account_id":null,"operator":null,"object":{"id":null,"uuid":null,"topic":null,"start_time":null,"end_time":null,"duration":null,"timezone":null,"participant":null},"old_object":null}}`,
	`{"event":"meeting.started","payload":null}`,
	`{"event":"meeting.participant_joined","payload":{"object":{"id":"1","participant":{"user_id":null,"user_name":null,"id":null,"email":null,"join_time":null,"leave_time":null}}}}`,
	// Repeated keys: the last value wins, objects merge, null keeps strings and clears pointers.
	`{"event":"a","event":"meeting.started","event_ts":1,"event_ts":2,"event_ts":null,"payload":{"object":{"id":1,"topic":"t"},"object":{"uuid":"u","id":null},"account_id":"x","account_id":null}}`,
	`{"event":"meeting.started","payload":{"object":{"id":1,"duration":5},"object":null,"object":{"topic":"fresh"}}}`,
	`{"event":"meeting.started","payload":{"object":{"duration":5,"duration":null}}}`,
	`{"event":"meeting.started","payload":{"account_id":"a"},"payload":{"operator":"o"},"payload":null}`,
	`{"event":"meeting.participant_left","payload":{"object":{"participant":{"user_id":"1","leave_time":"2026-12-08T10:50:00Z"},"participant":{"join_time":"2026-12-08T10:00:00Z","leave_time":""}}}}`,
	`{"event":"meeting.participant_left","payload":{"object":{"participant":{"user_id":"1"},"participant":null,"participant":{"email":"e"}}}}`,
	`{"event":"meeting.updated","payload":{"old_object":{"id":"1","participant":{"user_id":"2","join_time":"not checked"}},"old_object":{"topic":"t"}}}`,
	// Keys match case-insensitively, after unescaping, with Unicode folding (ſ is s, K is k).
	`{"Event":"meeting.started","EVENT_TS":7,"PayLoad":{"Account_ID":"a","OBJECT":{"ID":"1","Topic":"t","\u0075uid":"u","ſtart_time":"2026-12-08T10:00:00Z","DURATION":3}}}`,
	`{"event":"endpoint.url_validation","payload":{"plainToKen":"tok"}}`,
	`{"event":"endpoint.url_validation","payload":{"plaintoken":"tok","plainToken":"last"}}`,
	`{"event":"meeting.started","payload":{"object":{"id":"1","topic\u0000":"no","top":"no","topicx":"no","topiC":"yes"}}}`,
	`{"event":"meeting.started","e\u0076ent":"meeting.ended","payload":{"object":{"id":"1","end_\u0074ime":"2026-12-08T11:00:00Z"}}}`,
	"{\"event\":\"meeting.started\",\"payload\":{\"object\":{\"id\":\"1\",\"topic\xff\":\"no\",\"\xc5\xbfTART_TIME\":\"2026-12-08T10:00:00Z\"}}}",
	// Numbers: ids as written, integers at the edges of int64, unknown fields of every shape.
	`{"event":"meeting.started","event_ts":-9223372036854775808,"payload":{"object":{"id":-0,"duration":9223372036854775807}}}`,
	`{"event":"meeting.started","event_ts":9223372036854775807,"payload":{"object":{"id":-9223372036854775808,"duration":0}}}`,
	`{"event":"meeting.started","payload":{"object":{"id":0}},"x":[1,-2.5e+10,0.0,1E-7,-0,true,false,null,"s",{},[],{"a":[{"b":{}}]}]}`,
	`{"event":"meeting.started","payload":{"object":{"id":"","duration":0}}}`,
	" \t\r\n{ \"event\" : \"meeting.started\" , \"payload\" : { \"object\" : { \"id\" : 12 , \"participant\" : { } } } } \t\r\n",
	`{"event":"meeting.started","payload":{}}`,
	`{"event":"meeting.started","payload":{"object":{}}}`,
	// Times.
	`{"event":"meeting.started","payload":{"object":{"id":"1","start_time":"2026-12-08T10:00:00.999999999+14:00","end_time":"2026-12-08T10:00:00-00:30"}}}`,
}

var zoomBadBodies = []string{
	``, ` `, `null`, `[]`, `"x"`, `1`, `true`, `{}`, `{"event":""}`, `{"event":"\u0000"x}`,
	`{`, `{"event":`, `{"event":"meeting.started"`, `{"event":"meeting.started",}`, `{"event":"meeting.started"}}`,
	`{"event":"meeting.started"} x`, `{"event":"meeting.started"}{}`, `{"event":"meeting.started"};`,
	`{"event" "meeting.started"}`, `{event:"meeting.started"}`, `{'event':'meeting.started'}`, `{"event":"meeting.started",,"x":1}`,
	// Types.
	`{"event":1}`, `{"event":true}`, `{"event":{}}`, `{"event":[]}`, `{"event":"e","event_ts":"1"}`, `{"event":"e","event_ts":1.0}`,
	`{"event":"e","event_ts":1e3}`, `{"event":"e","event_ts":9223372036854775808}`, `{"event":"e","event_ts":-9223372036854775809}`,
	`{"event":"e","payload":[]}`, `{"event":"e","payload":"x"}`, `{"event":"e","payload":1}`, `{"event":"e","payload":true}`,
	`{"event":"e","payload":{"object":[]}}`, `{"event":"e","payload":{"object":"x"}}`, `{"event":"e","payload":{"old_object":false}}`,
	`{"event":"e","payload":{"account_id":1}}`, `{"event":"e","payload":{"operator":false}}`, `{"event":"e","payload":{"plainToken":{}}}`,
	`{"event":"meeting.started","payload":{"object":{"id":1.5}}}`, `{"event":"e","payload":{"object":{"id":1e2}}}`,
	`{"event":"e","payload":{"object":{"id":true}}}`, `{"event":"e","payload":{"object":{"id":{}}}}`, `{"event":"e","payload":{"object":{"id":[]}}}`,
	`{"event":"e","payload":{"object":{"id":99999999999999999999}}}`, `{"event":"e","payload":{"object":{"duration":"60"}}}`,
	`{"event":"e","payload":{"object":{"duration":1.5}}}`, `{"event":"e","payload":{"object":{"topic":7}}}`,
	`{"event":"e","payload":{"object":{"participant":[]}}}`, `{"event":"e","payload":{"object":{"participant":{"email":1}}}}`,
	`{"event":"e","payload":{"old_object":{"participant":{"join_time":false}}}}`,
	`{"event":"endpoint.url_validation","payload":{"object":{"duration":"x"},"plainToken":"t"}}`,
	// DecodeZoom's own checks.
	`{"event":"endpoint.url_validation","payload":{}}`, `{"event":"endpoint.url_validation","payload":{"plainToken":null}}`,
	`{"event":"endpoint.url_validation","payload":{"plainToken":"` + strings.Repeat("t", 257) + `"}}`,
	`{"event":"endpoint.url_validation","payload":{"plainToken":"` + strings.Repeat("\\u00e9", 129) + `"}}`,
	`{"event":"meeting.started","payload":{"object":{"id":"1","start_time":"yesterday"}}}`,
	`{"event":"meeting.started","payload":{"object":{"end_time":"2026-12-08 10:00:00"}}}`,
	`{"event":"meeting.started","payload":{"object":{"duration":-1}}}`,
	`{"event":"meeting.updated","payload":{"old_object":{"duration":-1}}}`,
	`{"event":"meeting.updated","payload":{"old_object":{"start_time":"x"}}}`,
	`{"event":"meeting.participant_left","payload":{"object":{"participant":{"leave_time":"x","join_time":"2026-12-08T10:00:00Z"}}}}`,
	// Strings, numbers and literals JSON does not allow.
	`{"event":"a\x"}`, `{"event":"a\'"}`, `{"event":"\u12"}`, `{"event":"\u12G4"}`, `{"event":"\U0041"}`, "{\"event\":\"a\tb\"}",
	"{\"event\":\"a\x00\"}", "{\"event\":\"a\x1f\"}", `{"event":"abc`, `{"event":"abc\`, `{"event":"abc\u`,
	`{"event":"e","x":01}`, `{"event":"e","x":-}`, `{"event":"e","x":1.}`, `{"event":"e","x":.5}`, `{"event":"e","x":1e}`,
	`{"event":"e","x":1e+}`, `{"event":"e","x":+1}`, `{"event":"e","x":0x10}`, `{"event":"e","x":NaN}`, `{"event":"e","x":tru}`,
	`{"event":"e","x":nul}`, `{"event":"e","x":True}`, `{"event":"e","x":[1,]}`, `{"event":"e","x":[,1]}`, `{"event":"e","x":[1 2]}`,
	`{"event":"e","x":{"a"}}`, `{"event":"e","x":{"a":1,}}`, `{"event":"e","x":{1:1}}`, `{"event":"e","x":}`,
	`{"event":"e","payload":{"object":{"id":01}}}`, `{"event":"e","payload":{"object":{"id":-}}}`, `{"event":"e","event_ts":1x}`,
	"\xef\xbb\xbf{\"event\":\"e\"}", "{\"event\":\"e\"}\x00", "{\"event\":\"e\"\v}",
}

// checkDecodeZoom fails the test unless DecodeZoom and the encoding/json
// reference both refuse body (with ErrUndecodable), or both decode it to
// deep-equal events that do not share memory with it.
func checkDecodeZoom(t *testing.T, body []byte) {
	t.Helper()
	input := bytes.Clone(body)
	got, gotErr := DecodeZoom(input)
	want, wantErr := decodeZoomStd(body)
	// The event must not alias the body the caller may reuse.
	for i := range input {
		input[i] = '#'
	}
	// Intake's decode, whose strings point into the body, gives the same.
	aliased, aliasedErr := decodeZoom(bytes.Clone(body), true)
	if (aliasedErr == nil) != (wantErr == nil) || (aliasedErr == nil && !reflect.DeepEqual(aliased, want)) {
		t.Fatalf("decodeZoom(%q, alias) = %+v, %v; encoding/json: %+v, %v", body, aliased, aliasedErr, want, wantErr)
	}
	switch {
	case gotErr != nil && wantErr != nil:
		if !errors.Is(gotErr, ErrUndecodable) || got != nil {
			t.Fatalf("DecodeZoom(%q) = %+v, %v; want nil, ErrUndecodable", body, got, gotErr)
		}
	case gotErr != nil || wantErr != nil:
		t.Fatalf("DecodeZoom(%q)\n err %v\nencoding/json err %v", body, gotErr, wantErr)
	case !reflect.DeepEqual(got, want):
		// cmp compares times with Equal; print them whole too.
		t.Fatalf("DecodeZoom(%q) differs from encoding/json (-got +want):\n%s\ngot  %#v\nwant %#v",
			body, cmp.Diff(got, want), got, want)
	}
}

func TestDecodeZoomMatchesStd(t *testing.T) {
	t.Parallel()
	for _, body := range zoomBodies {
		if _, err := decodeZoomStd([]byte(body)); err != nil {
			t.Errorf("good body %q: encoding/json: %v", body, err)
		}
		checkDecodeZoom(t, []byte(body))
	}
	for _, body := range zoomBadBodies {
		if _, err := decodeZoomStd([]byte(body)); err == nil {
			t.Errorf("bad body %q decodes with encoding/json", body)
		}
		checkDecodeZoom(t, []byte(body))
	}
	// Every prefix of a valid body is invalid, every byte matters.
	for _, body := range zoomBodies[:6] {
		for i := range len(body) {
			checkDecodeZoom(t, []byte(body[:i]))
			b := []byte(body)
			b[i] = '"'
			checkDecodeZoom(t, b)
		}
	}
}

func TestDecodeZoomFields(t *testing.T) {
	t.Parallel()
	ev, err := DecodeZoom([]byte(`{"Event":"meeting.participant_left","event_ts":5,"payload":{"account_id":"acc",
		"object":{"id":85746065,"uuid":"u\u003d=","topic":"caf\u00e9 \ud83d\ude00","duration":null,"timezone":"UTC",
		"participant":{"user_id":"1","user_name":"Ann","id":"p","email":"a@b.c","join_time":"2026-12-08T10:00:00Z","leave_time":"2026-12-08T10:30:00Z"}},
		"old_object":{"id":"85746065","duration":30}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &ZoomEvent{
		Event: ZoomParticipantLeft, TS: 5, AccountID: "acc",
		Meeting:     ZoomMeeting{ID: "85746065", UUID: "u==", Topic: "café 😀", TimeZone: "UTC"},
		Old:         &ZoomMeeting{ID: "85746065", Duration: 30},
		Participant: &ZoomParticipant{UserID: "1", UserName: "Ann", ID: "p", Email: "a@b.c", At: time.Date(2026, 12, 8, 10, 30, 0, 0, time.UTC)},
	}
	if diff := cmp.Diff(ev, want); diff != "" {
		t.Errorf("DecodeZoom (-got +want):\n%s", diff)
	}
}

// TestDecodeZoomDepth checks encoding/json's limit of 10000 nested arrays
// and objects, counting the event object itself.
func TestDecodeZoomDepth(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		depth int // of the innermost array, the event being 1
		ok    bool
	}{{9999, true}, {10000, true}, {10001, false}, {20000, false}} {
		n := tt.depth - 1
		for _, c := range []struct{ open, close string }{{"[", "]"}, {`{"a":`, "}"}} {
			body := `{"event":"meeting.started","x":` + strings.Repeat(c.open, n) + "1" + strings.Repeat(c.close, n) + `}`
			_, err := DecodeZoom([]byte(body))
			if (err == nil) != tt.ok {
				t.Errorf("depth %d of %s: err %v", tt.depth, c.open, err)
			}
			if tt.depth <= 10001 {
				checkDecodeZoom(t, []byte(body))
			}
		}
	}
}

// TestZoomPlain8 checks the eight-byte test of the string scanner against
// the table it stands for, on every byte in every position.
func TestZoomPlain8(t *testing.T) {
	t.Parallel()
	for pos := range 8 {
		for c := range 256 {
			for _, fill := range []byte{'a', 0x21, 0x7f, '#', ']'} {
				b := bytes.Repeat([]byte{fill}, 8)
				b[pos] = byte(c)
				if got, want := zoomPlain8(b), zoomPlain[c]; got != want {
					t.Fatalf("zoomPlain8(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
}

// FuzzDecodeZoomMatchesStd checks that DecodeZoom accepts exactly the
// bodies the encoding/json implementation accepts, with the same results.
func FuzzDecodeZoomMatchesStd(f *testing.F) {
	for _, body := range zoomBodies {
		f.Add([]byte(body))
	}
	for _, body := range zoomBadBodies {
		f.Add([]byte(body))
	}
	f.Add(zoomBenchBody())
	f.Fuzz(func(t *testing.T, body []byte) {
		checkDecodeZoom(t, body)
	})
}

// zoomBenchBody is a ~1 KiB meeting.started delivery as bench/webhooks
// sends it.
func zoomBenchBody() []byte {
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	return fmt.Appendf(nil, `{"event":"meeting.started","event_ts":%d,"payload":{"account_id":"bench","object":{"id":"%d","uuid":"u%d","host_id":"h","topic":"%s","type":2,"start_time":"%s","duration":60,"timezone":"UTC"}}}`,
		now.UnixMilli(), 900000001, 1, strings.Repeat("x", 1024-220), now.Format(time.RFC3339))
}

func BenchmarkDecodeZoom(b *testing.B) {
	body := zoomBenchBody()
	for _, bm := range []struct {
		name   string
		decode func([]byte) (*ZoomEvent, error)
	}{{"fast", DecodeZoom}, {"alias", func(b []byte) (*ZoomEvent, error) { return decodeZoom(b, true) }}, {"std", decodeZoomStd}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := bm.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// zoomGen writes Zoom-shaped JSON documents, taking its choices from src
// (0 when it runs out, which always leads to a short document): known and
// unknown keys in any case, escaped or folded, repeated; values of the
// right type, null or anything; strings with escapes and invalid UTF-8;
// integers at the edges; and at times a broken byte.
type zoomGen struct {
	src []byte
	out []byte
}

func (g *zoomGen) choose(n int) int {
	if len(g.src) == 0 {
		return 0
	}
	c := g.src[0]
	g.src = g.src[1:]
	return int(c) % n
}

func (g *zoomGen) pick(s []string) string { return s[g.choose(len(s))] }

func (g *zoomGen) ws() {
	g.out = append(g.out, g.pick([]string{"", "", "", " ", "\n  ", "\t", "\r\n"})...)
}

type zoomGenKind int

const (
	genEvent zoomGenKind = iota
	genPayload
	genMeeting
	genParticipant
	genString
	genTime
	genInt
	genID
	genEventName
)

var zoomGenKeys = map[zoomGenKind][]string{
	genEvent:       {"event", "event_ts", "payload"},
	genPayload:     {"account_id", "operator", "plainToken", "object", "old_object"},
	genMeeting:     {"id", "uuid", "topic", "start_time", "end_time", "duration", "timezone", "participant"},
	genParticipant: {"user_id", "user_name", "id", "email", "join_time", "leave_time"},
}

var zoomGenKinds = map[string]zoomGenKind{
	"event": genEventName, "event_ts": genInt, "payload": genPayload,
	"account_id": genString, "operator": genString, "plainToken": genString, "object": genMeeting, "old_object": genMeeting,
	"id": genID, "uuid": genString, "topic": genString, "start_time": genTime, "end_time": genTime, "duration": genInt,
	"timezone": genString, "participant": genParticipant,
	"user_id": genString, "user_name": genString, "email": genString, "join_time": genTime, "leave_time": genTime,
}

func (g *zoomGen) document() []byte {
	g.ws()
	g.value(genEvent, 1)
	g.ws()
	if g.choose(8) == 7 {
		// Break one byte.
		if len(g.out) > 0 {
			i := g.choose(256) * len(g.out) / 256
			switch g.choose(3) {
			case 0:
				g.out = append(g.out[:i], g.out[i+1:]...)
			case 1:
				g.out[i] = g.pick([]string{`"`, `\`, "}", "]", ",", ":", "\x00", "\xff", "n", "0"})[0]
			default:
				g.out = append(g.out[:i], append([]byte(g.pick([]string{`"`, ",", "{", "[", " ", "1"})), g.out[i:]...)...)
			}
		}
	}
	return g.out
}

// value writes a value for a field of the kind, usually of the right type.
func (g *zoomGen) value(kind zoomGenKind, depth int) {
	switch g.choose(16) {
	case 14:
		g.out = append(g.out, "null"...)
		return
	case 15:
		g.any(depth)
		return
	}
	switch kind {
	case genEvent, genPayload, genMeeting, genParticipant:
		keys := zoomGenKeys[kind]
		g.out = append(g.out, '{')
		g.ws()
		for i := range g.choose(7) + 1 {
			if kind == genEvent && i == 0 {
				// Most documents name their event first.
				if g.choose(8) != 7 {
					g.key("event")
					g.value(genEventName, depth+1)
					continue
				}
			}
			if i > 0 {
				g.out = append(g.out, ',')
				g.ws()
			}
			if k := g.choose(len(keys) + 2); k < len(keys) {
				g.key(keys[k])
				g.value(zoomGenKinds[keys[k]], depth+1)
			} else {
				g.key(g.pick([]string{"host_id", "type", "settings", "occurrences", "x", "", "eventx", "payloa", "user", "Id"}))
				g.any(depth + 1)
			}
			g.ws()
		}
		g.out = append(g.out, '}')
	case genString:
		g.str()
	case genEventName:
		if g.choose(3) == 0 {
			g.out = strconv.AppendQuote(g.out, g.pick([]string{ZoomMeetingStarted, ZoomURLValidation, ZoomParticipantLeft, ZoomMeetingUpdated}))
		} else {
			g.str()
		}
	case genTime:
		if g.choose(3) == 0 {
			g.str()
		} else {
			g.out = strconv.AppendQuote(g.out, g.pick([]string{"2026-12-08T10:00:00Z", "2026-12-08T10:00:00+01:00",
				"2026-12-08T10:00:00.5-07:00", "", "2026-12-08", "2026-12-08T24:00:00Z", "2026-02-30T10:00:00Z", "2026-12-08T10:00:00z"}))
		}
	case genInt, genID:
		if kind == genID && g.choose(2) == 0 {
			g.str()
			return
		}
		if g.choose(4) != 0 {
			g.out = append(g.out, g.pick([]string{"60", "0", "-0", "-1", "85746065", "9223372036854775807", "-9223372036854775808"})...)
			return
		}
		g.out = append(g.out, g.pick([]string{"9223372036854775808", "-9223372036854775809", "1.5", "1e3", "1E+2", "0.0",
			"12345678901234567890", "-0.0e-0"})...)
	}
}

// key writes an object key that fills name in encoding/json: as is, in
// another case, with an escape or with a non-ASCII rune that folds to one
// of its letters.
func (g *zoomGen) key(name string) {
	b := []byte(name)
	switch g.choose(6) {
	case 1:
		b = bytes.ToUpper(b)
	case 2:
		for i := range b {
			if c := b[i] | 0x20; 'a' <= c && c <= 'z' && g.choose(2) == 0 {
				b[i] ^= 0x20
			}
		}
	case 3:
		if len(b) > 0 {
			i := g.choose(len(b))
			b = []byte(name[:i] + fmt.Sprintf(`\u%04x`, name[i]) + name[i+1:])
		}
	case 4:
		r := strings.NewReplacer("s", "ſ", "k", "\u212a", "S", "ſ", "K", "\u212a")
		b = []byte(r.Replace(name))
	}
	g.out = append(g.out, '"')
	g.out = append(g.out, b...)
	g.out = append(g.out, '"')
	g.ws()
	g.out = append(g.out, ':')
	g.ws()
}

func (g *zoomGen) str() {
	g.out = append(g.out, '"')
	for range g.choose(5) {
		g.out = append(g.out, g.pick([]string{"meeting", "x", "é", "😀", `\"`, `\\`, `\/`, `\n`, `\t`, `\b`, `\u00e9`, `\u0000`,
			`\ud83d\ude00`, `\ud83d`, `\ude00`, `\uD83D\u0041`, `\ud83d\ud83d\ude00`, "\xff", "\xe2\x82", "\xed\xa0\x80", "\u2028", "\x7f"})...)
	}
	g.out = append(g.out, '"')
}

// any writes a value of any type, nesting a little.
func (g *zoomGen) any(depth int) {
	switch g.choose(8) {
	case 0:
		g.out = append(g.out, "0"...)
	case 1:
		g.str()
	case 2:
		g.out = append(g.out, g.pick([]string{"true", "false", "null", "-1.25e-3", "1E9"})...)
	case 3, 4:
		if depth > 6 {
			g.out = append(g.out, "[]"...)
			return
		}
		g.out = append(g.out, '[')
		for i := range g.choose(4) {
			if i > 0 {
				g.out = append(g.out, ',')
			}
			g.ws()
			g.any(depth + 1)
		}
		g.out = append(g.out, ']')
	default:
		if depth > 6 {
			g.out = append(g.out, "{}"...)
			return
		}
		g.out = append(g.out, '{')
		for i := range g.choose(4) {
			if i > 0 {
				g.out = append(g.out, ',')
			}
			g.key(g.pick([]string{"a", "event", "id", "object"}))
			g.any(depth + 1)
		}
		g.out = append(g.out, '}')
	}
}

// FuzzDecodeZoomShapes compares DecodeZoom with encoding/json on documents
// zoomGen writes from the fuzzer's input: byte mutations alone seldom
// reach keys in other cases, repeated objects or values of the wrong type.
func FuzzDecodeZoomShapes(f *testing.F) {
	for seed := range uint64(32) {
		r := rand.New(rand.NewPCG(seed, seed))
		src := make([]byte, 256)
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		g := zoomGen{src: src}
		checkDecodeZoom(t, g.document())
	})
}

// TestDecodeZoomShapes runs zoomGen on random choices.
func TestDecodeZoomShapes(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(1, 2))
	n, decoded := 10000, 0
	if testing.Short() {
		n = 2000
	}
	src := make([]byte, 512)
	for range n {
		for i := range src {
			src[i] = byte(r.Uint32())
		}
		g := zoomGen{src: src}
		body := g.document()
		checkDecodeZoom(t, body)
		if _, err := decodeZoomStd(body); err == nil {
			decoded++
		}
	}
	// The generator is only useful if a fair share of its documents decode.
	if decoded < n/20 {
		t.Errorf("only %d of %d generated documents decode", decoded, n)
	}
	t.Logf("%d of %d generated documents decode", decoded, n)
}
