package codec

import (
	"mime"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/binding/format"
	"github.com/cloudevents/sdk-go/v2/event"
)

// Attributes is a CloudEvent as plain values: what DecodeAttributes reads
// of a record. Strings are as the sdk's event returns them (trimmed where
// its setters trim, ce-source as its URL prints).
type Attributes struct {
	ID, Source, Type string
	Subject          string // "" when absent
	DataContentType  string // "" when absent
	Time             time.Time
	Extensions       map[string]string // nil when none
	Data             []byte
}

// WantsReply reports whether a command asks for a reply (see ExtReply).
func (a Attributes) WantsReply() bool {
	v, ok := a.Extensions[ExtReply]
	return ok && v != "false"
}

// RequireSubject is RequireSubject of the event a is.
func (a Attributes) RequireSubject() error { return checkSubject(a.Subject) }

// DecodeAttributes reads a record as DecodeEvent does, accepting and
// rejecting the same records with the same errors, into Attributes. A
// binary-mode event with the usual attributes (id, source, type, subject,
// time, content-type, extensions) is read straight from its headers, with
// the checks the sdk's setters and Validate make, in a fraction of
// DecodeEvent's time (the sdk's event allocates its context and parses and
// prints ce-source as a URL at every read). Anything else, and any
// record that fails a check, goes through DecodeEvent. FuzzDecodeEvent
// checks that both agree.
func DecodeAttributes(r Record) (Attributes, error) {
	if a, ok := decodeUsual(r.Headers, r.Value); ok {
		return a, nil
	}
	e, err := DecodeEvent(r)
	if err != nil {
		return Attributes{}, err
	}
	return attributesOf(e), nil
}

// attributesOf is e as Attributes.
func attributesOf(e Event) Attributes {
	a := Attributes{ID: e.ID(), Source: e.Source(), Type: e.Type(), Subject: e.Subject(),
		DataContentType: e.DataContentType(), Time: e.Time(), Data: e.Data()}
	for k, v := range e.Extensions() {
		if a.Extensions == nil {
			a.Extensions = make(map[string]string, len(e.Extensions()))
		}
		a.Extensions[k], _ = v.(string) // binary and structured mode read extensions as strings
	}
	return a
}

// decodeUsual reads a valid binary-mode event whose attributes are all
// usual ones, from lower-case header names; ok is false for anything else
// (DecodeAttributes then asks DecodeEvent, for the event or the error).
func decodeUsual(headers map[string][]byte, value []byte) (a Attributes, ok bool) {
	ct := string(headers["content-type"])
	if string(headers["ce_specversion"]) != event.CloudEventsVersionV1 || format.Lookup(ct) != nil {
		return a, false
	}
	if a.DataContentType = strings.TrimSpace(ct); a.DataContentType != "" && !validMediaType(a.DataContentType) {
		return a, false
	}
	var hasSource bool
	for k, v := range headers {
		if !lower(k) {
			return a, false
		}
		name, isAttr := strings.CutPrefix(k, "ce_")
		if !isAttr || name == "specversion" {
			continue
		}
		if !utf8.Valid(v) {
			return a, false
		}
		switch name {
		case "id":
			a.ID = strings.TrimSpace(string(v))
		case "source":
			if a.Source, ok = printedURIRef(string(v)); !ok {
				return a, false
			}
			hasSource = true
		case "type":
			a.Type = strings.TrimSpace(string(v))
		case "subject":
			a.Subject = strings.TrimSpace(string(v))
		case "time":
			t, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				return a, false
			}
			a.Time = t
		default:
			if !extensionName(name) {
				return a, false // a spec attribute read elsewhere (dataschema, datacontenttype) or a bad name
			}
			if a.Extensions == nil {
				a.Extensions = map[string]string{}
			}
			a.Extensions[name] = string(v)
		}
	}
	if a.ID == "" || !hasSource || strings.TrimSpace(a.Source) == "" || a.Type == "" {
		return a, false
	}
	if len(value) > 0 {
		a.Data = value
	}
	return a, true
}

// printedURIRef is s parsed as a URI reference and printed again, as the
// sdk's event returns ce-source. A relative path of unreserved characters
// prints as itself and is not parsed.
func printedURIRef(s string) (string, bool) {
	plain := s != "" && !strings.HasPrefix(s, "//")
	for i := 0; plain && i < len(s); i++ {
		c := s[i]
		plain = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~/", c) >= 0
	}
	if plain {
		return s, true
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", false
	}
	return u.String(), true
}

// validMediaType reports whether ct parses as an RFC 2046 media type.
func validMediaType(ct string) bool {
	if ct == "application/json" {
		return true
	}
	_, _, err := mime.ParseMediaType(ct)
	return err == nil
}

// extensionName reports whether name is a valid extension attribute name
// that is not a spec attribute: ASCII letters and digits.
func extensionName(name string) bool {
	switch name {
	case "", "id", "source", "type", "datacontenttype", "subject", "time", "specversion", "dataschema", "data", "data_base64":
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}
