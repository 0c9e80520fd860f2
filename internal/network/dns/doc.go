// Package dns is the client of the embedded DNS server of user-defined
// networks: the network manager starts and signals the server with it. The
// server itself is package dns/server (cmd/berth-dns).
//
// One server runs per host (per records directory), in the host's network
// namespace, started on demand (Client.Sync) as a process of its own
// (cmd/berth-dns) that outlives the berth command that started it. It
// serves UDP and TCP port 53 on the gateway address of every user-defined
// network that has containers; a container's resolv.conf names that
// gateway. It answers A, AAAA and PTR for the names of the containers on
// the networks the asking container shares with them (container name,
// short ID, --network-alias, and NAME.NETWORK), from an index built from the
// records, and forwards every other name to the asking container's --dns
// servers or else the host's resolvers (not for --internal networks).
// Queries from addresses outside berth's networks are refused.
//
// Freshness: a query first checks whether the records file changed (one
// stat) and rebuilds the index if so, and Sync asks the server over its
// control socket to reload and bind new gateways before Attach returns: a
// container that joins is resolvable at once, and the server's state is
// never older than the records.
//
// Files in the run directory:
//
//	dns.lock   flock held by the running server (one per directory)
//	dns.pid    its process ID
//	dns.sock   control socket: the client writes "sync\n", the server
//	           reloads and answers "ok\n" or "error: TEXT\n"
//	dns.log    the server's messages
//	dns.start  flock serialising clients that start a server
//
// Lifetime: with ServerConfig.IdleExit the server ends once no
// user-defined network has had containers for that long (berth-dns: 30s),
// so a daemonless host runs no server it does not need; the next Attach
// to a user-defined network starts one again.
//
// Load: every query is handled on its own goroutine, local answers come
// from memory, and forwarded queries wait on their upstream alone (with a
// bound on how many are in flight), so a slow upstream never delays the
// answers for containers' names (Docker's embedded server is known to time
// out under load).
package dns

// Files of the run directory.
const (
	LockFile  = "dns.lock"
	PIDFile   = "dns.pid"
	SockFile  = "dns.sock"
	LogFile   = "dns.log"
	StartFile = "dns.start"
)
