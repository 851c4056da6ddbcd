"""``oci-normalize serve``: push events in, a durable queue, the same conversion per reference.

At the batch/api layer: it imports api, batch, convert, store and the vocabulary; only the CLI
imports it. :mod:`.events` parses POST bodies into work items (pure), :mod:`.queue` holds them
durably, :mod:`.worker` converts them, :mod:`.reconcile` sweeps what events missed, :mod:`.app`
is the HTTP side and :mod:`.service` wires them together.
"""
