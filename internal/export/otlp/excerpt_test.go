package otlp

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestExcerptBoundsTheSinksReply(t *testing.T) {
	sdk := errors.New("failed to send metrics to http://sink/v1/metrics: 400 Bad Request (body: " +
		"<html>\x00\x1b[31m" + strings.Repeat("ünïcode and more text ", 100) + ")")
	err := excerpt(fmt.Errorf("export 3 metrics to DataSink ns/sink: %w", sdk))
	msg := err.Error()
	if !errors.Is(err, sdk) {
		t.Error("excerpt lost the wrapped error")
	}
	if len(msg) > maxErrorLen {
		t.Errorf("message is %d bytes, over %d", len(msg), maxErrorLen)
	}
	prefix, reply, ok := strings.Cut(msg, "body: ")
	if !ok || !strings.HasPrefix(prefix, "export 3 metrics to DataSink ns/sink: failed to send metrics") {
		t.Fatalf("context lost: %q", msg)
	}
	if len(reply) > maxReplyExcerpt {
		t.Errorf("reply excerpt is %d bytes, over %d: %q", len(reply), maxReplyExcerpt, reply)
	}
	for _, c := range []byte(msg) {
		if c < 0x20 || c > 0x7e {
			t.Fatalf("non-printable byte %#x in %q", c, msg)
		}
	}

	grpc := excerpt(errors.New("rpc error: code = InvalidArgument desc = " + strings.Repeat("x", 1000)))
	if _, desc, _ := strings.Cut(grpc.Error(), "desc = "); len(desc) > maxReplyExcerpt {
		t.Errorf("gRPC status message excerpt is %d bytes", len(desc))
	}

	short := errors.New("export failed: connection refused")
	if got := excerpt(short); got.Error() != short.Error() {
		t.Errorf("a short printable message was rewritten to %q", got)
	}
}
