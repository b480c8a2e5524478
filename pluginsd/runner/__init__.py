"""Running plugin phases on a node: the bash session, packages, results."""
