package worker

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed assets
var assets embed.FS

// dashboard serves the web page at / from embedded assets (no CDN).
func dashboard() http.Handler {
	sub, _ := fs.Sub(assets, "assets") // the directory is embedded: cannot fail
	return http.FileServerFS(sub)
}
