"""pytest plugin: fixtures that start the real registry (filled in by the e2e harness)."""
