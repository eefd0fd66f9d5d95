package codec

import (
	"errors"
	"strings"
	"testing"
)

func TestJSONPayloadErrorNamesTheField(t *testing.T) {
	type item struct {
		Quantity int `json:"quantity"`
	}
	type cmd struct {
		Name  string `json:"name"`
		Items []item `json:"items"`
	}
	c := JSON[cmd]()
	for _, tc := range []struct{ in, field, want, msg string }{
		{`{"name": 42}`, "name", "string", `field "name" is a JSON number, want a string`},
		{`{"items": [{"quantity": "2"}]}`, "items.quantity", "integer", `field "items.quantity" is a JSON string, want an integer`},
		{`{"items": [{"quantity": 2.5}]}`, "items.quantity", "integer", `is a JSON number, want an integer`},
		{`[1, 2]`, "", "object", `the payload is a JSON array, want an object`},
		{`{"name": "a"} trailing`, "", "", `invalid JSON at byte`},
	} {
		_, err := c.Decode([]byte(tc.in))
		var pe *PayloadError
		if !errors.As(err, &pe) || !errors.Is(err, ErrPayload) {
			t.Fatalf("%s: %v is not a PayloadError wrapping ErrPayload", tc.in, err)
		}
		if pe.Field != tc.field || pe.Want != tc.want || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: got field %q want %q, message %q; want field %q want %q, message with %q", tc.in, pe.Field, pe.Want, err, tc.field, tc.want, tc.msg)
		}
		if strings.Contains(err.Error(), "codec.") || strings.Contains(err.Error(), "cmd") {
			t.Errorf("%s: the message names a Go type: %v", tc.in, err)
		}
	}
}
