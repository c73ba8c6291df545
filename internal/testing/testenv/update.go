package testenv

import (
	"testing"

	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Update reads obj afresh, applies mutate and updates it, again on a
// conflict: the operator writes the status of the objects tests edit, and
// each status write changes their resourceVersion, so a test's edit of a
// copy read a moment before may be refused.
func Update(t testing.TB, c client.Client, obj client.Object, mutate func()) {
	t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate()
		return c.Update(t.Context(), obj)
	})
	if err != nil {
		t.Fatal(err)
	}
}
