// Package remotelimit bounds what a remote cluster's API server, which a
// tenant may run, can make the operator read and wait for. Wrap is the
// transport wrapper internal/clusters puts under every connection to a
// RemoteClusterAccess's or a discovered cluster's API server; the local
// cluster's API server is trusted and not wrapped.
//
// Bytes: the body of a response to a request that is not a watch (a LIST
// page, a GET, a discovery document) is read up to
// Limits.MaxResponseBytes; the next byte fails the read with *Error,
// before client-go's io.ReadAll holds more and before anything is
// decoded (a Content-Length over the limit fails the first read). A
// watch is bounded per event instead, as it may rightly run for minutes:
// a run of more than min(MaxResponseBytes, MaxWatchEventBytes) bytes
// without a newline fails the same way. apimachinery's streaming decoder,
// which client-go decodes watch events with, has a bound of its own
// (streaming.NewDecoder's maxBytes, 16 MiB), and it holds for protobuf,
// whose length-prefixed frames framer.NewLengthDelimitedFrameReader reads
// into the decoder's buffer a piece at a time; it does not hold for JSON,
// whose framer (framer.NewJSONFramedReader) has encoding/json read a
// whole value before that bound is checked, so a 1 GiB event would be
// held whole first. An API server writes one JSON event a line, and every
// protobuf watch frame starts with the byte 0x0A (the tag of WatchEvent's
// first field), so the newline run bounds either, whichever the server
// chooses. Bytes are counted after decompression.
//
// Time: a request that is not a watch must be answered in full within
// Limits.RequestTimeout; a watch must send its response headers within
// Limits.WatchHeaderTimeout and end no later than Limits.WatchGrace after
// the timeoutSeconds it asked the server for. A Retry-After of more than
// a second is cut to one: client-go sleeps it, up to ten times a request,
// whatever the server asks.
//
// A read over the limit fails with *Error, whose condition reason is
// ResponseTooLarge. client-go's watch decoder passes on only the text of
// the errors it reads, so a caller that needs to know (a shared watch)
// registers a function with OnExceeded on the request's context. No
// message quotes what the server sent.
package remotelimit
