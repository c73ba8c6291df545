package coordinator

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/SAP/metrics-operator/internal/datasink"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
)

// newCoordinator is New for tests that pass valid options.
func newCoordinator(tb testing.TB, opts Options) *Coordinator {
	tb.Helper()
	c, err := New(opts)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// TestNewValidatesOptions checks that New refuses options it cannot work
// with, naming each problem, and defaults what was left zero.
func TestNewValidatesOptions(t *testing.T) {
	valid := Options{Sinks: datasink.NewStore(), Exporter: &recorder{}, Prometheus: promexport.NewCollector()}
	tests := []struct {
		name string
		edit func(*Options)
		want []string // in the error; none: valid
	}{
		{"valid", func(*Options) {}, nil},
		{"missing collaborators", func(o *Options) { o.Sinks, o.Exporter, o.Prometheus = nil, nil, nil },
			[]string{"the Sinks option is nil", "the Exporter option is nil", "the Prometheus option is nil"}},
		{"negative durations", func(o *Options) { o.MinExportInterval, o.ExportBackoff.Cap = -time.Second, -time.Minute },
			[]string{"MinExportInterval is negative", "ExportBackoff.Cap is negative"}},
		{"negative write budget", func(o *Options) { o.StatusWritesPerSecond = -1 }, []string{"StatusWritesPerSecond is negative"}},
		{"nil status writer", func(o *Options) { o.StatusWriters = map[string]StatusWriter{"Metric": nil} },
			[]string{`StatusWriters["Metric"] is nil`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := valid
			opts.Prometheus = promexport.NewCollector()
			tt.edit(&opts)
			c, err := New(opts)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if c.opts.StatusInterval != 10*time.Second || c.opts.ExportTimeout != DefaultExportTimeout ||
					c.opts.StatusWritesPerSecond != DefaultStatusWritesPerSecond || c.opts.MaxPushesPerNamespace != DefaultMaxPushesPerNamespace {
					t.Errorf("defaults not applied: %+v", c.opts)
				}
				return
			}
			if err == nil {
				t.Fatalf("New accepted %s", tt.name)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// run runs c until the returned stop, which waits for Start to return;
// ctx is done when stop is called.
func run(t *testing.T, c *Coordinator) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { _ = c.Start(ctx); close(done) }()
	return ctx, func() { cancel(); <-done }
}
