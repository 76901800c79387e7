"""Microsoft cloud emulator: login, Graph, Partner Center and Exchange admin on one HTTPS address."""
