// Package preview evaluates a metric once, before it is deployed, the way
// the operator would: `metrics-operator validate -f` checks a file offline
// (the CRD schema with its defaults and rules, selectors, JSONPath, names,
// limits), and `metrics-operator preview -f` also reads the live cluster,
// read-only and with the caller's own credentials, and prints the series
// the metric would export, the condition it would get and what it would
// cost. Both render through the same code as the operator (the
// reconcilers' evaluation, the coordinator's rows), so a preview cannot
// disagree with /metrics.
package preview
