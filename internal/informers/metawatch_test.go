package informers

import (
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	metainternalversionscheme "k8s.io/apimachinery/pkg/apis/meta/internalversion/scheme"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

// encodePartial encodes m as the API server sends a PartialObjectMetadata
// in protobuf: the "k8s\0" prefix and a runtime.Unknown envelope.
func encodePartial(t testing.TB, m metav1.ObjectMeta, kind string) []byte {
	t.Helper()
	raw, err := (&metav1.PartialObjectMetadata{ObjectMeta: m}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	unk := runtime.Unknown{TypeMeta: runtime.TypeMeta{APIVersion: "meta.k8s.io/v1", Kind: kind}, Raw: raw}
	b, err := unk.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return append(append([]byte{}, protobufPrefix...), b...)
}

// standardDecoder is the protobuf decoder the metadata client uses.
func standardDecoder(t testing.TB) runtime.Decoder {
	t.Helper()
	for _, info := range metainternalversionscheme.Codecs.WithoutConversion().SupportedMediaTypes() {
		if info.MediaType == runtime.ContentTypeProtobuf {
			return info.Serializer
		}
	}
	t.Fatal("no protobuf serializer")
	return nil
}

// TestMetaDecoderMatchesGeneratedDecoder holds what a metadata watch
// delivers through metaDecoder equal, for every field of ObjectMeta set
// and unset (managedFields among them), to what the generated decoder and
// metadataMap made of the same bytes.
func TestMetaDecoderMatchesGeneratedDecoder(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	metas := []metav1.ObjectMeta{{}, {CreationTimestamp: metav1.NewTime(time.Unix(1, 0))}, {DeletionTimestamp: &metav1.Time{}},
		{DeletionTimestamp: ptr.To(metav1.NewTime(time.Unix(0, 5)))}, {Labels: map[string]string{"": ""}}}
	for range 2000 {
		metas = append(metas, randomMeta(r))
	}
	std := standardDecoder(t)
	dec := metaDecoder{Serializer: std.(runtime.Serializer)}
	for i := range metas {
		data := encodePartial(t, metas[i], "PartialObjectMetadata")
		obj, _, err := std.Decode(data, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := metadataMap(&obj.(*metav1.PartialObjectMetadata).ObjectMeta)
		got, _, err := dec.Decode(data, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		mo, ok := got.(*metaObject)
		if !ok {
			t.Fatalf("metaDecoder decoded %+v into %T, want *metaObject", metas[i], got)
		}
		if !reflect.DeepEqual(mo.md, want) {
			t.Fatalf("metaDecoder(%+v)\n got %#v\nwant %#v", metas[i], mo.md, want)
		}
		acc := mo.GetObjectMeta()
		if acc.GetResourceVersion() != metas[i].ResourceVersion || acc.GetName() != metas[i].Name ||
			!reflect.DeepEqual(acc.GetAnnotations(), nonEmpty(metas[i].Annotations)) {
			t.Fatalf("GetObjectMeta of %+v: %+v", metas[i], acc)
		}
	}
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// TestMetaDecoderLeavesTheRestToTheGeneratedDecoder checks that what is
// not a well-formed PartialObjectMetadata (another kind, bytes cut short,
// no protobuf prefix, nothing) is decoded as the generated decoder
// decodes it, errors included.
func TestMetaDecoderLeavesTheRestToTheGeneratedDecoder(t *testing.T) {
	std := standardDecoder(t)
	dec := metaDecoder{Serializer: std.(runtime.Serializer)}
	full := encodePartial(t, metav1.ObjectMeta{Name: "a", Labels: map[string]string{"team": "web"}}, "PartialObjectMetadata")
	for name, data := range map[string][]byte{
		"another kind": encodePartial(t, metav1.ObjectMeta{Name: "a"}, "PartialObjectMetadataList"),
		"cut short":    full[:len(full)-3],
		"no prefix":    full[len(protobufPrefix):],
		"empty":        nil,
	} {
		got, _, gotErr := dec.Decode(data, nil, nil)
		want, _, wantErr := std.Decode(data, nil, nil)
		if _, fast := got.(*metaObject); fast {
			t.Errorf("%s: decoded into a metaObject", name)
		}
		if (gotErr == nil) != (wantErr == nil) || reflect.TypeOf(got) != reflect.TypeOf(want) {
			t.Errorf("%s: got %T, %v; the generated decoder %T, %v", name, got, gotErr, want, wantErr)
		}
	}
}

// BenchmarkDecodeMetadata and BenchmarkDecodeMetadataGenerated compare
// the two ways from a watch event's object to the map the evaluation
// engine reads, for a ConfigMap's metadata as the benchmark's.
func BenchmarkDecodeMetadata(b *testing.B) {
	data := encodePartial(b, *benchmarkMeta(), "PartialObjectMetadata")
	dec := metaDecoder{Serializer: standardDecoder(b).(runtime.Serializer)}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := dec.Decode(data, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMetadataGenerated(b *testing.B) {
	data := encodePartial(b, *benchmarkMeta(), "PartialObjectMetadata")
	std := standardDecoder(b)
	b.ReportAllocs()
	for b.Loop() {
		obj, _, err := std.Decode(data, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		_ = metadataMap(&obj.(*metav1.PartialObjectMetadata).ObjectMeta)
	}
}
