package operator

import (
	"testing"
	"time"
)

func TestTenancyFlags(t *testing.T) {
	for _, tc := range []struct {
		name    string
		args    []string
		sa      string
		period  time.Duration
		noRefs  bool
		wantErr string
	}{
		{name: "defaults: the operator's own access, re-checked every minute", period: time.Minute},
		{name: "lockdown", args: []string{"--default-service-account=metrics", "--access-recheck-period=10s", "--no-cross-namespace-refs"},
			sa: "metrics", period: 10 * time.Second, noRefs: true},
		{name: "negative period", args: []string{"--access-recheck-period=-1s"}, wantErr: "--access-recheck-period must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var o Options
			parseFlags(t, &o, tc.args)
			if !completeAs(t, &o, tc.wantErr) {
				return
			}
			if o.DefaultServiceAccount != tc.sa || o.AccessRecheckPeriod != tc.period || o.NoCrossNamespaceRefs != tc.noRefs {
				t.Errorf("got %q, %s, %t; want %q, %s, %t", o.DefaultServiceAccount, o.AccessRecheckPeriod, o.NoCrossNamespaceRefs,
					tc.sa, tc.period, tc.noRefs)
			}
		})
	}
}
