// Package image is berth's image store and the operations on images: pull,
// push, tag, remove, prune, import, commit, save, load, inspect and history.
//
// An image is a config blob (its digest is the image ID), a manifest, and an
// ordered list of layers. Blobs (manifests, configs, compressed layers) live
// in the content store (package content); unpacked layers live in a layer
// store (snapshots keyed by chain id, shared by every image that has them,
// see Layers); this package keeps the records that tie them together.
//
// On-disk schema (root = <berth root>/image):
//
//	version                 "1": the schema version of this directory
//	lock                    flock'd around every change of refs.json, images/ and leases/
//	refs.json               {"refs": {"<full reference>": "<image id>"}}: tags
//	                        ("docker.io/library/busybox:latest") and repo digests
//	                        ("docker.io/library/busybox@sha256:...")
//	images/<hex>.json       one Image record per image ID (sha256:<hex>)
//	leases/<id>.json        blobs and chain ids an operation in progress is
//	leases/<id>.lock        creating; flock'd by the live operation (GC keeps them)
//
// Every file is written to a temporary name and renamed. A record is written
// only after all its blobs and layers are committed, and refs only name
// records that exist, so a crash leaves at worst unreferenced blobs and layers
// (and a stale lease), which GC removes. Locks are held for the short edits
// only, never across a download.
//
// Reference counting: a layer (chain id) or blob is in use while an image
// record names it, a live lease names it, or (for images) a holder — a
// container, through the Holders callback — uses the image. GC frees exactly
// the rest.
package image
