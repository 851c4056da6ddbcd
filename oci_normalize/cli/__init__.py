"""The typer app: the only place that prints for humans and picks exit codes."""
