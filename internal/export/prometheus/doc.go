// Package prometheus serves the current series of every metric on the
// manager's /metrics endpoint through one prometheus.Collector. A scrape
// only renders what the coordinator last stored: it never evaluates
// objects or talks to a cluster.
//
// Each metric is one gauge family named after spec.name with invalid
// characters replaced by "_". A family name is owned by the oldest metric
// object that declares it (creation time, then namespace/name); younger
// claimants are held back, told through the OnOwnerChange callback, and
// take over when the owner goes, so two metrics declaring one name never
// corrupt each other or the scrape.
//
// The collector shares /metrics with the process's own families. CheckName
// refuses names that would clash with them (reserved prefixes, and every
// family gathered from the registry the collector was registered with),
// and Collect never emits anything the registry would reject, so no
// user's metric can make a scrape fail.
package prometheus
