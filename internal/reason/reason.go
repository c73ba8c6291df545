package reason

import (
	"errors"
	"fmt"
)

// Error is a problem with a condition reason and a message a user can act
// on. Messages never contain secret material.
type Error struct {
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Message }

// ConditionReason is the reason the error causes.
func (e *Error) ConditionReason() string { return e.Reason }

// New returns an *Error with a formatted message.
func New(reason, format string, args ...any) *Error {
	return &Error{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Of returns the condition reason err carries, or fallback.
func Of(err error, fallback string) string {
	var r interface{ ConditionReason() string }
	if errors.As(err, &r) {
		return r.ConditionReason()
	}
	return fallback
}

// Is reports whether err carries a condition reason, i.e. is a problem the
// user must fix rather than a passing failure.
func Is(err error) bool {
	var r interface{ ConditionReason() string }
	return errors.As(err, &r)
}
