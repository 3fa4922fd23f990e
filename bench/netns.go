package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// netLab owns the network namespaces, veth pairs and nft tables of one run
// of the bench. Each site is a namespace joined to the host by a veth pair
// on a /24 of its own in 10.201.0.0/16; a cut is an nft table with drop
// policies inside that namespace, so the host's own ruleset is never
// touched. Names start with tnd- and carry a random id per run, so that
// two runs (or a test suite doing the same) cannot take each other's.
type netLab struct {
	id string

	mu    sync.Mutex
	seq   int
	sites []*nsSite
}

// nsSite is one namespace of the lab.
type nsSite struct {
	site
	hostIf string
	cut    bool
}

// errNoNetLab says the scenarios that need namespaces cannot run here.
var errNoNetLab = errors.New("network namespaces unavailable")

// cutTable is the nft table a cut adds inside a site's namespace: nothing
// in, nothing out, like a pulled cable or a dead switch (no RST, no ICMP).
const cutTable = "tnd_cut"

// newNetLab checks that namespaces can be made here (root, ip, nft).
func newNetLab() (*netLab, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: the bench must run as root", errNoNetLab)
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("%w: %w", errNoNetLab, err)
		}
	}
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("random id: %w", err)
	}
	return &netLab{id: hex.EncodeToString(b)}, nil
}

// addSite creates a namespace named tnd-ID-LABELSEQ with a veth pair to the
// host; the instance in it listens on 10.201.N.2 and the host is 10.201.N.1.
func (l *netLab) addSite(ctx context.Context, label string) (*nsSite, error) {
	l.mu.Lock()
	l.seq++
	seq := l.seq
	l.mu.Unlock()
	octet, err := l.freeSubnet(ctx)
	if err != nil {
		return nil, err
	}
	s := &nsSite{
		site:   site{ns: fmt.Sprintf("tnd-%s-%s%d", l.id, label, seq), ip: fmt.Sprintf("10.201.%d.2", octet)},
		hostIf: fmt.Sprintf("tnd%s%02xh", l.id, seq), // at most 15 bytes, the kernel's limit
	}
	nsIf := fmt.Sprintf("tnd%s%02xn", l.id, seq)
	if err := ipCmd(ctx, "netns", "add", s.ns); err != nil {
		return nil, err
	}
	// Registered at once, so that a failure below still cleans up.
	l.mu.Lock()
	l.sites = append(l.sites, s)
	l.mu.Unlock()
	steps := [][]string{
		{"link", "add", s.hostIf, "type", "veth", "peer", "name", nsIf, "netns", s.ns},
		{"addr", "add", fmt.Sprintf("10.201.%d.1/24", octet), "dev", s.hostIf},
		{"link", "set", s.hostIf, "up"},
		{"-n", s.ns, "addr", "add", fmt.Sprintf("10.201.%d.2/24", octet), "dev", nsIf},
		{"-n", s.ns, "link", "set", nsIf, "up"},
		{"-n", s.ns, "link", "set", "lo", "up"},
	}
	for _, args := range steps {
		if err := ipCmd(ctx, args...); err != nil {
			return nil, fmt.Errorf("site %s: %w", s.ns, err)
		}
	}
	return s, nil
}

// freeSubnet picks N such that nothing on the host routes into 10.201.N.0/24.
func (l *netLab) freeSubnet(ctx context.Context) (int, error) {
	for range 50 {
		n, err := rand.Int(rand.Reader, big.NewInt(254))
		if err != nil {
			return 0, fmt.Errorf("random subnet: %w", err)
		}
		octet := int(n.Int64()) + 1
		// "root": routes inside the /24, such as another run's veth.
		out, err := exec.CommandContext(ctx, "ip", "-4", "route", "show", "root", fmt.Sprintf("10.201.%d.0/24", octet)).Output()
		if err != nil {
			return 0, fmt.Errorf("ip route show: %w", err)
		}
		used := len(bytes.TrimSpace(out)) > 0
		if !used {
			return octet, nil
		}
	}
	return 0, errors.New("no free /24 in 10.201.0.0/16")
}

// cutOff drops every packet into and out of the site's namespace.
func (s *nsSite) cutOff(ctx context.Context) error {
	script := fmt.Sprintf(`table inet %s {
	chain cut_in { type filter hook input priority -10; policy drop; }
	chain cut_out { type filter hook output priority -10; policy drop; }
	chain cut_fwd { type filter hook forward priority -10; policy drop; }
}
`, cutTable)
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("cut %s: nft: %w: %s", s.ns, err, bytes.TrimSpace(out))
	}
	s.cut = true
	return nil
}

// reconnect removes the cut.
func (s *nsSite) reconnect(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.ns, "nft", "delete", "table", "inet", cutTable)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("reconnect %s: nft: %w: %s", s.ns, err, bytes.TrimSpace(out))
	}
	s.cut = false
	return nil
}

// remove deletes one site: its namespace, and with it the veth pair and
// any cut (both live in the namespace). The processes in it must be gone
// first, or the namespace lives on, unnamed, until they exit.
func (l *netLab) remove(s *nsSite) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ipCmd(ctx, "netns", "del", s.ns); err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
	}
	// Normally gone with its peer; this covers a half-made site.
	_ = exec.CommandContext(ctx, "ip", "link", "del", s.hostIf).Run()
	l.mu.Lock()
	for i, x := range l.sites {
		if x == s {
			l.sites = append(l.sites[:i], l.sites[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
}

// close removes every site still there; run defers it after killing the
// children, also on Ctrl-C and on errors.
func (l *netLab) close() {
	l.mu.Lock()
	sites := append([]*nsSite(nil), l.sites...)
	l.mu.Unlock()
	for _, s := range sites {
		l.remove(s)
	}
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}
