package codec

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// Event is a CloudEvent (CloudEvents spec 1.0).
type Event = event.Event

// NewEvent returns an empty CloudEvent of spec version 1.0.
func NewEvent() Event { return event.New(event.CloudEventsVersionV1) }

// Errors of [DecodeEvent] and [RequireSubject].
var (
	// ErrNotCloudEvent: the record is in neither binary mode (no
	// ce_specversion header) nor structured mode.
	ErrNotCloudEvent = errors.New("not a CloudEvent")
	// ErrInvalidEvent: the record is a CloudEvent but breaks the spec or
	// lacks a required attribute.
	ErrInvalidEvent = errors.New("invalid CloudEvent")
)

// Record is a Kafka record as Partita sees it: no client library's types.
type Record struct {
	Key     []byte
	Value   []byte
	Headers map[string][]byte
}

// Extension attributes Partita writes on the events it produces.
const (
	// ExtSequence is the subject's sequence number after the change.
	ExtSequence = "partitaseq"
	// ExtRequest names the command a reply answers (its ce-id).
	ExtRequest = "partitarequest"
	// ExtRequestSource is the ce-source of the command a reply answers:
	// a reply is correlated by the command's source and id.
	ExtRequestSource = "partitarequestsource"
	// ExtErrorCode is the code of an error reply.
	ExtErrorCode = "partitaerror"
	// ExtPosition is a reply's position token, for read-your-writes queries.
	ExtPosition = "partitaposition"
)

// ExtReply, on a command, asks for a reply on the application's replies
// topic (any value but "false"); the gateway sets it. A command without it
// is applied the same way, and no reply is written: most producers do not
// listen for one, and a reply per command would double the writes.
const ExtReply = "partitareply"

// ExtCaller, on a command, is who sent it through the gateway: the JSON of
// an access.Caller ({"sub", "method", "claims"}). The gateway always sets it
// itself, replacing anything a client sent; commands written straight to
// Kafka carry whatever their producer wrote (Kafka's ACLs guard those
// topics), and entities' own sends carry none.
const ExtCaller = "partitacaller"

// Extensions of the records that carry time and conversation between
// entities: the runtime writes them, and accepts timer fires and ask
// answers (ExtTimer, ExtAsk) only from an entity's loop topic, which
// neither the gateway nor a producer of commands writes to.
const (
	// ExtTimer, on a command the runtime delivers when a timer is due,
	// names the timer.
	ExtTimer = "partitatimer"
	// ExtAsk, on an answer to an ask, is the ask's id (the asked command's
	// ce-source and ce-id).
	ExtAsk = "partitaask"
	// ExtAskFrom and ExtAskSubject, on an asked command, are the entity and
	// subject that asked; ExtAskReply and ExtAskError the commands of theirs
	// that receive the reply, or an error reply or dead letter.
	ExtAskFrom    = "partitaaskfrom"
	ExtAskSubject = "partitaasksubject"
	ExtAskReply   = "partitaaskreply"
	ExtAskError   = "partitaaskerror"
)

// MaxSubjectLength bounds ce-subject (it is also the Kafka key and the
// table key).
const MaxSubjectLength = 1024

// EncodeEvent writes e in binary mode: attributes as ce_ headers, data as
// the value, content type as the content-type header, subject as the key.
func EncodeEvent(e Event) (Record, error) {
	if err := e.Validate(); err != nil {
		return Record{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	r := Record{Headers: make(map[string][]byte, 8)}
	if e.Subject() != "" {
		r.Key = []byte(e.Subject())
	}
	w := (*recordWriter)(&r)
	if _, err := binding.Write(context.Background(), binding.ToMessage(&e), w, w); err != nil {
		return Record{}, fmt.Errorf("encode CloudEvent: %w", err)
	}
	return r, nil
}

// recordWriter writes a CloudEvent into a Record as the CloudEvents Kafka
// protocol binding says (and as the sdk's kafka_sarama binding does, whose
// writer this follows, without a client library's message type): each
// attribute and extension a ce_ header with its canonical string form,
// the data content type the content-type header, the data the value.
type recordWriter Record

func (w *recordWriter) SetStructuredEvent(_ context.Context, f format.Format, event io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, event); err != nil {
		return err
	}
	w.Headers = map[string][]byte{"content-type": []byte(f.MediaType())}
	w.Value = buf.Bytes()
	return nil
}

func (w *recordWriter) Start(context.Context) error { return nil }

func (w *recordWriter) End(context.Context) error { return nil }

func (w *recordWriter) SetData(data io.Reader) error {
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, data); err != nil {
		return err
	}
	w.Value = buf.Bytes()
	return nil
}

func (w *recordWriter) SetAttribute(a spec.Attribute, value any) error {
	if a.Kind() == spec.DataContentType {
		return w.set("content-type", value)
	}
	return w.set("ce_"+a.Name(), value)
}

func (w *recordWriter) SetExtension(name string, value any) error {
	return w.set("ce_"+name, value)
}

func (w *recordWriter) set(header string, value any) error {
	if value == nil {
		delete(w.Headers, header)
		return nil
	}
	s, err := types.Format(value)
	if err != nil {
		return err
	}
	w.Headers[header] = []byte(s)
	return nil
}

// DecodeEvent reads a CloudEvent from a record in binary or structured mode
// and validates it: spec version 1.0, id, source and type present.
func DecodeEvent(r Record) (Event, error) {
	headers := lowerKeys(r.Headers)
	for k, v := range headers {
		if strings.HasPrefix(k, "ce_") && !utf8.Valid(v) {
			return Event{}, fmt.Errorf("%w: header %s is not valid UTF-8", ErrInvalidEvent, k)
		}
	}
	sv, binary := headers["ce_specversion"]
	f := format.Lookup(string(headers["content-type"]))
	structured := f != nil
	if !binary && !structured {
		return Event{}, fmt.Errorf("%w: no ce_specversion header and content-type is not application/cloudevents+json", ErrNotCloudEvent)
	}
	if binary && !structured && string(sv) != event.CloudEventsVersionV1 { // structured mode: the binding ignores ce_ headers
		return Event{}, fmt.Errorf("%w: spec version %q, want 1.0", ErrInvalidEvent, sv)
	}
	var e *Event
	var err error
	if structured {
		if e, err = decodeStructured(f, r.Value); err == nil && !utf8Attributes(*e) {
			err = errors.New("an attribute is not valid UTF-8") // as binary mode's headers must be
		}
	} else {
		e, err = decodeBinary(headers, r.Value)
	}
	if err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	if e.SpecVersion() != event.CloudEventsVersionV1 {
		return Event{}, fmt.Errorf("%w: spec version %q, want 1.0", ErrInvalidEvent, e.SpecVersion())
	}
	if err := e.Validate(); err != nil {
		return Event{}, fmt.Errorf("%w: %v", ErrInvalidEvent, err)
	}
	return *e, nil
}

// utf8Attributes reports whether every string attribute of e (extensions
// included) is valid UTF-8: written in binary mode, each is a header that
// DecodeEvent requires to be.
func utf8Attributes(e Event) bool {
	for _, v := range []string{e.ID(), e.Source(), e.Type(), e.Subject(), e.DataContentType(), e.DataSchema()} {
		if !utf8.ValidString(v) {
			return false
		}
	}
	for _, v := range e.Extensions() {
		if s, ok := v.(string); ok && !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// lowerKeys returns h with lower-case names: h itself when they all are
// (what Partita and the sdk write), else a copy.
func lowerKeys(h map[string][]byte) map[string][]byte {
	for k := range h {
		if !lower(k) {
			out := make(map[string][]byte, len(h))
			for k, v := range h {
				out[strings.ToLower(k)] = v
			}
			return out
		}
	}
	return h
}

// lower reports whether strings.ToLower would leave s as it is (it does not
// allocate to find out).
func lower(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// decodeStructured reads a structured-mode CloudEvent: the value is the
// whole event in the format its content type names (as the sdk's binding
// reads it).
func decodeStructured(f format.Format, value []byte) (*Event, error) {
	e := NewEvent()
	if err := f.Unmarshal(value, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// decodeBinary reads a binary-mode CloudEvent 1.0 from lower-cased headers
// as the sdk's Kafka binding does (each ce_ header an attribute or else an
// extension, content-type the data content type, the value the data), with
// the event context's own setters, in half the binding's time and
// allocations. FuzzDecodeEvent checks it against the binding.
func decodeBinary(headers map[string][]byte, value []byte) (*Event, error) {
	e := event.New(event.CloudEventsVersionV1)
	ec := e.Context.(*event.EventContextV1)
	for k, v := range headers {
		name, ok := strings.CutPrefix(k, "ce_")
		if !ok {
			if k == "content-type" {
				_ = ec.SetDataContentType(string(v))
			}
			continue
		}
		s := string(v)
		var err error
		switch name {
		case "specversion": // checked by the caller
		case "id":
			err = ec.SetID(s)
		case "source":
			err = ec.SetSource(s)
		case "type":
			err = ec.SetType(s)
		case "subject":
			err = ec.SetSubject(s)
		case "datacontenttype":
			err = ec.SetDataContentType(s)
		case "dataschema":
			err = ec.SetDataSchema(s)
		case "time":
			var t time.Time
			if t, err = types.ToTime(s); err == nil {
				err = ec.SetTime(t)
			}
		default:
			err = ec.SetExtension(name, s)
		}
		if err != nil {
			return nil, err
		}
	}
	if len(value) > 0 {
		e.DataEncoded = value
	}
	return &e, nil
}

// RequireSubject checks that e addresses an entity: a non-empty, valid
// UTF-8 subject of at most MaxSubjectLength bytes.
func RequireSubject(e Event) error { return checkSubject(e.Subject()) }

func checkSubject(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("%w: ce-subject is missing", ErrInvalidEvent)
	case len(s) > MaxSubjectLength:
		return fmt.Errorf("%w: ce-subject is %d bytes, more than %d", ErrInvalidEvent, len(s), MaxSubjectLength)
	case !utf8.ValidString(s):
		return fmt.Errorf("%w: ce-subject is not valid UTF-8", ErrInvalidEvent)
	}
	return nil
}
