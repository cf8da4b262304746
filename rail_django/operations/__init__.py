"""What the management commands do: export, cleanup, summary, verify/replay and the deployment checks."""
