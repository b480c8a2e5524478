"""The installed version of pluginsd, as pbr computed it."""

from importlib import metadata

try:
    VERSION = metadata.version('pluginsd')
except metadata.PackageNotFoundError:  # running from a bare checkout
    VERSION = '0.0.0'
