package worker

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/partita-dev/partita/access"
)

const (
	authTestIssuer   = "https://idp.test/"
	authTestAudience = "partita-shop"
)

// authTestKey is a signing key and its kid.
type authTestKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newRSATestKey(t *testing.T, kid string) authTestKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return authTestKey{kid: kid, method: jwt.SigningMethodRS256, priv: k}
}

func newECTestKey(t *testing.T, kid string) authTestKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return authTestKey{kid: kid, method: jwt.SigningMethodES256, priv: k}
}

// authJWKS is the JWKS document of keys' public halves.
func authJWKS(t *testing.T, keys ...authTestKey) []byte {
	t.Helper()
	set := jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{}}
	for _, k := range keys {
		jwk, err := jwkset.NewJWKFromKey(k.priv.Public(), jwkset.JWKOptions{
			Metadata: jwkset.JWKMetadataOptions{KID: k.kid, USE: jwkset.UseSig, ALG: jwkset.ALG(k.method.Alg())},
		})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	raw, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// authClaims are valid claims for the test issuer and audience.
func authClaims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":   authTestIssuer,
		"aud":   authTestAudience,
		"sub":   sub,
		"iat":   now.Unix(),
		"exp":   now.Add(5 * time.Minute).Unix(),
		"roles": []any{"clerk", "admin"},
	}
}

func authSign(t *testing.T, k authTestKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	tok.Header["kid"] = k.kid
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// authLog is a log buffer safe for the authenticator's goroutines.
type authLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *authLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *authLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *authLog) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// jwksServer serves a JWKS that the test changes, on loopback.
type jwksServer struct {
	*httptest.Server
	body   atomic.Pointer[[]byte]
	status atomic.Int32
	hits   atomic.Int32
}

func newJWKSServer(t *testing.T, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(body)
	s.status.Store(http.StatusOK)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		if st := int(s.status.Load()); st != http.StatusOK {
			http.Error(w, "unavailable", st)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(*s.body.Load())
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(body []byte) { s.body.Store(&body) }

func authJWTConfig(url string) *JWTConfig {
	return &JWTConfig{JWKSURL: url, Issuer: authTestIssuer, Audience: authTestAudience, Algorithms: []string{"RS256", "ES256"}}
}

func newTestAuthenticator(t *testing.T, c AuthConfig) (*authenticator, *authLog) {
	t.Helper()
	log := &authLog{}
	a, err := newAuthenticator(t.Context(), c, log.logger())
	if err != nil {
		t.Fatalf("newAuthenticator: %v", err)
	}
	t.Cleanup(a.close)
	return a, log
}

func authRequest(header, value string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/entities/cart/1", nil)
	if header != "" {
		r.Header.Set(header, value)
	}
	return r
}

func bearer(token string) *http.Request { return authRequest("Authorization", "Bearer "+token) }

// assertNoLeak fails if text holds secret or a part of it (a token's
// segments count as parts).
func assertNoLeak(t *testing.T, what, text, secret string) {
	t.Helper()
	if secret == "" {
		return
	}
	parts := append(strings.Split(secret, "."), secret)
	for _, p := range parts {
		if len(p) >= 8 && strings.Contains(text, p) {
			t.Errorf("%s leaks the credential: %q", what, text)
			return
		}
	}
}

func TestAuthJWTValidTokens(t *testing.T) {
	rsaKey, ecKey := newRSATestKey(t, "rsa-1"), newECTestKey(t, "ec-1")
	srv := newJWKSServer(t, authJWKS(t, rsaKey, ecKey))
	a, _ := newTestAuthenticator(t, AuthConfig{JWT: authJWTConfig(srv.URL)})
	if !a.enabled() {
		t.Fatal("authentication should be on")
	}
	for _, k := range []authTestKey{rsaKey, ecKey} {
		t.Run(k.method.Alg(), func(t *testing.T) {
			c, err := a.authenticate(bearer(authSign(t, k, authClaims("alice"))))
			if err != nil {
				t.Fatalf("valid %s token refused: %v", k.method.Alg(), err)
			}
			if c.Subject != "alice" || c.Method != access.MethodJWT || !c.Authenticated() {
				t.Fatalf("caller = %+v", c)
			}
			if c.Claims["iss"] != authTestIssuer || c.Claims["sub"] != "alice" {
				t.Errorf("claims = %v", c.Claims)
			}
			if err := access.Claim("roles", "admin").Check(c, "command cart/add-item"); err != nil {
				t.Errorf("roles claim not usable by the rules: %v", err)
			}
		})
	}
	// The scheme is case-insensitive.
	c, err := a.authenticate(authRequest("Authorization", "bearer "+authSign(t, rsaKey, authClaims("bob"))))
	if err != nil || c.Subject != "bob" {
		t.Fatalf("lower-case bearer scheme: %+v, %v", c, err)
	}
}

func TestAuthJWTRejected(t *testing.T) {
	rsaKey, ecKey := newRSATestKey(t, "rsa-1"), newECTestKey(t, "ec-1")
	impostor := newRSATestKey(t, "rsa-1") // same kid, another key
	stranger := newRSATestKey(t, "rsa-unknown")
	srv := newJWKSServer(t, authJWKS(t, rsaKey, ecKey))
	a, log := newTestAuthenticator(t, AuthConfig{JWT: authJWTConfig(srv.URL)})

	with := func(change func(jwt.MapClaims)) jwt.MapClaims {
		c := authClaims("alice")
		change(c)
		return c
	}
	now := time.Now()

	// alg none: unsigned.
	none := jwt.NewWithClaims(jwt.SigningMethodNone, authClaims("alice"))
	none.Header["kid"] = "rsa-1"
	noneToken, err := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	// HS256 keyed with the RSA public key, as published: the classic
	// algorithm-confusion attack.
	der, err := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, authClaims("alice"))
	hs.Header["kid"] = "rsa-1"
	hsToken, err := hs.SignedString(pubPEM)
	if err != nil {
		t.Fatal(err)
	}
	// RS384 is not in the allowed list, although the key could verify it.
	rs384 := authTestKey{kid: "rsa-1", method: jwt.SigningMethodRS384, priv: rsaKey.priv}
	// A token without kid.
	nokid := jwt.NewWithClaims(jwt.SigningMethodRS256, authClaims("alice"))
	nokidToken, err := nokid.SignedString(rsaKey.priv)
	if err != nil {
		t.Fatal(err)
	}
	// A well-signed token whose header names an unknown algorithm.
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"XX999","kid":"rsa-1","typ":"JWT"}`))
	payload, _ := json.Marshal(authClaims("alice"))
	weirdAlg := header + "." + base64.RawURLEncoding.EncodeToString(payload) + ".c2lnbmF0dXJl"

	cases := []struct {
		name, token, want string
	}{
		{"wrong signature", authSign(t, impostor, authClaims("alice")), "bad signature"},
		{"tampered payload", tamper(t, authSign(t, rsaKey, authClaims("alice"))), "bad signature"},
		{"expired", authSign(t, rsaKey, with(func(c jwt.MapClaims) { c["exp"] = now.Add(-2 * time.Minute).Unix() })), "expired"},
		{"not yet valid", authSign(t, ecKey, with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() })), "not valid yet"},
		{"issued in the future", authSign(t, rsaKey, with(func(c jwt.MapClaims) { c["iat"] = now.Add(5 * time.Minute).Unix() })), "issued in the future"},
		{"wrong audience", authSign(t, rsaKey, with(func(c jwt.MapClaims) { c["aud"] = "another-app" })), "wrong audience"},
		{"no audience", authSign(t, rsaKey, with(func(c jwt.MapClaims) { delete(c, "aud") })), "wrong audience"},
		{"wrong issuer", authSign(t, ecKey, with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test/" })), "wrong issuer"},
		{"no expiry", authSign(t, rsaKey, with(func(c jwt.MapClaims) { delete(c, "exp") })), "no expiry"},
		{"missing sub", authSign(t, rsaKey, with(func(c jwt.MapClaims) { delete(c, "sub") })), "no subject"},
		{"empty sub", authSign(t, rsaKey, with(func(c jwt.MapClaims) { c["sub"] = "" })), "no subject"},
		{"alg none", noneToken, "algorithm not allowed"},
		{"HS256 with the public key", hsToken, "algorithm not allowed"},
		{"RS384 not allowed", authSign(t, rs384, authClaims("alice")), "algorithm not allowed"},
		{"unknown algorithm", weirdAlg, "algorithm not allowed"},
		{"key of another type", authSign(t, authTestKey{kid: "rsa-1", method: jwt.SigningMethodES256, priv: ecKey.priv}, authClaims("alice")), "does not fit"},
		{"unknown kid", authSign(t, stranger, authClaims("alice")), "unknown key id"},
		{"no kid", nokidToken, "no key id"},
		{"garbage", "this-is-not-a.jwt-at-all.really", "malformed token"},
		{"two segments", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", "malformed token"},
		{"too large", strings.Repeat("A", maxTokenBytes+1), "too large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := a.authenticate(bearer(tc.token))
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, access.ErrUnauthenticated) {
				t.Errorf("error %v does not wrap access.ErrUnauthenticated", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			assertNoLeak(t, "error", err.Error(), tc.token)
			ch := a.challenge(err)
			if !strings.HasPrefix(ch, `Bearer realm="partita", error="invalid_token", error_description="`) {
				t.Errorf("challenge = %s", ch)
			}
			assertNoLeak(t, "challenge", ch, tc.token)
			assertNoLeak(t, "log", log.String(), tc.token)
		})
	}
	// An empty token.
	if _, err := a.authenticate(authRequest("Authorization", "Bearer")); !errors.Is(err, access.ErrUnauthenticated) || !strings.Contains(err.Error(), "empty token") {
		t.Errorf("empty bearer token: %v", err)
	}
}

// tamper changes the payload of a token, keeping its signature.
func tamper(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	payload, _ := json.Marshal(authClaims("mallory"))
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func TestAuthJWTSkew(t *testing.T) {
	key := newRSATestKey(t, "rsa-1")
	srv := newJWKSServer(t, authJWKS(t, key))
	expired10s := authClaims("alice")
	expired10s["exp"] = time.Now().Add(-10 * time.Second).Unix()
	token := authSign(t, key, expired10s)
	nbf10s := authClaims("alice")
	nbf10s["nbf"] = time.Now().Add(10 * time.Second).Unix()
	early := authSign(t, key, nbf10s)

	// Default skew: 30s.
	a, _ := newTestAuthenticator(t, AuthConfig{JWT: authJWTConfig(srv.URL)})
	for _, tok := range []string{token, early} {
		if c, err := a.authenticate(bearer(tok)); err != nil || c.Subject != "alice" {
			t.Errorf("within the default 30s skew: %+v, %v", c, err)
		}
	}
	// Explicit 30s.
	cfg := authJWTConfig(srv.URL)
	cfg.Skew = 30 * time.Second
	a, _ = newTestAuthenticator(t, AuthConfig{JWT: cfg})
	if _, err := a.authenticate(bearer(token)); err != nil {
		t.Errorf("expired 10s ago with a 30s skew: %v", err)
	}
	// 2s: too late.
	cfg = authJWTConfig(srv.URL)
	cfg.Skew = 2 * time.Second
	a, _ = newTestAuthenticator(t, AuthConfig{JWT: cfg})
	if _, err := a.authenticate(bearer(token)); !errors.Is(err, access.ErrUnauthenticated) || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired 10s ago with a 2s skew: %v", err)
	}
	if _, err := a.authenticate(bearer(early)); !errors.Is(err, access.ErrUnauthenticated) || !strings.Contains(err.Error(), "not valid yet") {
		t.Errorf("nbf in 10s with a 2s skew: %v", err)
	}
}

func TestAuthJWKSURLRotation(t *testing.T) {
	old, next, bogus := newRSATestKey(t, "2025-01"), newECTestKey(t, "2025-02"), newRSATestKey(t, "never")
	srv := newJWKSServer(t, authJWKS(t, old))
	a, log := newTestAuthenticator(t, AuthConfig{JWT: authJWTConfig(srv.URL)})
	if _, err := a.authenticate(bearer(authSign(t, old, authClaims("alice")))); err != nil {
		t.Fatalf("old key: %v", err)
	}
	hits := srv.hits.Load()

	// The issuer rotates: the new key is published, then used.
	srv.set(authJWKS(t, old, next))
	c, err := a.authenticate(bearer(authSign(t, next, authClaims("bob"))))
	if err != nil || c.Subject != "bob" {
		t.Fatalf("token of the new key after rotation: %+v, %v", c, err)
	}
	if got := srv.hits.Load(); got != hits+1 {
		t.Errorf("the unknown kid made %d fetches, want 1", got-hits)
	}
	if _, err := a.authenticate(bearer(authSign(t, old, authClaims("alice")))); err != nil {
		t.Errorf("old key still published: %v", err)
	}

	// Unknown kids do not hammer the issuer: the refresh is rate-limited,
	// and a refused token does not wait for it.
	hits = srv.hits.Load()
	for range 5 {
		start := time.Now()
		_, err := a.authenticate(bearer(authSign(t, bogus, authClaims("mallory"))))
		if !errors.Is(err, access.ErrUnauthenticated) || !strings.Contains(err.Error(), "unknown key id") {
			t.Fatalf("unknown kid: %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("an unknown kid waited %s", d)
		}
	}
	if got := srv.hits.Load(); got != hits {
		t.Errorf("unknown kids made %d fetches within the rate limit, want 0", got-hits)
	}
	if strings.Contains(log.String(), "level=WARN") {
		t.Errorf("unexpected warning:\n%s", log)
	}
}

func TestAuthJWKSURLRefreshFailureKeepsKeys(t *testing.T) {
	key, next := newRSATestKey(t, "k1"), newRSATestKey(t, "k2")
	srv := newJWKSServer(t, authJWKS(t, key))
	const secret = "s3cr3t-query-token"
	a, log := newTestAuthenticator(t, AuthConfig{JWT: authJWTConfig(srv.URL + "/jwks?access_token=" + secret)})

	srv.status.Store(http.StatusServiceUnavailable)
	// An unknown kid triggers a refresh, which fails: logged, not fatal.
	if _, err := a.authenticate(bearer(authSign(t, next, authClaims("bob")))); !errors.Is(err, access.ErrUnauthenticated) {
		t.Fatalf("unknown kid with the issuer down: %v", err)
	}
	out := log.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, srv.URL+"/jwks") || !strings.Contains(out, "503") {
		t.Errorf("the failed refresh is not logged with the URL:\n%s", out)
	}
	if strings.Contains(out, secret) {
		t.Errorf("the log shows the URL's query:\n%s", out)
	}
	if _, err := a.authenticate(bearer(authSign(t, key, authClaims("alice")))); err != nil {
		t.Errorf("the keys already loaded are lost: %v", err)
	}
}

func TestAuthJWKSURLPeriodicRefresh(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a refresh")
	}
	key, next := newRSATestKey(t, "k1"), newECTestKey(t, "k2")
	srv := newJWKSServer(t, authJWKS(t, key))
	cfg := authJWTConfig(srv.URL)
	cfg.JWKSRefresh = time.Second
	a, _ := newTestAuthenticator(t, AuthConfig{JWT: cfg})
	revoked := authSign(t, key, authClaims("alice"))
	if _, err := a.authenticate(bearer(revoked)); err != nil {
		t.Fatal(err)
	}
	// The issuer revokes k1: the periodic refresh drops it.
	srv.set(authJWKS(t, next))
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := a.authenticate(bearer(revoked))
		if err != nil {
			if !strings.Contains(err.Error(), "unknown key id") {
				t.Fatalf("revoked key: %v", err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the revoked key is still accepted after 5s (jwks_refresh 1s)")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := a.authenticate(bearer(authSign(t, next, authClaims("bob")))); err != nil {
		t.Errorf("new key: %v", err)
	}
}

func TestAuthJWKSFile(t *testing.T) {
	key, next := newRSATestKey(t, "k1"), newECTestKey(t, "k2")
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, authJWKS(t, key), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &JWTConfig{JWKSFile: file, Issuer: authTestIssuer, Audience: authTestAudience, Algorithms: []string{"RS256", "ES256"}}
	a, log := newTestAuthenticator(t, AuthConfig{JWT: cfg})
	if _, err := a.authenticate(bearer(authSign(t, key, authClaims("alice")))); err != nil {
		t.Fatalf("key from the file: %v", err)
	}
	nextToken := authSign(t, next, authClaims("bob"))
	if _, err := a.authenticate(bearer(nextToken)); err == nil || !strings.Contains(err.Error(), "unknown key id") {
		t.Fatalf("key not yet in the file: %v", err)
	}

	// The file changes: a token with the new kid makes it re-read.
	if err := os.WriteFile(file, authJWKS(t, key, next), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Minute)
	os.Chtimes(file, future, future)
	if c, err := a.authenticate(bearer(nextToken)); err != nil || c.Subject != "bob" {
		t.Fatalf("key added to the file: %+v, %v", c, err)
	}

	// A broken rewrite keeps the keys, and is logged.
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	future = future.Add(time.Minute)
	os.Chtimes(file, future, future)
	stranger := newRSATestKey(t, "k3")
	if _, err := a.authenticate(bearer(authSign(t, stranger, authClaims("eve")))); err == nil {
		t.Fatal("unknown kid accepted")
	}
	if _, err := a.authenticate(bearer(nextToken)); err != nil {
		t.Errorf("keys lost after a broken rewrite: %v", err)
	}
	if out := log.String(); !strings.Contains(out, "level=WARN") || !strings.Contains(out, file) {
		t.Errorf("the failed reload is not logged:\n%s", out)
	}
}

func TestAuthJWKSStartErrors(t *testing.T) {
	key := newRSATestKey(t, "k1")
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.json")
	notJSON := filepath.Join(dir, "bad.json")
	os.WriteFile(notJSON, []byte("not json"), 0o600)
	empty := filepath.Join(dir, "empty.json")
	os.WriteFile(empty, []byte(`{"keys":[]}`), 0o600)

	down := newJWKSServer(t, authJWKS(t, key))
	down.status.Store(http.StatusInternalServerError)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL + "/jwks"
	closed.Close()
	const secret = "hunter2-in-the-url"

	cases := []struct {
		name      string
		cfg       *JWTConfig
		mustNames string
	}{
		{"missing file", &JWTConfig{JWKSFile: missing}, missing},
		{"file not a JWKS", &JWTConfig{JWKSFile: notJSON}, notJSON},
		{"file without keys", &JWTConfig{JWKSFile: empty}, empty},
		{"URL answers 500", &JWTConfig{JWKSURL: down.URL + "/jwks?key=" + secret}, down.URL + "/jwks"},
		{"URL unreachable", &JWTConfig{JWKSURL: closedURL}, closedURL},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Issuer, tc.cfg.Audience, tc.cfg.Algorithms = authTestIssuer, authTestAudience, []string{"RS256"}
			a, err := newAuthenticator(t.Context(), AuthConfig{JWT: tc.cfg}, nil)
			if err == nil {
				a.close()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.mustNames) {
				t.Errorf("error %q does not name %s", err, tc.mustNames)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q shows the URL's query", err)
			}
		})
	}
}

func TestAPIKeyAuth(t *testing.T) {
	const key, other = "pk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0", "pk_live_00000000000000000000000000000000"
	cfg := AuthConfig{APIKeys: []APIKey{
		{Name: "billing-service", Hash: HashAPIKey(key), Claims: map[string]any{"roles": []any{"billing"}}},
		{Name: "reporting", Hash: HashAPIKey("another key entirely")},
	}}
	a, log := newTestAuthenticator(t, cfg)

	for _, r := range []*http.Request{authRequest("X-API-Key", key), authRequest("Authorization", "ApiKey "+key), authRequest("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("anyone:"+key)))} {
		c, err := a.authenticate(r)
		if err != nil {
			t.Fatalf("right key refused: %v", err)
		}
		if c.Subject != "billing-service" || c.Method != access.MethodAPIKey || !c.Authenticated() {
			t.Fatalf("caller = %+v", c)
		}
		if err := access.Claim("roles", "billing").Check(c, "command invoice/issue"); err != nil {
			t.Errorf("the key's claims: %v", err)
		}
		c.Claims["roles"] = "tampered" // a handler cannot change the configuration
	}
	c, _ := a.authenticate(authRequest("X-API-Key", key))
	if _, ok := c.Claims["roles"].([]any); !ok {
		t.Errorf("claims shared between callers: %v", c.Claims)
	}

	for name, r := range map[string]*http.Request{
		"wrong key":           authRequest("X-API-Key", other),
		"wrong key, ApiKey":   authRequest("Authorization", "ApiKey "+other),
		"key prefix":          authRequest("X-API-Key", key[:len(key)-1]),
		"bearer not accepted": bearer(other),
		"basic, wrong key":    authRequest("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("u:"+other))),
		"unsupported scheme":  authRequest("Authorization", "Digest "+other),
		"empty ApiKey":        authRequest("Authorization", "ApiKey"),
		"two credentials": func() *http.Request {
			r := authRequest("X-API-Key", key)
			r.Header.Set("Authorization", "ApiKey "+other)
			return r
		}(),
		"two X-API-Key values": func() *http.Request { r := authRequest("X-API-Key", other); r.Header.Add("X-API-Key", key); return r }(),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := a.authenticate(r)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !errors.Is(err, access.ErrUnauthenticated) {
				t.Errorf("error %v does not wrap access.ErrUnauthenticated", err)
			}
			for _, k := range []string{key, other} {
				assertNoLeak(t, "error", err.Error(), k)
				assertNoLeak(t, "challenge", a.challenge(err), k)
			}
			if ch := a.challenge(err); ch != `ApiKey realm="partita", Basic realm="partita", charset="UTF-8"` {
				t.Errorf("challenge = %s", ch)
			}
		})
	}
	_, err := a.authenticate(authRequest("X-API-Key", other))
	if !strings.Contains(err.Error(), "unknown API key") {
		t.Errorf("wrong key: %v", err)
	}
	for _, k := range []string{key, other} {
		assertNoLeak(t, "log", log.String(), k)
	}

	if h := HashAPIKey("abc"); h != "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("HashAPIKey = %s", h)
	}
}

func TestAuthOffAndAnonymous(t *testing.T) {
	off, log := newTestAuthenticator(t, AuthConfig{})
	if off.enabled() {
		t.Fatal("authentication on without configuration")
	}
	c, err := off.authenticate(authRequest("Authorization", "Bearer whatever"))
	if err != nil || c.Method != access.MethodNone {
		t.Fatalf("authentication off: %+v, %v", c, err)
	}
	if !strings.Contains(log.String(), "AUTHENTICATION IS OFF") {
		t.Errorf("authentication off is not logged:\n%s", log)
	}

	key := newRSATestKey(t, "k1")
	srv := newJWKSServer(t, authJWKS(t, key))
	on, _ := newTestAuthenticator(t, AuthConfig{JWT: authJWTConfig(srv.URL), APIKeys: []APIKey{{Name: "ci", Hash: HashAPIKey("k")}}})
	c, err = on.authenticate(authRequest("", ""))
	if err != nil || c == nil || c.Authenticated() || c.Method != "" || c.Subject != "" {
		t.Fatalf("no credentials: %+v, %v", c, err)
	}
	// The rule's error (no credentials given): no error code (RFC 6750 3.1).
	ruleErr := access.Authenticated().Check(c, "command cart/add-item")
	if ch := on.challenge(ruleErr); ch != `Bearer realm="partita", ApiKey realm="partita", Basic realm="partita", charset="UTF-8"` {
		t.Errorf("challenge = %s", ch)
	}
	_, err = on.authenticate(bearer("garbage"))
	if ch := on.challenge(err); ch != `Bearer realm="partita", error="invalid_token", error_description="malformed token", ApiKey realm="partita", Basic realm="partita", charset="UTF-8"` {
		t.Errorf("challenge = %s", ch)
	}
}

func TestAuthConfigValidate(t *testing.T) {
	if errs := (AuthConfig{}).validate(); len(errs) != 0 {
		t.Errorf("off: %v", errs)
	}
	good := AuthConfig{
		JWT: &JWTConfig{JWKSURL: "https://idp.test/.well-known/jwks.json", Issuer: authTestIssuer, Audience: authTestAudience, Algorithms: []string{"RS256", "ES256", "EdDSA"}},
		// Upper-case hex digits are fine.
		APIKeys: []APIKey{{Name: "ci", Hash: HashAPIKey("one")}, {Name: "ops", Hash: "sha256:" + strings.ToUpper(HashAPIKey("two")[7:])}},
	}
	if errs := good.validate(); len(errs) != 0 {
		t.Errorf("good config: %v", errors.Join(errs...))
	}

	const rawKey = "sk_live_pasted_by_mistake_1234567890"
	bad := AuthConfig{
		JWT: &JWTConfig{
			JWKSFile:      "/etc/partita/jwks.json",
			JWKSURL:       "https://idp.test/jwks",
			JWKSRefresh:   15, // YAML "jwks_refresh: 15": nanoseconds
			Algorithms:    []string{"RS256", "none", "HS256", "RS257"},
			Skew:          -time.Second,
			ForwardClaims: []string{"roles", ""},
		},
		APIKeys: []APIKey{
			{Name: "", Hash: HashAPIKey("a")},
			{Name: "ci", Hash: rawKey},
			{Name: "ci", Hash: HashAPIKey("b")},
			{Name: "dup", Hash: HashAPIKey("b")},
			{Name: "short", Hash: "sha256:abcd"},
		},
	}
	errs := bad.validate()
	joined := errors.Join(errs...).Error()
	for _, want := range []string{
		"only one of jwks_file and jwks_url",
		"jwks_refresh",
		"issuer is required",
		"audience is required",
		`"none" is refused`,
		`"HS256" is refused: HMAC algorithms need a shared secret`,
		`unknown algorithm "RS257"`,
		"skew must not be negative",
		"forward_claims[1] is empty",
		"auth.api_keys[0]: name is required",
		"auth.api_keys[1] (ci): hash must be",
		"auth.api_keys[2] (ci): name is already used by auth.api_keys[1]",
		"auth.api_keys[3] (dup): same key as auth.api_keys[2]",
		"auth.api_keys[4] (short): hash must be",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("validate misses %q; got:\n%s", want, joined)
		}
	}
	if len(errs) != 14 {
		t.Errorf("%d problems, want 14:\n%s", len(errs), joined)
	}
	if strings.Contains(joined, rawKey) {
		t.Errorf("validate echoes a hash field:\n%s", joined)
	}

	for _, c := range []AuthConfig{
		{JWT: &JWTConfig{}},
		{JWT: &JWTConfig{JWKSURL: "idp.test/jwks", Issuer: "i", Audience: "a", Algorithms: []string{"RS256"}}},
		{JWT: &JWTConfig{JWKSURL: "ftp://idp.test/jwks", Issuer: "i", Audience: "a", Algorithms: []string{"RS256"}}},
		{JWT: &JWTConfig{JWKSFile: "f", Issuer: "i", Audience: "a", Algorithms: []string{"NONE"}}},
		{JWT: &JWTConfig{JWKSFile: "f", Issuer: "i", Audience: "a", Algorithms: []string{"hs512"}}},
	} {
		if errs := c.validate(); len(errs) == 0 {
			t.Errorf("%+v: no problem found", *c.JWT)
		}
	}
	// The empty JWT section lists all its problems at once.
	if errs := (AuthConfig{JWT: &JWTConfig{}}).validate(); len(errs) != 4 {
		t.Errorf("empty jwt section: %d problems, want 4: %v", len(errs), errors.Join(errs...))
	}

	// newAuthenticator refuses an invalid configuration, with every problem.
	_, err := newAuthenticator(context.Background(), bad, nil)
	if err == nil || !strings.Contains(err.Error(), `"none" is refused`) || !strings.Contains(err.Error(), "auth.api_keys[4]") {
		t.Errorf("newAuthenticator: %v", err)
	}
}
