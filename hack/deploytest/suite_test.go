package deploytest

import (
	"path/filepath"
	"testing"

	"github.com/SAP/metrics-operator/internal/testing/testenv"
)

// env is the control plane the rendered chart is applied to; nil with
// -short.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// chartDir is the chart under test.
func chartDir() string { return filepath.Join(testenv.RepoRoot(), "charts", "metrics-operator") }
