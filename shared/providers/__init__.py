"""Service providers (resellers), their Partner Center connection and their two services."""
