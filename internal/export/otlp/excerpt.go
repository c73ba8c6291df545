package otlp

import "strings"

const (
	// maxReplyExcerpt bounds what a sink's reply (an OTLP/HTTP response
	// body, a gRPC status message) contributes to an export error. The
	// sink is chosen by the DataSink's author and may answer anything;
	// the error reaches the Metric's status and the operator's log.
	maxReplyExcerpt = 128
	// maxErrorLen bounds a whole export error message.
	maxErrorLen = 512
)

// replyMarkers introduce the sink's own words in the SDK's errors.
var replyMarkers = []string{"body: ", "desc = "}

// excerpt shortens the part of err's message that the sink wrote to a
// printable-ASCII excerpt of at most maxReplyExcerpt bytes, and the whole
// message to maxErrorLen. Like redact, it keeps err for errors.Is.
func excerpt(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	clean := msg
	for _, m := range replyMarkers {
		if i := strings.Index(clean, m); i >= 0 {
			clean = clean[:i] + m + printable(clean[i+len(m):], maxReplyExcerpt)
			break
		}
	}
	clean = printable(clean, maxErrorLen)
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

// printable replaces every byte outside printable ASCII with '?' and cuts
// s to max bytes, marking a cut with "...".
func printable(s string, max int) string {
	cut := len(s) > max
	if cut {
		s = s[:max-3]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if cut {
		b = append(b, "..."...)
	}
	return string(b)
}
