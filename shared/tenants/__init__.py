"""Customer tenants: connecting them through Partner Center, GDAP, domains."""
