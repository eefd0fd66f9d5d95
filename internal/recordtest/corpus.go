package recordtest

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
)

// Bad is one kind of bad record and what its dead letter must say: Reason
// in its reason, and the code of Want (a package deadletter kind).
type Bad struct {
	Kind   string
	Topic  string
	Record codec.Record // carries the header test_kind: Kind
	Reason string
	Want   error
}

// Corpus is the bad input the suites mix into normal traffic: every kind
// must end in the dead-letter topic with Reason in its reason. good makes a
// valid command for the commands topic (its payload a JSON object, its
// entity with the default entities.MaxValue); boom makes a valid command of
// type "panic", "hang" or "fail" for boomTopic, whose entity's handlers
// panic, hang past their timeout and keep failing.
func Corpus(commands string, good func(subject, id string) codec.Record, boomTopic string, boom func(typ, id string) codec.Record) []Bad {
	n := 0
	g := func() codec.Record { n++; return good("bad", fmt.Sprintf("bad-%d", n)) }
	withValue := func(r codec.Record, v []byte) codec.Record {
		return codec.Record{Key: r.Key, Value: v, Headers: r.Headers}
	}
	list := []Bad{
		{"not a CloudEvent", commands, codec.Record{Key: []byte("bad"), Value: []byte("hello")}, "not a CloudEvent", deadletter.ErrNotCloudEvent},
		{"wrong specversion", commands, With(g(), "ce_specversion", "0.3"), "spec version", deadletter.ErrInvalidEvent},
		{"missing id", commands, With(g(), "ce_id", nil), "id", deadletter.ErrInvalidEvent},
		{"missing source", commands, With(g(), "ce_source", nil), "source", deadletter.ErrInvalidEvent},
		{"missing type", commands, With(g(), "ce_type", nil), "type", deadletter.ErrInvalidEvent},
		{"missing subject", commands, With(g(), "ce_subject", nil), "ce-subject is missing", deadletter.ErrInvalidEvent},
		{"invalid JSON", commands, withValue(g(), []byte(`{"x":`)), "payload does not fit", deadletter.ErrBadPayload},
		{"payload of the wrong type", commands, withValue(g(), []byte(`[1,2]`)), "payload does not fit", deadletter.ErrBadPayload},
		{"unknown type", commands, With(g(), "ce_type", "frobnicate"), `unknown type "frobnicate"`, deadletter.ErrUnknownType},
		{"wrong content type", commands, With(g(), "content-type", "text/plain"), "content type", deadletter.ErrBadPayload},
		{"empty value", commands, withValue(g(), nil), "empty JSON payload", deadletter.ErrBadPayload},
		{"oversize value", commands, withValue(g(), bytes.Repeat([]byte("x"), 300<<10)), "more than the", deadletter.ErrTooLarge},
		{"garbage header bytes", commands, With(g(), "ce_type", []byte{0xff, 0xfe, 0x00}), "not valid UTF-8", deadletter.ErrInvalidEvent},
		{"invalid UTF-8 subject", commands, With(g(), "ce_subject", []byte{'s', 0xc3}), "not valid UTF-8", deadletter.ErrInvalidEvent},
		{"very long subject", commands, good(strings.Repeat("s", 2000), "bad-long"), "more than 1024", deadletter.ErrInvalidEvent},
		{"structured-mode garbage", commands, codec.Record{Key: []byte("bad"), Value: []byte("{nope"),
			Headers: map[string][]byte{"content-type": []byte("application/cloudevents+json")}}, "invalid CloudEvent", deadletter.ErrInvalidEvent},
		{"handler panics", boomTopic, boom("panic", "bad-panic"), "handler panicked", deadletter.ErrPanic},
		{"handler hangs past its timeout", boomTopic, boom("hang", "bad-hang"), "did not return within", deadletter.ErrTimeout},
		{"handler keeps failing", boomTopic, boom("fail", "bad-fail"), "handler failed 3 times", deadletter.ErrRetriesExhausted},
	}
	for i := range list {
		list[i].Record = With(list[i].Record, "test_kind", list[i].Kind)
	}
	return list
}
