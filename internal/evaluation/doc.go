// Package evaluation is the evaluation engine: it compiles the part of a
// metric spec that selects and measures objects (namespace, label and field
// selectors, projections, valueFrom) once into an Evaluator, and turns
// objects into series, either for a whole list (polling, Aggregate.Poll;
// a relist, Aggregate.Replace) or one object at a time (event-driven,
// Aggregate.Upsert and Delete). All paths run the same code and yield the
// same series for the same objects. A polled aggregate keeps only its
// series between polls, no per-object state: the next poll lists every
// object again.
//
// It owns the semantics users rely on; it must not talk to the Kubernetes
// API, keep objects, or know about exporters. An Aggregate keeps, per
// object UID, only the object's series (interned, shared by its objects)
// and value, like kube-state-metrics' metrics store; the UIDs are
// interned as small IDs (Keys), one table per watch on the event path. Aggregates of specs
// with the same Evaluator.ShareKey on one watch may share that state
// (Aggregate.Attach, the Shared type); each is still held to its own
// Limits and takes its own series from the Budget, as if alone.
//
// Semantics where the API leaves room:
//
//   - fieldPath is client-go JSONPath (kubectl -o jsonpath), with or without
//     braces and leading dot; "." is the whole object. Quoted keys may hold
//     dots and slashes: metadata.labels['app.kubernetes.io/name'] (or the
//     escaped metadata.labels.app\.kubernetes\.io/name). A path that selects
//     several values (a filter matching several elements, a wildcard, a
//     slice) yields the first one in document order, map keys sorted. An
//     index out of range, a missing key or a step through a value of the
//     wrong kind all mean "missing"; a filter comparing values of different
//     kinds does not match.
//   - primitive renders strings as they are, numbers as JSON does (3, 1.5,
//     integers exactly), bools as true/false, and objects and lists as
//     compact JSON (as kubectl prints them). map, slice and timestamp accept
//     only a JSON object, a JSON list and an RFC 3339 string; any other
//     value counts as missing. Compact JSON has sorted keys and no HTML
//     escaping.
//   - A missing or null value takes the projection's default; without one
//     the dimension is absent for that object, which still counts. A
//     default must fit the type (a string, number or bool for primitive;
//     an RFC 3339 string for timestamp; an object for map; a list for
//     slice), else Compile fails with InvalidProjection.
//   - valueFrom integer accepts JSON numbers without fraction, and strings
//     holding an integer ("5") or a whole Kubernetes quantity ("1Gi").
//     A fraction, another type, or a bad timestamp is a value error for
//     that object: it is left out of every series and counted by
//     Aggregate.ObjectErrors. A missing or null field takes the default;
//     without one the object is left out silently. A series exists while at
//     least one object contributes a value to it.
//   - Aggregation: sum (exact, saturated to int64), max, min, mean (floor:
//     mean of -1 and -2 is -2). Max and min stay exact under deletes through
//     a per-series multiset of values.
//   - Field selectors read any dot path of the object in memory; a missing
//     field reads as "", so "status.phase!=Running" matches objects without
//     a phase.
//   - On core Secrets (Spec.Target), Compile refuses with
//     SecretDataForbidden every projection, valueFrom or field selector
//     path that could read the payload: data, stringData, any other
//     top-level field but apiVersion, kind, metadata, type and immutable,
//     and kubectl's last-applied-configuration annotation (a copy of the
//     object). Only a plain key may start such a path: the whole object, a
//     wildcard, recursive descent, an index, a slice or a filter at the top
//     are refused.
//   - Messages never quote values read from objects, nor name objects:
//     only the spec's fields, paths and the kind of value found.
package evaluation
