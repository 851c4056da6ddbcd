"""Test harness: real registry processes, seeders, fault and token servers, peers."""
