package informers

import (
	"math/rand/v2"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzMetaDecoder feeds metaDecoder what a remote API server a tenant
// runs may send in a metadata watch: it must never panic (it runs in the
// watch's goroutine, where a panic ends the process), and whatever it
// decodes itself must be what the generated decoder and metadataMap make
// of the same bytes. `make test` runs the seeds; `go test -fuzz
// FuzzMetaDecoder ./internal/informers` searches further.
func FuzzMetaDecoder(f *testing.F) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 20 {
		data := encodePartial(f, randomMeta(r), "PartialObjectMetadata")
		f.Add(data)
		f.Add(data[:len(data)/2])
	}
	f.Add(encodePartial(f, metav1.ObjectMeta{}, "PartialObjectMetadata"))
	std := standardDecoder(f)
	dec := metaDecoder{Serializer: std.(runtime.Serializer)}
	f.Fuzz(func(t *testing.T, data []byte) {
		md, ok := decodePartialMetadata(data)
		if !ok {
			return
		}
		obj, _, err := std.Decode(data, nil, nil)
		if err != nil {
			t.Fatalf("decoded %x, which the generated decoder refuses: %v", data, err)
		}
		pom, isMeta := obj.(*metav1.PartialObjectMetadata)
		if !isMeta {
			t.Fatalf("decoded %x, which the generated decoder makes a %T", data, obj)
		}
		if want := metadataMap(&pom.ObjectMeta); !reflect.DeepEqual(md, want) {
			t.Fatalf("decoded %x\n got %#v\nwant %#v", data, md, want)
		}
		if got, _, err := dec.Decode(data, nil, nil); err != nil || got == nil {
			t.Fatalf("metaDecoder on %x: %v", data, err)
		}
	})
}
