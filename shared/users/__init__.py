"""Users: creating them, provisioning and deprovisioning their Microsoft Online service, in bulk too."""
