"""Where images live: the Store protocol and its homes (registry, OCI layout, docker-archive)."""
