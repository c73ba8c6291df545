package informers

import (
	"math/rand/v2"
	"reflect"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// FuzzMetaDecoder feeds metaDecoder arbitrary bytes: it must never
// panic (it runs in the watch's goroutine, where a panic ends the
// process), and whatever both it and the generated decoder decode must
// come out the same. It may accept bytes the generated decoder refuses
// for a field it skips unread (a malformed managedFields entry, found by
// this fuzzer): it reads only the operator's own API server, which sends
// none. `make test` runs the seeds and testdata; `go test -fuzz
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
			return
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
