package operator

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/SAP/metrics-operator/internal/controllers"
)

// TestAccessNamespace: a remote cluster's watches are charged to the
// namespace of the access that defines it, a RemoteClusterAccess's or a
// FederatedClusterAccess's; the local cluster's to nobody.
func TestAccessNamespace(t *testing.T) {
	tenantOf := accessNamespace("local")
	for _, tc := range []struct{ cluster, want string }{
		{"local", ""},
		{controllers.ClusterKey("team-a", "blue"), "team-a"},
		{controllers.FederatedClusterKey(types.NamespacedName{Namespace: "team-b", Name: "fleet"}, "clusters", "c1"), "team-b"},
		{controllers.FederatedClusterKey(types.NamespacedName{Namespace: "team-c", Name: "fleet"}, "", "c1"), "team-c"},
	} {
		if got := tenantOf(tc.cluster); got != tc.want {
			t.Errorf("tenant of cluster %q = %q, want %q", tc.cluster, got, tc.want)
		}
	}
}
