"""Route families: login, Graph, Partner Center, Exchange admin and the emulator's control API."""
