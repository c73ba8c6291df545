package evaluation

// ConditionReason is the Ready condition reason the error causes.
func (e *CompileError) ConditionReason() string { return e.Reason }
