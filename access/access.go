// Package access holds Partita's access rules: who may send an entity's
// commands or query a view through the worker's HTTP gateway. Rules are
// declared next to the handlers (entities.Access, entities.CommandAccess,
// views.Access) and enforced by the gateway before anything is written.
//
// Contract:
//   - A rule decides on a [Caller], which the gateway builds from the
//     request's credentials (a JWT bearer token or an API key). The caller a
//     handler sees (entities' Metadata) is the one the gateway set; a
//     caller-supplied value is overwritten, never trusted.
//   - [Internal] commands are never accepted from the gateway, whoever
//     calls: only entities, workflows and consumers of the same application
//     send them (over Kafka, whose own ACLs guard the topics).
//   - [Rule.Check] returns nil, or an error wrapping [ErrUnauthenticated]
//     (the gateway answers 401) or [ErrForbidden] (403).
//   - A part that declares no rule has the application's default, which the
//     worker's configuration sets (access.default: authenticated unless
//     configured otherwise).
//
// The package is pure Go, with no Kafka or HTTP types in its API.
package access

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Errors wrapped by [Rule.Check].
var (
	// ErrUnauthenticated: the rule needs an authenticated caller and the
	// request had none.
	ErrUnauthenticated = errors.New("authentication required")
	// ErrForbidden: the caller is known but the rule does not admit it
	// (a missing claim, or an internal command).
	ErrForbidden = errors.New("forbidden")
)

// Caller is who sent a request through the gateway.
type Caller struct {
	// Subject is the authenticated principal: a token's "sub", or an API
	// key's name. Empty for an anonymous caller.
	Subject string `json:"sub,omitempty"`
	// Method is how the caller was authenticated: "jwt", "api_key", or
	// "none" (authentication is off: development mode).
	Method string `json:"method"`
	// Claims are the claims the gateway forwards (the configured subset of
	// a token's claims, or an API key's configured claims).
	Claims map[string]any `json:"claims,omitempty"`
}

// Authenticated reports whether the caller proved who it is.
func (c *Caller) Authenticated() bool {
	return c != nil && c.Subject != "" && (c.Method == MethodJWT || c.Method == MethodAPIKey)
}

// Authentication methods of a [Caller].
const (
	MethodJWT    = "jwt"
	MethodAPIKey = "api_key"
	// MethodNone marks a caller of a gateway with authentication off
	// (development mode): rules other than Internal admit it.
	MethodNone = "none"
)

// kind of rule.
type kind uint8

const (
	kindUnset kind = iota
	kindPublic
	kindAuthenticated
	kindClaim
	kindInternal
)

// Rule is an access rule. The zero Rule is "not declared": the
// application's default applies.
type Rule struct {
	kind   kind
	claim  string
	values []string
}

// Public admits every caller, authenticated or not.
func Public() Rule { return Rule{kind: kindPublic} }

// Authenticated admits every authenticated caller.
func Authenticated() Rule { return Rule{kind: kindAuthenticated} }

// Claim admits an authenticated caller whose claim name holds one of
// values: a string claim equal to one of them, or a list claim (such as
// "roles" or "groups") containing one of them. With no values, the claim
// must merely be present. A space-separated string claim named "scope" is
// read as a list, as OAuth 2 writes scopes.
func Claim(name string, values ...string) Rule {
	return Rule{kind: kindClaim, claim: name, values: values}
}

// Internal admits no gateway caller: only the application's own entities,
// workflows and consumers send such commands.
func Internal() Rule { return Rule{kind: kindInternal} }

// Declared reports whether r is a rule (not the zero Rule).
func (r Rule) Declared() bool { return r.kind != kindUnset }

// IsInternal reports whether r is [Internal].
func (r Rule) IsInternal() bool { return r.kind == kindInternal }

// Or returns r, or def when r is not declared.
func (r Rule) Or(def Rule) Rule {
	if r.Declared() {
		return r
	}
	return def
}

// String is how the rule reads in configuration and messages: public,
// authenticated, internal, claim:NAME or claim:NAME=V1|V2.
func (r Rule) String() string {
	switch r.kind {
	case kindPublic:
		return "public"
	case kindAuthenticated:
		return "authenticated"
	case kindInternal:
		return "internal"
	case kindClaim:
		if len(r.values) == 0 {
			return "claim:" + r.claim
		}
		return "claim:" + r.claim + "=" + strings.Join(r.values, "|")
	}
	return "default"
}

// Parse reads a rule written as [Rule.String] writes it.
func Parse(s string) (Rule, error) {
	switch s {
	case "public":
		return Public(), nil
	case "authenticated":
		return Authenticated(), nil
	case "internal":
		return Internal(), nil
	}
	if rest, ok := strings.CutPrefix(s, "claim:"); ok && rest != "" {
		name, vals, has := strings.Cut(rest, "=")
		if name == "" || (has && vals == "") {
			return Rule{}, fmt.Errorf("access rule %q: want claim:NAME or claim:NAME=V1|V2", s)
		}
		if !has {
			return Claim(name), nil
		}
		return Claim(name, strings.Split(vals, "|")...), nil
	}
	return Rule{}, fmt.Errorf("access rule %q: want public, authenticated, internal, claim:NAME or claim:NAME=V1|V2", s)
}

// Check decides whether caller may do what r guards; what names it in the
// error ("command cart/add-item").
func (r Rule) Check(caller *Caller, what string) error {
	dev := caller != nil && caller.Method == MethodNone
	switch r.kind {
	case kindPublic:
		return nil
	case kindInternal:
		return fmt.Errorf("%w: %s is internal: only the application's own entities may send it", ErrForbidden, what)
	case kindClaim:
		if dev {
			return nil
		}
		if !caller.Authenticated() {
			return fmt.Errorf("%w: %s needs an authenticated caller", ErrUnauthenticated, what)
		}
		if !hasClaim(caller.Claims[r.claim], r.claim, r.values) {
			return fmt.Errorf("%w: %s needs %s", ErrForbidden, what, r)
		}
		return nil
	default: // authenticated, and undeclared rules without a default
		if dev || caller.Authenticated() {
			return nil
		}
		return fmt.Errorf("%w: %s needs an authenticated caller", ErrUnauthenticated, what)
	}
}

func hasClaim(v any, name string, want []string) bool {
	var have []string
	switch v := v.(type) {
	case nil:
		return false
	case string:
		if name == "scope" {
			have = strings.Fields(v)
		} else {
			have = []string{v}
		}
	case []string:
		have = v
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				have = append(have, s)
			}
		}
	case bool:
		have = []string{fmt.Sprint(v)}
	case float64:
		have = []string{fmt.Sprint(v)}
	default:
		return len(want) == 0
	}
	if len(want) == 0 {
		return true
	}
	for _, h := range have {
		if slices.Contains(want, h) {
			return true
		}
	}
	return false
}
