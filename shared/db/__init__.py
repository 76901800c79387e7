"""Database access: engine, sessions, unit of work, models and migrations."""
