package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/partita-dev/partita/access"
	"github.com/partita-dev/partita/codec"
	"github.com/partita-dev/partita/deadletter"
	"github.com/partita-dev/partita/processor"
	"github.com/partita-dev/partita/request"
	"github.com/partita-dev/partita/views"
)

// GatewaySource is the ce-source of commands the gateway sends
// (processor.GatewaySource). It is the same on every worker, so a request
// retried with one Idempotency-Key against any worker is recognised as the
// same command.
const GatewaySource = processor.GatewaySource

// HeaderPosition carries a command reply's position token.
const HeaderPosition = "Partita-Position"

// gateway is the HTTP door: commands (sent through processor's
// request/reply client, the worker's one conversation with Kafka besides
// the runtime), view queries, health, metrics and the dashboard.
type gateway struct {
	cfg     Config
	rt      *processor.Runtime
	client  *processor.Client
	metrics *metrics
	log     *slog.Logger
	auth    *authenticator
	rules   rules // the application's default and the worker's own paths
}

func newGateway(ctx context.Context, cfg Config, rt *processor.Runtime, m *metrics, auth *authenticator, log *slog.Logger) (*gateway, error) {
	rules, err := cfg.Access.rules()
	if err != nil { // load validated it
		return nil, err
	}
	client, err := rt.NewClient(ctx)
	if err != nil {
		return nil, err
	}
	return &gateway{cfg: cfg, rt: rt, client: client, metrics: m, log: log, auth: auth, rules: rules}, nil
}

func (g *gateway) close() { _ = g.client.Close() }

func (g *gateway) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /entities/{entity}/{id}/{command}", g.command)
	// Reading an entity's state is guarded by the entity-wide rule.
	mux.HandleFunc("GET /entities/{entity}/{id}", g.guardPart("entity", g.rt.EntityAccess, g.entityState))
	mux.HandleFunc("GET /views/{view}/stream", g.guardPart("view", g.rt.ViewAccess, g.stream))
	mux.HandleFunc("GET /views/{view}/{id}", g.guardPart("view", g.rt.ViewAccess, g.row))
	mux.HandleFunc("GET /views/{view}", g.guardPart("view", g.rt.ViewAccess, g.query))
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", g.ready)
	mux.Handle("GET /metrics", g.guard(g.rules.metrics, "/metrics", g.metrics.handler()))
	mux.Handle("GET /api/status", g.guard(g.rules.status, "/api/status", http.HandlerFunc(g.status)))
	page := g.guard(g.rules.dashboard, "the dashboard", dashboard())
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /index.html", page)
	mux.Handle("GET /assets/", page)
	return g.metrics.instrument(guard(g.cfg.HTTP, mux))
}

func healthz(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }

// caller authenticates r, writing the 401 when its credentials are bad.
func (g *gateway) caller(w http.ResponseWriter, r *http.Request) (*access.Caller, bool) {
	c, err := g.auth.authenticate(r)
	if err != nil {
		g.deny(w, err)
		return nil, false
	}
	return c, true
}

// admit checks rule (undeclared: the application's default) for caller,
// writing the 401 or 403 when it does not admit the caller.
func (g *gateway) admit(w http.ResponseWriter, caller *access.Caller, rule access.Rule, what string) bool {
	if err := rule.Or(g.rules.def).Check(caller, what); err != nil {
		g.deny(w, err)
		return false
	}
	return true
}

// deny writes 401 (with WWW-Authenticate) or 403 for an access error.
func (g *gateway) deny(w http.ResponseWriter, err error) {
	if errors.Is(err, access.ErrForbidden) {
		httpError(w, http.StatusForbidden, "permission_denied", err.Error())
		return
	}
	w.Header().Set("WWW-Authenticate", g.auth.challenge(err))
	httpError(w, http.StatusUnauthorized, "unauthenticated", err.Error())
}

// guard admits callers of h by rule.
func (g *gateway) guard(rule access.Rule, what string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, ok := g.caller(w, r); ok && g.admit(w, c, rule, what) {
			h.ServeHTTP(w, r)
		}
	})
}

// guardPart admits callers of h by the rule of the part (entity or view)
// named by the path parameter kind. For a name that is no part, the
// default rule judges the caller first: who may not call learns no names.
func (g *gateway) guardPart(kind string, rule func(name string) (access.Rule, error), h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue(kind)
		c, ok := g.caller(w, r)
		if !ok {
			return
		}
		rl, err := rule(name)
		switch {
		case err == nil:
			if g.admit(w, c, rl, kind+" "+name) {
				h(w, r)
			}
		case g.admit(w, c, access.Rule{}, kind+" "+clip(name)):
			httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no %s %q", kind, clip(name)))
		}
	}
}

// clip shortens what a caller sent before it is echoed in an error.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "…"
}

// httpError writes {"error":{"code":...,"message":...}}.
func httpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// statusOf maps an entity error code to an HTTP status.
func statusOf(code string) int {
	switch code {
	case string("invalid_argument"):
		return http.StatusBadRequest
	case "not_found":
		return http.StatusNotFound
	case "conflict":
		return http.StatusConflict
	case "failed_precondition":
		return http.StatusPreconditionFailed
	case "permission_denied":
		return http.StatusForbidden
	}
	return http.StatusUnprocessableEntity
}

// MaxIdempotencyKey bounds the Idempotency-Key header, in bytes (printable
// ASCII): the key is the command's ce-id, stored in the entity's dedup
// records and echoed in its reply.
const MaxIdempotencyKey = 200

func (g *gateway) command(w http.ResponseWriter, r *http.Request) {
	entity, subject, command := r.PathValue("entity"), r.PathValue("id"), r.PathValue("command")
	caller, ok := g.caller(w, r)
	if !ok {
		return
	}
	info, err := g.rt.Command(entity, command)
	// Who may not send commands learns no names: for an unknown one the
	// default rule judges the caller first.
	if err != nil && !g.admit(w, caller, access.Rule{}, "command "+clip(entity)+"/"+clip(command)) {
		return
	}
	switch {
	case errors.Is(err, processor.ErrUnknownEntity):
		httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no entity %q", clip(entity)))
		return
	case err != nil:
		httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("entity %s has no command %q (commands: %v)", entity, clip(command), g.rt.Entities()[entity]))
		return
	}
	if !g.admit(w, caller, info.Access, "command "+entity+"/"+command) {
		return
	}
	id := r.Header.Get("Idempotency-Key")
	if len(id) > MaxIdempotencyKey || !printable(id) {
		httpError(w, http.StatusBadRequest, "invalid_argument",
			fmt.Sprintf("Idempotency-Key must be at most %d printable ASCII characters", MaxIdempotencyKey))
		return
	}
	if len(subject) > codec.MaxSubjectLength {
		httpError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("the id is longer than %d bytes", codec.MaxSubjectLength))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(info.MaxValue)))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		httpError(w, http.StatusRequestEntityTooLarge, "payload_too_large",
			fmt.Sprintf("the body is larger than entity %s accepts (%d bytes)", entity, info.MaxValue))
		return
	case err != nil:
		httpError(w, http.StatusBadRequest, "invalid_argument", "the body could not be read")
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if err := info.Validate(body); err != nil {
		var pe *codec.PayloadError
		if errors.As(err, &pe) {
			httpError(w, http.StatusBadRequest, "invalid_argument", pe.Error())
		} else {
			httpError(w, http.StatusBadRequest, "invalid_argument", "the body does not fit the command")
		}
		return
	}
	if id == "" {
		id = newID()
	}
	req := request.Request{Entity: entity, Subject: subject, Command: command, Data: body, ID: id,
		Source: GatewaySource, Caller: g.forwarded(caller)}
	reply, err := g.send(r.Context(), req)
	var dead *request.DeadLetterError
	switch {
	case err == nil:
		writeReply(w, reply)
	case errors.Is(err, request.ErrInvalid):
		httpError(w, http.StatusBadRequest, "invalid_argument", err.Error())
	case errors.Is(err, request.ErrRecordTooLarge):
		httpError(w, http.StatusRequestEntityTooLarge, "payload_too_large", err.Error())
	case errors.Is(err, request.ErrNotFollowing):
		httpError(w, http.StatusServiceUnavailable, "unavailable", "the gateway is not yet following the replies topic; retry")
	case errors.Is(err, request.ErrInFlight):
		httpError(w, http.StatusConflict, "in_flight", "a request with this Idempotency-Key is in flight on this worker")
	case errors.Is(err, request.ErrUnavailable):
		httpError(w, http.StatusServiceUnavailable, "unavailable", err.Error()+"; retry with the same Idempotency-Key")
	case errors.As(err, &dead):
		code := "dead_letter"
		if errors.Is(err, deadletter.ErrIdempotencyConflict) {
			code = dead.Code
		}
		httpError(w, http.StatusUnprocessableEntity, code, dead.Reason)
	case r.Context().Err() != nil:
		// the client went away
	case errors.Is(err, request.ErrNoReply):
		httpError(w, http.StatusGatewayTimeout, "timeout",
			fmt.Sprintf("no reply within %v; the command may still be applied: retry with Idempotency-Key %s", g.cfg.ReplyTimeout, id))
	default: // request.ErrUnknownEntity: processor.Runtime.Command said it is one
		httpError(w, http.StatusInternalServerError, "internal", err.Error())
	}
}

// send sends req through the client and waits ReplyTimeout for its reply.
// A client not yet following the replies (the worker is starting) is given
// ReplyTimeout to get there first.
func (g *gateway) send(ctx context.Context, req request.Request) (request.Reply, error) {
	for waited := false; ; waited = true {
		rctx, cancel := context.WithTimeout(ctx, g.cfg.ReplyTimeout)
		reply, err := g.client.Request(rctx, req)
		cancel()
		if waited || !errors.Is(err, request.ErrNotFollowing) {
			return reply, err
		}
		select {
		case <-g.client.Ready():
		case <-ctx.Done():
			return reply, fmt.Errorf("%w: %w", request.ErrNoReply, ctx.Err())
		case <-time.After(g.cfg.ReplyTimeout):
			return reply, err
		}
	}
}

// printable reports whether s is printable ASCII.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// forwarded is the caller as handlers see it: the claims the
// configuration forwards, no others.
func (g *gateway) forwarded(c *access.Caller) *access.Caller {
	out := access.Caller{Subject: c.Subject, Method: c.Method}
	if out.Method == "" {
		out.Method = "anonymous"
	}
	for _, name := range g.auth.forwardClaims() {
		if v, ok := c.Claims[name]; ok {
			if out.Claims == nil {
				out.Claims = map[string]any{}
			}
			out.Claims[name] = v
		}
	}
	return &out
}

// writeReply writes an entity's reply: its payload, or its error code's
// status and the error.
func writeReply(w http.ResponseWriter, reply request.Reply) {
	if reply.Position != "" {
		w.Header().Set(HeaderPosition, reply.Position)
	}
	w.Header().Set("Content-Type", "application/json")
	if reply.Code != "" {
		httpError(w, statusOf(reply.Code), reply.Code, reply.Message)
		return
	}
	_, _ = w.Write(reply.Data)
	_, _ = w.Write([]byte("\n"))
}

// entityState serves GET /entities/{entity}/{id}[?after=<position token>]:
// the subject's current state from this worker's replica of the entity's
// table (processor.Runtime.State), whichever worker owns the subject. It
// writes nothing to Kafka. With after (a command reply's Partita-Position)
// it answers with that write or a later one, waiting at most ReadTimeout.
//
// 200: {"subject", "exists", "seq", "state"} (state null when there is
// none; exists false for a deleted subject), with the read's own position
// in Partita-Position. 404 not_found: no such entity, or a subject that
// never had state. 400 invalid_argument: a bad token, or one for another
// entity or subject. 504 stale: the replica did not reach the token in
// time; 503 unavailable: it has not recovered yet.
func (g *gateway) entityState(w http.ResponseWriter, r *http.Request) {
	entity, subject, after := r.PathValue("entity"), r.PathValue("id"), r.URL.Query().Get("after")
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ReadTimeout)
	defer cancel()
	st, err := g.rt.State(ctx, entity, subject, after)
	switch {
	case errors.Is(err, processor.ErrUnknownEntity):
		httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no entity %q", entity))
	case errors.Is(err, processor.ErrStateReadsOff):
		httpError(w, http.StatusNotFound, "not_found", "this worker keeps no copies of entity state (state_reads: false)")
	case errors.Is(err, processor.ErrBadPosition), errors.Is(err, processor.ErrBadSubject):
		httpError(w, http.StatusBadRequest, "invalid_argument", err.Error())
	case errors.Is(err, processor.ErrNotYet) && r.Context().Err() != nil:
		// the client went away
	case errors.Is(err, processor.ErrNotYet) && after != "":
		httpError(w, http.StatusGatewayTimeout, "stale", err.Error())
	case errors.Is(err, processor.ErrNotYet):
		httpError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	case err != nil:
		httpError(w, http.StatusInternalServerError, "internal", err.Error())
	case !st.Exists && st.Seq == 0:
		httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("entity %s has no state for %q", entity, subject))
	default:
		w.Header().Set(HeaderPosition, processor.PositionToken(entity, subject, st.Seq))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	}
}

func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// store returns the view's reader, writing the error if there is none.
func (g *gateway) store(w http.ResponseWriter, view string) views.Reader {
	s, err := g.rt.View(view)
	if err != nil {
		httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no view %q", view))
		return nil
	}
	return s
}

// waitAfter honours after=<position token>: read-your-writes.
func (g *gateway) waitAfter(w http.ResponseWriter, r *http.Request, s views.Reader) bool {
	token := r.URL.Query().Get("after")
	if token == "" {
		return true
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ReadTimeout)
	defer cancel()
	err := s.WaitFor(ctx, token)
	switch {
	case errors.Is(err, views.ErrBadQuery):
		httpError(w, http.StatusBadRequest, "invalid_argument", err.Error())
	case errors.Is(err, views.ErrStale):
		httpError(w, http.StatusGatewayTimeout, "stale", err.Error())
	case err != nil:
		httpError(w, http.StatusServiceUnavailable, "unavailable", err.Error())
	}
	return err == nil
}

func (g *gateway) row(w http.ResponseWriter, r *http.Request) {
	s := g.store(w, r.PathValue("view"))
	if s == nil || !g.waitAfter(w, r, s) {
		return
	}
	row, ok, err := s.Get(r.Context(), r.PathValue("id"))
	switch {
	case err != nil:
		httpError(w, http.StatusInternalServerError, "internal", err.Error())
	case !ok:
		httpError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no row %q in view %s", r.PathValue("id"), r.PathValue("view")))
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(row)
	}
}

// parseQuery reads a views.Query from URL parameters. A value is read as
// JSON when it is JSON (numbers, true, false, null, "quoted"), else as a string.
func parseQuery(r *http.Request) (views.Query, error) {
	p := r.URL.Query()
	q := views.Query{Index: p.Get("index"), Page: p.Get("page")}
	val := func(name string) any {
		if !p.Has(name) {
			return nil
		}
		var v any
		if err := json.Unmarshal([]byte(p.Get(name)), &v); err == nil && v != nil {
			if _, isObj := v.(map[string]any); !isObj {
				if _, isArr := v.([]any); !isArr {
					return v
				}
			}
		}
		return p.Get(name)
	}
	q.Eq, q.Gt, q.Gte, q.Lt, q.Lte = val("eq"), val("gt"), val("gte"), val("lt"), val("lte")
	if p.Has("prefix") {
		prefix := p.Get("prefix")
		q.Prefix = &prefix
	}
	switch p.Get("order") {
	case "", "asc":
	case "desc":
		q.Desc = true
	default:
		return q, fmt.Errorf("%w: order must be asc or desc", views.ErrBadQuery)
	}
	if p.Has("limit") {
		n, err := strconv.Atoi(p.Get("limit"))
		if err != nil || n < 1 {
			return q, fmt.Errorf("%w: limit must be a positive number", views.ErrBadQuery)
		}
		q.Limit = n
	}
	return q, nil
}

// viewQuery reads the view and the query of a request, writing the error
// if either is wrong.
func (g *gateway) viewQuery(w http.ResponseWriter, r *http.Request) (views.Reader, views.Query, bool) {
	s := g.store(w, r.PathValue("view"))
	if s == nil {
		return nil, views.Query{}, false
	}
	q, err := parseQuery(r)
	if err != nil {
		httpError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return nil, q, false
	}
	return s, q, true
}

func (g *gateway) query(w http.ResponseWriter, r *http.Request) {
	s, q, ok := g.viewQuery(w, r)
	if !ok || !g.waitAfter(w, r, s) {
		return
	}
	page, err := s.Query(r.Context(), q)
	if err != nil {
		viewError(w, err)
		return
	}
	if page.Rows == nil {
		page.Rows = []views.Row{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(page)
}

// stream serves a view query as server-sent events: "row" for each row of
// the current result and each change, "remove" when a row leaves the
// result, "current" once the current result has been sent.
func (g *gateway) stream(w http.ResponseWriter, r *http.Request) {
	s, q, ok := g.viewQuery(w, r)
	if !ok {
		return
	}
	// A stream outlives the server's write timeout, which is for answers:
	// each write gets the timeout anew, so a client that stops reading is
	// still let go.
	// Reading the current result can take a while.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(g.cfg.HTTP.WriteTimeout))
	sub, err := s.Subscribe(r.Context(), q)
	if err != nil {
		viewError(w, err)
		return
	}
	defer sub.Close()
	serveChanges(w, r, sub, g.cfg.HTTP.WriteTimeout)
}

// viewError answers a view read that failed: 400 for a query the view
// cannot answer, 500 for anything else.
func viewError(w http.ResponseWriter, err error) {
	if errors.Is(err, views.ErrBadQuery) {
		httpError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	httpError(w, http.StatusInternalServerError, "internal", err.Error())
}

// serveChanges writes a subscription's changes as server-sent events until
// it ends; one that ends by failure (the client read too slowly:
// views.ErrSlowSubscriber) ends with an "error" event saying why, so that
// the client knows to reconnect rather than take the stream as complete.
// Each write gets writeTimeout anew.
func serveChanges(w http.ResponseWriter, r *http.Request, sub views.Subscription, writeTimeout time.Duration) {
	rc := http.NewResponseController(w)
	alive := func() { _ = rc.SetWriteDeadline(time.Now().Add(writeTimeout)) }
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	for c := range sub.Changes() {
		var event string
		var data []byte
		switch c.Kind {
		case views.Upserted:
			event, data = "row", mustJSON(c.Row)
		case views.Removed:
			event, data = "remove", mustJSON(map[string]string{"id": c.Row.ID})
		case views.Current:
			event, data = "current", []byte("{}")
		}
		alive()
		if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data); err != nil || rc.Flush() != nil {
			return
		}
	}
	if err := sub.Err(); err != nil && r.Context().Err() == nil {
		code := "internal"
		if errors.Is(err, views.ErrSlowSubscriber) {
			code = "slow_subscriber"
		}
		alive()
		fmt.Fprintf(w, "event: error\ndata: %s\n\n", mustJSON(map[string]string{"code": code, "message": err.Error()}))
		_ = rc.Flush()
	}
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

func (g *gateway) ready(w http.ResponseWriter, r *http.Request) {
	if reason := g.notReady(r.Context()); reason != "" {
		httpError(w, http.StatusServiceUnavailable, "not_ready", reason)
		return
	}
	fmt.Fprintln(w, "ready")
}

// notReady says why the worker is not ready, "" when it is: it has not
// recovered its tables yet, the reply listener is not following, or a
// processor or replica is restarting or not recovered after a restart.
func (g *gateway) notReady(ctx context.Context) string {
	switch {
	case !isClosed(g.rt.Ready()):
		var restored, total int64
		for _, p := range g.rt.Partitions(ctx) {
			restored += p.Restored
			total += p.Total
		}
		return fmt.Sprintf("recovering: %d of %d table records restored", restored, total)
	case !isClosed(g.client.Ready()):
		return "starting the reply listener"
	}
	// A part "starting" again during a rebalance is not a failure (every
	// worker would answer 503 at each scale event); one restarting after
	// an error, or stopped, is.
	var bad []string
	for _, h := range g.rt.Health() {
		if h.State == processor.HealthRestarting || h.State == processor.HealthStopped {
			bad = append(bad, fmt.Sprintf("%s %s %s after %d restarts: %s", h.Kind, h.Name, h.State, h.Restarts, h.LastError))
		}
	}
	return strings.Join(bad, "; ")
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// status is the dashboard's data.
func (g *gateway) status(w http.ResponseWriter, r *http.Request) {
	type viewStatus struct {
		Name    string                   `json:"name"`
		Indexes []string                 `json:"indexes"`
		Lag     []processor.PartitionLag `json:"lag"`
	}
	out := struct {
		App         string                          `json:"app"`
		Ready       bool                            `json:"ready"`
		Reason      string                          `json:"reason,omitempty"`
		Groups      []processor.GroupHealth         `json:"groups"`
		Entities    map[string][]string             `json:"entities"`
		Timers      map[string]processor.TimerStats `json:"timers"`
		Workflows   []workflowStatus                `json:"workflows"`
		Views       []viewStatus                    `json:"views"`
		Partitions  []processor.PartitionStatus     `json:"partitions"`
		DeadLetters []processor.DeadLetter          `json:"deadLetters"`
	}{App: g.cfg.App, Entities: g.rt.Entities(), Timers: g.rt.TimerStats(), Workflows: workflowStatuses(r.Context(), g.rt),
		Partitions: g.rt.Partitions(r.Context())}
	out.Reason = g.notReady(r.Context())
	out.Ready = out.Reason == ""
	if out.Groups = g.rt.Health(); out.Groups == nil {
		out.Groups = []processor.GroupHealth{}
	}
	names := g.rt.Views()
	for name, idx := range names {
		lag, _ := g.rt.Lag(name)
		out.Views = append(out.Views, viewStatus{Name: name, Indexes: idx, Lag: lag})
	}
	slices.SortFunc(out.Views, func(a, b viewStatus) int { return compare(a.Name, b.Name) })
	out.DeadLetters = append([]processor.DeadLetter{}, g.client.DeadLetters()...)
	if out.Partitions == nil {
		out.Partitions = []processor.PartitionStatus{}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
