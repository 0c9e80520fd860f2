// Package network gives containers Docker's network model on the kernel's
// own parts: bridge networks (the default "bridge", whose device is berth0,
// and user-defined ones with their own subnets), the predefined "host" and
// "none", veth endpoints with addresses from IPAM, published ports done by
// nftables DNAT in berth's own tables (no proxy process per port), and the
// embedded DNS server of user-defined networks.
//
// A Manager works on the records of package store and makes the kernel
// match them: links through netlink (package link), nftables tables
// rendered as a description from the whole state (Rules) and applied in one
// transaction (package nft), and with them, from the same records, the
// connect-time redirection of published TCP ports for clients in the
// host's namespace (Redirects, package portredirect), an accelerator the
// DNAT rules back up. Every change holds the store's lock from the
// first read to the last kernel change, so concurrent `berth` processes are
// serialised.
//
// How the engine uses it:
//
//	netns.Create(STATE/netns/ID, nil)           a network namespace that outlives no one
//	m.Attach(ctx, AttachOptions{NetNS: ...})    before the container's process starts
//	  (the runtime joins the namespace by path; `network connect` calls
//	   Attach on a running container the same way)
//	resolv.RenderHosts / RenderResolvConf       the container's /etc files
//	m.DetachAll(ctx, ID); netns.Remove(...)     when the container stops
//	m.Reconcile(ctx, alive)                     after a crash or a reboot
//
// The embedded DNS server (package dns, command berth-dns) is one small
// process per host, started on demand by Attach when a container joins a
// user-defined network, answering on each such network's gateway address
// (the container's resolv.conf names the gateway, as Podman's aardvark-dns
// does). It reads the records and re-reads them when they change, so a
// container that joins later is resolvable as soon as Attach returns.
package network
