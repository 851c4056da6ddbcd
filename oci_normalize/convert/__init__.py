"""Fetch a tree, normalize it (pure), and write it: blobs, manifests, in-place safety, diffs."""
