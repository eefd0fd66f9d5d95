package worker

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPConfig is the gateway's HTTP server configuration (YAML key `http` of
// the worker config). Zero values mean the defaults of withDefaults.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers. Default 5s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout,omitempty"`
	// ReadTimeout bounds reading the whole request, body included: a body
	// sent at 1 byte/s is cut. Default 15s. Once the body has been read (at
	// once for a request without one), guard lifts the read deadline, so a
	// handler running longer than ReadTimeout (a command waiting for its
	// reply, a stream) does not have its request context cancelled.
	ReadTimeout time.Duration `yaml:"read_timeout,omitempty"`
	// WriteTimeout bounds writing a non-streaming response, counted from the
	// end of the request's headers. Default: the reply timeout + 5s. A
	// streaming handler lifts it with http.ResponseController.
	WriteTimeout time.Duration `yaml:"write_timeout,omitempty"`
	// IdleTimeout closes a keep-alive connection idle this long. Default 60s.
	IdleTimeout time.Duration `yaml:"idle_timeout,omitempty"`
	// MaxHeaderBytes caps a request's header size (answered 431 past it; Go
	// allows 4 KiB of slack). Default 32 KiB: tokens fit; Go's 1 MB default
	// does not apply.
	MaxHeaderBytes int `yaml:"max_header_bytes,omitempty"`
	// MaxConnections caps the concurrent connections; past it a new one is
	// refused at once (see listen). Default 1024.
	MaxConnections int `yaml:"max_connections,omitempty"`
	// AllowedHosts is the Host header allow-list: "host" (any port) or
	// "host:port", case-insensitive. Empty: any Host.
	AllowedHosts []string `yaml:"allowed_hosts,omitempty"`
	// CORSOrigins are the origins allowed cross-site: exact origins
	// ("https://app.example.com"), or "*" for cross-site reads (GET/HEAD,
	// without credentials) from any origin. Empty: none.
	CORSOrigins []string `yaml:"cors_origins,omitempty"`
	// TLS, when set, serves HTTPS with this certificate and key, reloaded
	// when the files change.
	TLS *TLSFiles `yaml:"tls,omitempty"`
}

// TLSFiles names a PEM certificate (chain) and its private key.
type TLSFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// HTTP defaults (see HTTPConfig).
const (
	defaultHTTPReadHeaderTimeout = 5 * time.Second
	defaultHTTPReadTimeout       = 15 * time.Second
	defaultHTTPIdleTimeout       = 60 * time.Second
	defaultHTTPMaxHeaderBytes    = 32 << 10
	defaultHTTPMaxConnections    = 1024
)

// certCheckInterval is how often, at most, the TLS files' modification times
// are checked for a new certificate.
const certCheckInterval = 2 * time.Second

// withDefaults fills the zero fields. replyTimeout is the worker's command
// reply timeout: the write timeout defaults to it plus 5s. Negative values
// are kept for validate to report.
func (c HTTPConfig) withDefaults(replyTimeout time.Duration) HTTPConfig {
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = defaultHTTPReadHeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = defaultHTTPReadTimeout
	}
	if c.WriteTimeout == 0 {
		if replyTimeout <= 0 {
			replyTimeout = DefaultReplyTimeout
		}
		c.WriteTimeout = replyTimeout + 5*time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultHTTPIdleTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultHTTPMaxHeaderBytes
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = defaultHTTPMaxConnections
	}
	return c
}

// validate returns every problem of the configuration, nil if none.
func (c HTTPConfig) validate() []error {
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"http.read_header_timeout", c.ReadHeaderTimeout},
		{"http.read_timeout", c.ReadTimeout},
		{"http.write_timeout", c.WriteTimeout},
		{"http.idle_timeout", c.IdleTimeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s is negative (%s)", d.name, d.v))
		}
	}
	if c.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("http.max_header_bytes is negative (%d)", c.MaxHeaderBytes))
	}
	if c.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("http.max_connections is negative (%d)", c.MaxConnections))
	}
	for _, h := range c.AllowedHosts {
		if err := checkHost(h); err != nil {
			errs = append(errs, fmt.Errorf("http.allowed_hosts: %q: %w", h, err))
		}
	}
	for _, o := range c.CORSOrigins {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("http.cors_origins: %q: %w", o, err))
		}
	}
	if c.TLS != nil {
		readable := true
		for _, f := range []struct{ name, path string }{
			{"http.tls.cert_file", c.TLS.CertFile},
			{"http.tls.key_file", c.TLS.KeyFile},
		} {
			if f.path == "" {
				errs = append(errs, fmt.Errorf("%s is required when http.tls is set", f.name))
				readable = false
				continue
			}
			if _, err := os.ReadFile(f.path); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
				readable = false
			}
		}
		if readable {
			if _, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile); err != nil {
				errs = append(errs, fmt.Errorf("http.tls: %s and %s are not a certificate and its key: %w", c.TLS.CertFile, c.TLS.KeyFile, err))
			}
		}
	}
	return errs
}

func checkHost(h string) error {
	if h == "" {
		return errors.New("empty")
	}
	if strings.ContainsAny(h, "/?#@ ") {
		return errors.New("must be host or host:port (no scheme, path or user)")
	}
	if host, port, err := net.SplitHostPort(h); err == nil {
		if host == "" {
			return errors.New("no host")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return fmt.Errorf("bad port %q", port)
		}
	}
	return nil
}

func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	switch {
	case err != nil:
		return errors.New("must be scheme://host[:port] or \"*\"")
	case u.Scheme == "" || u.Host == "" || u.Opaque != "":
		return errors.New("must be scheme://host[:port] or \"*\"")
	case u.User != nil:
		return errors.New("must not have user information")
	case u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(o, "#"):
		return errors.New("must not have a path, query or fragment (not even a trailing slash)")
	case strings.Contains(u.Host, "*"):
		return errors.New("wildcards are not supported; list each origin, or \"*\" for reads")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n > 65535 {
			return fmt.Errorf("bad port %q", p)
		}
	}
	return nil
}

// newServer returns the server for handler h with c's timeouts and header
// cap (c is expected to have had withDefaults applied), TLS configured when
// c.TLS is set, and its error log routed to log. With TLS, serve it with
// srv.ServeTLS(ln, "", ""): the certificate comes from TLSConfig.GetCertificate,
// which reloads the files when their modification time or size changes,
// checking at most every few seconds (a pair that fails to load, as when
// caught half-written, keeps the previous certificate until the next check).
func newServer(c HTTPConfig, h http.Handler, log *slog.Logger) (*http.Server, error) {
	if log == nil {
		log = slog.Default()
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    c.MaxHeaderBytes,
		ErrorLog:          newErrorLog(log),
	}
	if c.TLS != nil {
		r := &certReloader{certFile: c.TLS.CertFile, keyFile: c.TLS.KeyFile, interval: certCheckInterval, log: log}
		if err := r.load(); err != nil {
			return nil, fmt.Errorf("http tls: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
	}
	return srv, nil
}

// certReloader serves a certificate reloaded when its files change.
type certReloader struct {
	certFile, keyFile string
	interval          time.Duration
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   [2]fileStamp // of the files the certificate was loaded from
	checked time.Time
}

type fileStamp struct {
	mod  time.Time
	size int64
}

func stampOf(path string) (fileStamp, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{fi.ModTime(), fi.Size()}, nil
}

// load (re)reads the pair; the caller holds mu or has not shared r yet.
func (r *certReloader) load() error {
	var stamp [2]fileStamp
	var err error
	for i, f := range []string{r.certFile, r.keyFile} {
		if stamp[i], err = stampOf(f); err != nil {
			return err
		}
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp, r.checked = &cert, stamp, time.Now()
	return nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.checked) >= r.interval {
		r.checked = now
		changed := false
		for i, f := range []string{r.certFile, r.keyFile} {
			if s, err := stampOf(f); err != nil || !s.mod.Equal(r.stamp[i].mod) || s.size != r.stamp[i].size {
				changed = true
			}
		}
		if changed {
			old := r.cert
			if err := r.load(); err != nil {
				r.log.Warn("http tls: could not reload the certificate; keeping the previous one", "cert_file", r.certFile, "key_file", r.keyFile, "err", err)
			} else if old != r.cert {
				r.log.Info("http tls: certificate reloaded", "cert_file", r.certFile)
			}
		}
	}
	return r.cert, nil
}

// newErrorLog routes the http.Server's error log to log: what clients cause
// (handshake failures, resets, timeouts) at debug, the rest at warn.
func newErrorLog(l *slog.Logger) *log.Logger {
	return log.New(errorLogWriter{l}, "", 0)
}

type errorLogWriter struct{ log *slog.Logger }

var clientNoise = []string{
	"TLS handshake error",
	"error reading preface",
	"URL query contains semicolon",
	"connection reset by peer",
	"broken pipe",
	"i/o timeout",
	"use of closed network connection",
	"client disconnected",
	"timeout waiting for client preface",
}

func (w errorLogWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	level := slog.LevelWarn
	for _, s := range clientNoise {
		if strings.Contains(msg, s) {
			level = slog.LevelDebug
			break
		}
	}
	w.log.Log(context.Background(), level, msg, "component", "http")
	return len(p), nil
}

// listen opens addr (TCP) with the connection cap c.MaxConnections (none if
// zero): past it, a new connection is answered at once with an HTTP/1.1 503
// carrying the JSON error object "overloaded", Connection: close and
// Retry-After: 1, then closed; for a TLS server (c.TLS set) it is just
// closed. "At once" is as soon as the client's request head has arrived
// (at most 250ms): an answer before the request is written is dropped by
// some clients. Refusals run beside Accept, at most 64 at a time (past that
// a connection is closed without an answer), and never count against the
// cap. A connection counts until it is closed.
func listen(c HTTPConfig, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if c.MaxConnections <= 0 {
		return ln, nil
	}
	l := &capListener{Listener: ln, max: int64(c.MaxConnections), plain: c.TLS == nil,
		refusing: make(chan struct{}, 64), refusal: overloadedResponse()}
	return l, nil
}

// overloadedResponse is the raw HTTP/1.1 503 refusing a connection.
func overloadedResponse() []byte {
	rec := &bufferedResponse{header: http.Header{}}
	httpError(rec, http.StatusServiceUnavailable, "overloaded", "too many connections; retry later")
	h := rec.header
	h.Set("Connection", "close")
	h.Set("Retry-After", "1")
	h.Set("Content-Length", strconv.Itoa(rec.body.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", rec.code, http.StatusText(rec.code))
	_ = h.Write(&b)
	b.WriteString("\r\n")
	b.Write(rec.body.Bytes())
	return b.Bytes()
}

// bufferedResponse records what a handler writes.
type bufferedResponse struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }
func (b *bufferedResponse) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}
func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}

type capListener struct {
	net.Listener
	max      int64
	active   atomic.Int64
	plain    bool          // the refusal can be written in plain HTTP
	refusing chan struct{} // bounds the connections being refused at once
	refusal  []byte
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) <= l.max {
			return &countedConn{Conn: conn, release: func() { l.active.Add(-1) }}, nil
		}
		l.active.Add(-1)
		l.refuse(conn)
	}
}

// refusalHeadWait bounds the wait for a refused client's request head.
const refusalHeadWait = 250 * time.Millisecond

// refuse answers conn with the 503 and closes it, without holding up Accept.
func (l *capListener) refuse(conn net.Conn) {
	if !l.plain {
		conn.Close()
		return
	}
	select {
	case l.refusing <- struct{}{}:
	default: // a flood: no time for courtesy
		conn.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		defer conn.Close()
		// Answer once the request's head has arrived, or after a moment
		// without one: a response arriving before the client wrote its
		// request is dropped by some clients (Go's transport among them) as
		// unsolicited.
		_ = conn.SetReadDeadline(time.Now().Add(refusalHeadWait))
		head := make([]byte, 0, 4096)
		buf := make([]byte, 4096)
		for len(head) < 32<<10 && !bytes.Contains(head, []byte("\r\n\r\n")) {
			n, err := conn.Read(buf)
			head = append(head, buf[:n]...)
			if err != nil {
				break
			}
		}
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write(l.refusal); err != nil {
			return
		}
		// Half-close, then read what the client sent for a moment: closing
		// with unread data would reset the connection, and the client could
		// lose the response.
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, _ = io.CopyN(io.Discard, conn, 256<<10)
	}()
}

// countedConn releases its slot once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite keeps net/http's half-close before closing (it avoids resetting
// a connection whose response the client has not read yet).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// ReadFrom keeps sendfile/splice for responses copied from files.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CORS answers.
const (
	corsAllowMethods  = "GET, POST"
	corsAllowHeaders  = "Content-Type, Authorization, X-API-Key, Idempotency-Key"
	corsExposeHeaders = HeaderPosition + ", Retry-After"
	corsMaxAge        = "600"
)

// guard wraps the gateway's routes with the checks of HTTPConfig, in order:
// Host allow-list (421 "misdirected_request"); security headers on every
// response; CORS (Access-Control-Allow-Origin for allowed origins, preflights
// answered 204 or 403 "cors_denied"); cross-site state changes refused (403
// "cross_site"); POST bodies must be application/json (415
// "unsupported_media_type"; an empty body without Content-Type passes). The
// mux's plain-text 404 and 405 are rewritten as the JSON error object. The
// wrapped ResponseWriter is an http.Flusher and unwraps for
// http.ResponseController. Once the request body has been read (at once for
// a request without one), the read deadline set by ReadTimeout is lifted, so
// it does not cancel the request context of a long handler or a stream.
func guard(c HTTPConfig, h http.Handler) http.Handler {
	hosts := newHostSet(c.AllowedHosts)
	exact := map[string]bool{}
	anyRead := false
	for _, o := range c.CORSOrigins {
		if o == "*" {
			anyRead = true
		} else {
			exact[strings.ToLower(o)] = true
		}
	}
	cors := anyRead || len(exact) > 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
		hd.Set("X-Frame-Options", "DENY")

		if !hosts.allows(r.Host) {
			httpError(w, http.StatusMisdirectedRequest, "misdirected_request", fmt.Sprintf("host %q is not served here", r.Host))
			return
		}

		origin := r.Header.Get("Origin")
		originExact := origin != "" && exact[strings.ToLower(origin)]
		if cors {
			hd.Add("Vary", "Origin")
		}
		safe := r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions

		// Preflight.
		if reqMethod := r.Header.Get("Access-Control-Request-Method"); r.Method == http.MethodOptions && reqMethod != "" {
			hd.Add("Vary", "Access-Control-Request-Method")
			hd.Add("Vary", "Access-Control-Request-Headers")
			read := reqMethod == http.MethodGet || reqMethod == http.MethodHead
			switch {
			case origin != "" && originExact && (read || reqMethod == http.MethodPost):
				hd.Set("Access-Control-Allow-Origin", origin)
				hd.Set("Access-Control-Allow-Methods", corsAllowMethods)
			case origin != "" && anyRead && read:
				hd.Set("Access-Control-Allow-Origin", "*")
				hd.Set("Access-Control-Allow-Methods", "GET")
			default:
				httpError(w, http.StatusForbidden, "cors_denied", fmt.Sprintf("cross-origin %s from origin %q is not allowed", reqMethod, origin))
				return
			}
			hd.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			hd.Set("Access-Control-Max-Age", corsMaxAge)
			w.WriteHeader(http.StatusNoContent)
			return
		}

		// CORS on the actual request.
		switch {
		case originExact:
			hd.Set("Access-Control-Allow-Origin", origin)
			hd.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		case origin != "" && anyRead && safe:
			hd.Set("Access-Control-Allow-Origin", "*")
			hd.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}

		// Cross-site state changes.
		if !safe && !originExact {
			sfs := r.Header.Get("Sec-Fetch-Site")
			if sfs == "cross-site" || sfs == "same-site" {
				httpError(w, http.StatusForbidden, "cross_site", fmt.Sprintf("cross-site %s refused (Sec-Fetch-Site: %s, Origin: %q)", r.Method, sfs, origin))
				return
			}
			if origin != "" && !sameOrigin(origin, r) {
				httpError(w, http.StatusForbidden, "cross_site", fmt.Sprintf("cross-site %s from origin %q refused", r.Method, origin))
				return
			}
		}

		// JSON bodies only: forms and no-cors fetches cannot send application/json.
		if r.Method == http.MethodPost {
			ct := r.Header.Get("Content-Type")
			mt, _, err := mime.ParseMediaType(ct)
			empty := r.ContentLength == 0 && ct == ""
			if !empty && (err != nil || mt != "application/json") {
				httpError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", fmt.Sprintf("the body must be application/json, not %q", ct))
				return
			}
		}

		// Lift ReadTimeout's deadline once the request has been read.
		rc := http.NewResponseController(w)
		if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
			_ = rc.SetReadDeadline(time.Time{})
		} else {
			r.Body = &eofBody{ReadCloser: r.Body, onEOF: func() { _ = rc.SetReadDeadline(time.Time{}) }}
		}

		h.ServeHTTP(&guardWriter{ResponseWriter: w, r: r}, r)
	})
}

// eofBody calls onEOF once the body has been read to its end.
type eofBody struct {
	io.ReadCloser
	once  sync.Once
	onEOF func()
}

func (b *eofBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.once.Do(b.onEOF)
	}
	return n, err
}

// sameOrigin tells whether origin is the request's own: its host is the
// request's Host (scheme http or https: behind a TLS-terminating proxy the
// server cannot tell the scheme the browser used; net/http's
// CrossOriginProtection compares the same way).
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// hostSet is the Host allow-list: entries with a port match that host and
// port, entries without match the host on any port.
type hostSet struct {
	any       bool
	hostPorts map[string]bool
	hosts     map[string]bool
}

func newHostSet(entries []string) hostSet {
	s := hostSet{any: len(entries) == 0, hostPorts: map[string]bool{}, hosts: map[string]bool{}}
	for _, e := range entries {
		e = strings.ToLower(strings.TrimSpace(e))
		if h, p, err := net.SplitHostPort(e); err == nil {
			s.hostPorts[net.JoinHostPort(normHost(h), p)] = true
		} else {
			s.hosts[normHost(e)] = true
		}
	}
	return s
}

func normHost(h string) string {
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(h, ".")
}

func (s hostSet) allows(host string) bool {
	if s.any {
		return true
	}
	host = strings.ToLower(host)
	if h, p, err := net.SplitHostPort(host); err == nil {
		h = normHost(h)
		return s.hosts[h] || s.hostPorts[net.JoinHostPort(h, p)]
	}
	return s.hosts[normHost(host)]
}

// guardWriter turns the mux's plain-text 404 and 405 into the JSON error
// object, and passes everything else through.
type guardWriter struct {
	http.ResponseWriter
	r     *http.Request
	wrote bool // the final status was written
	drop  bool // the handler's body is replaced
}

func (g *guardWriter) WriteHeader(code int) {
	if g.wrote || (code >= 100 && code < 200 && code != http.StatusSwitchingProtocols) {
		g.ResponseWriter.WriteHeader(code)
		return
	}
	g.wrote = true
	if (code == http.StatusNotFound || code == http.StatusMethodNotAllowed) && plainText(g.Header().Get("Content-Type")) {
		g.drop = true
		g.Header().Del("Content-Length")
		if code == http.StatusNotFound {
			httpError(g.ResponseWriter, code, "not_found", "not found: "+g.r.URL.Path)
		} else {
			msg := fmt.Sprintf("method %s not allowed for %s", g.r.Method, g.r.URL.Path)
			if allow := g.Header().Get("Allow"); allow != "" {
				msg += " (allowed: " + allow + ")"
			}
			httpError(g.ResponseWriter, code, "method_not_allowed", msg)
		}
		return
	}
	g.ResponseWriter.WriteHeader(code)
}

func plainText(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "text/plain"
}

func (g *guardWriter) Write(p []byte) (int, error) {
	g.wrote = true
	if g.drop {
		return len(p), nil
	}
	return g.ResponseWriter.Write(p)
}

// Flush keeps server-sent events streaming through the wrapper.
func (g *guardWriter) Flush() {
	g.wrote = true
	if f, ok := g.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the server's ResponseWriter
// (SetWriteDeadline, SetReadDeadline, Hijack, EnableFullDuplex).
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }
