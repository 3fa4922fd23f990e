package kubetest

import (
	"context"
	"fmt"
	"slices"
	"testing"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Grant is verbs a Role in Namespace gives its ServiceAccount there, on
// one resource.
type Grant struct {
	Namespace, Role, ServiceAccount string
	Group, Resource                 string
	Verbs                           []string
}

func (g Grant) user() string {
	return "system:serviceaccount:" + g.Namespace + ":" + g.ServiceAccount
}

// DropVerbs takes g.Verbs from the rules of g.Role on g.Resource, waits
// until the API server refuses each to the ServiceAccount, and returns what
// puts the Role back as it was and waits until they are granted again. A
// test of what the gateway says, or does, when RBAC lacks a verb.
func (c *Cluster) DropVerbs(t testing.TB, ctx context.Context, g Grant) (restore func()) {
	t.Helper()
	roles := c.Client().RbacV1().Roles(g.Namespace)
	role, err := roles.Get(ctx, g.Role, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	orig := slices.Clone(role.Rules)
	dropped := map[string]bool{}
	role.Rules = nil
	for _, r := range orig {
		if slices.Contains(r.APIGroups, g.Group) && slices.Contains(r.Resources, g.Resource) {
			r = *r.DeepCopy()
			r.Verbs = slices.DeleteFunc(r.Verbs, func(v string) bool {
				drop := slices.Contains(g.Verbs, v)
				dropped[v] = dropped[v] || drop
				return drop
			})
			if len(r.Verbs) == 0 {
				continue // the API refuses a rule without verbs
			}
		}
		role.Rules = append(role.Rules, r)
	}
	for _, v := range g.Verbs {
		if !dropped[v] {
			t.Fatalf("Role %s/%s grants no %s on %s: the RBAC changed, update the test", g.Namespace, g.Role, v, g.Resource)
		}
	}
	if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.untilAuthorized(t, ctx, g, false)
	return func() {
		t.Helper()
		cur, err := roles.Get(ctx, g.Role, metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		cur.Rules = orig
		if _, err := roles.Update(ctx, cur, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
		c.untilAuthorized(t, ctx, g, true)
	}
}

// untilAuthorized waits until the API server's RBAC authorizer, which
// follows Roles through its own informer, answers as want for each of g's
// verbs: a gateway started right after an update could otherwise be
// judged by the Role as it was.
func (c *Cluster) untilAuthorized(t testing.TB, ctx context.Context, g Grant, want bool) {
	t.Helper()
	Eventually(t, ctx, func() error {
		for _, verb := range g.Verbs {
			sar, err := c.Client().AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
				Spec: authorizationv1.SubjectAccessReviewSpec{
					User:               g.user(),
					ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: g.Namespace, Verb: verb, Group: g.Group, Resource: g.Resource},
				}}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			if sar.Status.Allowed != want {
				return fmt.Errorf("%s %s allowed to %s: %v, want %v", verb, g.Resource, g.user(), sar.Status.Allowed, want)
			}
		}
		return nil
	})
}
