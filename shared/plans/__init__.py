"""Customer plans and user plans (the licences, by SKU part number, a user plan grants)."""
