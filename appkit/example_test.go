package appkit_test

import (
	"context"
	"database/sql"
	"embed"
	"io/fs"
	"log"
	"net/http"

	"github.com/tandemproxy/tandem/appkit"
)

var migrations embed.FS // //go:embed migrations/*.sql in a real app

// A stateful app on appkit, as examples/taskboard wires it: the gateway
// health-checks /status; every other route is refused while the instance
// is not ready, fenced, and has a session.
func Example() {
	ctx := context.Background()
	db, err := appkit.Open(ctx, "postgres://app@db/app") // or an SQLite file
	if err != nil {
		log.Fatal(err)
	}
	status := appkit.NewStatus("master", "1.0.0")
	epochs := &appkit.Epochs{DB: db, Instance: "master"}
	status.Epochs = epochs

	sub, _ := fs.Sub(migrations, "migrations")
	ms, err := appkit.LoadMigrations(sub, db.Dialect)
	if err != nil {
		log.Fatal(err)
	}
	mig := &appkit.Migrator{DB: db, Migrations: ms, Instance: "master", Status: status}
	if _, err := mig.Migrate(ctx); err != nil {
		log.Fatal(err) // an old binary: keep serving /status instead, it says why
	}

	keys, err := appkit.LoadKeyFile("/etc/app/session-keys") // a mounted Secret
	if err != nil {
		log.Fatal(err)
	}
	sessions := &appkit.Sessions{Keys: keys}
	hub := &appkit.Hub{DB: db, Name: "master", Epochs: epochs}

	mux := http.NewServeMux()
	mux.Handle("GET /websocket", hub)
	mux.Handle("GET /appkit/hub.js", appkit.ClientJS())
	mux.HandleFunc("POST /notes", func(w http.ResponseWriter, r *http.Request) {
		s := appkit.SessionFrom(r.Context())
		key := r.Header.Get(appkit.IdempotencyHeader)
		if !appkit.ValidIdempotencyKey(key) {
			http.Error(w, "an Idempotency-Key is required", http.StatusBadRequest)
			return
		}
		resp, replayed, err := db.Idempotent(r.Context(), s.User, key, []byte(r.URL.Path),
			func(tx *sql.Tx) (appkit.Response, error) {
				if err := epochs.FenceTx(r.Context(), tx); err != nil {
					return appkit.Response{}, err
				}
				// ... the write, then its event, in the same transaction:
				_, err := hub.Publish(r.Context(), tx, "note", map[string]string{"by": s.User})
				return appkit.Response{Status: 201}, err
			})
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		hub.Notify()
		resp.Write(w, replayed)
	})

	root := http.NewServeMux()
	root.Handle("GET /status", status)
	root.Handle("/", status.Guard(epochs.Fence(sessions.Middleware(mux))))

	// Long-lived parts: each is Run(ctx) error.
	for _, run := range []func(context.Context) error{hub.Run, epochs.Run, mig.Run, keys.Run} {
		go run(ctx)
	}
	log.Fatal(http.ListenAndServe(":8079", root))
}
