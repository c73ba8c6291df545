package controllers

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/SAP/metrics-operator/api/v1alpha1"
)

func TestConditionMessagesAreCapped(t *testing.T) {
	long := strings.Repeat("é", maxMessageLen) // two bytes each: a cut can land inside one
	c := readyCondition(1, errors.New(long), v1alpha1.ReasonInvalidEndpoint)
	if len(c.Message) > maxMessageLen || !utf8.ValidString(c.Message) || !strings.HasSuffix(c.Message, "(truncated)") {
		t.Errorf("readyCondition message: %d bytes, valid UTF-8 %v", len(c.Message), utf8.ValidString(c.Message))
	}

	var conds []metav1.Condition
	setCondition(&conds, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse,
		Reason: v1alpha1.ReasonExportFailed, Message: long})
	if got := conds[0].Message; len(got) > maxMessageLen || !utf8.ValidString(got) {
		t.Errorf("setCondition stored %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
	if msg := eventMessage(conds, conds[0]); strings.Contains(msg, "é") {
		t.Errorf("the ExportFailed event quotes the failure: %q", msg)
	}

	if got := capMessage("short"); got != "short" {
		t.Errorf("capMessage changed a short message to %q", got)
	}
}
