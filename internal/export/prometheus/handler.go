package prometheus

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// Handler serves /metrics: the process's own families as next serves them
// (the promhttp handler of the process's registry, with opts), followed by
// the users' families. In the text format, which Prometheus asks for, the
// users' families are written from their stored renderings (WriteText),
// so a scrape renders only what changed since the last one. Other formats
// (the protocol buffer ones, OpenMetrics when opts enable it) are served
// by a promhttp handler gathering process and the collector together.
// Both honour the name[] parameters, gzip and the content negotiation of
// promhttp with opts.
func (c *Collector) Handler(next http.Handler, process prometheus.Gatherer, opts promhttp.HandlerOpts) http.Handler {
	formats := opts.AcceptedFormats
	if len(formats) == 0 {
		formats = expfmt.DefaultAcceptedFormats()
		if opts.EnableOpenMetrics {
			formats = expfmt.DefaultOpenMetricsAcceptedFormats()
		}
	}
	return &handler{
		c: c, next: next, formats: formats,
		fallback: promhttp.HandlerFor(prometheus.Gatherers{process, c}, opts),
	}
}

type handler struct {
	c        *Collector
	next     http.Handler
	fallback http.Handler
	formats  []expfmt.Format
}

var gzipPool = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	format := expfmt.NegotiateAccept(r.Header, h.formats...)
	if format.FormatType() != expfmt.TypeTextPlain {
		h.fallback.ServeHTTP(w, r)
		return
	}
	names := nameFilter(r)
	var process []byte
	if names != nil && h.c.servesAll(names) {
		// Only users' families are asked for (as a scraper watching a
		// few of them does, many times a second): the process's registry
		// is not gathered.
		w.Header().Set("Content-Type", string(format))
		w.Header()["Vary"] = []string{"Accept", "Accept-Encoding"}
	} else {
		// next negotiates the same text format from the same Accept
		// header; it writes uncompressed, so that the users' families can
		// follow in one stream.
		inner := r.Clone(r.Context())
		inner.Header.Del("Accept-Encoding")
		rec := &recorder{header: http.Header{}}
		h.next.ServeHTTP(rec, inner)
		for k, v := range rec.header {
			if k != "Content-Length" && k != "Content-Encoding" {
				w.Header()[k] = v
			}
		}
		if rec.code != 0 && rec.code != http.StatusOK {
			// Refused (too many scrapes in flight) or failed: as next says.
			w.WriteHeader(rec.code)
			_, _ = w.Write(rec.body.Bytes())
			return
		}
		process = rec.body.Bytes()
	}
	// Every value is read before the first byte goes out, as promhttp
	// does: a scraper may take the response's arrival as the time the
	// values were read by at the latest.
	texts := h.c.texts(names)
	var out io.Writer = w
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		gz := gzipPool.Get().(*gzip.Writer)
		gz.Reset(w)
		defer func() {
			_ = gz.Close()
			gzipPool.Put(gz)
		}()
		out = gz
	}
	if _, err := out.Write(process); err != nil {
		return // the scraper went away
	}
	for _, text := range texts {
		if _, err := out.Write(text); err != nil {
			return
		}
	}
}

// nameFilter returns the names of a scrape's name[] parameters, nil when
// it has none.
func nameFilter(r *http.Request) map[string]struct{} {
	if r.URL == nil {
		return nil
	}
	list := r.URL.Query()["name[]"]
	if len(list) == 0 {
		return nil
	}
	names := make(map[string]struct{}, len(list))
	for _, n := range list {
		names[n] = struct{}{}
	}
	return names
}

// acceptsGzip reports whether an Accept-Encoding header admits gzip with a
// weight above zero: named, or else through *.
func acceptsGzip(header string) bool {
	gzipQ, starQ := -1.0, -1.0
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			if k, v, _ := strings.Cut(p, "="); strings.TrimSpace(k) == "q" {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(coding)) {
		case "gzip":
			gzipQ = q
		case "*":
			starQ = q
		}
	}
	if gzipQ >= 0 {
		return gzipQ > 0
	}
	return starQ > 0
}

// recorder keeps what next writes.
type recorder struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.body.Write(p)
}
