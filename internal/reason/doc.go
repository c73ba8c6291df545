// Package reason carries a condition reason with an error, so that the
// component that finds a problem names it (SecretNotFound, TargetNotFound,
// ...) and the one that writes status reports it without guessing.
package reason
