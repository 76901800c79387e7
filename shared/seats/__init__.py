"""The seat ledger: Microsoft's free units minus the seats held for pending requests."""
