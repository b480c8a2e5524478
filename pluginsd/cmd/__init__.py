"""Console scripts: thin wrappers that parse config and start services."""
