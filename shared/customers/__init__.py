"""Customers: their tenant (search, connection), licences, plan enablement and onboarding."""
