// Package protocol defines what berth's per-container monitor (berth-shim)
// and the engine say to each other: the files of the monitor's directory,
// the messages on its sockets and pipes, and the decisions both sides must
// agree on (restart policy, exit codes). It is imported by the monitor, so
// it stays small: no fmt, no encoding/json, no reflection.
//
// # Command line
//
//	berth-shim --id ID --bundle DIR --runtime PATH --runtime-root DIR --dir DIR
//	           [--log FILE] [--log-max-size BYTES] [--log-max-files N]
//	           [--tty] [--stdin] [--stdin-once] [--wait-attach]
//	           [--restart no|always|unless-stopped|on-failure[:N]]
//	           [--oom-file PATH] [--exit-command PATH --exit-arg ARG ...]
//	           [--attach-fd N]
//	fd 3: the ready pipe (write end)
//	fd N: attach.sock, bound and listening (the engine made it)
//
// The engine starts the monitor in a new session with stdio on /dev/null.
// With --wait-attach it makes attach.sock itself and passes it down
// (--attach-fd 4), so that its client connects and says hello while the
// monitor is still starting, instead of polling for the monitor's socket.
//
// # The monitor's directory (--dir)
//
//	shim.pid      the monitor's pid ("1234\n"); the monitor is alive while
//	              that process runs with "--dir DIR" on its command line
//	init.pid      the container init's pid, written by the runtime (--pid-file)
//	runtime.log   the runtime's JSON log (--log, --log-format json)
//	console.sock  with --tty: receives the pty master from the runtime
//	attach.sock   attach clients (0600), see below
//	control.sock  control requests (0600), see below
//	run.json      the current run: init pid, start time, restart count,
//	              written atomically after each start (see Run)
//	exit.json     the last exit, written atomically (temp file + rename)
//	stopped       created by the engine when the user stops the container
//	              (and by the monitor when it takes a stop's KillAfter):
//	              the monitor restarts it no more
//	shim.log      the monitor's own warnings, if it has any
//
// # Start ladder (fd 3)
//
//	engine                          berth-shim                      runtime
//	  | fork+exec, Setsid, fd 3 ------>|
//	  |                                | subreaper, shim.pid, sockets
//	  |-- connect attach.sock -------->| (only with --wait-attach: waits
//	  |-- {"stdin":..} hello --------->|  for this, at most 10 s)
//	  |                                | run --detach --bundle
//	  |                                |     --pid-file ---------------->|
//	  |                                |<------- exit 0 (process runs) --|
//	  |<------------- {"pid":1234}\n --| (then fd 3 is closed)
//
// Create and start are one runtime command (runc's `run --detach`): one
// process start less per container start. A client attached before it
// misses none of the output, which the monitor copies only once the
// container exists.
//
// On a failure before the container runs, the monitor runs
// `runtime delete --force`, writes {"error":"..."} on fd 3 and exits 1.
// The message is the runtime's last "level":"error" log line, else its
// stderr, else its exit status.
//
// # Attach (attach.sock)
//
// A client connects and writes one line, a Hello:
//
//	{"stdin":true,"stdout":true,"stderr":true,"logs":false}
//
// From then on the monitor writes the container's output to the client:
// with a terminal the raw bytes, otherwise in Docker's stdcopy framing (an
// 8-byte header: stream 1 or 2, three zero bytes, a big-endian uint32
// payload length; then the payload). With "logs":true the log file's
// content is sent first. Bytes the client writes after the hello line go to
// the container's stdin when it asked for stdin. With --stdin-once, the end
// of the first attached stdin (EOF from the client) closes the container's
// stdin, as Docker's StdinOnce. A client that does not keep up (more than
// MaxClientBacklog bytes pending) is disconnected; the log never loses
// data for it. Clients stay connected across restarts.
//
// # Control (control.sock)
//
// One JSON line per request, one JSON line per reply:
//
//	{"resize":{"height":24,"width":80}}   -> {"ok":true}
//	{"close-stdin":true}                  -> {"ok":true}
//	{"take-exit":true}                    -> {"ok":true} or {"error":"..."}
//	{"exit-handled":true}                 -> {"ok":true} (after take-exit only)
//	{"wait-deleted":true}                 -> {"ok":true} or {"error":"..."} (after take-exit only)
//	{"kill-after-ms":11000}               -> {"ok":true}
//	anything else                         -> {"error":"..."}
//
// kill-after-ms is the deadline of a stop, held by the monitor so that it
// holds when the engine's process that asked is killed: if the run that
// was current when asked still runs then, the monitor runs `runtime kill
// --all ID 9`. Later requests add deadlines; none outlives the monitor.
//
// # Exit
//
// When the container's init exits the monitor writes exit.json:
//
//	{"exitCode":137,"oomKilled":true,"finishedAt":"2026-11-27T21:03:41.123456789Z","restartCount":0}
//
// plus "restarting":true when the restart policy will start it again, and
// "error":"..." when a restart failed. Then it runs `runtime delete
// --force`, ends the attach clients' output, and runs the exit command
// (stdio on /dev/null, waited for) unless the exit is handed over (below;
// the delete then runs while the client records the exit).
// When the container is not restarted, it then removes its sockets and
// exits 0. Otherwise it waits the restart delay, starts the container again,
// writes run.json:
//
//	{"pid":1234,"startedAt":"2026-11-27T21:03:42.5Z","restartCount":1}
//
// and runs the exit command once more. So the exit command runs after
// every change of the container's run, and reads which one from the files:
// an exit.json whose restartCount is at least run.json's says the run
// ended (for good unless "restarting"), else run.json's run is the live
// one. run.json is also written for the first run.
//
// # Exit hand-over
//
// A foreground `run` waits for the container's exit anyway: it records the
// exit itself, which saves starting the exit command's process. Exactly
// one of the two records the final exit:
//
//	client                                   berth-shim
//	  |-- hello {...,"exit":true} ------------>| the claimant (the first such
//	  |                                        | client, while it is connected)
//	  |                                        | final exit: exit.json; starts
//	  |<------------------------ end of output | runtime delete; (claimant still
//	  |                                        | connected) waits up to 10 s
//	  |-- control: {"take-exit":true} -------->|
//	  |<----------------------- {"ok":true} ---| taken: waits for this connection
//	  | records the exit (the exit command's   |
//	  | work, in its own process) while the    |
//	  | runtime deletes the container          |
//	  |-- {"wait-deleted":true} -------------->| (optional) once deleted
//	  |<------------ {"ok":true} or {"error"} -|
//	  |-- {"exit-handled":true} -------------->|
//	  |<----------------------- {"ok":true} ---| no exit command; after the
//	  |                                        | delete: sockets removed, exit 0
//
// The runtime's delete (a process start) thus overlaps the claimant's
// work. A claimant that keeps the container waits for the monitor's exit
// (which follows the delete) after exit-handled, so that what it does next
// finds the runtime done; wait-deleted waits for the delete alone and
// answers its failure as an error. A claimant that removed the container
// (--rm) says exit-removed instead of exit-handled and returns at once:
// the container is gone for the engine (record, layer, name), and the
// monitor, once the runtime's delete succeeded, removes the run directory
// (the bundle, its own files) unless something is still mounted below it.
// A run directory left without a container and without a live monitor (a
// failed delete, a monitor killed meanwhile) is removed by the engine's
// next create, which deletes the runtime's state first. Without a claimant
// the monitor deletes before it ends the clients' output, so that what
// they do next finds the runtime done.
//
// take-exit is refused unless the final exit waits to be taken (so a
// client whose output ended early, or that comes after the 10 s, gets an
// error and leaves the exit to the exit command). A control connection
// that took the exit and closes without exit-handled gives it back: the
// exit command runs (after the delete, and finds whatever part of the
// work was done). The monitor also watches the claimant's process (the
// peer of its attach connection): if it ends before taking the exit, the
// exit command runs as soon as the delete is done rather than after the
// 10 s.
//
// # Logs
//
// The output is written to --log in Docker's json-file format, see package
// jsonlog.
package protocol
