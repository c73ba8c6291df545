package controllers

import (
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/api/v1alpha1"
	"github.com/SAP/metrics-operator/internal/reason"
)

// readyCondition builds the Ready condition for err (nil: ready).
// fallback is the reason used for errors that carry none.
func readyCondition(generation int64, err error, fallback string) metav1.Condition {
	c := metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             metav1.ConditionTrue,
		Reason:             v1alpha1.ReasonReady,
		Message:            "ready",
		ObservedGeneration: generation,
	}
	if err == nil {
		return c
	}
	c.Status = metav1.ConditionFalse
	c.Reason = reason.Of(err, fallback)
	c.Message = capMessage(err.Error())
	return c
}

// maxMessageLen bounds every condition message: messages carry user
// input (names, paths) and errors of other systems, and status is read by
// people and stored in etcd with every object.
const maxMessageLen = 1024

// capMessage cuts msg to maxMessageLen bytes on a UTF-8 boundary, marking
// the cut.
func capMessage(msg string) string {
	if len(msg) <= maxMessageLen {
		return msg
	}
	const mark = "... (truncated)"
	cut := maxMessageLen - len(mark)
	for cut > 0 && !utf8.RuneStart(msg[cut]) {
		cut--
	}
	return msg[:cut] + mark
}

// setCondition sets c on conds and reports whether its status or reason
// changed, which is when an event is worth emitting.
func setCondition(conds *[]metav1.Condition, c metav1.Condition) (transition bool) {
	old := meta.FindStatusCondition(*conds, c.Type)
	c.Message = capMessage(c.Message)
	transition = old == nil || old.Status != c.Status || old.Reason != c.Reason
	meta.SetStatusCondition(conds, c)
	return transition
}
