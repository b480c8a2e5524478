"""pluginsd-agent: runs the phases a node is asked to run."""
