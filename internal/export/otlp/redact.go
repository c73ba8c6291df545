package otlp

import "strings"

// minSecretLen keeps redaction from mangling messages over trivially short
// header values, which cannot be meaningful secrets anyway.
const minSecretLen = 4

const redacted = "[REDACTED]"

// redact removes header values from err's message. The SDK does not put
// headers into errors, but a backend may echo a request header in its
// response body, which the HTTP exporter quotes. Besides a whole value
// ("Api-Token abc"), the part after an auth scheme ("abc") is redacted too.
//
// The result still unwraps to err so that errors.Is keeps working; only
// Error() is scrubbed, which is what reaches logs, events and status.
func redact(err error, headers map[string]string) error {
	msg := err.Error()
	clean := msg
	for _, v := range headers {
		secrets := []string{v}
		if _, token, ok := strings.Cut(v, " "); ok {
			secrets = append(secrets, strings.TrimSpace(token))
		}
		for _, s := range secrets {
			if len(s) >= minSecretLen {
				clean = strings.ReplaceAll(clean, s, redacted)
			}
		}
	}
	if clean == msg {
		return err
	}
	return &redactedError{msg: clean, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
