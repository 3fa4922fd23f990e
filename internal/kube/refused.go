package kube

import (
	"log/slog"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// refused logs err as an error naming what to grant, and reports true,
// when it is the API refusing the gateway's ServiceAccount (RBAC, or a
// token it does not accept). client-go's informers, leader election and
// Event broadcaster only log such failures through klog and retry, and
// tandem's own retries log them at debug level (an API that is merely
// unreachable is the fence's business): a Role missing a verb would
// otherwise leave no trace in the gateway's log. One place for the rule.
func refused(log *slog.Logger, part string, err error, grant string, args ...any) bool {
	if err == nil || !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
		return false
	}
	log.Error(part+": the API refuses the gateway's service account; grant "+grant+" (deploy/kubernetes/rbac.yaml)",
		append(args, "error", err)...)
	return true
}
