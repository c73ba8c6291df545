package preview

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/SAP/metrics-operator/internal/controllers"
	"github.com/SAP/metrics-operator/internal/evaluation"
	promexport "github.com/SAP/metrics-operator/internal/export/prometheus"
	"github.com/SAP/metrics-operator/internal/targets"
)

// Exit codes of the preview and validate commands, for CI steps.
const (
	// ExitReady: every metric would be Ready (validate: passes).
	ExitReady = 0
	// ExitNotReady: some metric would not be Ready; its reason is printed.
	ExitNotReady = 1
	// ExitError: the command could not run (flags, input, the cluster).
	ExitError = 2
)

// Limits are the operator's defaults for the checks a preview makes.
type Limits struct {
	MaxSeriesPerMetric, MaxLabelValueLength, MaxSeriesTotal int
}

// Main runs `metrics-operator preview|validate` with args (the words
// after the command) and returns the exit code.
func Main(ctx context.Context, command string, args []string, stdin io.Reader, stdout, stderr io.Writer, limits Limits) int {
	fs := flag.NewFlagSet("metrics-operator "+command, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var file, output, namespace, kubeconfig, kubeContext, cluster string
	for _, n := range []string{"f", "filename"} {
		fs.StringVar(&file, n, "", "File with the metric objects (YAML or JSON, several documents allowed); - reads stdin.")
	}
	for _, n := range []string{"o", "output"} {
		fs.StringVar(&output, n, "table", "Output format: table or json.")
	}
	for _, n := range []string{"n", "namespace"} {
		fs.StringVar(&namespace, n, "default", "Namespace of objects that name none.")
	}
	fs.StringVar(&cluster, "cluster-name", "local", "Value of the cluster dimension, as the operator's --cluster-name.")
	fs.IntVar(&limits.MaxSeriesPerMetric, "max-series-per-metric", limits.MaxSeriesPerMetric, "As the operator's flag.")
	fs.IntVar(&limits.MaxLabelValueLength, "max-label-value-length", limits.MaxLabelValueLength, "As the operator's flag.")
	if command == "preview" {
		fs.StringVar(&kubeconfig, "kubeconfig", "", "Kubeconfig of the cluster to read (default: $KUBECONFIG, ~/.kube/config, in-cluster).")
		fs.StringVar(&kubeContext, "context", "", "Kubeconfig context to use.")
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: metrics-operator %s -f FILE [flags]\n\n", command)
		if command == "preview" {
			fmt.Fprintln(stderr, "Evaluates each metric in FILE once against the live cluster, read-only and with your own credentials, and prints the series it would export, the condition it would get and what it would cost.")
		} else {
			fmt.Fprintln(stderr, "Checks each metric in FILE offline: the CRD schema with its defaults and rules, selectors, JSONPath, names and limits.")
		}
		fmt.Fprintf(stderr, "Exit codes: %d every metric would be Ready, %d some would not (reason printed), %d the command could not run.\n\nFlags:\n",
			ExitReady, ExitNotReady, ExitError)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return ExitError
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return ExitError
	}
	if file == "" || fs.NArg() > 0 || (output != "table" && output != "json") {
		fs.Usage()
		return ExitError
	}
	objs, err := readObjects(file, stdin)
	if err != nil {
		return fail(err)
	}
	// The operator refuses the names of the families it serves itself;
	// this process registers the same ones.
	names, err := promexport.Shared(ctrlmetrics.Registry)
	if err != nil {
		return fail(err)
	}
	e := &Evaluator{ClusterName: cluster, Namespace: namespace, Guard: controllers.Guard{Names: names, Limits: evaluation.Limits{
		MaxSeries: limits.MaxSeriesPerMetric, MaxValueLength: limits.MaxLabelValueLength,
		Budget: evaluation.NewBudget(limits.MaxSeriesTotal),
	}}}
	var lister *targets.Lister
	if command == "preview" {
		if lister, err = newLister(kubeconfig, kubeContext); err != nil {
			return fail(err)
		}
	}
	results := make([]Result, 0, len(objs))
	code := ExitReady
	for _, obj := range objs {
		var r Result
		if lister == nil {
			r, _ = e.Validate(ctx, obj)
		} else if r, err = e.Preview(ctx, lister, obj); err != nil {
			return fail(err)
		}
		if !r.OK() {
			code = ExitNotReady
		}
		results = append(results, r)
	}
	if output == "json" {
		err = WriteJSON(stdout, results)
	} else {
		err = WriteTable(stdout, results)
	}
	if err != nil {
		return fail(err)
	}
	return code
}

func readObjects(file string, stdin io.Reader) ([]*unstructured.Unstructured, error) {
	if file == "-" {
		return Decode(stdin)
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }()
	return Decode(f)
}

// newLister reads the cluster of the kubeconfig as the operator's
// reconcilers read theirs: a discovery-backed REST mapper and a dynamic
// client, with the caller's credentials.
func newLister(kubeconfig, kubeContext string) (*targets.Lister, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(cfg, hc)
	if err != nil {
		return nil, fmt.Errorf("reaching the cluster: %w", err)
	}
	dyn, err := dynamic.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	return targets.NewLister(mapper, dyn), nil
}
