package worker

// Authentication of the gateway's callers: JWT bearer tokens verified with a
// JWKS (a file, or a URL fetched and refreshed), and API keys configured by
// their SHA-256 hash. The authenticator only says who the caller is; the
// access rules (package access) decide what the caller may do.
//
// Credentials never leave this file: no error message, log line or
// WWW-Authenticate header carries a token, a key or any part of them (not
// even a token's kid or alg, which the caller chose).

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/partita-dev/partita/access"
)

// AuthConfig configures who may call the gateway (YAML key `auth` of the
// worker config). Authentication is on when JWT or APIKeys is configured;
// otherwise it is off (development mode: every caller is admitted by every
// rule but internal).
type AuthConfig struct {
	JWT     *JWTConfig `yaml:"jwt,omitempty"`
	APIKeys []APIKey   `yaml:"api_keys,omitempty"`
}

// JWTConfig configures JWT bearer tokens. Exactly one of JWKSFile and
// JWKSURL names the keys that sign the tokens.
type JWTConfig struct {
	// JWKSFile is a JWKS JSON file. It is re-read when it changes.
	JWKSFile string `yaml:"jwks_file,omitempty"`
	// JWKSURL is fetched at start (a failure is fatal), cached, and
	// refreshed every JWKSRefresh; a token whose kid is not in the cache
	// triggers a (rate-limited) refresh. A failed refresh is logged and the
	// keys already loaded stay in use.
	JWKSURL string `yaml:"jwks_url,omitempty"`
	// JWKSRefresh is how often JWKSURL is re-fetched: DefaultJWKSRefresh
	// when zero, at least a second.
	JWKSRefresh time.Duration `yaml:"jwks_refresh,omitempty"`
	// Issuer is the required "iss" of every token.
	Issuer string `yaml:"issuer"`
	// Audience must be in every token's "aud".
	Audience string `yaml:"audience"`
	// Algorithms are the signing algorithms accepted (e.g. [RS256, ES256]).
	// "none" and the HMAC algorithms (HS*) are refused.
	Algorithms []string `yaml:"algorithms"`
	// Skew is the leeway for exp, nbf and iat: DefaultJWTSkew when zero.
	Skew time.Duration `yaml:"skew,omitempty"`
	// ForwardClaims are the claims the handlers see (the gateway trims the
	// caller's claims to them).
	ForwardClaims []string `yaml:"forward_claims,omitempty"`
}

// APIKey is a key a caller may send in the X-API-Key header (or as
// "Authorization: ApiKey <key>", or as the password of HTTP Basic
// authentication, which is how a browser sends it to the dashboard).
type APIKey struct {
	// Name identifies the key's holder: it becomes Caller.Subject.
	Name string `yaml:"name"`
	// Hash is "sha256:<64 hex digits>" of the key, as HashAPIKey writes
	// it; the key itself is never in the configuration.
	Hash string `yaml:"hash"`
	// Claims are the caller's claims when it uses this key.
	Claims map[string]any `yaml:"claims,omitempty"`
}

// Defaults of JWTConfig.
const (
	DefaultJWKSRefresh = 15 * time.Minute
	DefaultJWTSkew     = 30 * time.Second
)

const (
	// authRealm is the realm of the WWW-Authenticate challenges.
	authRealm = "partita"
	// apiKeyHashPrefix prefixes an APIKey.Hash.
	apiKeyHashPrefix = "sha256:"
	// minJWKSRefresh guards against "jwks_refresh: 15", which YAML reads
	// as 15 nanoseconds.
	minJWKSRefresh = time.Second
	// jwksFetchTimeout bounds one fetch of a JWKS URL.
	jwksFetchTimeout = 10 * time.Second
	// maxJWKSBytes bounds a JWKS document.
	maxJWKSBytes = 1 << 20
	// maxTokenBytes bounds a bearer token: no honest token is this large.
	maxTokenBytes = 16 << 10
	// jwksFileCheckEvery is how often the JWKS file is stat'ed for changes
	// (on requests; a token with an unknown kid checks at once).
	jwksFileCheckEvery = time.Second
	// minRSABits is the smallest RSA signing key accepted.
	minRSABits = 2048
)

// jwksUnknownKIDEvery is how often a token with an unknown kid may trigger
// a refresh of the JWKS URL (a burst of one: the first one is at once).
var jwksUnknownKIDEvery = 30 * time.Second

// jwtAlgorithms are the signing algorithms a JWTConfig may accept.
var jwtAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Enabled reports whether authentication is on.
func (c AuthConfig) Enabled() bool { return c.JWT != nil || len(c.APIKeys) > 0 }

// validate returns every problem of c (none when authentication is off).
// Messages name the settings, never a hash or a secret.
func (c AuthConfig) validate() []error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if j := c.JWT; j != nil {
		switch {
		case j.JWKSFile != "" && j.JWKSURL != "":
			bad("auth.jwt: set only one of jwks_file and jwks_url")
		case j.JWKSFile == "" && j.JWKSURL == "":
			bad("auth.jwt: jwks_file or jwks_url is required (where the token signing keys are)")
		}
		if j.JWKSURL != "" {
			if u, err := url.Parse(j.JWKSURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				bad("auth.jwt.jwks_url: want an absolute http(s) URL")
			}
		}
		switch {
		case j.JWKSRefresh < 0:
			bad("auth.jwt.jwks_refresh must not be negative")
		case j.JWKSRefresh > 0 && j.JWKSRefresh < minJWKSRefresh:
			bad("auth.jwt.jwks_refresh %s is too short: at least %s (write a unit, e.g. 15m)", j.JWKSRefresh, minJWKSRefresh)
		}
		if strings.TrimSpace(j.Issuer) == "" {
			bad("auth.jwt.issuer is required (the tokens' iss)")
		}
		if strings.TrimSpace(j.Audience) == "" {
			bad("auth.jwt.audience is required (the aud the tokens are issued for)")
		}
		if len(j.Algorithms) == 0 {
			bad("auth.jwt.algorithms is required: list the signing algorithms to accept, e.g. [RS256, ES256]")
		}
		for _, alg := range j.Algorithms {
			switch {
			case strings.EqualFold(alg, "none"):
				bad(`auth.jwt.algorithms: "none" is refused: an unsigned token proves nothing`)
			case len(alg) >= 2 && strings.EqualFold(alg[:2], "HS"):
				bad("auth.jwt.algorithms: %q is refused: HMAC algorithms need a shared secret, which partita does not support; use an asymmetric algorithm such as RS256 or ES256", alg)
			case !slices.Contains(jwtAlgorithms, alg):
				bad("auth.jwt.algorithms: unknown algorithm %q (want some of %s)", alg, strings.Join(jwtAlgorithms, ", "))
			}
		}
		if j.Skew < 0 {
			bad("auth.jwt.skew must not be negative")
		}
		for i, name := range j.ForwardClaims {
			if strings.TrimSpace(name) == "" {
				bad("auth.jwt.forward_claims[%d] is empty", i)
			}
		}
	}
	names := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	for i, k := range c.APIKeys {
		what := fmt.Sprintf("auth.api_keys[%d]", i)
		if strings.TrimSpace(k.Name) == "" {
			bad("%s: name is required", what)
		} else {
			what += " (" + k.Name + ")"
			if j, dup := names[k.Name]; dup {
				bad("%s: name is already used by auth.api_keys[%d]", what, j)
			} else {
				names[k.Name] = i
			}
		}
		sum, ok := parseAPIKeyHash(k.Hash)
		if !ok {
			// The value is not echoed: it might be the key itself, pasted
			// in the wrong place.
			bad("%s: hash must be %q followed by 64 hex digits (`worker apikey hash` prints it)", what, apiKeyHashPrefix)
			continue
		}
		if j, dup := hashes[sum]; dup {
			bad("%s: same key as auth.api_keys[%d]", what, j)
		} else {
			hashes[sum] = i
		}
	}
	return errs
}

// HashAPIKey returns the hash of key as APIKey.Hash wants it:
// "sha256:<64 hex digits>".
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return apiKeyHashPrefix + hex.EncodeToString(sum[:])
}

func parseAPIKeyHash(h string) (sum [sha256.Size]byte, ok bool) {
	rest, ok := strings.CutPrefix(h, apiKeyHashPrefix)
	if !ok || len(rest) != 2*sha256.Size {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(rest)); err != nil {
		return sum, false
	}
	return sum, true
}

// authenticator turns a request's credentials into an [access.Caller].
type authenticator struct {
	on      bool
	log     *slog.Logger
	apiKeys []apiKeyEntry
	// JWT; parser is nil when bearer tokens are not configured.
	parser  *jwt.Parser
	algs    []string
	keys    *jwksKeys
	forward []string
	stop    func()
}

type apiKeyEntry struct {
	name   string
	sum    [sha256.Size]byte
	claims map[string]any
}

// newAuthenticator checks c and loads the JWKS. An unreadable JWKS file, or
// a JWKS URL that cannot be fetched, is an error naming the file or URL.
// ctx bounds the authenticator's life (so does close).
func newAuthenticator(ctx context.Context, c AuthConfig, log *slog.Logger) (*authenticator, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &authenticator{on: c.Enabled(), log: log, stop: func() {}}
	if !a.on {
		log.Warn("AUTHENTICATION IS OFF: every caller may send every command that is not internal, read every view, " +
			"the dashboard and the metrics (development mode); configure auth.jwt or auth.api_keys before exposing this worker")
		return a, nil
	}
	if errs := c.validate(); len(errs) > 0 {
		return nil, fmt.Errorf("auth configuration: %w", errors.Join(errs...))
	}
	for _, k := range c.APIKeys {
		sum, _ := parseAPIKeyHash(k.Hash)
		a.apiKeys = append(a.apiKeys, apiKeyEntry{name: k.Name, sum: sum, claims: k.Claims})
	}
	if j := c.JWT; j != nil {
		skew := j.Skew
		if skew == 0 {
			skew = DefaultJWTSkew
		}
		a.algs = slices.Clone(j.Algorithms)
		a.forward = slices.Clone(j.ForwardClaims)
		a.parser = jwt.NewParser(
			jwt.WithValidMethods(a.algs),
			jwt.WithIssuer(j.Issuer),
			jwt.WithAudience(j.Audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(skew),
		)
		ctx, cancel := context.WithCancel(ctx)
		keys, err := loadJWKS(ctx, j, log)
		if err != nil {
			cancel()
			return nil, err
		}
		a.keys = keys
		a.stop = sync.OnceFunc(func() {
			cancel()
			keys.wait()
		})
		log.Info("gateway authentication: JWT bearer tokens on", "jwks", keys.source, "issuer", j.Issuer,
			"audience", j.Audience, "algorithms", strings.Join(a.algs, ","), "skew", skew)
	}
	if len(a.apiKeys) > 0 {
		log.Info("gateway authentication: API keys on", "keys", len(a.apiKeys))
	}
	return a, nil
}

// enabled reports whether authentication is on.
func (a *authenticator) enabled() bool { return a != nil && a.on }

// forwardClaims are the claims of a token the handlers see
// (JWTConfig.ForwardClaims).
func (a *authenticator) forwardClaims() []string { return a.forward }

// close stops refreshing the JWKS.
func (a *authenticator) close() {
	if a != nil && a.stop != nil {
		a.stop()
	}
}

// authenticate returns the caller of r:
//   - authentication off: a caller with Method none;
//   - no credentials: an anonymous caller (&access.Caller{}), for the rules
//     to judge;
//   - a valid bearer token or API key: the authenticated caller;
//   - a bad credential: an error wrapping access.ErrUnauthenticated.
func (a *authenticator) authenticate(r *http.Request) (*access.Caller, error) {
	if !a.enabled() {
		return &access.Caller{Method: access.MethodNone}, nil
	}
	authz := nonEmpty(r.Header.Values("Authorization"))
	keys := nonEmpty(r.Header.Values("X-API-Key"))
	switch {
	case len(authz)+len(keys) == 0:
		return &access.Caller{}, nil
	case len(authz)+len(keys) > 1:
		return nil, reject("", "send one credential: a single Authorization or X-API-Key header")
	case len(keys) == 1:
		return a.apiKey(keys[0])
	}
	scheme, cred, _ := strings.Cut(authz[0], " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Bearer"):
		return a.bearer(r.Context(), cred)
	case strings.EqualFold(scheme, "ApiKey"):
		return a.apiKey(cred)
	case strings.EqualFold(scheme, "Basic"):
		// A browser's login prompt (the dashboard): any user name, the
		// API key as the password.
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return nil, reject(schemeAPIKey, "malformed Basic credentials")
		}
		_, key, _ := strings.Cut(string(raw), ":")
		return a.apiKey(key)
	}
	return nil, reject("", "unsupported Authorization scheme (want Bearer, ApiKey or Basic)")
}

func nonEmpty(vals []string) []string {
	var out []string
	for _, v := range vals {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// apiKey authenticates an API key: its hash is compared, in constant time,
// with every configured hash.
func (a *authenticator) apiKey(key string) (*access.Caller, error) {
	if len(a.apiKeys) == 0 {
		return nil, reject(schemeAPIKey, "API keys are not accepted here")
	}
	if key == "" {
		return nil, reject(schemeAPIKey, "empty API key")
	}
	sum := sha256.Sum256([]byte(key))
	match := -1
	for i := range a.apiKeys {
		if subtle.ConstantTimeCompare(sum[:], a.apiKeys[i].sum[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return nil, reject(schemeAPIKey, "unknown API key")
	}
	k := a.apiKeys[match]
	return &access.Caller{Subject: k.name, Method: access.MethodAPIKey, Claims: maps.Clone(k.claims)}, nil
}

// bearer authenticates a JWT.
func (a *authenticator) bearer(ctx context.Context, token string) (*access.Caller, error) {
	if a.parser == nil {
		return nil, reject(schemeBearer, "bearer tokens are not accepted here")
	}
	if token == "" {
		return nil, reject(schemeBearer, "empty token")
	}
	if len(token) > maxTokenBytes {
		return nil, reject(schemeBearer, "token too large")
	}
	a.keys.checkFile(false)
	claims := jwt.MapClaims{}
	t, err := a.parser.ParseWithClaims(token, claims, a.keyfunc(ctx))
	if err != nil {
		return nil, reject(schemeBearer, a.tokenProblem(t, claims, err))
	}
	sub, err := claims.GetSubject()
	if err != nil || sub == "" {
		return nil, reject(schemeBearer, "token has no subject (sub)")
	}
	return &access.Caller{Subject: sub, Method: access.MethodJWT, Claims: map[string]any(claims)}, nil
}

// Problems found by keyfunc, for tokenProblem.
var (
	errNoKID         = errors.New("token has no key id (kid)")
	errUnknownKID    = errors.New("unknown key id")
	errAlgNotAllowed = errors.New("algorithm not allowed")
	errKeyMismatch   = errors.New("the signing key does not fit the token's algorithm")
	errWeakKey       = errors.New("the signing key is too weak")
)

// keyfunc finds the key that signed t: the JWKS key named by its kid (the
// JWKS is refreshed when the kid is unknown).
func (a *authenticator) keyfunc(ctx context.Context) jwt.Keyfunc {
	return func(t *jwt.Token) (any, error) {
		if t.Method == nil || !slices.Contains(a.algs, t.Method.Alg()) {
			return nil, errAlgNotAllowed // the parser checked already; belt and braces
		}
		kid, _ := t.Header[jwkset.HeaderKID].(string)
		if kid == "" {
			return nil, errNoKID
		}
		lookup := a.keys.kf.KeyfuncCtx(ctx)
		key, err := lookup(t)
		if errors.Is(err, jwkset.ErrKeyNotFound) && a.keys.refreshForUnknownKID(ctx) {
			key, err = lookup(t)
		}
		switch {
		case errors.Is(err, jwkset.ErrKeyNotFound):
			return nil, errUnknownKID
		case err != nil: // the JWK's alg or use does not allow this token
			return nil, errKeyMismatch
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				return nil, errWeakKey
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default: // a symmetric key, or anything else a JWKS may hold
			return nil, errKeyMismatch
		}
		return key, nil
	}
}

// tokenProblem says, in general terms, why the parser rejected a token. It
// never quotes the token: not even its alg or kid.
func (a *authenticator) tokenProblem(t *jwt.Token, claims jwt.MapClaims, err error) string {
	for _, e := range []error{errNoKID, errUnknownKID, errAlgNotAllowed, errKeyMismatch, errWeakKey} {
		if errors.Is(err, e) {
			return e.Error()
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed token"
	case t != nil && t.Method != nil && !slices.Contains(a.algs, t.Method.Alg()):
		return errAlgNotAllowed.Error()
	case t != nil && t.Method == nil:
		if _, ok := t.Header["alg"].(string); ok {
			return errAlgNotAllowed.Error() // an algorithm unknown to the JWT library
		}
		return "malformed token"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token not valid yet (nbf)"
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "token issued in the future (iat)"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "wrong audience"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		switch {
		case claims["exp"] == nil:
			return "token has no expiry (exp)"
		case claims["aud"] == nil:
			return "wrong audience"
		case claims["iss"] == nil:
			return "wrong issuer"
		}
		return "token misses a required claim"
	case errors.Is(err, jwt.ErrInvalidType):
		return "malformed claims"
	}
	return "invalid token"
}

// Schemes of a credentialError.
const (
	schemeBearer = "Bearer"
	schemeAPIKey = "ApiKey"
)

// credentialError is a rejected credential. It wraps
// access.ErrUnauthenticated, and its message says what is wrong in general
// terms, without any part of the credential.
type credentialError struct {
	scheme string // schemeBearer, schemeAPIKey, or "" (no usable credential)
	reason string
}

func reject(scheme, reason string) error { return &credentialError{scheme: scheme, reason: reason} }

func (e *credentialError) Error() string {
	switch e.scheme {
	case schemeBearer:
		return access.ErrUnauthenticated.Error() + ": invalid bearer token: " + e.reason
	case schemeAPIKey:
		return access.ErrUnauthenticated.Error() + ": invalid API key: " + e.reason
	}
	return access.ErrUnauthenticated.Error() + ": " + e.reason
}

func (e *credentialError) Unwrap() error { return access.ErrUnauthenticated }

// challenge returns the WWW-Authenticate value of a 401 answering err (the
// error of authenticate, or of an access rule): `Bearer realm="partita"`,
// with error="invalid_token" and a description when a token was rejected
// (RFC 6750), and an ApiKey challenge when API keys are configured.
func (a *authenticator) challenge(err error) string {
	bearer := a == nil || a.parser != nil || len(a.apiKeys) == 0
	var ce *credentialError
	errors.As(err, &ce)
	var parts []string
	if bearer {
		b := `Bearer realm="` + authRealm + `"`
		if ce != nil && ce.scheme == schemeBearer {
			b += `, error="invalid_token", error_description="` + headerSafe(ce.reason) + `"`
		}
		parts = append(parts, b)
	}
	if a != nil && len(a.apiKeys) > 0 {
		// Basic lets a browser prompt for an API key (as the password).
		parts = append(parts, schemeAPIKey+` realm="`+authRealm+`"`, `Basic realm="`+authRealm+`", charset="UTF-8"`)
	}
	return strings.Join(parts, ", ")
}

// headerSafe keeps the characters RFC 6750 allows in error_description.
func headerSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return -1
		}
		return r
	}, s)
}

// jwksKeys are the token signing keys: a JWKS file or URL, kept in a
// jwkset memory storage that keyfunc reads.
type jwksKeys struct {
	source string // the file, or the URL without credentials: for logs and errors
	log    *slog.Logger
	ctx    context.Context
	store  *jwkset.MemoryJWKSet
	kf     keyfunc.Keyfunc
	wg     sync.WaitGroup

	// A file.
	file      string
	lastCheck atomic.Int64 // unix nanoseconds
	fileMu    sync.Mutex
	fileStat  os.FileInfo
	badStat   os.FileInfo // the version of the file that failed to load
	fileErr   string      // the last reload error logged, so it is logged once

	// A URL.
	url      string
	client   *http.Client
	limiter  *rate.Limiter
	mu       sync.Mutex
	inflight chan struct{} // closed when the refresh under way ends
}

// loadJWKS loads the keys of j, and starts refreshing them.
func loadJWKS(ctx context.Context, j *JWTConfig, log *slog.Logger) (*jwksKeys, error) {
	k := &jwksKeys{log: log, ctx: ctx, store: jwkset.NewMemoryStorage()}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: k.store, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, fmt.Errorf("auth: jwt: %w", err)
	}
	k.kf = kf
	if j.JWKSFile != "" {
		k.file, k.source = j.JWKSFile, j.JWKSFile
		fi, err := k.loadFile()
		if err != nil {
			if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
				err = pe.Err // the path is in the message already
			}
			return nil, fmt.Errorf("auth: jwt: cannot load the JWKS file %s: %w", j.JWKSFile, err)
		}
		k.fileStat = fi
		k.lastCheck.Store(time.Now().UnixNano())
		return k, nil
	}
	k.url, k.source = j.JWKSURL, redactURL(j.JWKSURL)
	if u, err := url.Parse(j.JWKSURL); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		log.Warn("auth: the JWKS URL is plain http: the signing keys could be tampered with on the way", "url", k.source)
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	k.client = &http.Client{Transport: transport, Timeout: jwksFetchTimeout}
	k.limiter = rate.NewLimiter(rate.Every(jwksUnknownKIDEvery), 1)
	fctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	err = k.fetch(fctx)
	cancel()
	if err != nil {
		transport.CloseIdleConnections()
		return nil, fmt.Errorf("auth: jwt: cannot load the JWKS from %s: %w", k.source, err)
	}
	every := j.JWKSRefresh
	if every == 0 {
		every = DefaultJWKSRefresh
	}
	k.wg.Go(func() {
		defer transport.CloseIdleConnections()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				k.refresh()
			}
		}
	})
	return k, nil
}

// wait waits for the refresh goroutine to end (once ctx is done).
func (k *jwksKeys) wait() { k.wg.Wait() }

// parseJWKS reads a JWKS document's public signing keys. Keys of an
// unsupported type, and symmetric keys, are skipped.
func parseJWKS(raw []byte) ([]jwkset.JWK, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, errors.New("not a JWKS (JSON with a \"keys\" list)")
	}
	var keys []jwkset.JWK
	for i, m := range set.Keys {
		if m.KTY == jwkset.KtyOct {
			continue
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		switch {
		case errors.Is(err, jwkset.ErrUnsupportedKey):
			continue
		case err != nil:
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		keys = append(keys, jwk)
	}
	if len(keys) == 0 {
		return nil, errors.New("no usable signing key")
	}
	return keys, nil
}

// loadFile reads the JWKS file into the store.
func (k *jwksKeys) loadFile() (os.FileInfo, error) {
	fi, err := os.Stat(k.file)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(k.file)
	if err != nil {
		return nil, err
	}
	keys, err := parseJWKS(raw)
	if err != nil {
		return nil, err
	}
	if err := k.store.KeyReplaceAll(k.ctx, keys); err != nil {
		return nil, err
	}
	return fi, nil
}

// checkFile re-reads the JWKS file if it changed. Unless now, it stats the
// file at most every jwksFileCheckEvery. It reports whether the keys were
// reloaded.
func (k *jwksKeys) checkFile(now bool) bool {
	if k == nil || k.file == "" {
		return false
	}
	t := time.Now().UnixNano()
	last := k.lastCheck.Load()
	if !now && (t-last < int64(jwksFileCheckEvery) || !k.lastCheck.CompareAndSwap(last, t)) {
		return false
	}
	k.lastCheck.Store(t)
	k.fileMu.Lock()
	defer k.fileMu.Unlock()
	fi, err := os.Stat(k.file)
	if err == nil && (sameFileVersion(fi, k.fileStat) || sameFileVersion(fi, k.badStat)) {
		return false // unchanged, or the broken version already tried
	}
	if err == nil {
		k.badStat = fi
		fi, err = k.loadFile()
	}
	if err != nil {
		if msg := err.Error(); msg != k.fileErr {
			k.fileErr = msg
			k.log.Warn("auth: cannot reload the JWKS file; keeping the keys already loaded", "file", k.file, "error", msg)
		}
		return false
	}
	k.fileStat, k.badStat, k.fileErr = fi, nil, ""
	k.log.Info("auth: JWKS file reloaded", "file", k.file)
	return true
}

// sameFileVersion reports whether a and b are the same version of a file.
func sameFileVersion(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// refreshForUnknownKID reloads the keys because a token names a kid not in
// them: the file if it changed, or the URL, at most once every
// jwksUnknownKIDEvery (a token arriving while a refresh is under way waits
// for it). It reports whether the keys may have changed.
func (k *jwksKeys) refreshForUnknownKID(ctx context.Context) bool {
	if k.file != "" {
		return k.checkFile(true)
	}
	k.mu.Lock()
	if ch := k.inflight; ch != nil {
		k.mu.Unlock()
		select {
		case <-ch:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !k.limiter.Allow() {
		k.mu.Unlock()
		return false
	}
	ch := make(chan struct{})
	k.inflight = ch
	k.mu.Unlock()
	// The refresh outlives a caller that gives up: others may wait for it.
	go func() {
		defer func() {
			k.mu.Lock()
			k.inflight = nil
			k.mu.Unlock()
			close(ch)
		}()
		k.refresh()
	}()
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}

// refresh fetches the JWKS URL; a failure is logged, and the keys already
// loaded stay.
func (k *jwksKeys) refresh() {
	ctx, cancel := context.WithTimeout(k.ctx, jwksFetchTimeout)
	defer cancel()
	if err := k.fetch(ctx); err != nil && k.ctx.Err() == nil {
		k.log.Warn("auth: cannot refresh the JWKS; keeping the keys already loaded", "url", k.source, "error", err.Error())
	}
}

// fetch gets the JWKS URL into the store. Its errors do not quote the URL
// (which may carry credentials).
func (k *jwksKeys) fetch(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return errors.New("invalid URL")
	}
	req.Header.Set("Accept", "application/json, application/jwk-set+json")
	resp, err := k.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("reading the response: %w", err)
	}
	if len(raw) > maxJWKSBytes {
		return fmt.Errorf("the JWKS is larger than %d bytes", maxJWKSBytes)
	}
	keys, err := parseJWKS(raw)
	if err != nil {
		return err
	}
	return k.store.KeyReplaceAll(ctx, keys)
}

// redactURL is u without its credentials: user info and query are hidden.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(invalid URL)"
	}
	if p.User != nil {
		p.User = url.User("REDACTED")
	}
	if p.RawQuery != "" {
		p.RawQuery = "REDACTED"
	}
	p.Fragment, p.RawFragment = "", ""
	return p.String()
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
