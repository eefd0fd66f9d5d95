package worker_test

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/golang-jwt/jwt/v5"

	"github.com/partita-dev/partita/internal/kafkatest"
	"github.com/partita-dev/partita/worker"
)

// bankBinary builds the security suite's application (testdata/bank).
var bankBinary = sync.OnceValues(func() (string, error) { return build("./testdata/bank") })

// secured is a bank worker with authentication on, and what it takes to
// call it.
type secured struct {
	*proc
	key     *rsa.PrivateKey // signs tokens under kid "k1"
	apiKey  string          // an API key with roles [teller]
	brokers string
}

// token mints a JWT signed with key under kid, with the suite's issuer and
// audience, valid for a minute, and claims added or replaced.
func (s *secured) token(t testing.TB, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"iss": "https://issuer.test", "aud": "bank", "sub": "alice",
		"exp": time.Now().Add(time.Minute).Unix(), "iat": time.Now().Unix(), "email": "alice@example.com"}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	signed, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func (s *secured) valid(t testing.TB, claims jwt.MapClaims) string {
	return s.token(t, jwt.SigningMethodRS256, s.key, "k1", claims)
}

// startSecured starts the bank application on the real broker with JWT
// (a JWKS file), an API key, a short read timeout, a small connection cap
// and one allowed CORS origin.
func startSecured(t testing.TB) *secured {
	t.Helper()
	e := kafkatest.Require(t)
	bin, err := bankBinary()
	if err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":%q,"e":%q}]}`,
		b64(key.N.Bytes()), b64(big.NewInt(int64(key.E)).Bytes()))
	jwksFile := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(jwksFile, []byte(jwks), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	apiKey := "pk_" + hex.EncodeToString(raw)
	cfg := fmt.Sprintf(`
auth:
  jwt:
    jwks_file: %s
    issuer: https://issuer.test
    audience: bank
    algorithms: [RS256]
    skew: 5s
    forward_claims: [roles]
  api_keys:
    - name: ci
      hash: %s
      claims: {roles: [teller, auditor]}
http:
  allowed_hosts: [127.0.0.1]
  read_timeout: 2s
  max_connections: 40
  cors_origins: [https://app.test]
`, jwksFile, worker.HashAPIKey(apiKey))
	cfgFile := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf("sec%d", time.Now().UnixNano())
	p := startProc(t, bin, app, e.Plaintext, "--config", cfgFile)
	return &secured{proc: p, key: key, apiKey: apiKey, brokers: e.Plaintext}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// request sends one request with the given headers and returns the status,
// the error object's code (or the body) and the response headers.
func request(t *testing.T, addr, method, path string, body []byte, headers ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var e struct {
		Error struct{ Code, Message string }
	}
	if json.Unmarshal(out, &e) == nil && e.Error.Code != "" {
		return resp.StatusCode, e.Error.Code, resp.Header
	}
	return resp.StatusCode, string(out), resp.Header
}

// within asserts that a normal command to the account entity is answered
// within 2 s.
func (s *secured) within(t *testing.T, after string) {
	t.Helper()
	start := time.Now()
	code, body, _ := request(t, s.addr, "POST", "/entities/account/after-"+fmt.Sprint(time.Now().UnixNano())+"/deposit",
		[]byte(`{"amount": 1}`), "Authorization", "Bearer "+s.valid(t, nil))
	if code != http.StatusOK || time.Since(start) > 2*time.Second {
		t.Errorf("after %s: a normal command answered %d %s in %v; want 200 within 2 s", after, code, body, time.Since(start))
	}
}

// dlqEnd is the summed end offset of the application's dead-letter topic.
func dlqEnd(t *testing.T, brokers, app string) int64 {
	t.Helper()
	c, err := sarama.NewClient([]string{brokers}, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	parts, err := c.Partitions(app + ".dlq")
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, p := range parts {
		off, err := c.GetOffset(app+".dlq", p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		n += off
	}
	return n
}

// TestGatewaySecurity is the security suite of the gateway (issue 14): a
// real worker with authentication on, over real HTTP, on the real broker.
// Every case asserts the status code and the error code.
func TestGatewaySecurity(t *testing.T) {
	s := startSecured(t)
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	teller := s.valid(t, jwt.MapClaims{"roles": []string{"teller"}})

	t.Run("wedge inputs are answered and the entity keeps serving", func(t *testing.T) {
		body := []byte(`{"owner":"` + strings.Repeat("a", 1_048_000-len(`{"owner":""}`)) + `"}`)
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/size-1048000/open", body, bearer(teller)...); code != http.StatusRequestEntityTooLarge || ec != "payload_too_large" {
			t.Errorf("1,048,000-byte body: %d %s, want 413 payload_too_large", code, ec)
		}
		s.within(t, "the 1,048,000-byte body")
		for _, n := range []int{600_000, 1000} {
			code, ec, _ := request(t, s.addr, "POST", "/entities/account/k/deposit", []byte(`{"amount":1}`),
				append(bearer(teller), "Idempotency-Key", strings.Repeat("k", n))...)
			if code != http.StatusBadRequest && code != http.StatusRequestHeaderFieldsTooLarge {
				t.Errorf("%d-byte Idempotency-Key: %d %.80s, want 400 or 431", n, code, ec)
			}
			if n == 1000 && ec != "invalid_argument" {
				t.Errorf("1000-byte Idempotency-Key: code %.80q, want invalid_argument", ec)
			}
			if len(ec) > 300 {
				t.Errorf("%d-byte Idempotency-Key: the answer echoes %d bytes", n, len(ec))
			}
		}
		s.within(t, "the 600 KB Idempotency-Key")
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/big/echo", []byte(`{"bytes": 2000000}`), bearer(teller)...); code != http.StatusUnprocessableEntity || ec != "dead_letter" {
			t.Errorf("a handler replying 2 MB: %d %s, want 422 dead_letter", code, ec)
		}
		s.within(t, "the 2 MB reply")
	})

	t.Run("bad tokens are 401 with WWW-Authenticate", func(t *testing.T) {
		other, _ := rsa.GenerateKey(rand.Reader, 2048)
		none := s.token(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "k1", nil)
		cases := map[string]string{
			"wrong signature": s.token(t, jwt.SigningMethodRS256, other, "k1", nil),
			"expired":         s.valid(t, jwt.MapClaims{"exp": time.Now().Add(-time.Minute).Unix()}),
			"not yet valid":   s.valid(t, jwt.MapClaims{"nbf": time.Now().Add(time.Minute).Unix()}),
			"wrong audience":  s.valid(t, jwt.MapClaims{"aud": "other"}),
			"wrong issuer":    s.valid(t, jwt.MapClaims{"iss": "https://evil.test"}),
			"alg none":        none,
			"unknown key id":  s.token(t, jwt.SigningMethodRS256, s.key, "k9", nil),
			"garbage":         "not.a.token",
		}
		for name, tok := range cases {
			code, ec, h := request(t, s.addr, "POST", "/entities/account/a/deposit", []byte(`{"amount":1}`), bearer(tok)...)
			if code != http.StatusUnauthorized || ec != "unauthenticated" || !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s: %d %s (WWW-Authenticate %q), want 401 unauthenticated with a Bearer challenge", name, code, ec, h.Get("WWW-Authenticate"))
			}
		}
		if code, ec, h := request(t, s.addr, "POST", "/entities/account/a/deposit", []byte(`{"amount":1}`)); code != http.StatusUnauthorized || ec != "unauthenticated" || h.Get("WWW-Authenticate") == "" {
			t.Errorf("no credentials: %d %s, want 401", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/a/deposit", []byte(`{"amount":1}`), "X-API-Key", "pk_wrong"); code != http.StatusUnauthorized {
			t.Errorf("a wrong API key: %d %s, want 401", code, ec)
		}
	})

	t.Run("rules: claims, public, API keys", func(t *testing.T) {
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/r1/open", []byte(`{"owner":"alice"}`), bearer(s.valid(t, nil))...); code != http.StatusForbidden || ec != "permission_denied" {
			t.Errorf("open without the teller role: %d %s, want 403 permission_denied", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/r1/open", []byte(`{"owner":"alice"}`), bearer(teller)...); code != http.StatusOK {
			t.Errorf("open as a teller: %d %s", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/r1/open", []byte(`{"owner":"alice"}`), "X-API-Key", s.apiKey); code != http.StatusOK {
			t.Errorf("open with the teller API key: %d %s", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/r1/ping", []byte(`{}`)); code != http.StatusOK {
			t.Errorf("a public command without credentials: %d %s", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "GET", "/views/balances", nil, bearer(teller)...); code != http.StatusForbidden || ec != "permission_denied" {
			t.Errorf("the auditors' view as a teller: %d %s, want 403", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "GET", "/views/balances", nil, "X-API-Key", s.apiKey); code != http.StatusOK {
			t.Errorf("the auditors' view with the auditor API key: %d %s", code, ec)
		}
	})

	t.Run("internal commands: refused at the gateway, applied from an entity", func(t *testing.T) {
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/i2/credit", []byte(`{"amount":1000000}`), bearer(teller)...); code != http.StatusForbidden || ec != "permission_denied" {
			t.Errorf("credit from the gateway: %d %s, want 403 permission_denied", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/i1/deposit", []byte(`{"amount":50}`), bearer(teller)...); code != http.StatusOK {
			t.Fatalf("deposit: %d %s", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/i1/transfer", []byte(`{"to":"i2","amount":30}`), bearer(teller)...); code != http.StatusOK {
			t.Fatalf("transfer: %d %s", code, ec)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			code, body, _ := request(t, s.addr, "GET", "/entities/account/i2", nil, bearer(teller)...)
			if code == http.StatusOK && strings.Contains(body, `"balance":30`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the credit sent by the transfer was not applied: %d %s", code, body)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("handlers see the caller the gateway set", func(t *testing.T) {
		code, body, _ := request(t, s.addr, "POST", "/entities/account/w/whoami", []byte(`{}`),
			append(bearer(teller), "ce-partitacaller", `{"sub":"root","method":"jwt"}`, "Ce-Partitacaller", `{"sub":"root"}`)...)
		var c struct {
			Sub    string
			Method string
			Claims map[string]any
		}
		if err := json.Unmarshal([]byte(body), &c); code != http.StatusOK || err != nil {
			t.Fatalf("whoami: %d %s", code, body)
		}
		if c.Sub != "alice" || c.Method != "jwt" || c.Claims["roles"] == nil || c.Claims["email"] != nil {
			t.Errorf("the handler saw %+v; want alice by jwt with the forwarded roles claim only", c)
		}
	})

	t.Run("client mistakes are 400 naming the field, and no dead letter", func(t *testing.T) {
		before := dlqEnd(t, s.brokers, s.app)
		for _, body := range []string{`{"amount": "2"}`, `[1,2]`, `{"amount": 1} trailing`, `{"amount": 1.5}`} {
			code, ec, _ := request(t, s.addr, "POST", "/entities/account/m/deposit", []byte(body), bearer(teller)...)
			if code != http.StatusBadRequest || ec != "invalid_argument" {
				t.Errorf("%s: %d %s, want 400 invalid_argument", body, code, ec)
			}
		}
		req, _ := http.NewRequest("POST", "http://"+s.addr+"/entities/account/m/deposit", strings.NewReader(`{"amount": "2"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+teller)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct{ Error struct{ Message string } }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if msg := e.Error.Message; !strings.Contains(msg, `"amount"`) || strings.Contains(msg, "main.") || strings.Contains(msg, "int64") {
			t.Errorf("the message should name the field and no Go type: %q", msg)
		}
		time.Sleep(time.Second)
		if after := dlqEnd(t, s.brokers, s.app); after != before {
			t.Errorf("client mistakes wrote %d dead letters", after-before)
		}
	})

	t.Run("cross-site writes are refused", func(t *testing.T) {
		// What a browser sends for <form enctype=text/plain method=post>
		// on another origin, and for fetch(..., {mode: "no-cors"}).
		form := []string{"Content-Type", "text/plain", "Origin", "https://evil.test", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "navigate"}
		nocors := []string{"Content-Type", "text/plain;charset=UTF-8", "Origin", "https://evil.test", "Sec-Fetch-Site", "cross-site", "Sec-Fetch-Mode", "no-cors"}
		for name, h := range map[string][]string{"form post": form, "no-cors fetch": nocors} {
			code, ec, _ := request(t, s.addr, "POST", "/entities/account/x/ping", []byte(`{}`), h...)
			if code != http.StatusForbidden && code != http.StatusUnsupportedMediaType {
				t.Errorf("%s from another origin: %d %s, want 403 or 415", name, code, ec)
			}
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/x/ping", []byte(`{}`), "Origin", "https://evil.test"); code != http.StatusForbidden || ec != "cross_site" {
			t.Errorf("a JSON post from another origin: %d %s, want 403 cross_site", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/x/ping", []byte(`{}`), "Content-Type", "text/plain"); code != http.StatusUnsupportedMediaType || ec != "unsupported_media_type" {
			t.Errorf("a text/plain post: %d %s, want 415", code, ec)
		}
		code, _, h := request(t, s.addr, "OPTIONS", "/entities/account/x/ping", nil, "Origin", "https://app.test", "Access-Control-Request-Method", "POST")
		if code != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.test" {
			t.Errorf("preflight from the allowed origin: %d %v", code, h)
		}
		if code, ec, _ := request(t, s.addr, "OPTIONS", "/entities/account/x/ping", nil, "Origin", "https://evil.test", "Access-Control-Request-Method", "POST"); code != http.StatusForbidden {
			t.Errorf("preflight from another origin: %d %s, want 403", code, ec)
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/account/x/ping", []byte(`{}`), "Origin", "https://app.test"); code != http.StatusOK {
			t.Errorf("a post from the allowed origin: %d %s", code, ec)
		}
	})

	t.Run("a Host not allowed is 421", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+s.addr+"/healthz", nil)
		req.Host = "evil.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(string(body), "misdirected_request") {
			t.Errorf("Host evil.example: %d %s, want 421 misdirected_request", resp.StatusCode, body)
		}
	})

	t.Run("errors are JSON objects, pages need authentication, health is open", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			code         int
			ec           string
		}{
			{"GET", "/entities/account/x/ping", http.StatusMethodNotAllowed, "method_not_allowed"},
			{"GET", "/no/such/path", http.StatusNotFound, "not_found"},
			{"GET", "/api/status", http.StatusUnauthorized, "unauthenticated"},
			{"GET", "/metrics", http.StatusUnauthorized, "unauthenticated"},
			{"GET", "/", http.StatusUnauthorized, "unauthenticated"},
			{"POST", "/entities/nope/x/y", http.StatusUnauthorized, "unauthenticated"},
		} {
			if code, ec, _ := request(t, s.addr, c.method, c.path, nil); code != c.code || ec != c.ec {
				t.Errorf("%s %s: %d %.80s, want %d %s", c.method, c.path, code, ec, c.code, c.ec)
			}
		}
		if code, ec, _ := request(t, s.addr, "POST", "/entities/nope/x/y", []byte(`{}`), bearer(teller)...); code != http.StatusNotFound || ec != "not_found" {
			t.Errorf("an unknown entity: %d %s, want 404 not_found", code, ec)
		}
		for _, path := range []string{"/api/status", "/metrics", "/"} {
			if code, ec, _ := request(t, s.addr, "GET", path, nil, "X-API-Key", s.apiKey); code != http.StatusOK {
				t.Errorf("%s with an API key: %d %.80s", path, code, ec)
			}
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			if code, ec, _ := request(t, s.addr, "GET", path, nil); code != http.StatusOK {
				t.Errorf("%s: %d %s", path, code, ec)
			}
		}
		_, _, h := request(t, s.addr, "GET", "/", nil, "X-API-Key", s.apiKey)
		if !strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("dashboard security headers: %v", h)
		}
	})

	t.Run("a body sent at 1 byte/s is cut at the read timeout", func(t *testing.T) {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		fmt.Fprintf(conn, "POST /entities/account/slow/ping HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n", s.addr)
		closed := make(chan struct{})
		go func() {
			_, _ = io.Copy(io.Discard, conn)
			close(closed)
		}()
		for i := 0; ; i++ {
			select {
			case <-closed:
				if d := time.Since(start); d > 6*time.Second {
					t.Errorf("the slow body was cut after %v; want about the 2 s read timeout", d)
				}
				return
			case <-time.After(time.Second):
				if _, err := conn.Write([]byte(" ")); err != nil || i > 10 {
					if i > 10 {
						t.Fatalf("the slow body is still open after %v", time.Since(start))
					}
				}
			}
		}
	})

	t.Run("with the connection cap reached a client gets an answer within 1 s", func(t *testing.T) {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for range 45 {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				break
			}
			fmt.Fprintf(c, "POST /entities/account/slow/ping HTTP/1.1\r\nHost: %s\r\nContent-Length: 100\r\n\r\n", s.addr)
			held = append(held, c)
		}
		start := time.Now()
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err != nil {
			t.Fatalf("dial with the cap reached: %v", err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", s.addr)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer within 1 s with %d connections held: %v", len(held), err)
		}
		body, _ := io.ReadAll(resp.Body)
		if !(resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(body), "overloaded")) {
			t.Errorf("with the cap reached: %d %s, want 200 or 503 overloaded", resp.StatusCode, body)
		}
		t.Logf("with %d connections held: %d in %v", len(held), resp.StatusCode, time.Since(start))
	})
}

// TestHealthWhileKafkaIsUnreachable: a worker whose broker does not answer
// serves /healthz (it is alive: a liveness probe must not kill it) and
// /readyz 503 naming what it waits for, and nothing else.
func TestHealthWhileKafkaIsUnreachable(t *testing.T) {
	bin, err := workerBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := launch(t, bin, "unreachable", kafkatest.ClosedAddr(t))
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, _ := get(p.addr, "/healthz")
		if code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/healthz did not answer while Kafka is unreachable:\n%s", tail(p.log.String(), 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The first connection check takes a moment to fail and name its cause.
	for {
		code, ec, _ := request(t, p.addr, "GET", "/readyz", nil)
		_, body := get(p.addr, "/readyz")
		if code == http.StatusServiceUnavailable && ec == "not_ready" && strings.Contains(string(body), "waiting for Kafka") {
			break
		}
		if time.Now().After(deadline) || code == http.StatusOK {
			t.Fatalf("/readyz while Kafka is unreachable: %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if code, ec, _ := request(t, p.addr, "POST", "/entities/cart/k/add-item", []byte(`{}`)); code != http.StatusServiceUnavailable || ec != "not_ready" {
		t.Errorf("a command while Kafka is unreachable: %d %s, want 503 not_ready", code, ec)
	}
}

// TestGatewayTLS serves the gateway over TLS (http.tls): a client trusting
// the certificate sends a command; plain HTTP on the port is refused.
func TestGatewayTLS(t *testing.T) {
	e := kafkatest.Require(t)
	bin, err := bankBinary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, certFile, keyFile := worker.WriteTestCert(t, dir, "gateway", 1)
	cfg := filepath.Join(dir, "worker.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("http:\n  tls: {cert_file: %s, key_file: %s}\n", certFile, keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	p := launch(t, bin, fmt.Sprintf("tls%d", time.Now().UnixNano()), e.Plaintext, "--config", cfg)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tc := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := tc.Get("https://" + p.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready over TLS in 2 minutes: %v\n%s", err, tail(p.log.String(), 2000))
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := tc.Post("https://"+p.addr+"/entities/account/t1/ping", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "pong") {
		t.Errorf("a command over TLS: %d %s", resp.StatusCode, body)
	}
	if code, body := get(p.addr, "/healthz"); code == http.StatusOK {
		t.Errorf("plain HTTP on the TLS port answered %d %s", code, body)
	}
}
