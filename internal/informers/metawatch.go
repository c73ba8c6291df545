package informers

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
)

// NewMetadataClient returns a client of the metadata API, as
// metadata.NewForConfigAndClient does (hc nil: an HTTP client of its
// own), whose watches decode each object's protobuf straight into the
// map the evaluation engine reads (a metaObject). The standard client
// decodes every field into a PartialObjectMetadata, managedFields
// included, which no metric reads and which is most of a typical
// object's metadata, and the informer then copies the rest into maps
// (metadataMap): at 100,000 objects about a quarter of a start's CPU.
// Everything but watches, and any watch event that is not a
// PartialObjectMetadata (a Status, an object of another encoding), goes
// through the standard client and decoder.
//
// With uncompressed, its watches ask the API server not to compress
// them (Accept-Encoding: identity): for the operator's own cluster, on
// the network of its API server, gzip costs both sides CPU (a start's
// streamed list of 100,000 objects compressed by the API server and
// decompressed here) to save bandwidth that is plentiful there. The
// operator uses it for its own cluster only (internal/clusters): remote
// clusters, which a tenant may run, keep the standard client.
func NewMetadataClient(cfg *rest.Config, hc *http.Client, uncompressed bool) (metadata.Interface, error) {
	if hc == nil {
		var err error
		if hc, err = rest.HTTPClientFor(metadata.ConfigFor(cfg)); err != nil {
			return nil, err
		}
	}
	md, err := metadata.NewForConfigAndClient(cfg, hc)
	if err != nil {
		return nil, err
	}
	wc := metadata.ConfigFor(cfg)
	// As metadata.NewForConfigAndClient: requests name absolute paths.
	wc.GroupVersion = &schema.GroupVersion{}
	wc.APIPath = "/this-value-should-never-be-sent"
	wc.NegotiatedSerializer = metaCodecs
	rc, err := rest.RESTClientForConfigAndClient(wc, hc)
	if err != nil {
		return nil, err
	}
	return &metadataClient{Interface: md, watches: rc, uncompressed: uncompressed}, nil
}

// metadataClient is metadata.Interface with metaObject watches.
type metadataClient struct {
	metadata.Interface
	watches      *rest.RESTClient
	uncompressed bool
}

func (c *metadataClient) Resource(gvr schema.GroupVersionResource) metadata.Getter {
	return metadataResource{ResourceInterface: c.Interface.Resource(gvr), c: c, gvr: gvr}
}

// metadataResource is one resource in one namespace ("" for all).
type metadataResource struct {
	metadata.ResourceInterface
	c   *metadataClient
	gvr schema.GroupVersionResource
	ns  string
}

func (r metadataResource) Namespace(ns string) metadata.ResourceInterface {
	r.ResourceInterface = r.c.Interface.Resource(r.gvr).Namespace(ns)
	r.ns = ns
	return r
}

// metadataAccept is what the metadata client's watches accept.
const metadataAccept = "application/vnd.kubernetes.protobuf;as=PartialObjectMetadata;g=meta.k8s.io;v=v1," +
	"application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json"

// Watch is the metadata client's Watch through metaCodecs.
func (r metadataResource) Watch(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	var timeout time.Duration
	if opts.TimeoutSeconds != nil {
		timeout = time.Duration(*opts.TimeoutSeconds) * time.Second
	}
	opts.Watch = true
	path := []string{"api"}
	if r.gvr.Group != "" {
		path = []string{"apis", r.gvr.Group}
	}
	path = append(path, r.gvr.Version)
	if r.ns != "" {
		path = append(path, "namespaces", r.ns)
	}
	path = append(path, r.gvr.Resource)
	req := r.c.watches.Get().AbsPath(path...).SetHeader("Accept", metadataAccept)
	if r.c.uncompressed {
		// Set, the header keeps Go's transport from asking for gzip.
		req = req.SetHeader("Accept-Encoding", "identity")
	}
	return req.SpecificallyVersionedParams(&opts, parameterCodec, parameterVersion).Timeout(timeout).Watch(ctx)
}

// parameterCodec encodes ListOptions into the query as the metadata
// client does.
var (
	parameterVersion = schema.GroupVersion{Version: "v1"}
	parameterCodec   = func() runtime.ParameterCodec {
		s := runtime.NewScheme()
		metav1.AddToGroupVersion(s, parameterVersion)
		return runtime.NewParameterCodec(s)
	}()
)

// metaCodecs is the metadata client's serializers with metaDecoder in
// place of the protobuf one's decoder, and its watch frames read through
// a buffer (bufferedFramer).
var metaCodecs = func() runtime.NegotiatedSerializer {
	base := metainternalversionscheme.Codecs.WithoutConversion()
	infos := slices.Clone(base.SupportedMediaTypes())
	for i := range infos {
		if infos[i].MediaType == runtime.ContentTypeProtobuf {
			infos[i].Serializer = metaDecoder{Serializer: infos[i].Serializer}
			if s := infos[i].StreamSerializer; s != nil {
				buffered := *s
				buffered.Framer = bufferedFramer{Framer: s.Framer}
				infos[i].StreamSerializer = &buffered
			}
		}
	}
	return negotiated{NegotiatedSerializer: base, infos: infos}
}()

// bufferedFramer reads a watch's frames through a buffer. Unbuffered,
// each frame of a few hundred bytes is two reads of the HTTP/2 response
// body (its length, then the frame), and the body sends the API server a
// flow-control window update, flushed to the connection, for every 4 KiB
// read: at 100,000 objects thousands of writes. Buffered, a read takes
// what has arrived, up to the buffer's size, and one update follows. A
// read returns as soon as anything has arrived, so no event waits for
// the buffer to fill.
type bufferedFramer struct{ runtime.Framer }

// watchReadBuffer is the buffer of one watch's response.
const watchReadBuffer = 32 << 10

func (f bufferedFramer) NewFrameReader(r io.ReadCloser) io.ReadCloser {
	return f.Framer.NewFrameReader(bufferedBody{Reader: bufio.NewReaderSize(r, watchReadBuffer), Closer: r})
}

// bufferedBody is a response body read through a buffer.
type bufferedBody struct {
	*bufio.Reader
	io.Closer
}

type negotiated struct {
	runtime.NegotiatedSerializer
	infos []runtime.SerializerInfo
}

func (n negotiated) SupportedMediaTypes() []runtime.SerializerInfo { return n.infos }

// metaDecoder decodes a PartialObjectMetadata into a metaObject and
// anything else as the protobuf serializer it wraps does.
type metaDecoder struct{ runtime.Serializer }

var (
	partialMetadataGVK        = metav1.SchemeGroupVersion.WithKind("PartialObjectMetadata")
	partialMetadataAPIVersion = partialMetadataGVK.GroupVersion().String()
)

func (d metaDecoder) Decode(data []byte, gvk *schema.GroupVersionKind, into runtime.Object) (runtime.Object, *schema.GroupVersionKind, error) {
	if into == nil {
		if md, ok := decodePartialMetadata(data); ok {
			found := partialMetadataGVK
			return &metaObject{md: md}, &found, nil
		}
	}
	return d.Serializer.Decode(data, gvk, into)
}

// metaObject is a metadata-only object as metaDecoder decodes it: its
// metadata as metadataMap makes it.
type metaObject struct {
	md map[string]any
}

var (
	_ runtime.Object            = (*metaObject)(nil)
	_ metav1.ObjectMetaAccessor = (*metaObject)(nil)
)

func (o *metaObject) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (o *metaObject) DeepCopyObject() runtime.Object {
	return &metaObject{md: runtime.DeepCopyJSON(o.md)}
}

// GetObjectMeta gives the Reflector and meta.Accessor what they read:
// name, namespace, UID, resource version and annotations (a bookmark's).
func (o *metaObject) GetObjectMeta() metav1.Object {
	m := &metav1.ObjectMeta{}
	m.Name, _ = o.md["name"].(string)
	m.Namespace, _ = o.md["namespace"].(string)
	uid, _ := o.md["uid"].(string)
	m.UID = types.UID(uid)
	m.ResourceVersion, _ = o.md["resourceVersion"].(string)
	if a, ok := o.md["annotations"].(map[string]any); ok {
		m.Annotations = make(map[string]string, len(a))
		for k, v := range a {
			m.Annotations[k], _ = v.(string)
		}
	}
	return m
}

// protobufPrefix starts every protobuf-encoded Kubernetes object.
var protobufPrefix = []byte{0x6b, 0x38, 0x73, 0x00}

// decodePartialMetadata decodes a protobuf PartialObjectMetadata (the
// runtime.Unknown envelope the API server sends, after the "k8s\0"
// prefix) into metadataMap's map; ok is false for anything else, or
// anything it does not read exactly as the generated decoder would,
// which the caller then leaves to that decoder.
func decodePartialMetadata(data []byte) (md map[string]any, ok bool) {
	rest, ok := bytes.CutPrefix(data, protobufPrefix)
	if !ok {
		return nil, false
	}
	var apiVersion, kind, raw []byte
	for len(rest) > 0 {
		num, typ, v, n := field(rest)
		if n < 0 {
			return nil, false
		}
		rest = rest[n:]
		switch num {
		case 1: // typeMeta
			if typ != wireBytes {
				return nil, false
			}
			if apiVersion, kind, ok = typeMeta(v); !ok {
				return nil, false
			}
		case 2: // raw
			if typ != wireBytes {
				return nil, false
			}
			raw = v
		case 3: // contentEncoding: none is ever set on these
			if typ != wireBytes || len(v) > 0 {
				return nil, false
			}
		case 4: // contentType: not read, but the generated decoder refuses another wire type
			if typ != wireBytes {
				return nil, false
			}
		}
	}
	if string(kind) != partialMetadataGVK.Kind || string(apiVersion) != partialMetadataAPIVersion {
		return nil, false
	}
	strs := &interned
	strs.mu.Lock()
	defer strs.mu.Unlock()
	m := objectMeta{strs: strs}
	for len(raw) > 0 {
		num, typ, v, n := field(raw)
		if n < 0 {
			return nil, false
		}
		raw = raw[n:]
		if num == 1 { // metadata; a second one merges, as in the generated decoder
			if typ != wireBytes || !m.decode(v) {
				return nil, false
			}
		}
	}
	return m.toMap(), true
}

// typeMeta reads a runtime.TypeMeta.
func typeMeta(b []byte) (apiVersion, kind []byte, ok bool) {
	for len(b) > 0 {
		num, typ, v, n := field(b)
		if n < 0 {
			return nil, nil, false
		}
		b = b[n:]
		if num == 1 || num == 2 {
			if typ != wireBytes {
				return nil, nil, false
			}
			if num == 1 {
				apiVersion = v
			} else {
				kind = v
			}
		}
	}
	return apiVersion, kind, true
}

// objectMeta accumulates the fields of an ObjectMeta as the generated
// decoder does: a singular field takes its last value, maps and lists
// collect every entry.
type objectMeta struct {
	strs                                     *internTable
	namespace                                any // a string, boxed once for every object
	name, generateName, uid, resourceVersion string
	generation                               int64
	creation                                 metav1.Time
	deletion                                 *metav1.Time
	gracePeriod                              *int64
	labels, annotations                      map[string]any
	ownerRefs                                []any
	finalizers                               []any
}

// decode reads one ObjectMeta message into m.
func (m *objectMeta) decode(b []byte) bool {
	strs := m.strs
	for len(b) > 0 {
		num, typ, v, n := field(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var ok bool
		switch num {
		case 1:
			m.name, ok = str(typ, v)
		case 2:
			m.generateName, ok = str(typ, v)
		case 3:
			if ok = typ == wireBytes; ok {
				m.namespace = strs.boxed(v)
			}
		case 5:
			m.uid, ok = str(typ, v)
		case 6:
			m.resourceVersion, ok = str(typ, v)
		case 7:
			if ok = typ == wireVarint; ok {
				m.generation = int64(varint(v))
			}
		case 8:
			ok = typ == wireBytes && m.creation.Unmarshal(v) == nil
		case 9:
			if m.deletion == nil {
				m.deletion = &metav1.Time{}
			}
			ok = typ == wireBytes && m.deletion.Unmarshal(v) == nil
		case 10:
			if ok = typ == wireVarint; ok {
				g := int64(varint(v))
				m.gracePeriod = &g
			}
		case 11:
			ok = typ == wireBytes && mapEntry(&m.labels, v, strs, true)
		case 12:
			// Annotation values are mostly unique (checksums, times,
			// whole objects): not worth a place in the table.
			ok = typ == wireBytes && mapEntry(&m.annotations, v, strs, false)
		case 13:
			var ref map[string]any
			if ref, ok = ownerReference(typ, v, strs); ok {
				m.ownerRefs = append(m.ownerRefs, ref)
			}
		case 14:
			if ok = typ == wireBytes; ok {
				m.finalizers = append(m.finalizers, strs.boxed(v))
			}
		case 4, 17:
			// selfLink, managedFields: nothing a metric reads, but the
			// generated decoder refuses another wire type for them.
			ok = typ == wireBytes
		default:
			// Fields of later releases: nothing a metric reads
			// (TestMetadataMapKnowsEveryField).
			ok = true
		}
		if !ok {
			return false
		}
	}
	return true
}

// toMap is metadataMap of the ObjectMeta m read.
func (m *objectMeta) toMap() map[string]any {
	out := make(map[string]any, 8)
	putString(out, "name", m.name)
	putString(out, "generateName", m.generateName)
	if ns, _ := m.namespace.(string); ns != "" {
		out["namespace"] = m.namespace
	}
	putString(out, "uid", m.uid)
	putString(out, "resourceVersion", m.resourceVersion)
	if m.generation != 0 {
		out["generation"] = m.generation
	}
	if !m.creation.IsZero() {
		out["creationTimestamp"] = m.strs.timestamp(m.creation)
	}
	if m.deletion != nil {
		out["deletionTimestamp"] = m.deletion.ToUnstructured()
	}
	if m.gracePeriod != nil {
		out["deletionGracePeriodSeconds"] = *m.gracePeriod
	}
	if len(m.labels) > 0 {
		out["labels"] = m.labels
	}
	if len(m.annotations) > 0 {
		out["annotations"] = m.annotations
	}
	if len(m.ownerRefs) > 0 {
		out["ownerReferences"] = m.ownerRefs
	}
	if len(m.finalizers) > 0 {
		out["finalizers"] = m.finalizers
	}
	return out
}

// mapEntry adds one entry of a map<string, string> to *into, its value
// interned if internValue; a missing key or value is "".
func mapEntry(into *map[string]any, b []byte, strs *internTable, internValue bool) bool {
	var key, value []byte
	for len(b) > 0 {
		num, typ, v, n := field(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		if num == 1 || num == 2 {
			if typ != wireBytes {
				return false
			}
			if num == 1 {
				key = v
			} else {
				value = v
			}
		}
	}
	if *into == nil {
		*into = make(map[string]any, 4)
	}
	if internValue {
		(*into)[strs.intern(key)] = strs.boxed(value)
	} else {
		(*into)[strs.intern(key)] = string(value)
	}
	return true
}

// ownerReference reads one OwnerReference as metadataMap renders it.
func ownerReference(typ wireType, b []byte, strs *internTable) (map[string]any, bool) {
	if typ != wireBytes {
		return nil, false
	}
	var apiVersion, kind, name, uid string
	var controller, block *bool
	for len(b) > 0 {
		num, typ, v, n := field(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		ok := true
		switch num {
		case 1:
			if ok = typ == wireBytes; ok {
				kind = strs.intern(v)
			}
		case 3:
			name, ok = str(typ, v)
		case 4:
			uid, ok = str(typ, v)
		case 5:
			if ok = typ == wireBytes; ok {
				apiVersion = strs.intern(v)
			}
		case 6, 7:
			if ok = typ == wireVarint; ok {
				set := varint(v) != 0
				if num == 6 {
					controller = &set
				} else {
					block = &set
				}
			}
		}
		if !ok {
			return nil, false
		}
	}
	ref := map[string]any{"apiVersion": apiVersion, "kind": kind, "name": name, "uid": uid}
	if controller != nil {
		ref["controller"] = *controller
	}
	if block != nil {
		ref["blockOwnerDeletion"] = *block
	}
	return ref, true
}

func str(typ wireType, v []byte) (string, bool) {
	if typ != wireBytes {
		return "", false
	}
	return string(v), true
}

// internTable shares the strings that recur from object to object
// (namespaces, label keys and values, annotation keys, owner kinds) and
// their boxing into the maps' values: each is allocated once rather than
// once per object. It keeps at most maxInterned strings of at most
// maxInternedLen bytes, the first seen. It also keeps the last creation
// timestamp it rendered: objects created together share it.
type internTable struct {
	mu sync.Mutex
	m  map[string]any // each value the key, boxed

	lastSecond    int64
	lastTimestamp any
}

const (
	maxInterned    = 4096
	maxInternedLen = 64
)

// interned is the table of every metadata watch; decode holds its lock.
var interned = internTable{m: map[string]any{}}

// boxed returns b as a string in an interface value.
func (t *internTable) boxed(b []byte) any {
	if v, ok := t.m[string(b)]; ok {
		return v
	}
	s := string(b)
	var v any = s
	if len(b) <= maxInternedLen && len(t.m) < maxInterned {
		t.m[s] = v
	}
	return v
}

// intern returns b as a string.
func (t *internTable) intern(b []byte) string {
	s, _ := t.boxed(b).(string)
	return s
}

// timestamp is ts.ToUnstructured() for a time that is not zero.
func (t *internTable) timestamp(ts metav1.Time) any {
	if sec := ts.Unix(); sec != t.lastSecond || t.lastTimestamp == nil {
		t.lastSecond, t.lastTimestamp = sec, ts.ToUnstructured()
	}
	return t.lastTimestamp
}

// wireType is a protobuf wire type.
type wireType uint8

const (
	wireVarint  wireType = 0
	wireFixed64 wireType = 1
	wireBytes   wireType = 2
	wireFixed32 wireType = 5
)

// field reads the protobuf field b starts with: its number, wire type
// and value (the bytes of a length-delimited value, the encoding of any
// other), and how many bytes it took; n < 0 when b does not start with a
// well-formed field (groups, long deprecated, count as not well-formed).
func field(b []byte) (num uint64, typ wireType, v []byte, n int) {
	tag, k := binary.Uvarint(b)
	if k <= 0 || tag>>3 == 0 {
		return 0, 0, nil, -1
	}
	num, typ = tag>>3, wireType(tag&7)
	rest := b[k:]
	switch typ {
	case wireVarint:
		if _, m := binary.Uvarint(rest); m > 0 {
			return num, typ, rest[:m], k + m
		}
	case wireFixed64:
		if len(rest) >= 8 {
			return num, typ, rest[:8], k + 8
		}
	case wireFixed32:
		if len(rest) >= 4 {
			return num, typ, rest[:4], k + 4
		}
	case wireBytes:
		l, m := binary.Uvarint(rest)
		if m > 0 && l <= uint64(len(rest)-m) {
			return num, typ, rest[m : m+int(l)], k + m + int(l)
		}
	}
	return 0, 0, nil, -1
}

// varint is the value of a varint field's encoding.
func varint(v []byte) uint64 {
	x, _ := binary.Uvarint(v)
	return x
}
