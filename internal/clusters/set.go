package clusters

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/clusterfault"
	"github.com/SAP/metrics-operator/internal/clustergate"
	"github.com/SAP/metrics-operator/internal/egress"
	"github.com/SAP/metrics-operator/internal/informers"
	"github.com/SAP/metrics-operator/internal/reason"
	"github.com/SAP/metrics-operator/internal/remotelimit"
	"github.com/SAP/metrics-operator/internal/targets"
)

// Connection is what metrics read one cluster through. It is shared and
// must not be changed.
type Connection struct {
	// Key identifies the connection: the informers' InformerKey.Cluster.
	// The local cluster's key is its name; a remote cluster's is the
	// namespace/name of its RemoteClusterAccess, which no two accesses
	// share (their cluster names may clash), or, for a cluster a
	// FederatedClusterAccess discovered from an object, the access's
	// namespace/name followed by the object's namespace/name.
	Key string
	// Name is the "cluster" dimension of what is read through it.
	Name string
	// Clients are what the shared watches use.
	Clients *informers.Clients
	// Lister is what polling metrics read through.
	Lister *targets.Lister
	// Remote is true for every cluster but the local one.
	Remote bool
}

// Options configures a Set.
type Options struct {
	// Local reaches the cluster the operator runs in.
	Local *rest.Config
	// LocalName is the local cluster's name (the --cluster-name flag).
	LocalName string
	// LocalMapper is the local cluster's REST mapper (the manager's).
	LocalMapper meta.RESTMapper
	// QPS and Burst are the request budget of each remote cluster.
	QPS   float32
	Burst int
	// Egress admits the hosts remote clusters' API servers (and proxies)
	// may be reached at (--cluster-allowed-endpoints); nil admits any.
	Egress *egress.List
	// Restart, if set, is called with a connection's key after it was
	// rebuilt, so that its watches start again through the new clients.
	Restart func(key string)
	// Closed, if set, is called with a connection's key when its last
	// user released it, so that its watches are released too.
	Closed func(key string)
	// MaxObjects bounds the objects one poll's list may return
	// (targets.WithMaxObjects); <= 0: no bound.
	MaxObjects int
	// Limits bounds the bytes of every response of a remote cluster and
	// how long its requests may take (remotelimit.Limits; Source is set
	// per cluster). The local cluster is trusted and not bounded.
	Limits remotelimit.Limits
	// Backoff configures the gate that every read of a remote cluster,
	// and every probe of one, goes through (see Read); the Set fills in
	// its Probe and Changed.
	Backoff clustergate.Options
}

// Set holds the connections. Safe for concurrent use.
type Set struct {
	opts  Options
	local *Connection
	gate  *clustergate.Gate

	mu      sync.Mutex
	entries map[string]*entry
	// users maps each user to the key of the remote connection it holds.
	users       map[string]string
	subscribers []func(key string)
}

// entry is one remote cluster: its definition, and its connection while
// some user holds it.
type entry struct {
	name        string
	def         Definition
	fingerprint string
	err         error
	token       *Token
	http        *http.Client
	conn        *Connection
	users       map[string]bool
}

// New returns a Set with the local connection.
func New(opts Options) (*Set, error) {
	dyn, err := dynamic.NewForConfig(opts.Local)
	if err != nil {
		return nil, fmt.Errorf("local dynamic client: %w", err)
	}
	md, err := informers.NewMetadataClient(opts.Local, nil, true)
	if err != nil {
		return nil, fmt.Errorf("local metadata client: %w", err)
	}
	local := &Connection{Key: opts.LocalName, Name: opts.LocalName,
		Clients: &informers.Clients{Dynamic: dyn, Metadata: md},
		Lister:  targets.NewLister(opts.LocalMapper, dyn, targets.WithMaxObjects(opts.MaxObjects, opts.LocalName))}
	s := &Set{opts: opts, local: local, entries: map[string]*entry{}, users: map[string]string{}}
	gate := opts.Backoff
	// A cluster found back, or gone into back-off, is told like any other
	// change: its metrics are reconciled and follow at once.
	gate.Probe, gate.Changed = s.probe, s.notify
	gate.Tenant = namespaceOf
	s.gate = clustergate.New(gate)
	return s, nil
}

// Start runs the probes of clusters in back-off until the manager stops,
// and then closes every remote cluster's idle HTTP connections, so that a
// stopped operator leaves no connection goroutine behind. As a manager Runnable outside leader
// election it stops after the watches, which let go of their connections
// first.
func (s *Set) Start(ctx context.Context) error {
	s.gate.Run(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, e := range s.entries {
		if e.http != nil {
			e.http.CloseIdleConnections()
		}
	}
	return nil
}

// NeedLeaderElection is false: every replica holds connections.
func (s *Set) NeedLeaderElection() bool { return false }

// Local returns the local cluster's connection.
func (s *Set) Local() *Connection { return s.local }

// Subscribe registers f to be called with a cluster's key whenever its
// definition changed in a way its metrics must see: it became usable or
// unusable, its name changed, or it was rebuilt. f must not block.
func (s *Set) Subscribe(f func(key string)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subscribers = append(s.subscribers, f)
}

// Define sets how to reach the cluster key, named name; a definition whose
// TLS settings cannot be used is an InvalidKubeConfig error, one whose
// server Options.Egress does not admit an EndpointNotAllowed error (and
// the cluster fails, without a connection). A definition that differs
// from the current one only in its token swaps the token into the running
// connection; one whose endpoint or TLS identity differs rebuilds the
// connection, if one is open, and restarts its watches.
func (s *Set) Define(key, name string, d Definition) error {
	if err := s.admit(d.Config); err != nil {
		s.Fail(key, err)
		return err
	}
	fp := d.Fingerprint()
	s.mu.Lock()
	e := s.entries[key]
	if e != nil && e.err == nil && e.fingerprint == fp {
		e.token.Set(d.Token)
		renamed := e.name != name
		if renamed {
			e.name = name
			if e.conn != nil {
				c := *e.conn
				c.Name = name
				e.conn = &c
			}
		}
		s.mu.Unlock()
		if renamed {
			s.notify(key)
		}
		return nil
	}
	token := &Token{}
	token.Set(d.Token)
	cfg := rest.CopyConfig(d.Config)
	cfg.QPS, cfg.Burst = s.opts.QPS, s.opts.Burst
	if s.opts.Egress != nil {
		cfg.Dial = s.dial
	}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return &bearer{token: token, next: rt} })
	limits := s.opts.Limits
	limits.Source = owner(key)
	cfg.Wrap(remotelimit.Wrap(limits))
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		s.mu.Unlock()
		// The TLS library's message may describe the key material.
		err := reason.New(v1alpha1.ReasonInvalidKubeConfig, "its TLS settings cannot be used: check the CA, certificate and key data")
		s.Fail(key, err)
		return err
	}
	if e == nil {
		e = &entry{users: map[string]bool{}}
		s.entries[key] = e
	}
	// Another endpoint or identity is another cluster: tried at once.
	s.gate.Reset(key)
	old := e.http
	rebuild := e.conn != nil
	e.name, e.def, e.fingerprint, e.err, e.token, e.http = name, Definition{Config: cfg}, fp, nil, token, hc
	if rebuild {
		conn, err := s.connect(key, e)
		if err != nil {
			e.err, e.conn = err, nil
		} else {
			e.conn = conn
		}
	}
	s.mu.Unlock()
	if old != nil {
		old.CloseIdleConnections()
	}
	if rebuild && s.opts.Restart != nil {
		s.opts.Restart(key)
	}
	s.notify(key)
	return nil
}

// Fail records that the cluster key cannot be reached as defined (its
// Secret is gone, say): its connection is closed and its watches
// released; metrics that Acquire it get a ClusterUnreachable error
// mentioning err's reason, or an EndpointNotAllowed one when that is
// err's reason.
func (s *Set) Fail(key string, err error) {
	s.mu.Lock()
	e := s.entries[key]
	if e == nil {
		e = &entry{users: map[string]bool{}}
		s.entries[key] = e
	}
	same := e.err != nil && e.err.Error() == err.Error()
	e.err, e.fingerprint = err, ""
	s.gate.Reset(key)
	closed := s.closeLocked(e)
	s.mu.Unlock()
	if closed && s.opts.Closed != nil {
		s.opts.Closed(key)
	}
	if !same {
		s.notify(key)
	}
}

// Remove forgets the cluster key (its RemoteClusterAccess was deleted).
func (s *Set) Remove(key string) {
	s.mu.Lock()
	e := s.entries[key]
	if e == nil {
		s.mu.Unlock()
		return
	}
	closed := s.closeLocked(e)
	for u := range e.users {
		delete(s.users, u)
	}
	delete(s.entries, key)
	s.gate.Reset(key)
	s.forgetNamespaceLocked(namespaceOf(key))
	s.mu.Unlock()
	if closed && s.opts.Closed != nil {
		s.opts.Closed(key)
	}
	s.notify(key)
}

// closeLocked closes e's connection, if open, and reports whether it was.
func (s *Set) closeLocked(e *entry) bool {
	if e.http != nil {
		e.http.CloseIdleConnections()
	}
	if e.conn == nil {
		return false
	}
	e.conn = nil
	return true
}

// Acquire returns the connection of cluster key for user, connecting if
// it is the first user. A user holds one remote connection at a time:
// acquiring another releases the one it held. The local cluster's key
// returns the local connection. A cluster not defined, or failed, is a
// ClusterUnreachable error (EndpointNotAllowed when it failed for that);
// its message names the object that defines the cluster.
func (s *Set) Acquire(key, user string) (*Connection, error) {
	if key == s.local.Key {
		s.Release(user)
		return s.local, nil
	}
	s.mu.Lock()
	e := s.entries[key]
	var conn *Connection
	var err error
	switch {
	case e == nil:
		err = undefined(key)
	case reason.Of(e.err, "") == v1alpha1.ReasonEndpointNotAllowed:
		err = reason.New(v1alpha1.ReasonEndpointNotAllowed,
			"%s reaches its API server at or through an endpoint the operator's --cluster-allowed-endpoints does not admit, "+
				"so nothing is read from it: "+
				"ask the platform admin which cluster endpoints are allowed", owner(key))
	case e.err != nil:
		err = reason.New(v1alpha1.ReasonClusterUnreachable,
			"%s is not ready (%s): see its status", owner(key), reason.Of(e.err, v1alpha1.ReasonClusterUnreachable))
	case e.conn == nil:
		if conn, err = s.connect(key, e); err == nil {
			e.conn = conn
		}
	default:
		conn = e.conn
	}
	if err != nil {
		s.mu.Unlock()
		s.Release(user)
		return nil, err
	}
	prev, held := s.users[user]
	s.users[user] = key
	e.users[user] = true
	s.mu.Unlock()
	if held && prev != key {
		s.releaseFrom(prev, user)
	}
	return conn, nil
}

// Release gives back the remote connection user holds, if any; the last
// user's release closes it.
func (s *Set) Release(user string) {
	s.mu.Lock()
	key, ok := s.users[user]
	s.mu.Unlock()
	if ok {
		s.releaseFrom(key, user)
	}
}

func (s *Set) releaseFrom(key, user string) {
	s.mu.Lock()
	if s.users[user] == key {
		delete(s.users, user)
	}
	e := s.entries[key]
	closed := false
	if e != nil {
		delete(e.users, user)
		if len(e.users) == 0 {
			closed = s.closeLocked(e)
		}
	}
	s.mu.Unlock()
	if closed && s.opts.Closed != nil {
		s.opts.Closed(key)
	}
}

// Clients returns the clients of the open connection key, for the shared
// watches (informers.Options.Clients).
func (s *Set) Clients(key string) (*informers.Clients, error) {
	if key == s.local.Key {
		return s.local.Clients, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.entries[key]; e != nil && e.conn != nil {
		return e.conn.Clients, nil
	}
	return nil, reason.New(v1alpha1.ReasonClusterUnreachable, "no open connection to cluster %s", key)
}

// Open reports the keys of the open remote connections and their users.
func (s *Set) Open() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, e := range s.entries {
		if e.conn != nil {
			out[k] = len(e.users)
		}
	}
	return out
}

// connect builds e's connection over its transport.
func (s *Set) connect(key string, e *entry) (*Connection, error) {
	cfg := e.def.Config
	dyn, err := dynamic.NewForConfigAndClient(cfg, e.http)
	if err == nil {
		var md metadata.Interface
		// The standard decoder, not informers' metadata decoder: a remote
		// API server may be a tenant's, and what it sends is decoded only
		// by code that the wider Kubernetes world fuzzes and runs.
		if md, err = metadata.NewForConfigAndClient(cfg, e.http); err == nil {
			var mapper meta.RESTMapper
			if mapper, err = apiutil.NewDynamicRESTMapper(cfg, e.http); err == nil {
				return &Connection{Key: key, Name: e.name, Remote: true,
					Clients: &informers.Clients{Dynamic: dyn, Metadata: md, ReportUnreachable: true},
					Lister: targets.NewLister(mapper, dyn, targets.WithErrors(clusterfault.Classify),
						targets.WithMaxObjects(s.opts.MaxObjects, key))}, nil
			}
		}
	}
	return nil, reason.New(v1alpha1.ReasonInvalidKubeConfig, "clients for cluster %s cannot be built: check its kubeconfig", key)
}

// Probe asks the cluster key's API server for its API discovery, through
// the transport its metrics use, and classifies the answer: nil, a
// Forbidden error (the credentials are refused) or a ClusterUnreachable
// one. The API server's own message is not quoted: it is not the
// operator's to repeat, and an endpoint that is not an API server may
// answer anything. A cluster in back-off is not asked: Probe fails at
// once, saying when it is tried again, and a probe that finds it
// unreachable puts it into back-off, so that an access controller's
// worker waits on it once per back-off, not at every recheck.
func (s *Set) Probe(ctx context.Context, key string) error {
	if err := s.gate.Blocked(key); err != nil {
		return s.refusal(key, err)
	}
	err := s.probe(ctx, key)
	if !answered(err) && ctx.Err() == nil {
		s.gate.Fail(key)
	}
	return err
}

// probe is Probe without the gate: the gate's own probe at the end of a
// back-off.
func (s *Set) probe(ctx context.Context, key string) error {
	s.mu.Lock()
	e := s.entries[key]
	var hc *http.Client
	var cfg *rest.Config
	if e != nil && e.err == nil {
		hc, cfg = e.http, e.def.Config
	}
	s.mu.Unlock()
	if hc == nil {
		return reason.New(v1alpha1.ReasonClusterUnreachable, "cluster %s is not defined", key)
	}
	dc, err := discovery.NewDiscoveryClientForConfigAndClient(cfg, hc)
	if err != nil {
		return reason.New(v1alpha1.ReasonInvalidKubeConfig, "a client for cluster %s cannot be built", key)
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = dc.RESTClient().Get().AbsPath("/api").Do(ctx).Error()
	if err != nil {
		// The status says only what kind of failure it was; the cause,
		// which may name resolved addresses, is for the platform's eyes.
		log.FromContext(ctx).V(1).Info("Remote cluster probe failed", "cluster", key, "error", err.Error())
	}
	return clusterfault.Classify(err)
}

// admit refuses, with EndpointNotAllowed, a server (or the proxy requests
// to it would go through) that Options.Egress does not admit. Neither the
// server nor the proxy is named: they may come from a Secret, and the
// proxy from the operator's own environment.
func (s *Set) admit(cfg *rest.Config) error {
	if s.opts.Egress == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	server := serverURL(cfg.Host)
	if _, err := s.opts.Egress.Check(ctx, server.Hostname()); err != nil {
		return reason.New(v1alpha1.ReasonEndpointNotAllowed,
			"the cluster's API server (the server of its kubeconfig, or the host of its cluster Secret) is not among the endpoints "+
				"the operator's --cluster-allowed-endpoints admits, so the operator does not connect to it: "+
				"ask the platform admin which cluster endpoints are allowed")
	}
	proxy := cfg.Proxy
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	if p, err := proxy(&http.Request{URL: server}); err == nil && p != nil {
		if _, err := s.opts.Egress.Check(ctx, p.Hostname()); err != nil {
			return reason.New(v1alpha1.ReasonEndpointNotAllowed,
				"the proxy the cluster's API server would be reached through is not among the endpoints "+
					"the operator's --cluster-allowed-endpoints admits, so the operator does not connect to it: "+
					"ask the platform admin which cluster endpoints are allowed")
		}
	}
	return nil
}

// serverURL parses a rest.Config's Host, which may lack a scheme.
func serverURL(host string) *url.URL {
	if u, err := url.Parse(host); err == nil && u.Host != "" {
		return u
	}
	return &url.URL{Scheme: "https", Host: host}
}

// dial opens every connection to a remote cluster's API server, or to the
// proxy in between, when Options.Egress restricts them: the host is
// checked again, and when it was admitted by address rather than by name
// so is the address of the connection, just before connecting, so that a
// name that resolves elsewhere by now (DNS rebinding) reaches nothing.
func (s *Set) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("dialling a remote cluster: %w", err)
	}
	allow, err := s.opts.Egress.Check(ctx, host)
	if err != nil {
		return nil, egress.ErrAddrNotAllowed
	}
	// client-go's own dialer settings.
	d := net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: egress.Control(allow)}
	return d.DialContext(ctx, network, address)
}

// owner names the object that defines the cluster key, for messages to
// the metrics that read it (see Connection.Key).
func owner(key string) string {
	parts := strings.SplitN(key, "/", 3)
	if len(parts) == 3 {
		return fmt.Sprintf("the cluster that FederatedClusterAccess %s/%s discovered from object %s",
			parts[0], parts[1], strings.TrimPrefix(parts[2], "/"))
	}
	return "the RemoteClusterAccess " + key
}

// namespaceOf names the namespace a remote cluster's reads are charged
// to: that of the access that defines it, the first part of its key (see
// Connection.Key).
func namespaceOf(key string) string {
	ns, _, _ := strings.Cut(key, "/")
	return ns
}

// forgetNamespaceLocked drops the self-metrics of namespace ns once no
// cluster of its accesses is left, so that their series stay as few as
// the namespaces with accesses.
func (s *Set) forgetNamespaceLocked(ns string) {
	for k := range s.entries {
		if namespaceOf(k) == ns {
			return
		}
	}
	readsRefused.DeleteLabelValues(ns)
}

// undefined is the error of acquiring a cluster that is not defined.
func undefined(key string) error {
	if strings.Count(key, "/") > 1 {
		return reason.New(v1alpha1.ReasonClusterUnreachable,
			"%s is not known (yet, or any more): see the access's status.clusters", owner(key))
	}
	return reason.New(v1alpha1.ReasonClusterUnreachable,
		"%s does not exist (yet): create it, or fix spec.remoteClusterAccessRef", owner(key))
}

func (s *Set) notify(key string) {
	s.mu.Lock()
	subs := append([]func(string){}, s.subscribers...)
	s.mu.Unlock()
	for _, f := range subs {
		f(key)
	}
}
