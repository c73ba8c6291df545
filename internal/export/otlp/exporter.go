package otlp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/SAP/metrics-operator/internal/datasink"
)

// maxReplyBytes bounds what is read of a sink's reply to one export. The
// sink is chosen by the DataSink's author and may answer with megabytes
// (the SDK reads up to 4 MiB by default), once per push of each of a
// tenant's DataSinks at the same time; an OTLP reply is a few bytes, and
// an error quotes 128 of them (maxReplyExcerpt).
const maxReplyBytes = 64 << 10

// grpcMaxReconnectDelay caps gRPC's reconnect backoff (120s by default) so
// that exports succeed again soon after a sink comes back, instead of
// failing fast against a channel still waiting to redial.
const grpcMaxReconnectDelay = 5 * time.Second

// exporter is an SDK exporter plus whatever must be released beside it.
type exporter struct {
	sdk         sdkmetric.Exporter
	fingerprint string
	// closeIdle closes the HTTP transport's kept-alive connections, which
	// the SDK's Shutdown leaves open.
	closeIdle func()
}

func (e *exporter) shutdown(ctx context.Context) error {
	err := e.sdk.Shutdown(ctx)
	if e.closeIdle != nil {
		e.closeIdle()
	}
	return err
}

// newExporter builds an exporter for t. Every setting is given explicitly so
// that OTEL_EXPORTER_OTLP_* variables in the operator's environment cannot
// change where, or with which credentials, a DataSink's data goes.
func newExporter(ctx context.Context, t *datasink.Target, timeout time.Duration) (*exporter, error) {
	if t.Endpoint == "" {
		return nil, errors.New("no endpoint")
	}
	// Copied so that a caller mutating the Target later cannot change a
	// live exporter; the SDK keeps the map.
	headers := maps.Clone(t.Headers)
	if headers == nil {
		headers = map[string]string{}
	}
	switch t.Protocol {
	case datasink.ProtocolHTTP:
		return newHTTPExporter(ctx, t, headers, timeout)
	case datasink.ProtocolGRPC:
		return newGRPCExporter(ctx, t, headers, timeout)
	default:
		return nil, fmt.Errorf("unsupported protocol %q", t.Protocol)
	}
}

func newHTTPExporter(ctx context.Context, t *datasink.Target, headers map[string]string, timeout time.Duration) (*exporter, error) {
	transport := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer(t, timeout).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ExpectContinueTimeout: time.Second,
	}
	opts := []otlpmetrichttp.Option{
		otlpmetrichttp.WithEndpoint(t.Endpoint),
		otlpmetrichttp.WithURLPath(t.URLPath),
		otlpmetrichttp.WithHeaders(headers),
		otlpmetrichttp.WithTimeout(timeout),
		otlpmetrichttp.WithRetry(otlpmetrichttp.RetryConfig{Enabled: false}),
		otlpmetrichttp.WithCompression(otlpmetrichttp.NoCompression),
		otlpmetrichttp.WithMaxResponseSize(maxReplyBytes),
		// Our own client, so that its connections can be closed on
		// shutdown. It takes precedence over the SDK's TLS and timeout
		// options; both are set on it below.
		otlpmetrichttp.WithHTTPClient(&http.Client{Transport: transport, Timeout: timeout, CheckRedirect: noRedirects}),
		// Clears a TLS config the SDK may have read from the environment,
		// which it would otherwise refuse to combine with WithInsecure.
		otlpmetrichttp.WithTLSClientConfig(nil),
	}
	if t.Insecure {
		opts = append(opts, otlpmetrichttp.WithInsecure())
	} else {
		transport.TLSClientConfig = clientTLS(t.TLS)
	}
	sdk, err := otlpmetrichttp.New(ctx, opts...)
	if err != nil {
		transport.CloseIdleConnections()
		return nil, err
	}
	return &exporter{sdk: sdk, fingerprint: t.Fingerprint, closeIdle: transport.CloseIdleConnections}, nil
}

func newGRPCExporter(ctx context.Context, t *datasink.Target, headers map[string]string, timeout time.Duration) (*exporter, error) {
	reconnect := backoff.DefaultConfig
	reconnect.MaxDelay = grpcMaxReconnectDelay
	// One WithDialOption call: each call replaces the previous one's list.
	dialOpts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			return dialer(t, timeout).DialContext(ctx, "tcp", addr)
		}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: timeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxReplyBytes)),
	}
	opts := []otlpmetricgrpc.Option{
		otlpmetricgrpc.WithEndpoint(t.Endpoint),
		otlpmetricgrpc.WithHeaders(headers),
		otlpmetricgrpc.WithTimeout(timeout),
		otlpmetricgrpc.WithRetry(otlpmetricgrpc.RetryConfig{Enabled: false}),
	}
	if t.Insecure {
		// The dial option also wins over credentials the SDK may have read
		// from the environment, which it would prefer to WithInsecure.
		opts = append(opts, otlpmetricgrpc.WithInsecure())
		dialOpts = append(dialOpts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	} else {
		opts = append(opts, otlpmetricgrpc.WithTLSCredentials(credentials.NewTLS(clientTLS(t.TLS))))
	}
	opts = append(opts, otlpmetricgrpc.WithDialOption(dialOpts...))
	sdk, err := otlpmetricgrpc.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	return &exporter{sdk: sdk, fingerprint: t.Fingerprint}, nil
}

// noRedirects makes a redirect the answer: an OTLP receiver has no reason
// to send one, and following it would let a sink admitted by name by
// --datasink-allowed-endpoints send the exporter to any other address.
func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// dialer opens the sink's connections. When the DataSink was admitted by
// address (datasink.Egress), every address is checked again just before
// connecting, so a name that resolves elsewhere by now (DNS rebinding) is
// refused without a connection.
func dialer(t *datasink.Target, timeout time.Duration) *net.Dialer {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if allow := t.AllowAddr; allow != nil {
		d.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !allow(ap.Addr()) {
				return errAddrNotAllowed
			}
			return nil
		}
	}
	return d
}

// errAddrNotAllowed names no address: the error reaches the Metric's status.
var errAddrNotAllowed = errors.New("the endpoint now resolves to an address --datasink-allowed-endpoints does not admit; not connecting")

// clientTLS returns a private copy of cfg, or the system roots when the
// DataSink configures no TLS material of its own.
func clientTLS(cfg *tls.Config) *tls.Config {
	if cfg == nil {
		return &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return cfg.Clone()
}
