"""``oci-normalize serve``: push events to a durable queue to the same three phases per ref."""
