"""The composition root: the `provisioner` command line, the dev supervisor and the API runner."""
