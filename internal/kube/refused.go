package kube

import (
	"log/slog"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// refused logs err as an error naming what to grant, and reports true,
// when it is the API refusing the gateway's ServiceAccount (RBAC, or a
// token it does not accept). client-go's informers, leader election and
// Event broadcaster only log such failures through klog and retry, and
// tandem's own retries log them at debug level (an API that is merely
// unreachable is the fence's business): a Role missing a verb would
// otherwise leave no trace in the gateway's log. One place for the rule.
//
// A part that retries every second (the Lease lock, the heartbeat) would
// log its refusal every second: each refusal (part and verb) is logged at
// once, then at most once a minute, saying how many were held back.
func refused(log *slog.Logger, part string, err error, grant string, args ...any) bool {
	if err == nil || !apierrors.IsForbidden(err) && !apierrors.IsUnauthorized(err) {
		return false
	}
	ok, held := refusedLog.allow(part + "\x00" + grant)
	if !ok {
		return true
	}
	if held > 0 {
		args = append(args, "suppressed", held)
	}
	log.Error(part+": the API refuses the gateway's service account; grant "+grant+" (deploy/kubernetes/rbac.yaml)",
		append(args, "error", err)...)
	return true
}

// refusedLog bounds refused's lines: one per refusal at once, then one a
// minute.
var refusedLog = newLimiter(1, time.Minute)
