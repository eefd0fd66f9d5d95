package access_test

import (
	"errors"
	"testing"

	"github.com/partita-dev/partita/access"
)

func TestCheck(t *testing.T) {
	anon := &access.Caller{}
	dev := &access.Caller{Method: access.MethodNone}
	user := &access.Caller{Subject: "u", Method: access.MethodJWT, Claims: map[string]any{
		"roles": []any{"teller", "x"}, "tier": "gold", "scope": "read write",
	}}
	key := &access.Caller{Subject: "ci", Method: access.MethodAPIKey}
	forged := &access.Caller{Subject: "u", Method: "forged", Claims: map[string]any{"roles": []any{"teller"}}}
	for _, tc := range []struct {
		rule   access.Rule
		caller *access.Caller
		want   error
	}{
		{access.Public(), anon, nil},
		{access.Public(), nil, nil},
		{access.Authenticated(), anon, access.ErrUnauthenticated},
		{access.Authenticated(), nil, access.ErrUnauthenticated},
		{access.Authenticated(), forged, access.ErrUnauthenticated},
		{access.Authenticated(), user, nil},
		{access.Authenticated(), key, nil},
		{access.Authenticated(), dev, nil},
		{access.Claim("roles", "teller"), user, nil},
		{access.Claim("roles", "auditor"), user, access.ErrForbidden},
		{access.Claim("roles", "teller"), key, access.ErrForbidden},
		{access.Claim("roles", "teller"), anon, access.ErrUnauthenticated},
		{access.Claim("roles", "teller"), dev, nil},
		{access.Claim("tier", "gold", "silver"), user, nil},
		{access.Claim("tier"), user, nil},
		{access.Claim("missing"), user, access.ErrForbidden},
		{access.Claim("scope", "write"), user, nil},
		{access.Claim("scope", "admin"), user, access.ErrForbidden},
		{access.Internal(), user, access.ErrForbidden},
		{access.Internal(), dev, access.ErrForbidden},
		{access.Rule{}, anon, access.ErrUnauthenticated}, // undeclared without a default: authenticated
	} {
		err := tc.rule.Check(tc.caller, "command a/b")
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("%s for %+v: got %v, want %v", tc.rule, tc.caller, err, tc.want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	for _, r := range []access.Rule{access.Public(), access.Authenticated(), access.Internal(), access.Claim("roles"), access.Claim("roles", "a", "b")} {
		got, err := access.Parse(r.String())
		if err != nil || got.String() != r.String() {
			t.Errorf("Parse(%q) = %v, %v", r, got, err)
		}
	}
	for _, bad := range []string{"", "everyone", "claim:", "claim:=x", "claim:roles="} {
		if _, err := access.Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
	if got := (access.Rule{}).Or(access.Public()); got.String() != "public" {
		t.Errorf("undeclared.Or(public) = %v", got)
	}
	if got := access.Internal().Or(access.Public()); !got.IsInternal() {
		t.Errorf("internal.Or(public) = %v", got)
	}
}
