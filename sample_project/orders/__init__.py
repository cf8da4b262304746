"""Orders: the sample project's one business app."""
