"""Talking HTTP to registries: transport, auth, credentials, retries, proxy and CA environment."""
