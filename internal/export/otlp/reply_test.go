package otlp

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"google.golang.org/grpc"

	"github.com/SAP/metrics-operator/internal/datasink"
)

// hugeReply is a valid OTLP reply of 3 MiB: a partial success whose
// message starts with a marker the SDK would quote.
func hugeReply() pmetricotlp.ExportResponse {
	r := pmetricotlp.NewExportResponse()
	r.PartialSuccess().SetErrorMessage("HOSTILE" + strings.Repeat("x", 3<<20))
	return r
}

type hugeGRPC struct {
	pmetricotlp.UnimplementedGRPCServer
}

func (*hugeGRPC) Export(context.Context, pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	return hugeReply(), nil
}

// TestSinkReplyIsReadBounded has a sink answer each push with a valid
// reply of 3 MiB, over both protocols: the exporter stops reading it at
// maxReplyBytes, so the export fails without the reply's words. Before,
// the SDK read up to 4 MiB of every reply, and a tenant's DataSinks,
// pushing side by side, could each make the operator hold that much.
func TestSinkReplyIsReadBounded(t *testing.T) {
	body, err := hugeReply().MarshalProto()
	if err != nil {
		t.Fatal(err)
	}
	httpSink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-protobuf")
		_, _ = w.Write(body)
	}))
	t.Cleanup(httpSink.Close)

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	grpcSink := grpc.NewServer()
	pmetricotlp.RegisterGRPCServer(grpcSink, &hugeGRPC{})
	go func() { _ = grpcSink.Serve(lis) }()
	t.Cleanup(grpcSink.Stop)

	for _, tc := range []struct {
		protocol datasink.Protocol
		endpoint string
	}{{datasink.ProtocolHTTP, strings.TrimPrefix(httpSink.URL, "http://")}, {datasink.ProtocolGRPC, lis.Addr().String()}} {
		t.Run(string(tc.protocol), func(t *testing.T) {
			pool := newPool(t, Options{})
			target := &datasink.Target{Protocol: tc.protocol, Endpoint: tc.endpoint, URLPath: metricsPath, Insecure: true, Fingerprint: "a"}
			err := pool.Export(t.Context(), testSinkKey, target, onePoint(1))
			if err == nil || strings.Contains(err.Error(), "HOSTILE") {
				t.Fatalf("export error %v, want one that did not read the reply", err)
			}
			t.Log(err)
		})
	}
}
