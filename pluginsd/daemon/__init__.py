"""pluginsd: the daemon that plans runs and drives the agents."""
