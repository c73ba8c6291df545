package prometheus

import "strings"

// SanitizeName turns an OTLP metric name into a Prometheus metric name:
// every character outside [a-zA-Z0-9_:] becomes "_", and a leading digit
// gets a "_" prefix.
func SanitizeName(s string) string { return sanitize(s, true) }

// SanitizeLabel turns a dimension name into a Prometheus label name: every
// character outside [a-zA-Z0-9_] becomes "_", and a leading digit gets a
// "_" prefix.
func SanitizeLabel(s string) string { return sanitize(s, false) }

func sanitize(s string, colon bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	for i, r := range s {
		ok := r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') ||
			(i > 0 && r >= '0' && r <= '9') || (colon && r == ':')
		switch {
		case ok:
			b.WriteRune(r)
		case i == 0 && r >= '0' && r <= '9':
			b.WriteByte('_')
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
