"""Sweeping a registry: targets, the concurrent run, the journal, rollback and reports."""
