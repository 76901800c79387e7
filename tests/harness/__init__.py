"""The harness shared by tests and bench: private Redis and PostgreSQL, stack processes, seeding, waiting."""
