# Sphinx configuration of the pluginsd release notes (reno).
#
# Build: tox -e releasenotes, or
# python -m sphinx -a -E -W -b html releasenotes/source releasenotes/build/html
# The notes are the YAML files in releasenotes/notes, read from git by reno;
# add one with `reno new <slug>` (see the contributor guide).

project = 'pluginsd Release Notes'
copyright = 'pluginsd developers'
author = 'pluginsd developers'

extensions = ['reno.sphinxext']

root_doc = 'index'
exclude_patterns = []
pygments_style = 'sphinx'
html_theme = 'alabaster'
html_static_path = ['_static']
templates_path = ['_templates']

# Versions come from git tags; there are none yet, so everything is listed
# as unreleased.
version = ''
release = ''
