package kube

import (
	"io"
	"log/slog"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRecorderAllow(t *testing.T) {
	type try struct {
		after      time.Duration // clock advance before this try
		key        string        // "k" if empty
		ok         bool
		suppressed int
	}
	burst := func() []try {
		out := make([]try, eventBurst)
		for i := range out {
			out[i] = try{ok: true}
		}
		return out
	}
	cat := func(parts ...[]try) []try {
		var out []try
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	tests := []struct {
		name  string
		tries []try
	}{
		{
			name: "a burst, then suppressed, then one per refill saying how many were suppressed",
			tries: cat(burst(), []try{
				{}, {}, {},
				{after: eventRefill - time.Millisecond},
				{after: time.Millisecond, ok: true, suppressed: 4},
				{},
				{after: eventRefill, ok: true, suppressed: 1},
			}),
		},
		{
			name: "half a refill is no token",
			tries: cat(burst(), []try{
				{after: eventRefill / 2},
				{after: eventRefill / 2, ok: true, suppressed: 1},
			}),
		},
		{
			name: "keys have their own buckets",
			tries: cat(burst(), []try{
				{},
				{key: "other", ok: true},
				{},
			}),
		},
		{
			name: "a long quiet refills to the burst, no more",
			tries: cat(burst(), []try{{}}, []try{{after: time.Hour, ok: true, suppressed: 1}},
				burst()[1:], []try{{}}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRecorder(fake.NewSimpleClientset(), "ns", &corev1.ObjectReference{Kind: "ConfigMap", Namespace: "ns", Name: "tandem-decisions"},
				"gw-0", slog.New(slog.NewTextHandler(io.Discard, nil)))
			defer r.Shutdown()
			now := t0
			r.lim.now = func() time.Time { return now }
			for i, tr := range tt.tries {
				now = now.Add(tr.after)
				key := tr.key
				if key == "" {
					key = "k"
				}
				ok, n := r.lim.allow(key)
				if ok != tr.ok || n != tr.suppressed {
					t.Fatalf("try %d (%s at +%v): allow = %v, %d; want %v, %d", i, key, now.Sub(t0), ok, n, tr.ok, tr.suppressed)
				}
			}
		})
	}
}
