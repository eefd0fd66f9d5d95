package worker

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testMux stands in for the gateway: a POST route, GET routes and a
// server-sent-events stream.
func testMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /entities/{entity}/{id}/{command}", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			httpError(w, http.StatusBadRequest, "invalid_argument", "the body is unreadable")
			return
		}
		if d, _ := time.ParseDuration(r.URL.Query().Get("sleep")); d > 0 {
			time.Sleep(d)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"len": len(body), "ctx_err": fmt.Sprint(r.Context().Err())})
	})
	mux.HandleFunc("GET /views/{view}/stream", testStream)
	mux.HandleFunc("GET /views/{view}/{id}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("id") == "missing" {
			httpError(w, http.StatusNotFound, "not_found", "no row missing")
			return
		}
		if d, _ := time.ParseDuration(r.URL.Query().Get("sleep")); d > 0 {
			time.Sleep(d)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"id": r.PathValue("id"), "ctx_err": fmt.Sprint(r.Context().Err())})
	})
	return mux
}

// testStream sends a "tick" event at once and every 100ms for ?for=, then
// "done" with the request context's error. With ?lift=1 it lifts the write
// deadline first, as the gateway's stream does.
func testStream(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		httpError(w, http.StatusInternalServerError, "internal", "streaming unsupported")
		return
	}
	if r.URL.Query().Get("lift") == "1" {
		if err := http.NewResponseController(w).SetWriteDeadline(time.Time{}); err != nil {
			httpError(w, http.StatusInternalServerError, "internal", "lifting the write deadline: "+err.Error())
			return
		}
	}
	d, _ := time.ParseDuration(r.URL.Query().Get("for"))
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	end := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		if _, err := fmt.Fprintf(w, "event: tick\ndata: %d\n\n", i); err != nil {
			return
		}
		flusher.Flush()
		if !time.Now().Before(end) {
			break
		}
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
		}
	}
	fmt.Fprintf(w, "event: done\ndata: %v\n\n", r.Context().Err())
	flusher.Flush()
}

type testServer struct {
	srv  *http.Server
	addr string // host:port
	base string // http(s)://host:port
}

// startTestServer serves h behind guard with a real newServer and listen on
// loopback.
func startTestServer(t *testing.T, c HTTPConfig, h http.Handler) testServer {
	t.Helper()
	if errs := c.validate(); errs != nil {
		t.Fatalf("config: %v", errs)
	}
	srv, err := newServer(c, guard(c, h), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := listen(c, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	scheme := "http"
	go func() {
		if c.TLS != nil {
			_ = srv.ServeTLS(ln, "", "")
		} else {
			_ = srv.Serve(ln)
		}
	}()
	if c.TLS != nil {
		scheme = "https"
	}
	t.Cleanup(func() { srv.Close() })
	return testServer{srv: srv, addr: ln.Addr().String(), base: scheme + "://" + ln.Addr().String()}
}

func newClient() *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
}

type reply struct {
	status int
	header http.Header
	body   []byte
	close  bool // the server closes the connection
}

func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("status %d: body %q is not the JSON error object: %v", r.status, r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type %q", ct)
	}
	return e.Error.Code
}

// do sends a request; headers "Host" sets the Host header.
func do(t *testing.T, c *http.Client, method, url string, headers map[string]string, body string) reply {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return reply{resp.StatusCode, resp.Header, b, resp.Close}
}

func TestHTTPConfigDefaultsAndValidate(t *testing.T) {
	t.Parallel()
	d := HTTPConfig{}.withDefaults(7 * time.Second)
	want := HTTPConfig{ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second, WriteTimeout: 12 * time.Second,
		IdleTimeout: 60 * time.Second, MaxHeaderBytes: 32 << 10, MaxConnections: 1024}
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Errorf("defaults %+v, want %+v", d, want)
	}
	if errs := d.validate(); errs != nil {
		t.Errorf("defaults invalid: %v", errs)
	}
	if got := (HTTPConfig{WriteTimeout: time.Second, MaxConnections: 3}).withDefaults(time.Minute); got.WriteTimeout != time.Second || got.MaxConnections != 3 {
		t.Errorf("withDefaults overrode set values: %+v", got)
	}

	dir := t.TempDir()
	_, cert1, key1 := writeTestCert(t, dir, "a", 1)
	_, _, key2 := writeTestCert(t, dir, "b", 2)
	bad := HTTPConfig{
		ReadHeaderTimeout: -1, ReadTimeout: -1, WriteTimeout: -1, IdleTimeout: -1, MaxHeaderBytes: -1, MaxConnections: -1,
		AllowedHosts: []string{"api.example.com", "localhost:8080", "", "https://api.example.com/"},
		CORSOrigins: []string{"https://app.example.com", "*", "http://localhost:3000",
			"app.example.com", "https://app.example.com/", "https://*.example.com", "https://app.example.com/x?y"},
		TLS: &TLSFiles{CertFile: filepath.Join(dir, "nope.pem")},
	}
	errs := bad.validate()
	for _, want := range []string{
		"read_header_timeout is negative", "http.read_timeout is negative", "write_timeout is negative", "idle_timeout is negative",
		"max_header_bytes is negative", "max_connections is negative",
		`allowed_hosts: "": empty`, `allowed_hosts: "https://api.example.com/"`,
		`cors_origins: "app.example.com"`, `cors_origins: "https://app.example.com/"`, `cors_origins: "https://*.example.com"`, `cors_origins: "https://app.example.com/x?y"`,
		"cert_file: open", "key_file is required",
	} {
		found := false
		for _, e := range errs {
			if strings.Contains(e.Error(), want) {
				found = true
			}
		}
		if !found {
			t.Errorf("no error containing %q", want)
		}
	}
	if len(errs) != 14 {
		t.Errorf("%d errors, want 14 (every problem at once):", len(errs))
		for _, e := range errs {
			t.Log(e)
		}
	}

	mismatched := HTTPConfig{TLS: &TLSFiles{CertFile: cert1, KeyFile: key2}}.validate()
	if len(mismatched) != 1 || !strings.Contains(mismatched[0].Error(), "not a certificate and its key") {
		t.Errorf("mismatched pair: %v", mismatched)
	}
	if errs := (HTTPConfig{TLS: &TLSFiles{CertFile: cert1, KeyFile: key1}}).validate(); errs != nil {
		t.Errorf("good pair: %v", errs)
	}
	if _, err := newServer(HTTPConfig{TLS: &TLSFiles{CertFile: cert1, KeyFile: key2}}, http.NotFoundHandler(), nil); err == nil {
		t.Error("newServer accepted a mismatched pair")
	}
}

func TestHTTPServerSlowBodyCutAtReadTimeout(t *testing.T) {
	t.Parallel()
	const readTimeout = time.Second
	s := startTestServer(t, HTTPConfig{ReadHeaderTimeout: readTimeout, ReadTimeout: readTimeout}.withDefaults(time.Second), testMux())
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := fmt.Fprintf(conn, "POST /entities/e/1/c HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{", s.addr); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() { // one byte a second
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	_ = conn.SetReadDeadline(start.Add(readTimeout + 10*time.Second))
	got, err := io.ReadAll(conn)
	elapsed := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection was still open after %v; read %q", elapsed, got)
	}
	if elapsed < readTimeout-100*time.Millisecond {
		t.Errorf("cut after %v, before the read timeout %v", elapsed, readTimeout)
	}
	if elapsed > readTimeout+3*time.Second {
		t.Errorf("cut after %v, want about the read timeout %v", elapsed, readTimeout)
	}
	t.Logf("cut after %v (err %v): %q", elapsed, err, firstLine(got))
	if len(got) > 0 && !strings.HasPrefix(string(got), "HTTP/1.1 400") {
		t.Errorf("answer %q, want the handler's 400 or nothing", firstLine(got))
	}
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\r\n")
	return s
}

func TestHTTPServerIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = time.Second
	s := startTestServer(t, HTTPConfig{IdleTimeout: idle}.withDefaults(time.Second), testMux())
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := range 2 { // the connection is kept alive between requests
		fmt.Fprintf(conn, "GET /views/v/1 HTTP/1.1\r\nHost: %s\r\n\r\n", s.addr)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("request %d: status %d, close %v", i, resp.StatusCode, resp.Close)
		}
	}
	start := time.Now()
	_ = conn.SetReadDeadline(start.Add(idle + 10*time.Second))
	_, err = br.ReadByte()
	elapsed := time.Since(start)
	if err != io.EOF {
		t.Fatalf("after %v: %v, want EOF (closed by the server)", elapsed, err)
	}
	if elapsed < idle-100*time.Millisecond || elapsed > idle+3*time.Second {
		t.Errorf("idle connection closed after %v, want about %v", elapsed, idle)
	}
}

func TestHTTPServerMaxHeaderBytes(t *testing.T) {
	t.Parallel()
	c := HTTPConfig{}.withDefaults(time.Second)
	s := startTestServer(t, c, testMux())
	cl := newClient()
	// A large token fits.
	if r := do(t, cl, "GET", s.base+"/views/v/1", map[string]string{"Authorization": "Bearer " + strings.Repeat("t", 16<<10)}, ""); r.status != 200 {
		t.Errorf("16 KiB token: status %d", r.status)
	}
	r := do(t, cl, "GET", s.base+"/views/v/1", map[string]string{"X-Big": strings.Repeat("x", 2*c.MaxHeaderBytes)}, "")
	if r.status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("%d bytes of headers: status %d, want 431", 2*c.MaxHeaderBytes, r.status)
	}
}

func TestListenConnectionCap(t *testing.T) {
	t.Parallel()
	c := HTTPConfig{MaxConnections: 5, ReadHeaderTimeout: 20 * time.Second, ReadTimeout: 20 * time.Second}.withDefaults(time.Second)
	s := startTestServer(t, c, testMux())
	var slow []net.Conn
	for range 5 {
		conn, err := net.Dial("tcp", s.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET /views/v/1 HTTP/1.1\r\nHost: ") // and nothing more
		slow = append(slow, conn)
	}

	cl := newClient()
	start := time.Now()
	r := do(t, cl, "GET", s.base+"/views/v/1", nil, "")
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("the 6th connection was answered after %v, want < 1s", elapsed)
	}
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) != "overloaded" {
		t.Fatalf("6th connection: %d %s", r.status, r.body)
	}
	if !strings.Contains(string(r.body), "too many connections; retry later") {
		t.Errorf("message: %s", r.body)
	}
	if r.header.Get("Retry-After") != "1" || !r.close {
		t.Errorf("headers %v", r.header)
	}

	// A client that sends nothing is answered too, and the connection closed.
	conn, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start = time.Now()
	_ = conn.SetReadDeadline(start.Add(5 * time.Second))
	got, err := io.ReadAll(conn)
	if err != nil || time.Since(start) > time.Second || !strings.HasPrefix(string(got), "HTTP/1.1 503 Service Unavailable\r\n") ||
		!strings.Contains(string(got), "\r\nConnection: close\r\n") || !strings.Contains(string(got), `"code":"overloaded"`) {
		t.Errorf("silent 6th connection: after %v: %q, %v", time.Since(start), got, err)
	}

	for _, conn := range slow {
		conn.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := do(t, cl, "GET", s.base+"/views/v/1", nil, "")
		if r.status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the slow connections closed: %d %s", r.status, r.body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGuardNotFoundAndMethodNotAllowedJSON(t *testing.T) {
	t.Parallel()
	s := startTestServer(t, HTTPConfig{}.withDefaults(time.Second), testMux())
	cl := newClient()
	r := do(t, cl, "GET", s.base+"/nope", nil, "")
	if r.status != 404 || r.errorCode(t) != "not_found" {
		t.Errorf("404: %d %s", r.status, r.body)
	}
	if strings.Contains(string(r.body), "404 page not found") {
		t.Errorf("the mux's text leaked: %q", r.body)
	}
	r = do(t, cl, "GET", s.base+"/entities/e/1/c", nil, "")
	if r.status != 405 || r.errorCode(t) != "method_not_allowed" {
		t.Errorf("405: %d %s", r.status, r.body)
	}
	if !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Errorf("405 Allow: %q", r.header.Get("Allow"))
	}
	// A handler's own JSON 404 is kept.
	r = do(t, cl, "GET", s.base+"/views/v/missing", nil, "")
	if r.status != 404 || r.errorCode(t) != "not_found" || !strings.Contains(string(r.body), "no row missing") {
		t.Errorf("handler's 404: %d %s", r.status, r.body)
	}
	// HEAD of an unknown route: no body, still 404.
	r = do(t, cl, "HEAD", s.base+"/nope", nil, "")
	if r.status != 404 || len(r.body) != 0 {
		t.Errorf("HEAD 404: %d %q", r.status, r.body)
	}
}

func TestGuardPreflight(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	s := startTestServer(t, HTTPConfig{CORSOrigins: []string{app}}.withDefaults(time.Second), testMux())
	cl := newClient()
	preflight := func(s testServer, origin, method string) reply {
		return do(t, cl, "OPTIONS", s.base+"/entities/e/1/c", map[string]string{
			"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": "content-type,idempotency-key"}, "")
	}
	r := preflight(s, app, "POST")
	if r.status != 204 {
		t.Fatalf("allowed preflight: %d %s", r.status, r.body)
	}
	for k, v := range map[string]string{
		"Access-Control-Allow-Origin":  app,
		"Access-Control-Allow-Methods": "GET, POST",
		"Access-Control-Allow-Headers": "Content-Type, Authorization, X-API-Key, Idempotency-Key",
		"Access-Control-Max-Age":       "600",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary: %q", r.header.Values("Vary"))
	}
	for _, c := range []struct{ origin, method string }{
		{"https://evil.example", "POST"},
		{"https://evil.example", "GET"},
		{app, "DELETE"},
		{"", "POST"},
	} {
		r := preflight(s, c.origin, c.method)
		if r.status != 403 || r.errorCode(t) != "cors_denied" || r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("preflight %s from %q: %d %s %v", c.method, c.origin, r.status, r.body, r.header)
		}
	}

	// "*": cross-site reads from anywhere, never writes.
	star := startTestServer(t, HTTPConfig{CORSOrigins: []string{"*"}}.withDefaults(time.Second), testMux())
	r = preflight(star, "https://anyone.example", "GET")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Methods") != "GET" {
		t.Errorf("* GET preflight: %d %v", r.status, r.header)
	}
	if r := preflight(star, "https://anyone.example", "POST"); r.status != 403 || r.errorCode(t) != "cors_denied" {
		t.Errorf("* POST preflight: %d %s", r.status, r.body)
	}
	r = do(t, cl, "GET", star.base+"/views/v/1", map[string]string{"Origin": "https://anyone.example"}, "")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" || r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Errorf("* GET: %d %v", r.status, r.header)
	}
	r = do(t, cl, "POST", star.base+"/entities/e/1/c", map[string]string{"Origin": "https://anyone.example", "Content-Type": "application/json"}, "{}")
	if r.status != 403 || r.errorCode(t) != "cross_site" || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("* POST: %d %s %v", r.status, r.body, r.header)
	}
}

func TestGuardHostAllowList(t *testing.T) {
	t.Parallel()
	s := startTestServer(t, HTTPConfig{AllowedHosts: []string{"api.example.com", "localhost:8080", "127.0.0.1", "[::1]"}}.withDefaults(time.Second), testMux())
	cl := newClient()
	for host, want := range map[string]int{
		"api.example.com":              200,
		"API.Example.COM:443":          200,
		"localhost:8080":               200,
		"localhost:9090":               421,
		"localhost":                    421,
		s.addr:                         200, // 127.0.0.1:port
		"[::1]:8080":                   200,
		"evil.example":                 421,
		"api.example.com.evil.example": 421,
	} {
		r := do(t, cl, "GET", s.base+"/views/v/1", map[string]string{"Host": host}, "")
		if r.status != want {
			t.Errorf("Host %q: %d, want %d", host, r.status, want)
		}
		if want == 421 && r.errorCode(t) != "misdirected_request" {
			t.Errorf("Host %q: %s", host, r.body)
		}
	}
	// Checked first: a wrong host with a text/plain cross-site POST is a 421.
	r := do(t, cl, "POST", s.base+"/entities/e/1/c", map[string]string{"Host": "evil.example", "Origin": "https://evil.example", "Content-Type": "text/plain"}, "x")
	if r.status != 421 {
		t.Errorf("host checked first: %d %s", r.status, r.body)
	}
}

func TestGuardCrossSite(t *testing.T) {
	t.Parallel()
	const app = "https://app.example.com"
	s := startTestServer(t, HTTPConfig{CORSOrigins: []string{app}}.withDefaults(time.Second), testMux())
	cl := newClient()
	post := func(h map[string]string) reply {
		h["Content-Type"] = "application/json"
		return do(t, cl, "POST", s.base+"/entities/e/1/c", h, `{"a":1}`)
	}
	for name, h := range map[string]map[string]string{
		"foreign Origin":                {"Origin": "https://evil.example"},
		"Sec-Fetch-Site cross-site":     {"Sec-Fetch-Site": "cross-site"},
		"Sec-Fetch-Site same-site":      {"Sec-Fetch-Site": "same-site", "Origin": "https://other.example.com"},
		"null Origin":                   {"Origin": "null"},
		"own host, other port":          {"Origin": "http://127.0.0.1:1"},
		"Sec-Fetch-Site lies about one": {"Sec-Fetch-Site": "same-origin", "Origin": "https://evil.example"},
	} {
		if r := post(h); r.status != 403 || r.errorCode(t) != "cross_site" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	for name, h := range map[string]map[string]string{
		"no Origin nor Sec-Fetch-Site (curl)": {},
		"same origin":                         {"Origin": "http://" + s.addr, "Sec-Fetch-Site": "same-origin"},
		"same origin behind a TLS proxy":      {"Origin": "https://" + s.addr},
		"Sec-Fetch-Site none":                 {"Sec-Fetch-Site": "none"},
	} {
		if r := post(h); r.status != 200 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		} else if r.header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: Access-Control-Allow-Origin %q", name, r.header.Get("Access-Control-Allow-Origin"))
		}
	}
	r := post(map[string]string{"Origin": app, "Sec-Fetch-Site": "cross-site"})
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != app || !strings.Contains(strings.Join(r.header.Values("Vary"), ","), "Origin") {
		t.Errorf("allowed origin: %d %s %v", r.status, r.body, r.header)
	}
	// Reads are not refused (the browser keeps the answer from a foreign page).
	r = do(t, cl, "GET", s.base+"/views/v/1", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, "")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("cross-site GET: %d %v", r.status, r.header)
	}
}

func TestGuardContentType(t *testing.T) {
	t.Parallel()
	s := startTestServer(t, HTTPConfig{}.withDefaults(time.Second), testMux())
	cl := newClient()
	for ct, want := range map[string]int{
		"text/plain":                        415,
		"text/plain;charset=UTF-8":          415,
		"application/x-www-form-urlencoded": 415,
		"multipart/form-data; boundary=x":   415,
		"application/jsonp":                 415,
		"not a media type":                  415,
		"application/json":                  200,
		"application/json; charset=utf-8":   200,
		"Application/JSON":                  200,
	} {
		r := do(t, cl, "POST", s.base+"/entities/e/1/c", map[string]string{"Content-Type": ct}, `{"a":1}`)
		if r.status != want {
			t.Errorf("Content-Type %q: %d, want %d", ct, r.status, want)
		}
		if want == 415 && r.errorCode(t) != "unsupported_media_type" {
			t.Errorf("Content-Type %q: %s", ct, r.body)
		}
	}
	if r := do(t, cl, "POST", s.base+"/entities/e/1/c", nil, `{"a":1}`); r.status != 415 {
		t.Errorf("a body without Content-Type: %d", r.status)
	}
	if r := do(t, cl, "POST", s.base+"/entities/e/1/c", nil, ""); r.status != 200 {
		t.Errorf("an empty body without Content-Type: %d %s", r.status, r.body)
	}
}

func TestGuardSecurityHeaders(t *testing.T) {
	t.Parallel()
	s := startTestServer(t, HTTPConfig{AllowedHosts: []string{"127.0.0.1"}}.withDefaults(time.Second), testMux())
	cl := newClient()
	replies := map[string]reply{
		"200": do(t, cl, "GET", s.base+"/views/v/1", nil, ""),
		"404": do(t, cl, "GET", s.base+"/nope", nil, ""),
		"421": do(t, cl, "GET", s.base+"/views/v/1", map[string]string{"Host": "evil.example"}, ""),
		"415": do(t, cl, "POST", s.base+"/entities/e/1/c", map[string]string{"Content-Type": "text/plain"}, "x"),
	}
	for name, r := range replies {
		for k, v := range map[string]string{
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "no-referrer",
			"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
			"X-Frame-Options":         "DENY",
		} {
			if got := r.header.Get(k); got != v {
				t.Errorf("%s: %s %q, want %q", name, k, got, v)
			}
		}
	}
}

// readEvents reads server-sent events until "done" or an error, returning
// the events' names and when the first arrived.
func readEvents(body io.Reader, start time.Time) (events []string, data string, first time.Duration, err error) {
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		if ev, ok := strings.CutPrefix(line, "event: "); ok {
			if len(events) == 0 {
				first = time.Since(start)
			}
			events = append(events, ev)
		}
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = d
		}
		if len(events) > 0 && events[len(events)-1] == "done" && line == "" {
			return events, data, first, nil
		}
	}
	if err = sc.Err(); err == nil {
		err = io.ErrUnexpectedEOF
	}
	return events, data, first, err
}

func TestHTTPServerStreamPastWriteTimeout(t *testing.T) {
	t.Parallel()
	const writeTimeout = time.Second
	c := HTTPConfig{ReadTimeout: writeTimeout, WriteTimeout: writeTimeout}.withDefaults(time.Second)
	s := startTestServer(t, c, testMux())
	cl := newClient()

	start := time.Now()
	resp, err := cl.Get(s.base + "/views/v/stream?lift=1&for=2.5s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("stream without the security headers: %v", resp.Header)
	}
	events, data, first, err := readEvents(resp.Body, start)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatalf("stream cut after %v (%d events): %v", elapsed, len(events), err)
	}
	if first > 900*time.Millisecond {
		t.Errorf("first event after %v: not flushed through guard", first)
	}
	if elapsed < 2*writeTimeout {
		t.Errorf("stream ended after %v, before twice the write timeout", elapsed)
	}
	if data != "<nil>" {
		t.Errorf("the request context ended during the stream: %s", data)
	}
	if len(events) < 10 {
		t.Errorf("%d events", len(events))
	}

	// Control: without lifting the deadline the stream is cut.
	resp2, err := cl.Get(s.base + "/views/v/stream?for=2.5s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp2.Body.Close()
	if events, _, _, err := readEvents(resp2.Body, time.Now()); err == nil {
		t.Errorf("stream not cut at the write timeout: %v", events)
	}
}

// A handler running longer than ReadTimeout (a command waiting for its
// reply) keeps its request context: guard lifts the read deadline once the
// request has been read.
func TestHTTPServerLongHandlerPastReadTimeout(t *testing.T) {
	t.Parallel()
	c := HTTPConfig{ReadTimeout: 500 * time.Millisecond, WriteTimeout: 10 * time.Second}.withDefaults(time.Second)
	s := startTestServer(t, c, testMux())
	cl := newClient()
	for _, r := range []reply{
		do(t, cl, "GET", s.base+"/views/v/1?sleep=1500ms", nil, ""),
		do(t, cl, "POST", s.base+"/entities/e/1/c?sleep=1500ms", map[string]string{"Content-Type": "application/json"}, `{"a":1}`),
	} {
		if r.status != 200 || !strings.Contains(string(r.body), `"ctx_err":"\u003cnil\u003e"`) {
			t.Errorf("%d %s", r.status, r.body)
		}
	}
}

// writeTestCert writes a self-signed certificate for 127.0.0.1 with the
// serial number, as name.crt and name.key in dir (replacing them atomically).
func writeTestCert(t *testing.T, dir, name string, serial int64) (*x509.Certificate, string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: "partita test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	for path, block := range map[string]*pem.Block{
		certPath: {Type: "CERTIFICATE", Bytes: der},
		keyPath:  {Type: "PRIVATE KEY", Bytes: pkcs8},
	} {
		if err := os.WriteFile(path+".tmp", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
	}
	return cert, certPath, keyPath
}

func tlsClient(certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true, ForceAttemptHTTP2: true, TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func TestHTTPServerTLSReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert1, certFile, keyFile := writeTestCert(t, dir, "server", 1)
	c := HTTPConfig{TLS: &TLSFiles{CertFile: certFile, KeyFile: keyFile}, WriteTimeout: time.Second}.withDefaults(time.Second)
	s := startTestServer(t, c, testMux())

	serial := func(cl *http.Client) (int64, error) {
		resp, err := cl.Get(s.base + "/views/v/1")
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != 200 {
			return 0, fmt.Errorf("status %d", resp.StatusCode)
		}
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
	}
	if n, err := serial(tlsClient(cert1)); err != nil || n != 1 {
		t.Fatalf("first certificate: serial %d, %v", n, err)
	}
	// The stream lifts its write deadline over HTTP/2 as well.
	resp, err := tlsClient(cert1).Get(s.base + "/views/v/stream?lift=1&for=1500ms")
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 {
		t.Errorf("protocol %s, want HTTP/2", resp.Proto)
	}
	if events, _, _, err := readEvents(resp.Body, time.Now()); err != nil {
		t.Errorf("HTTP/2 stream cut (%d events): %v", len(events), err)
	}
	resp.Body.Close()

	// The modification time moves forward even on a coarse clock.
	cert2, _, _ := writeTestCert(t, dir, "server", 2)
	later := time.Now().Add(time.Minute)
	os.Chtimes(certFile, later, later)
	os.Chtimes(keyFile, later, later)
	replaced := time.Now()
	both := tlsClient(cert1, cert2)
	for {
		n, err := serial(both)
		if err != nil {
			t.Fatal(err)
		}
		if n == 2 {
			break
		}
		if time.Since(replaced) > certCheckInterval+3*time.Second {
			t.Fatalf("still serving serial %d %v after the files were replaced", n, time.Since(replaced))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("new certificate served %v after the files were replaced", time.Since(replaced))
	if n, err := serial(tlsClient(cert2)); err != nil || n != 2 {
		t.Errorf("a client trusting only the new certificate: %d, %v", n, err)
	}
}

func TestListenConnectionCapTLSCloses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cert, certFile, keyFile := writeTestCert(t, dir, "server", 1)
	c := HTTPConfig{TLS: &TLSFiles{CertFile: certFile, KeyFile: keyFile}, MaxConnections: 1}.withDefaults(time.Second)
	s := startTestServer(t, c, testMux())
	held, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	time.Sleep(100 * time.Millisecond) // accepted
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	start := time.Now()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.addr, &tls.Config{RootCAs: pool})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS connection past the cap was served")
	}
	if time.Since(start) > time.Second {
		t.Errorf("refused after %v", time.Since(start))
	}
	held.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := tlsClient(cert).Get(s.base + "/views/v/1")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the held connection closed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHTTPServerErrorLogLevels(t *testing.T) {
	t.Parallel()
	var got []slog.Level
	log := slog.New(levelRecorder{&got})
	el := newErrorLog(log)
	el.Printf("http: TLS handshake error from 127.0.0.1:5555: EOF")
	el.Printf("http: panic serving 127.0.0.1:5555: boom")
	if len(got) != 2 || got[0] != slog.LevelDebug || got[1] != slog.LevelWarn {
		t.Errorf("levels %v", got)
	}
}

type levelRecorder struct{ levels *[]slog.Level }

func (r levelRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r levelRecorder) Handle(_ context.Context, rec slog.Record) error {
	*r.levels = append(*r.levels, rec.Level)
	return nil
}
func (r levelRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r levelRecorder) WithGroup(string) slog.Handler      { return r }
