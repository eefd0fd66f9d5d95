package worker

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// assetTypes are the content types of the dashboard's files, by extension. A
// file of another extension is not served.
var assetTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
}

type asset struct {
	data      []byte
	typ, etag string
}

// dashboard serves the web page from embedded assets (no CDN): index.html at
// / (and /index.html), and the files of assets/ at /assets/<name> (app.js,
// app.css). The page has no inline script, style or event handler, so it
// runs under a Content-Security-Policy of default-src 'self'. Anything else
// is 404.
func dashboard() http.Handler {
	files := map[string]asset{}
	entries, _ := fs.ReadDir(assets, "assets") // the directory is embedded: cannot fail
	for _, e := range entries {
		typ, ok := assetTypes[path.Ext(e.Name())]
		if e.IsDir() || !ok {
			continue
		}
		data, _ := assets.ReadFile("assets/" + e.Name())
		sum := sha256.Sum256(data)
		files[e.Name()] = asset{data: data, typ: typ, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var name string
		switch p := r.URL.Path; {
		case p == "/" || p == "/index.html":
			name = "index.html"
		case strings.HasPrefix(p, "/assets/"):
			name = strings.TrimPrefix(p, "/assets/")
		}
		a, ok := files[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.typ)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-cache") // revalidated (ETag), so a new worker's page is never mixed with an old script
		h.Set("ETag", a.etag)
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
	})
}
