package ops

import (
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }

func wrapNotFound(err error, what, ns string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%w: %s in namespace %s", ErrNotFound, what, ns)
	}
	return fmt.Errorf("%s: %w", what, err)
}
