// Package egress is a platform's allow-list of the endpoints the operator
// may connect to on a tenant's behalf (DataSink endpoints, the API servers
// of remote clusters): host names, host globs, IP addresses and CIDRs. It
// decides whether a host is admitted and, for hosts admitted by address,
// gives the check a dialer applies to the address of every connection it
// opens, so that a name that resolves elsewhere later (DNS rebinding)
// reaches nothing outside the list.
//
// It never connects and never logs. Its refusals name the host they were
// asked about but never an address it resolved to, nor the resolver's
// error: a tenant reading them must not learn the platform's internal DNS.
package egress
