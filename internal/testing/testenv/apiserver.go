package testenv

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// APIServer is a second kube-apiserver process on the control plane's
// etcd, with the same certificates, users and flags as the first, that a
// test may stop and start again on the same address. A component under
// test talks to it while the test writes through Env.Client, which keeps
// working while this one is down; that is how objects change during an
// API server outage. Every request for ConfigMaps it serves is written to
// an audit log, so a test counts the LISTs a component made.
type APIServer struct {
	// Host is the https://127.0.0.1:port address it serves.
	Host string

	args     []string
	auditLog string
	admin    *rest.Config
	cmd      *exec.Cmd
	done     chan struct{}
	logFile  *os.File
}

// StartAPIServer starts a second API server. flags override or add to
// the first one's command line (without the leading dashes), for example
// {"watch-cache": "false"}. It is stopped when the Env stops.
func (e *Env) StartAPIServer(dir string, flags map[string]string) (*APIServer, error) {
	first, err := e.apiServerArgs()
	if err != nil {
		return nil, err
	}
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	policy := filepath.Join(dir, "audit-policy.yaml")
	if err := os.WriteFile(policy, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	s := &APIServer{Host: "https://" + addr, auditLog: filepath.Join(dir, "audit.log")}
	over := map[string]string{
		"secure-port":       port,
		"audit-policy-file": policy,
		"audit-log-path":    s.auditLog,
		"audit-log-format":  "json",
		"audit-log-mode":    "blocking",
	}
	for k, v := range flags {
		over[k] = v
	}
	s.args = overrideFlags(first, over)
	s.admin = rest.CopyConfig(e.Config)
	s.admin.Host = s.Host
	if s.logFile, err = os.Create(filepath.Join(dir, "kube-apiserver.log")); err != nil {
		return nil, err
	}
	e.cleanups = append(e.cleanups, s.close)
	return s, s.Start()
}

// auditPolicy records every ConfigMap request (without bodies) and
// nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: Metadata
  resources: [{group: "", resources: ["configmaps"]}]
- level: None
`

// Start starts the process and waits until it is ready.
func (s *APIServer) Start() error {
	if s.cmd != nil && !s.exited() {
		return errors.New("the API server is already running")
	}
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = s.logFile, s.logFile
	// If the test binary dies, the kernel stops the API server.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		return err
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(s.cmd, s.done)
	return s.WaitReady(time.Minute)
}

// WaitReady waits until the API server answers /readyz.
func (s *APIServer) WaitReady(timeout time.Duration) error {
	client, err := rest.HTTPClientFor(s.admin)
	if err != nil {
		return err
	}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(timeout)
	for {
		if s.exited() {
			log, _ := os.ReadFile(s.logFile.Name())
			return fmt.Errorf("kube-apiserver exited. Its log ends:\n%s", lastLines(log, 40))
		}
		resp, err := client.Get(s.Host + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready within %s: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopGrace is how long Stop lets the API server shut down by itself.
// kube-apiserver stops listening at once on SIGTERM but, without
// --shutdown-watch-termination-grace-period, keeps serving the watches
// already open until its request timeout (60 s) ends them; a test that
// stops it wants it gone, so Stop kills it after this grace.
const stopGrace = 5 * time.Second

// Stop stops the process: SIGTERM, as in a rolling update, then SIGKILL
// after stopGrace. When it returns the process has exited, its
// connections are closed and its address refuses new ones.
func (s *APIServer) Stop() error {
	if s.cmd == nil || s.exited() {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(stopGrace):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	return nil
}

func (s *APIServer) close() error {
	err := s.Stop()
	return errors.Join(err, s.logFile.Close())
}

func (s *APIServer) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// WriteKubeconfig provisions a user (in group system:masters) and writes
// a kubeconfig for it that reaches this API server, to dir/kubeconfig.
// The user name is what CountRequests filters by.
func (s *APIServer) WriteKubeconfig(e *Env, dir, user string) (string, error) {
	u, err := e.AddUser(envtest.User{Name: user, Groups: []string{"system:masters"}})
	if err != nil {
		return "", fmt.Errorf("creating user %s: %w", user, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return "", err
	}
	for _, c := range cfg.Clusters {
		c.Server = s.Host
	}
	path, err := filepath.Abs(filepath.Join(dir, "kubeconfig"))
	if err != nil {
		return "", err
	}
	return path, clientcmd.WriteToFile(*cfg, path)
}

// auditEvent is the part of an audit event Requests reads.
type auditEvent struct {
	AuditID    string `json:"auditID"`
	RequestURI string `json:"requestURI"`
	Verb       string `json:"verb"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
	} `json:"objectRef"`
	Received time.Time `json:"requestReceivedTimestamp"`
}

// Request is one ConfigMap request the API server served.
type Request struct {
	// Verb is the API verb: list, watch, get, ...
	Verb string
	// Received is when the API server received it.
	Received time.Time
}

// Requests returns the ConfigMap requests user made in namespace, over
// every run of this API server, in the order they were received. A
// paginated LIST is one request per page, as the API server sees it; a
// list streamed as a watch's initial events (sendInitialEvents) has the
// verb "watchlist". A request is one however many stages of it the log
// records (a watch that ended has two).
func (s *APIServer) Requests(user, namespace string) ([]Request, error) {
	f, err := os.Open(s.auditLog)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Request
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev auditEvent
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.ObjectRef == nil {
			continue
		}
		if ev.User.Username != user || ev.ObjectRef.Resource != "configmaps" || ev.ObjectRef.Namespace != namespace || seen[ev.AuditID] {
			continue
		}
		seen[ev.AuditID] = true
		verb := ev.Verb
		if verb == "watch" && strings.Contains(ev.RequestURI, "sendInitialEvents=true") {
			verb = "watchlist"
		}
		out = append(out, Request{Verb: verb, Received: ev.Received})
	}
	slices.SortStableFunc(out, func(a, b Request) int { return a.Received.Compare(b.Received) })
	return out, sc.Err()
}

// CountRequests counts the ConfigMap requests user made with verb in
// namespace (see Requests).
func (s *APIServer) CountRequests(user, verb, namespace string) (int, error) {
	reqs, err := s.Requests(user, namespace)
	n := 0
	for _, r := range reqs {
		if r.Verb == verb {
			n++
		}
	}
	return n, err
}

// apiServerArgs returns the command line of the control plane's
// kube-apiserver, a child process of this test binary: the one serving
// e.Config.Host, since a test may run several control planes.
func (e *Env) apiServerArgs() ([]string, error) {
	u, err := url.Parse(e.Config.Host)
	if err != nil {
		return nil, err
	}
	port := "--secure-port=" + u.Port()
	pids, err := childPIDs("kube-apiserver")
	if err != nil {
		return nil, err
	}
	for _, pid := range pids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		if slices.Contains(args, port) {
			return args, nil
		}
	}
	return nil, fmt.Errorf("no kube-apiserver started by this test binary serves %s", e.Config.Host)
}

// childPIDs finds the child processes of this process named comm.
func childPIDs(comm string) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var out []int
	for _, d := range entries {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 || s[open+1:end] != comm {
			continue
		}
		if ppid, _ := strconv.Atoi(fields[1]); ppid == self {
			out = append(out, pid)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no %s process started by this test binary", comm)
	}
	return out, nil
}

// overrideFlags sets --k=v for every k in over, replacing the flag where
// args has it and appending it otherwise.
func overrideFlags(args []string, over map[string]string) []string {
	out := []string{args[0]}
	seen := map[string]bool{}
	for _, a := range args[1:] {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if v, ok := over[name]; ok {
			if !seen[name] {
				out = append(out, "--"+name+"="+v)
				seen[name] = true
			}
			continue
		}
		out = append(out, a)
	}
	for k, v := range over {
		if !seen[k] {
			out = append(out, "--"+k+"="+v)
		}
	}
	return out
}

// CompactEtcd compacts etcd's history up to its current revision, through
// etcd's JSON gateway: every watch resuming from an older resource
// version then gets 410 Gone and must list again.
func (e *Env) CompactEtcd(ctx context.Context) (int64, error) {
	base := e.env.ControlPlane.Etcd.URL.String()
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	// A range over one key reports the store's current revision.
	if err := postJSON(ctx, base+"/v3/kv/range", map[string]any{"key": "Lw==", "limit": 1}, &rng); err != nil {
		return 0, err
	}
	rev, err := strconv.ParseInt(rng.Header.Revision, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("etcd revision %q: %w", rng.Header.Revision, err)
	}
	if err := postJSON(ctx, base+"/v3/kv/compaction", map[string]any{"revision": rev, "physical": true}, nil); err != nil {
		return 0, err
	}
	return rev, nil
}

func postJSON(ctx context.Context, url string, body, into any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(string(data)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s", url, resp.Status)
	}
	if into == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(into)
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
