"""pluginsd: DevStack-style plugins run across many nodes."""
