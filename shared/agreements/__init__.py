"""The customer's Microsoft Customer Agreement: read live from, and recorded to, Partner Center."""
