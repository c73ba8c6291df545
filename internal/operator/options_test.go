package operator

import (
	"flag"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/SAP/metrics-operator/internal/coordinator"
	"github.com/SAP/metrics-operator/internal/events"
)

func TestExportFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		want    [3]time.Duration // timeout, backoff base, backoff max
		wantErr string
	}{
		{name: "defaults", want: [3]time.Duration{
			coordinator.DefaultExportTimeout, coordinator.DefaultExportBackoffBase, coordinator.DefaultExportBackoffCap}},
		{name: "set", args: []string{"--export-timeout=2s", "--export-backoff-base=250ms", "--export-backoff-max=1m"},
			want: [3]time.Duration{2 * time.Second, 250 * time.Millisecond, time.Minute}},
		{name: "max below base", args: []string{"--export-backoff-base=10s", "--export-backoff-max=5s"},
			wantErr: "--export-backoff-max (5s) must not be below --export-backoff-base (10s)"},
		{name: "negative timeout", args: []string{"--export-timeout=-1s"}, wantErr: "--export-timeout must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Options
			parseFlags(t, &o, tc.args)
			if !completeAs(t, &o, tc.wantErr) {
				return
			}
			if got := [3]time.Duration{o.ExportTimeout, o.ExportBackoffBase, o.ExportBackoffMax}; got != tc.want {
				t.Errorf("timeout, base, max = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestLimitFlags(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		opts Options // set in code instead of flags
		// series per metric, label value, series total, objects per watch, remote response bytes,
		// remote watches, objects and reads per namespace, pushes per namespace
		want [9]int
	}{
		{name: "flag defaults", want: [9]int{10000, 1024, 1000000, 1000000, 32 << 20, 1000, 1000000, 2, 4}},
		{name: "zero in code is the default", opts: Options{}, want: [9]int{10000, 1024, 1000000, 1000000, 32 << 20, 1000, 1000000, 2, 4}},
		{name: "set", args: []string{"--max-series-per-metric=50", "--max-label-value-length=64", "--max-series-total=500", "--max-objects-per-watch=70",
			"--max-remote-response-bytes=4096", "--max-remote-watches-per-namespace=3", "--max-remote-objects-per-namespace=90",
			"--max-remote-reads-per-namespace=1", "--max-pushes-per-namespace=2"},
			want: [9]int{50, 64, 500, 70, 4096, 3, 90, 1, 2}},
		{name: "off", args: []string{"--max-series-per-metric=-1", "--max-label-value-length=-1", "--max-series-total=-1", "--max-objects-per-watch=-1",
			"--max-remote-response-bytes=-1", "--max-remote-watches-per-namespace=-1", "--max-remote-objects-per-namespace=-1",
			"--max-remote-reads-per-namespace=-1", "--max-pushes-per-namespace=-1"},
			want: [9]int{-1, -1, -1, -1, -1, -1, -1, -1, -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if tc.args != nil || tc.name == "flag defaults" {
				parseFlags(t, &o, tc.args)
			}
			if err := o.Complete(); err != nil {
				t.Fatal(err)
			}
			if got := [9]int{o.MaxSeriesPerMetric, o.MaxLabelValueLength, o.MaxSeriesTotal, o.MaxObjectsPerWatch,
				int(o.MaxRemoteResponseBytes), o.MaxRemoteWatchesPerNamespace, o.MaxRemoteObjectsPerNamespace,
				o.MaxRemoteReadsPerNamespace, o.MaxPushesPerNamespace}; got != tc.want {
				t.Errorf("limits = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestEventNotifyDelayFlag: the default is events.DefaultNotifyDelay,
// also for options set in code (zero); values outside 1ms..1s are refused
// naming the flag.
func TestEventNotifyDelayFlag(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		want    time.Duration
		wantErr bool
	}{
		{want: events.DefaultNotifyDelay},
		{args: []string{"--event-notify-delay=100ms"}, want: 100 * time.Millisecond},
		{args: []string{"--event-notify-delay=0"}, want: events.DefaultNotifyDelay},
		{args: []string{"--event-notify-delay=500us"}, wantErr: true},
		{args: []string{"--event-notify-delay=2s"}, wantErr: true},
		{args: []string{"--event-notify-delay=-1ms"}, wantErr: true},
	} {
		var o Options
		parseFlags(t, &o, tc.args)
		err := o.Complete()
		switch {
		case tc.wantErr && (err == nil || !strings.Contains(err.Error(), "--event-notify-delay must be between 1ms and 1s")):
			t.Errorf("%v: Complete() = %v, want the flag's range named", tc.args, err)
		case !tc.wantErr && err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case !tc.wantErr && o.EventNotifyDelay != tc.want:
			t.Errorf("%v: delay %s, want %s", tc.args, o.EventNotifyDelay, tc.want)
		}
	}
	var o Options
	if err := o.Complete(); err != nil || o.EventNotifyDelay != events.DefaultNotifyDelay {
		t.Errorf("options set in code: delay %s (%v), want %s", o.EventNotifyDelay, err, events.DefaultNotifyDelay)
	}
}

// TestNewRefusesInvalidOptions checks that New completes and validates
// options set in code as the flags are: a negative duration is an error
// naming its flag, before any connection is made.
func TestNewRefusesInvalidOptions(t *testing.T) {
	_, err := New(&rest.Config{Host: "http://127.0.0.1:1"}, Options{MinExportInterval: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "--min-export-interval") {
		t.Fatalf("New with a negative MinExportInterval: %v, want an error naming --min-export-interval", err)
	}
}

func TestShardingFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		opts    Options // set in code instead of flags
		want    [2]time.Duration
		wantErr string
	}{
		{name: "flag defaults", args: []string{"--sharding"}, want: [2]time.Duration{15 * time.Second, 2 * time.Second}},
		{name: "code defaults", opts: Options{Sharding: true}, want: [2]time.Duration{15 * time.Second, 2 * time.Second}},
		{name: "set", args: []string{"--sharding", "--shard-lease-duration=6s", "--shard-renew-interval=1s"},
			want: [2]time.Duration{6 * time.Second, time.Second}},
		{name: "with leader election", args: []string{"--sharding", "--leader-elect"},
			wantErr: "--sharding and --leader-elect exclude each other"},
		{name: "renewal too slow", args: []string{"--shard-lease-duration=7s", "--shard-renew-interval=2s"},
			wantErr: "--shard-lease-duration (7s) must be at least four --shard-renew-interval (2s)"},
		{name: "fraction of a second", args: []string{"--shard-lease-duration=6500ms"},
			wantErr: "--shard-lease-duration must be whole seconds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.opts
			if tc.args != nil {
				parseFlags(t, &o, tc.args)
			}
			if !completeAs(t, &o, tc.wantErr) {
				return
			}
			if got := [2]time.Duration{o.ShardLeaseDuration, o.ShardRenewInterval}; got != tc.want {
				t.Errorf("lease duration, renew interval = %v, want %v", got, tc.want)
			}
		})
	}
}

// parseFlags binds o's flags and parses args into it.
func parseFlags(t *testing.T, o *Options, args []string) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
}

// completeAs completes o. With wantErr it fails the test unless the
// error contains wantErr, and returns false: there is nothing more to
// check. Without, any error fails the test.
func completeAs(t *testing.T, o *Options, wantErr string) bool {
	t.Helper()
	err := o.Complete()
	if wantErr != "" {
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("Complete() = %v, want an error containing %q", err, wantErr)
		}
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}
