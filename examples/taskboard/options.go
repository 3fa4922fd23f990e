package taskboard

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tandemproxy/tandem/appkit"
)

// KeysEnv is the environment variable that may hold the session keys
// (base64, newest first, separated by commas or newlines) when no key file
// is given.
const KeysEnv = "TASKBOARD_SESSION_KEYS"

// Options are the command-line settings of an instance, shared by
// cmd/taskboard and `tandem taskboard`.
type Options struct {
	Name, Addr, DSN, KeyFile, Seed string
	KnownSchema                    int
	Fence                          bool
	FenceResetAfter                time.Duration
	Standalone                     bool
	JobEvery                       time.Duration
	Iterations                     int
}

// Register adds the options' flags to fs.
func (o *Options) Register(fs *flag.FlagSet) {
	fs.StringVar(&o.Name, "name", "taskboard", "instance name (shown on the page and in /status)")
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:9081", "listen address")
	fs.StringVar(&o.DSN, "db", envOr("TASKBOARD_DB", "taskboard.db"), "database: a postgres:// URL or an SQLite file (env TASKBOARD_DB)")
	fs.StringVar(&o.KeyFile, "session-keys", "", "file of session keys, one base64 AES-256 key per line, newest first (a mounted Secret); else $"+KeysEnv)
	fs.StringVar(&o.Seed, "seed", "", "users to create if missing: name:password,name:password")
	fs.IntVar(&o.KnownSchema, "known-schema", 0, "pretend this binary knows migrations only up to this version (an old binary; 0: all)")
	fs.BoolVar(&o.Fence, "fence", false, "refuse writes carrying an older gateway epoch than the newest seen (409); see --fence-reset-after")
	fs.DurationVar(&o.FenceResetAfter, "fence-reset-after", 15*time.Second,
		"with --fence: accept a lower epoch once the newer one went unseen this long, as after a restart of a file-configured gateway, whose epoch starts again at 1 (0: never, for a Lease-backed gateway)")
	fs.BoolVar(&o.Standalone, "standalone", false, "no gateway in front: this instance is active (runs the background job)")
	fs.DurationVar(&o.JobEvery, "job-every", 2*time.Second, "background job period (overdue tasks)")
	fs.IntVar(&o.Iterations, "pbkdf2-iterations", DefaultIterations, "PBKDF2-HMAC-SHA256 iterations for new passwords")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// Run builds the instance the options describe and runs it until ctx ends:
// what both `taskboard` and `tandem taskboard` do.
func (o *Options) Run(ctx context.Context, log *slog.Logger) error {
	cfg, err := o.Config(log)
	if err != nil {
		return err
	}
	app, err := New(cfg)
	if err != nil {
		return err
	}
	return app.Run(ctx)
}

// Config resolves the options into a Config: the session keys from the
// file, else the environment, else a random key (with a warning: sessions
// then survive neither a switch nor a restart).
func (o *Options) Config(log *slog.Logger) (Config, error) {
	cfg := Config{Name: o.Name, Addr: o.Addr, DSN: o.DSN, KnownSchema: o.KnownSchema, Fence: o.Fence,
		FenceResetAfter: o.FenceResetAfter, Standalone: o.Standalone, JobEvery: o.JobEvery, Iterations: o.Iterations, Log: log}
	switch {
	case o.KeyFile != "":
		kf, err := appkit.LoadKeyFile(o.KeyFile)
		if err != nil {
			return Config{}, err
		}
		kf.Log = log
		cfg.Keys = kf
	case os.Getenv(KeysEnv) != "":
		k, err := appkit.KeysFromEnv(KeysEnv)
		if err != nil {
			return Config{}, err
		}
		cfg.Keys = k
	default:
		r, err := appkit.ParseKeys(appkit.GenerateKey())
		if err != nil {
			return Config{}, err
		}
		log.Warn("no session keys given (--session-keys or $" + KeysEnv + "): using a random key, so logins survive neither a switch nor a restart")
		cfg.Keys = appkit.StaticKeys{R: r}
	}
	if o.Seed != "" {
		cfg.Seed = map[string]string{}
		for _, up := range strings.Split(o.Seed, ",") {
			name, pw, ok := strings.Cut(strings.TrimSpace(up), ":")
			if !ok || !validName(name) || pw == "" {
				return Config{}, fmt.Errorf("--seed: %q is not name:password (name: 2-32 of a-z 0-9 - _ .)", up)
			}
			cfg.Seed[name] = pw
		}
	}
	return cfg, nil
}
