package operator

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"
)

func TestDataSinkFlags(t *testing.T) {
	parse := func(args ...string) (Options, error) {
		var o Options
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		o.BindFlags(fs)
		if err := fs.Parse(args); err != nil {
			return o, err
		}
		return o, o.Complete()
	}

	o, err := parse()
	if err != nil {
		t.Fatal(err)
	}
	if o.DataSinkAllowedEndpoints != nil || o.DataSinkRecheckInterval != time.Minute {
		t.Errorf("defaults: allowed %q, recheck %s; want any endpoint, 1m", o.DataSinkAllowedEndpoints, o.DataSinkRecheckInterval)
	}

	o, err = parse("--datasink-allowed-endpoints=collector.monitoring.svc,10.0.0.0/8",
		"--datasink-allowed-endpoints=*.live.dynatrace.com", "--datasink-recheck-interval=15s")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"collector.monitoring.svc", "10.0.0.0/8", "*.live.dynatrace.com"}
	if !slices.Equal(o.DataSinkAllowedEndpoints, want) || o.DataSinkRecheckInterval != 15*time.Second {
		t.Errorf("allowed %q, recheck %s; want %q, 15s", o.DataSinkAllowedEndpoints, o.DataSinkRecheckInterval, want)
	}

	for _, bad := range []string{"https://collector:4318", "10.0.0.0/40", "a.*.example.com"} {
		if _, err := parse("--datasink-allowed-endpoints=" + bad); err == nil {
			t.Errorf("--datasink-allowed-endpoints=%s accepted", bad)
		}
	}
	// Options set in code are checked too.
	bad := Options{DataSinkAllowedEndpoints: []string{"collector:4318"}}
	if err := bad.Complete(); err == nil {
		t.Error("Complete accepted a malformed allowed endpoint")
	}
}
