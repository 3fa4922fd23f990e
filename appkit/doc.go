// Package appkit is for the stateful web apps that run behind tandem as a
// master and a failover: it removes what makes a switch visible to users.
//
//   - Status: a /status handler with version, build, role, schema version,
//     uptime and readiness; its body contains "version" as the health check
//     expects, and it answers 503 with the reason while the instance is not
//     ready or refuses to serve.
//   - Epochs: the gateway sends X-Tandem-Epoch (its switch counter) with
//     every request, and its health checks send X-Tandem-Role ("active;
//     epoch=7" or "standby; epoch=7"). The role is what the latest check
//     said (within Window), unless traffic with a newer epoch came since;
//     with no recent check it is inferred from the traffic. The newest
//     epoch is persisted so both instances agree, and writes that carry an
//     older one may be fenced.
//   - Sessions: encrypted, authenticated cookies (AES-256-GCM) under a key
//     ring shared by both instances, so a switch logs nobody out; CSRF
//     tokens bound to the session.
//   - Hub: websocket events with ids taken in commit order from the
//     database; a reconnecting client gets what it missed (?since=ID), and
//     the plain-JS client (ClientJS) reconnects on 1012, 1001 and 1006.
//   - Migrator: embedded SQL migrations under a lock (PostgreSQL advisory
//     lock, SQLite write transaction), the schema version recorded, and a
//     guard that stops a binary older than the schema from serving.
//   - Idempotent: apply a write once per Idempotency-Key, since the gateway
//     may replay a POST that carries one on the other instance.
//
// It works on PostgreSQL and on an embedded SQLite file (see Open).
package appkit
