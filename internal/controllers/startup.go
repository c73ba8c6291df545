package controllers

import (
	"errors"

	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/SAP/metrics-operator/internal/access"
	"github.com/SAP/metrics-operator/internal/startup"
)

// errUnsettled ends a reconcile that must wait for something outside it
// (the first list of a cluster's managed kinds, or the shard's view to
// settle) before it can register its metric; settle turns it into no
// error, so the requeue it comes with, if any, applies.
var errUnsettled = errors.New("the metric waits for its cluster's managed kinds or the shard's view")

// settle tells gate that the reconcile of the metric kind/name is
// settled: it registered the metric on its watches or found nothing to
// register. A reconcile that failed, or waits for an access review
// (access.ErrPending) or for errUnsettled, is not; those two come with
// their requeue (or, for a shard's view, are sent again when it settles)
// and are returned as no error.
func settle(gate *startup.Gate, kind string, name types.NamespacedName, res ctrl.Result, err error) (ctrl.Result, error) {
	switch {
	case errors.Is(err, access.ErrPending), errors.Is(err, errUnsettled):
		return res, nil
	case err == nil:
		gate.Settled(kind, name)
	}
	return res, err
}
