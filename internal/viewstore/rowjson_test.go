package viewstore

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

// The scanner must read envelopes and rows exactly as encoding/json does:
// these are the readings the store made with encoding/json before it had a
// scanner.

func jsonRow(envelope []byte) json.RawMessage {
	if envelope == nil {
		return nil
	}
	var e struct{ Row json.RawMessage }
	if json.Unmarshal(envelope, &e) != nil {
		return nil
	}
	return e.Row
}

func jsonIndexKeys(fields []string, row json.RawMessage, id string) [][]byte {
	var m map[string]json.RawMessage
	if row == nil || json.Unmarshal(row, &m) != nil {
		return nil
	}
	var keys [][]byte
	for _, f := range fields {
		var v any
		if m[f] == nil || json.Unmarshal(m[f], &v) != nil {
			continue
		}
		enc, err := encodeValue(v)
		if err != nil {
			continue
		}
		keys = append(keys, append(append(indexPrefix(f), enc...), id...))
	}
	return keys
}

var testFields = []string{"a", "email", "n", "status"}

// checkReading compares the store's reading of data, as an envelope and as
// a row, with encoding/json's.
func checkReading(t *testing.T, data []byte) {
	t.Helper()
	var e indexEntries
	row := e.fromEnvelope(testFields, data, "id1")
	if want := jsonRow(data); (row == nil) != (want == nil) || !bytes.Equal(row, want) {
		t.Fatalf("%q: row %q, encoding/json %q", data, row, want)
	}
	if got, want := e.all(), jsonIndexKeys(testFields, row, "id1"); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("%q: index keys %q, encoding/json %q", data, got, want)
	}
	e.fromRow(testFields, data, "id2")
	if got, want := e.all(), jsonIndexKeys(testFields, data, "id2"); !slices.EqualFunc(got, want, bytes.Equal) {
		t.Fatalf("%q as a row: index keys %q, encoding/json %q", data, got, want)
	}
}

func (e *indexEntries) all() [][]byte {
	var keys [][]byte
	for i := range e.len() {
		keys = append(keys, bytes.Clone(e.key(i)))
	}
	return keys
}

var readingCases = []string{
	`{"row":{"email":"a@x","status":"open","n":3},"seqs":{"order\u0000a":1}}`,
	` { "row" : { "email" : "a@x" , "n" : -1.5e3 } , "seqs" : { } } `,
	`null`, ` null `, `{}`, `[]`, `"row"`, `1`, `true`, ``, ` `,
	`{"row":null}`, `{"row":{}}`, `{"row":[1,2]}`, `{"row":"s"}`, `{"row":1}`,
	`{"ROW":{"email":"b"}}`, `{"rOw":{"email":"b"}}`,
	`{"row":{"email":"a"},"Row":{"status":"paid"}}`,
	`{"row":{"email":"a"},"row":null}`,
	`{"r\u006fw":{"email":"c"}}`, `{"\u0072ow":{"email":"c"}}`, `{"ro\w":1}`,
	`{"row":{"email":"a","email":"b"}}`, `{"row":{"em\u0061il":"x"}}`,
	`{"row":{"email":"a\u0000b"}}`, `{"row":{"email":"a\\b\"c\/d\b\f\n\r\t"}}`,
	`{"row":{"email":"\ud800"}}`, `{"row":{"email":"\uD83D\uDE00"}}`, `{"row":{"email":"\u00e9té"}}`,
	"{\"row\":{\"email\":\"a\xffb\"}}", "{\"row\":{\"em\xffail\":\"a\"}}", "{\"r\xffow\":{\"email\":\"a\"}}",
	"{\"row\":{\"email\":\"\xef\xbf\xbd\"}}",
	`{"row":{"n":1e400}}`, `{"row":{"n":-1e400}}`, `{"row":{"n":-0}}`, `{"row":{"n":0.0e-0}}`,
	`{"row":{"n":12345678901234567890123}}`, `{"row":{"n":1E+2}}`, `{"row":{"n":4.9e-324}}`,
	`{"row":{"email":[1]}}`, `{"row":{"email":{"a":1}}}`, `{"row":{"email":true,"a":false,"n":null}}`,
	`{"a":[1,[2,{"b":"c"}]],"row":{"status":"paid","a":[]},"z":{"row":{"email":"inner"}}}`,
	// Not valid JSON: no row, no index keys.
	`{"row":{"email":"a"}`, `{"row":{"email":"a"}}}`, `{"row":{"email":"a"}} x`,
	`{"row":{"n":01}}`, `{"row":{"n":-}}`, `{"row":{"n":1.}}`, `{"row":{"n":.5}}`, `{"row":{"n":1e}}`,
	`{"row":{"n":+1}}`, `{"row":{"n":0x10}}`, `{"row":{"n":NaN}}`, `{"row":{"n":Infinity}}`,
	"{\"row\":{\"email\":\"a\x01\"}}", `{"row":{"email":"\x"}}`, `{"row":{"email":"\u12"}}`, `{"row":{"email":"\u12g4"}}`,
	`{"row":1,}`, `{"row":1,,"a":2}`, `{"row" 1}`, `{row:1}`, `{'row':1}`, `{"row":tru}`, `{"row":nul}`,
	`{"row":[1,]}`, `{"row":[,1]}`, `{"row":[1 2]}`, `{"row":{"a":1 "b":2}}`, `{"row":{"a"}}`,
	"{\"row\":{\"email\":\"a\"}}\x00", "\ufeff{\"row\":{}}", "{\"row\":{}}\v",
}

func TestReadingEnvelopesAndRowsAgreesWithEncodingJSON(t *testing.T) {
	for _, c := range readingCases {
		checkReading(t, []byte(c))
	}
	checkReading(t, nil)
	// Nesting: encoding/json refuses documents nested deeper than 10,000.
	for _, depth := range []int{9998, 9999, 10000, 10001} {
		deep := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		checkReading(t, []byte(`{"row":{"email":"a"},"seqs":`+deep+`}`))
		checkReading(t, []byte(`{"row":{"email":"a","a":`+deep+`}}`))
	}
}

func FuzzReadingEnvelopesAndRows(f *testing.F) {
	for _, c := range readingCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkReading(t, data)
	})
}
