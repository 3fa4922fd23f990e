package cli

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/tandemproxy/tandem/internal/failover"
	"github.com/tandemproxy/tandem/internal/kube"
	"github.com/tandemproxy/tandem/internal/ops"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"
)

// kubeFlags are the cluster flags of the operations commands, as kubectl
// takes them: --kubeconfig (else $KUBECONFIG, else ~/.kube/config),
// --context, -n/--namespace (else the context's namespace).
type kubeFlags struct {
	kubeconfig, context, namespace string
	coordName, coordNamespace      string
	output                         string
}

func (f *kubeFlags) add(c *cobra.Command, output bool) {
	c.Flags().StringVar(&f.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default $KUBECONFIG, else ~/.kube/config)")
	c.Flags().StringVar(&f.context, "context", "", "the kubeconfig context to use")
	c.Flags().StringVarP(&f.namespace, "namespace", "n", "", "namespace (default: the context's)")
	c.Flags().StringVar(&f.coordName, "coordination-name", "tandem", "the gateway's coordination.name (objects NAME-leader, NAME-decisions, NAME-replica-*)")
	c.Flags().StringVar(&f.coordNamespace, "coordination-namespace", "", "where the gateway's coordination objects live (default: the namespace)")
	if output {
		c.Flags().StringVarP(&f.output, "output", "o", "table", "table, json or yaml")
	}
}

// client loads the kubeconfig with kubectl's rules and returns a
// clientset, the namespace and the coordination namespace.
func (f *kubeFlags) client() (kubernetes.Interface, string, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = f.kubeconfig
	over := &clientcmd.ConfigOverrides{CurrentContext: f.context}
	over.Context.Namespace = f.namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over)
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", "", fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", "", fmt.Errorf("kubeconfig: %w", err)
	}
	rc.UserAgent = "kubectl-tandem"
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, "", "", err
	}
	cns := f.coordNamespace
	if cns == "" {
		cns = ns
	}
	return cs, ns, cns, nil
}

// print writes v as JSON or YAML; table reports whether the caller should
// write its table instead.
func (f *kubeFlags) print(w io.Writer, v any) (table bool, err error) {
	switch f.output {
	case "", "table", "wide":
		return true, nil
	case "json":
		return false, printJSON(w, v)
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return false, err
		}
		_, err = w.Write(b)
		return false, err
	}
	return false, fmt.Errorf("-o %q: table, json or yaml", f.output)
}

func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// kubeCmds are the operations commands against the cluster.
func kubeCmds() []*cobra.Command {
	return []*cobra.Command{eventsCmd(), restartCmd(), scaleCmd(), updateCmd(), doctorCmd(), clusterCmd()}
}

func eventsCmd() *cobra.Command {
	var kf kubeFlags
	var sinceD time.Duration
	var watchF bool
	c := &cobra.Command{
		Use:   "events [COMPONENT]",
		Short: "What happened to a component (Deployment or StatefulSet and its pods), newest first: crash loops, OOM kills, failed probes, evictions, image pulls, scheduling, restarts, tandem's switches",
		Args:  cobra.MaximumNArgs(1),
		RunE: kf.runE(func(cmd *cobra.Command, args []string, k kubeRun) error {
			ctx, cs, ns, cns := k.ctx, k.cs, k.ns, k.cns
			o := ops.EventsOptions{Since: sinceD, CoordNamespace: cns, CoordName: kf.coordName}
			if len(args) == 1 {
				comp, err := ops.Resolve(ctx, cs, ns, args[0])
				if err != nil {
					return err
				}
				o.Component = &comp
			}
			evs, err := ops.Events(ctx, cs, ns, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			paint := colours(w)
			if evs == nil {
				evs = []ops.Event{}
			}
			table, err := kf.print(w, evs)
			if err != nil {
				return err
			}
			if table {
				ops.WriteEvents(w, evs, time.Now(), paint)
			}
			if !watchF {
				return nil
			}
			return ops.WatchEvents(ctx, cs, ns, o, func(e ops.Event) {
				if table {
					fmt.Fprintln(w, strings.ReplaceAll(ops.EventRow(e, time.Now(), paint), "\t", "   "))
				} else {
					_, _ = kf.print(w, e)
				}
			})
		}),
	}
	kf.add(c, true)
	c.Flags().DurationVar(&sinceD, "since", 0, "only what happened in this last duration (e.g. 1h)")
	c.Flags().BoolVarP(&watchF, "watch", "w", false, "after the list, print what happens until interrupted")
	return c
}

// gatewayFlags name the app's /status through the gateway.
func gatewayFlags(c *cobra.Command, gwURL, gwHost *string) {
	c.Flags().StringVar(gwURL, "gateway", "", "URL of the app through the gateway; its /status must answer (a URL without a path gets /status)")
	c.Flags().StringVar(gwHost, "gateway-host", "", "Host header for --gateway (the gateway routes by host)")
}

func gatewayOf(u, host string) *ops.Gateway {
	if u == "" {
		return nil
	}
	return &ops.Gateway{URL: u, Host: host}
}

func restartCmd() *cobra.Command {
	var kf kubeFlags
	var gwURL, gwHost string
	var dry bool
	var timeout time.Duration
	c := &cobra.Command{
		Use:   "restart COMPONENT...",
		Short: "Restart components' pods as `kubectl rollout restart` does, a master/failover pair one role at a time; never nodes",
		Args:  cobra.MinimumNArgs(1),
		RunE: kf.runE(func(cmd *cobra.Command, args []string, k kubeRun) error {
			ctx, cs, ns, cns := k.ctx, k.cs, k.ns, k.cns
			var comps []ops.Component
			for _, a := range args {
				comp, err := ops.Resolve(ctx, cs, ns, a)
				if err != nil {
					return err
				}
				comps = append(comps, comp)
			}
			progress := cmd.ErrOrStderr()
			if kf.output == "table" {
				progress = cmd.OutOrStdout()
			}
			res, err := ops.Restart(ctx, cs, comps, ops.RestartOptions{Gateway: gatewayOf(gwURL, gwHost), CoordNamespace: cns,
				CoordName: kf.coordName, DryRun: dry, Timeout: timeout, Out: progress})
			if table, perr := kf.print(cmd.OutOrStdout(), res); !table && perr != nil {
				return perr
			}
			return err
		}),
	}
	kf.add(c, true)
	gatewayFlags(c, &gwURL, &gwHost)
	c.Flags().BoolVar(&dry, "dry-run", false, "say what would be restarted, in which order, and change nothing")
	c.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long each component may take")
	return c
}

func scaleCmd() *cobra.Command {
	var kf kubeFlags
	var force bool
	c := &cobra.Command{
		Use:   "scale COMPONENT N",
		Short: "Scale a component; refuses a second pod of a master/failover role (split brain) without --force",
		Args:  cobra.ExactArgs(2),
		RunE: kf.runE(func(cmd *cobra.Command, args []string, k kubeRun) error {
			ctx, cs, ns := k.ctx, k.cs, k.ns
			n, err := strconv.ParseInt(args[1], 10, 32)
			if err != nil {
				return fmt.Errorf("replicas %q: %w", args[1], err)
			}
			comp, err := ops.Resolve(ctx, cs, ns, args[0])
			if err != nil {
				return err
			}
			if err := ops.Scale(ctx, cs, comp, int32(n), force); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s scaled to %d (was %d)\n", comp.Ref(), n, comp.Replicas)
			return nil
		}),
	}
	kf.add(c, false)
	c.Flags().BoolVar(&force, "force", false, "scale even when a master/failover role would run more than one pod")
	return c
}

func updateCmd() *cobra.Command {
	var kf kubeFlags
	var o ops.UpdateOptions
	var gwURL, gwHost string
	c := &cobra.Command{
		Use:   "update COMPONENT --image IMAGE",
		Short: "Update a component's image under the Recreate discipline: never two versions at once",
		Args:  cobra.ExactArgs(1),
		RunE: kf.runE(func(cmd *cobra.Command, args []string, k kubeRun) error {
			ctx, cs, ns := k.ctx, k.cs, k.ns
			if o.Image == "" {
				return errors.New("--image is required")
			}
			comp, err := ops.Resolve(ctx, cs, ns, args[0])
			if err != nil {
				return err
			}
			o.Gateway = gatewayOf(gwURL, gwHost)
			o.Out = cmd.OutOrStdout()
			if isTerminal(os.Stdin) && isTerminal(os.Stdout) {
				in := bufio.NewReader(cmd.InOrStdin())
				o.Confirm = func(q string) bool {
					fmt.Fprintf(cmd.OutOrStdout(), "%s [y/N] ", q)
					line, _ := in.ReadString('\n')
					return strings.EqualFold(strings.TrimSpace(line), "y") || strings.EqualFold(strings.TrimSpace(line), "yes")
				}
			}
			res, err := ops.Update(ctx, cs, comp, o)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s -> %s in %s (down %s)\n", res.Component, res.From, res.To,
				res.Took.Round(time.Millisecond), res.Down.Round(time.Millisecond))
			return nil
		}),
	}
	kf.add(c, false)
	gatewayFlags(c, &gwURL, &gwHost)
	c.Flags().StringVar(&o.Image, "image", "", "the new image")
	c.Flags().StringVar(&o.Container, "container", "", "the container to update (default: the only one)")
	c.Flags().StringVar(&o.Version, "version", "", "the version /status must report (default: the image's tag)")
	c.Flags().BoolVar(&o.SetRecreate, "set-recreate", false, "set a Deployment's strategy to Recreate without asking")
	c.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long each step may take")
	return c
}

func doctorCmd() *cobra.Command {
	var kf kubeFlags
	var o ops.DoctorOptions
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check a namespace against the high-availability guidance; exit code 1 on an error-level finding",
		Args:  cobra.NoArgs,
		RunE: kf.runE(func(cmd *cobra.Command, _ []string, k kubeRun) error {
			ctx, cs, ns, cns := k.ctx, k.cs, k.ns, k.cns
			o.CoordNamespace, o.CoordName = cns, kf.coordName
			fs, err := ops.Doctor(ctx, cs, ns, o)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if fs == nil {
				fs = []ops.Finding{}
			}
			if table, err := kf.print(w, fs); err != nil {
				return err
			} else if table {
				if len(fs) == 0 {
					fmt.Fprintf(w, "namespace %s: no finding\n", ns)
				} else {
					ops.WriteFindings(w, fs, colours(w))
				}
			}
			if n := ops.Errors(fs); n > 0 {
				return &exitError{code: ExitError, err: fmt.Errorf("doctor: %d error-level finding(s) in namespace %s", n, ns)}
			}
			return nil
		}),
	}
	kf.add(c, true)
	c.Flags().StringVar(&o.GatewaySelector, "gateway-selector", ops.DefaultGatewaySelector, "label selector of the gateway's pods")
	return c
}

// clusterCmd: the coordination state in the cluster, read from the
// ConfigMap NAME-decisions and the replicas' Leases (any replica's).
func clusterCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "cluster",
		Short: "The gateway's coordination in the cluster: status, switch, failback",
	}
	var kf kubeFlags
	status := &cobra.Command{
		Use:   "status",
		Short: "Groups (active server, epoch, revocation), the leader, and the replicas with their acknowledged epochs",
		Args:  cobra.NoArgs,
		RunE: kf.runE(func(cmd *cobra.Command, _ []string, k kubeRun) error {
			ctx, cs, cns := k.ctx, k.cs, k.cns
			st, err := ops.ReadCoordination(ctx, cs, cns, kf.coordName, time.Now())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if table, err := kf.print(w, st); !table || err != nil {
				return err
			}
			ops.WriteCoordination(w, st, time.Now(), colours(w))
			return nil
		}),
	}
	kf.add(status, true)

	var admin ops.Admin
	// An action goes to a replica's admin API when --admin is given, else
	// through the API to the leader (kube.Ask): no port-forward needed.
	action := func(use, short string, n int, do func(ctx context.Context, args []string) error, ask func(args []string) failover.Action,
		done func(args []string, g ops.GroupStatus) string) *cobra.Command {
		var kf kubeFlags
		var wait time.Duration
		c := &cobra.Command{
			Use: use, Short: short, Args: cobra.ExactArgs(n),
			RunE: kf.runE(func(cmd *cobra.Command, args []string, k kubeRun) error {
				ctx, cs, cns := k.ctx, k.cs, k.cns
				st, err := ops.ReadCoordination(ctx, cs, cns, kf.coordName, time.Now())
				if err != nil {
					return err
				}
				if _, ok := st.Group(args[0]); !ok {
					var names []string
					for _, g := range st.Groups {
						names = append(names, g.Name)
					}
					return fmt.Errorf("no group %q in %s/%s-decisions (groups: %s)", args[0], cns, kf.coordName, strings.Join(names, ", "))
				}
				if admin.Token == "" {
					admin.Token = os.Getenv("TANDEM_TOKEN")
				}
				if u := os.Getenv("USER"); u != "" {
					admin.By = u + " (kubectl-tandem)"
				}
				var err2 error
				if admin.URL != "" {
					err2 = do(ctx, args)
				} else {
					a := ask(args)
					a.By = cmp.Or(admin.By, "kubectl-tandem")
					err2 = kube.Ask(ctx, cs, cns, kf.coordName, args[0], a, wait)
				}
				if errors.Is(err2, failover.ErrNothingToDo) {
					fmt.Fprintln(cmd.OutOrStdout(), err2)
					return nil
				}
				if errors.Is(err2, failover.ErrNoSuchServer) || errors.Is(err2, failover.ErrServerDown) {
					return &exitError{code: ExitRefused, err: fmt.Errorf("refused: %w", err2)}
				}
				if err2 != nil {
					return err2
				}
				// What the cluster holds now, as every replica follows it.
				st, err = ops.ReadCoordination(ctx, cs, cns, kf.coordName, time.Now())
				if err != nil {
					return err
				}
				g, _ := st.Group(args[0])
				fmt.Fprintln(cmd.OutOrStdout(), done(args, g))
				return nil
			}),
		}
		kf.add(c, false)
		def := os.Getenv("TANDEM_ADMIN")
		c.Flags().StringVar(&admin.URL, "admin", def, "admin API URL of a gateway replica (env TANDEM_ADMIN); without it the request goes to the leader through the API")
		c.Flags().StringVar(&admin.Token, "token", "", "admin API token (env TANDEM_TOKEN)")
		c.Flags().DurationVar(&wait, "wait", 30*time.Second, "without --admin: how long to wait for the leader's outcome before withdrawing the request")
		return c
	}
	sw := action("switch GROUP SERVER", "Make SERVER the active server of GROUP and hold it there (carried out by the leader)", 2,
		func(ctx context.Context, a []string) error { return admin.Switch(ctx, a[0], a[1]) },
		func(a []string) failover.Action { return failover.Action{Kind: failover.ActionSwitch, Server: a[1]} },
		func(a []string, g ops.GroupStatus) string {
			return fmt.Sprintf("%s: switched to %s (published: active %s, epoch %d)", a[0], a[1], orDash(g.Active), g.Epoch)
		})
	fb := action("failback GROUP", "Return GROUP to its preferred server now (carried out by the leader)", 1,
		func(ctx context.Context, a []string) error { return admin.Failback(ctx, a[0]) },
		func([]string) failover.Action { return failover.Action{Kind: failover.ActionFailback} },
		func(a []string, g ops.GroupStatus) string {
			return fmt.Sprintf("%s: failed back (published: active %s, epoch %d)", a[0], orDash(g.Active), g.Epoch)
		})
	c.AddCommand(status, sw, fb)
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// kubeRun is what an operations command runs with: a context ended by
// SIGINT or SIGTERM, the clientset, the namespace and the coordination
// namespace.
type kubeRun struct {
	ctx     context.Context
	cs      kubernetes.Interface
	ns, cns string
}

func (f *kubeFlags) runE(fn func(cmd *cobra.Command, args []string, k kubeRun) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		ctx, stop := signalContext(cmd)
		defer stop()
		cs, ns, cns, err := f.client()
		if err != nil {
			return err
		}
		return fn(cmd, args, kubeRun{ctx: ctx, cs: cs, ns: ns, cns: cns})
	}
}
