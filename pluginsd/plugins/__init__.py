"""Plugins: fetching them, reading their settings, ordering them."""
