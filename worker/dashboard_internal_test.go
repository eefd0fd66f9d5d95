package worker

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// dashboardCSP is the policy the worker sends on every response (issue 14).
const dashboardCSP = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// chromiumPath is Debian's chromium (package chromium; .ci/run installs it).
const chromiumPath = "/usr/bin/chromium"

// DashboardBrowser is a tab of headless chromium, driven by chromedp, that
// records what a page must never do: throw an uncaught exception, call
// console.error, or violate its Content-Security-Policy.
//
// It is exported from this test file so that the tests of package
// worker_test (dashboard_test.go) use it too.
type DashboardBrowser struct {
	Ctx context.Context

	mu       sync.Mutex
	problems []string
}

// NewDashboardBrowser starts headless chromium; the test fails if it is
// missing. The browser stops at the end of the test.
func NewDashboardBrowser(t testing.TB) *DashboardBrowser {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatalf("chromium is required at %s (Debian package chromium; .ci/run installs it): %v", chromiumPath, err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelTab(); cancelAlloc() }) // before TempDir's cleanup: chromium has exited
	b := &DashboardBrowser{Ctx: ctx}
	if err := chromedp.Listen(ctx, b.event); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	// A listener of securitypolicyviolation in every document, before its
	// own scripts (the protocol's scripts are not subject to the policy).
	_, err := chromedp.Run(ctx, func(ctx context.Context, tg *chromedp.Target) (page.AddScriptToEvaluateOnNewDocumentResult, error) {
		return cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: `
			document.addEventListener("securitypolicyviolation", (e) =>
				console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline") +
					" at " + e.sourceFile + ":" + e.lineNumber));`})
	})
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return b
}

// event runs on chromedp's reading goroutine: it must be quick.
func (b *DashboardBrowser) event(ev any) {
	var p string
	switch ev := ev.(type) {
	case *cdpruntime.EventExceptionThrown:
		d := ev.ExceptionDetails
		p = "uncaught exception: " + d.Text
		if d.Exception != nil {
			p += " " + d.Exception.Description
		}
		p += fmt.Sprintf(" at %s:%d", d.URL, d.LineNumber)
	case *cdpruntime.EventConsoleAPICalled:
		if ev.Type != cdpruntime.ConsoleAPICalledTypeError && ev.Type != cdpruntime.ConsoleAPICalledTypeAssert {
			return
		}
		p = "console." + string(ev.Type) + ":"
		for _, a := range ev.Args {
			if a.Description != "" {
				p += " " + a.Description
			} else {
				p += " " + string(a.Value)
			}
		}
	case *log.EventEntryAdded:
		// Failed requests (source network) are expected once the worker
		// is down; anything else at level error is not.
		if ev.Entry.Level != log.EntryLevelError || ev.Entry.Source == log.EntrySourceNetwork {
			return
		}
		p = "browser log (" + string(ev.Entry.Source) + "): " + ev.Entry.Text
	default:
		return
	}
	b.mu.Lock()
	b.problems = append(b.problems, p)
	b.mu.Unlock()
}

// Problems returns the exceptions, console errors and CSP violations so far.
func (b *DashboardBrowser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.problems...)
}

// Do runs actions, failing the test after timeout.
func (b *DashboardBrowser) Do(t testing.TB, timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("chromium: %v\n%s", err, b.Snapshot())
	}
}

// Snapshot is the page's body, for failure messages.
func (b *DashboardBrowser) Snapshot() string {
	ctx, cancel := context.WithTimeout(b.Ctx, 5*time.Second)
	defer cancel()
	html, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.outerHTML : ""`))
	if err != nil {
		return "(no snapshot: " + err.Error() + ")"
	}
	return html
}

// DashboardEval evaluates a JavaScript expression in the page.
func DashboardEval[T any](t testing.TB, b *DashboardBrowser, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.Ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// WaitFor polls a JavaScript condition until it is true.
func (b *DashboardBrowser) WaitFor(t testing.TB, what, cond string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !DashboardEval[bool](t, b, "!!("+cond+")") {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not in %v (%s)\n%s", what, timeout, cond, b.Snapshot())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// DashboardRow is a rendered table row.
type DashboardRow struct {
	Class string   `json:"class"`
	Cells []string `json:"cells"`
	Color string   `json:"color"` // computed
}

// DashboardRows reads the rows of a table of the page.
func DashboardRows(t testing.TB, b *DashboardBrowser, table string) []DashboardRow {
	t.Helper()
	return DashboardEval[[]DashboardRow](t, b, `[...document.querySelectorAll("#`+table+` tbody tr")].map((tr) => ({
		class: tr.className, cells: [...tr.cells].map((td) => td.textContent), color: getComputedStyle(tr).color }))`)
}

const red = "rgb(187, 0, 0)" // .bad in app.css

// fakeWorker serves the dashboard with a scripted /api/status and a
// /views/{view} endpoint, under the worker's Content-Security-Policy.
type fakeWorker struct {
	mu      sync.Mutex
	mode    string // "ok", "503" or "badjson"
	served  map[string]int
	queries []string
}

func (f *fakeWorker) setMode(m string) {
	f.mu.Lock()
	f.mode = m
	f.mu.Unlock()
}

func (f *fakeWorker) count(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.served[m]
}

const failingReason = "processor shop.cart restarting after 3 failures: kafka: client has run out of available brokers to talk to"
const failingError = "kafka: client has run out of available brokers to talk to: dial tcp 10.0.0.7:9092: connect: connection refused"

var failingStatus = `{
  "app": "shop", "ready": false, "reason": "` + failingReason + `",
  "groups": [
    {"name": "shop.cart", "kind": "processor", "state": "restarting", "restarts": 3, "lastError": "` + failingError + `", "since": "2026-12-06T14:00:00.123456789Z"},
    {"name": "shop.carts", "kind": "view", "state": "starting", "restarts": 0, "lastError": "", "since": "2026-12-06T14:00:01Z"},
    {"name": "shop.orders", "kind": "processor", "state": "running", "restarts": 0, "since": "2026-12-06T13:00:00Z"}
  ],
  "entities": {"cart": ["add-item", "checkout"]},
  "views": [{"name": "carts", "indexes": ["checkedOut"], "lag": [{"Partition": 0, "Gap": 4, "Age": 2500000000}]}],
  "partitions": [
    {"Group": "shop.cart", "Partition": 0, "Recovered": false, "Restored": 10, "Total": 10, "Lag": 7},
    {"Group": "shop.orders", "Partition": 0, "Recovered": true, "Restored": 3, "Total": 3, "Lag": 0}
  ],
  "deadLetters": []
}`

func (f *fakeWorker) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		mode := f.mode
		f.served[mode]++
		f.mu.Unlock()
		switch mode {
		case "503":
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
		case "badjson":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"app": "shop", "ready`)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, failingStatus)
		}
	})
	mux.HandleFunc("GET /views/{view}", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.queries = append(f.queries, r.PathValue("view")+"?"+r.URL.RawQuery)
		f.mu.Unlock()
		q := r.URL.Query()
		if q.Get("index") != "checkedOut" {
			httpError(w, http.StatusBadRequest, "invalid_argument", fmt.Sprintf("view carts has no index %q", q.Get("index")))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"rows": [{"id": "k1", "row": {"items": 1}}]}`)
	})
	// A page with an inline script: proves that the browser enforces the
	// policy and that DashboardBrowser reports the violation.
	mux.HandleFunc("GET /inline-probe", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><title>probe</title><script>document.title = "inline ran"</script>`)
	})
	mux.Handle("GET /", dashboard())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", dashboardCSP)
		mux.ServeHTTP(w, r)
	})
}

// TestDashboardRendersFailingGroup renders a scripted status with a
// restarting group (a worker-level version will follow, with a real fault):
// the group's row is red with its last error, the header says not ready and
// why, the view query form works, and the page survives a status endpoint
// that fails (non-2xx, then bad JSON) with a banner that goes when it
// answers again, all under the worker's Content-Security-Policy and with no
// uncaught exception.
func TestDashboardRendersFailingGroup(t *testing.T) {
	f := &fakeWorker{mode: "ok", served: map[string]int{}}
	srv := httptest.NewServer(f.handler())
	defer srv.Close()
	b := NewDashboardBrowser(t)

	b.Do(t, 30*time.Second, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#groups tbody tr.bad")))
	groups := DashboardRows(t, b, "groups")
	want := []struct{ class, name, state, restarts, lastError, since string }{
		{"bad", "shop.cart", "restarting", "3", failingError, "2026-12-06T14:00:00Z"},
		{"warn", "shop.carts", "starting", "0", "", "2026-12-06T14:00:01Z"},
		{"", "shop.orders", "running", "0", "", "2026-12-06T13:00:00Z"},
	}
	if len(groups) != len(want) {
		t.Fatalf("health rows: %+v", groups)
	}
	for i, w := range want {
		g := groups[i]
		if g.Class != w.class || len(g.Cells) != 6 || g.Cells[0] != w.name || g.Cells[2] != w.state ||
			g.Cells[3] != w.restarts || g.Cells[4] != w.lastError || !strings.HasPrefix(g.Cells[5], w.since) {
			t.Errorf("health row %d: %+v, want %+v", i, g, w)
		}
	}
	if groups[0].Color != red {
		t.Errorf("the restarting group is %s, not red (is app.css applied?)", groups[0].Color)
	}
	if c := groups[2].Color; c == red {
		t.Errorf("the running group is red")
	}
	if got := DashboardEval[string](t, b, `document.getElementById("ready").textContent`); got != "not ready: "+failingReason {
		t.Errorf("ready marker %q", got)
	}
	if got := DashboardEval[string](t, b, `getComputedStyle(document.getElementById("ready")).color`); got != red {
		t.Errorf("ready marker color %s, want red", got)
	}
	parts := DashboardRows(t, b, "partitions")
	if len(parts) != 2 || parts[0].Class != "stale" || parts[0].Cells[2] != "no (group restarting)" || parts[1].Class != "" || parts[1].Cells[2] != "yes" {
		t.Errorf("partitions: %+v", parts)
	}
	if views := DashboardRows(t, b, "views"); len(views) != 1 || views[0].Cells[2] != "4" || views[0].Cells[3] != "2.5 s" {
		t.Errorf("views (lag): %+v", views)
	}
	if DashboardEval[bool](t, b, `!!document.getElementById("unreachable")`) {
		t.Errorf("the unreachable banner shows while the status answers")
	}

	// The view query form, by the form's own submit button.
	b.Do(t, 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`#query select[name=view]`), "carts"),
		chromedp.SetValue(chromedp.CSS(`#query input[name=index]`), "checkedOut"),
		chromedp.SetValue(chromedp.CSS(`#query input[name=eq]`), "false"),
		chromedp.Click(chromedp.CSS(`#query button[type=submit]`)))
	b.WaitFor(t, "query rows", `document.getElementById("query-status").textContent === "1 rows"`, 10*time.Second)
	if rows := DashboardRows(t, b, "rows"); len(rows) != 1 || rows[0].Cells[0] != "k1" || rows[0].Cells[1] != `{"items":1}` {
		t.Errorf("query rows: %+v", rows)
	}
	b.Do(t, 10*time.Second,
		chromedp.SetValue(chromedp.CSS(`#query input[name=index]`), "nope"),
		chromedp.Click(chromedp.CSS(`#query button[type=submit]`)))
	b.WaitFor(t, "query error", `document.getElementById("query-status").textContent === 'error: view carts has no index "nope"'`, 10*time.Second)
	f.mu.Lock()
	queries := f.queries
	f.mu.Unlock()
	if len(queries) != 2 || queries[0] != "carts?index=checkedOut&eq=false&order=asc&limit=20" {
		t.Errorf("queries sent: %q", queries)
	}
	if DashboardEval[string](t, b, `location.pathname + location.search`) != "/" {
		t.Errorf("the form navigated away")
	}

	// The status fails: a banner, the last data kept and greyed.
	f.setMode("503")
	b.WaitFor(t, "banner on HTTP 503", `document.getElementById("unreachable")`, 10*time.Second)
	banner := DashboardEval[string](t, b, `document.getElementById("unreachable").textContent`)
	if !strings.Contains(banner, "worker unreachable") || !strings.Contains(banner, "HTTP 503") {
		t.Errorf("banner %q", banner)
	}
	if bg := DashboardEval[string](t, b, `getComputedStyle(document.getElementById("unreachable")).backgroundColor`); bg != red {
		t.Errorf("banner background %s, want red", bg)
	}
	if !DashboardEval[bool](t, b, `document.body.classList.contains("stale") && getComputedStyle(document.getElementById("status")).opacity < 1`) {
		t.Errorf("the last data is not greyed")
	}
	if rows := DashboardRows(t, b, "groups"); len(rows) != 3 {
		t.Errorf("the last data went: %+v", rows)
	}
	f.setMode("badjson")
	for deadline := time.Now().Add(10 * time.Second); f.count("badjson") == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the page stopped polling")
		}
	}
	b.WaitFor(t, "banner on bad JSON", `!document.getElementById("unreachable").textContent.includes("HTTP 503")`, 10*time.Second)
	if banner := DashboardEval[string](t, b, `document.getElementById("unreachable").textContent`); !strings.Contains(banner, "JSON") {
		t.Errorf("banner on bad JSON: %q", banner)
	}

	// It answers again: the banner goes.
	f.setMode("ok")
	b.WaitFor(t, "banner gone", `!document.getElementById("unreachable") && !document.body.classList.contains("stale")`, 10*time.Second)
	if rows := DashboardRows(t, b, "groups"); len(rows) != 3 || rows[0].Class != "bad" {
		t.Errorf("health rows after recovery: %+v", rows)
	}

	if p := b.Problems(); len(p) > 0 {
		t.Errorf("the page reported problems:\n%s", strings.Join(p, "\n"))
	}

	// The policy is enforced and its violations are seen: an inline script
	// does not run and is reported.
	b.Do(t, 10*time.Second, chromedp.Navigate(srv.URL+"/inline-probe"))
	time.Sleep(200 * time.Millisecond)
	if title := DashboardEval[string](t, b, `document.title`); title != "probe" {
		t.Errorf("an inline script ran under the policy (title %q)", title)
	}
	if p := strings.Join(b.Problems(), "\n"); !strings.Contains(p, "CSP violation") {
		t.Errorf("the probe's CSP violation was not reported; problems: %s", p)
	}
}

// TestDashboardAssets checks what dashboard() serves, and that the page
// keeps to the Content-Security-Policy: no inline script or style, no event
// handler attribute, no eval, and one fetch (same-origin credentials).
func TestDashboardAssets(t *testing.T) {
	srv := httptest.NewServer(dashboard())
	defer srv.Close()
	get := func(path string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	bodies := map[string]string{}
	for path, typ := range map[string]string{
		"/":               "text/html; charset=utf-8",
		"/?view=carts":    "text/html; charset=utf-8",
		"/index.html":     "text/html; charset=utf-8",
		"/assets/app.js":  "text/javascript; charset=utf-8",
		"/assets/app.css": "text/css; charset=utf-8",
	} {
		resp, body := get(path)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != typ ||
			resp.Header.Get("X-Content-Type-Options") != "nosniff" || body == "" {
			t.Errorf("GET %s: %d %q nosniff=%q", path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("X-Content-Type-Options"))
		}
		bodies[path] = body
		etag := resp.Header.Get("ETag")
		if resp, _ := get(path, "If-None-Match", etag); etag == "" || resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with its ETag %q: %d, want 304", path, etag, resp.StatusCode)
		}
	}
	for _, path := range []string{"/favicon.ico", "/assets/", "/assets/nope.js", "/assets/../dashboard.go", "/app.js", "/api/status"} {
		if resp, _ := get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}

	html := bodies["/"]
	for _, tag := range regexp.MustCompile(`(?is)<script\b[^>]*>.*?</script>`).FindAllString(html, -1) {
		if !regexp.MustCompile(`(?is)^<script\b[^>]*\ssrc=[^>]*>\s*</script>$`).MatchString(tag) {
			t.Errorf("index.html has an inline script: %q", tag)
		}
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<style\b`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)javascript:`),
	} {
		if m := bad.FindString(html); m != "" {
			t.Errorf("index.html breaks the policy: %q", m)
		}
	}
	for _, ref := range []string{`<script src="/assets/app.js" defer></script>`, `<link rel="stylesheet" href="/assets/app.css">`} {
		if !strings.Contains(html, ref) {
			t.Errorf("index.html does not have %s", ref)
		}
	}
	js := bodies["/assets/app.js"]
	for _, bad := range []string{"eval(", "new Function", "innerHTML", "setTimeout(\"", ".style.cssText", "setAttribute(\"style"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	if strings.Count(js, "fetch(") != 1 || !strings.Contains(js, `credentials: "same-origin"`) {
		t.Errorf("app.js should fetch in one place, with credentials: \"same-origin\"")
	}
}
