// Package prometheus serves the current series of every metric on the
// manager's /metrics endpoint, beside the process's own families. It only
// renders: which metric a family name belongs to is decided by the
// coordinator, and a scrape never evaluates objects or talks to a cluster.
//
// Each metric is one gauge family named after spec.name with invalid
// characters replaced by "_". A family is rendered to the text format on
// the first scrape after it changed (its Version moved) and the bytes are
// kept, so a scrape of unchanged families copies bytes, and a burst of
// events between two scrapes costs one rendering. Handler writes the
// process's families through promhttp and appends the stored renderings;
// formats other than text are served from the same samples through the
// client library (Collect, Gather).
//
// The collector shares /metrics with the process's own families. CheckName
// refuses names that would clash with them (reserved prefixes, and every
// family gathered from the process's registry), and a scrape never writes
// anything the registry would reject (invalid label names, label values
// that are not UTF-8, repeated label sets, which are summed), so no
// user's metric can make a scrape fail or under-count.
package prometheus
