# Sphinx configuration of the pluginsd documentation.
#
# Build: python -m sphinx -W --keep-going -b html doc/source doc/build/html
# (tests/functional/test_docs.py does exactly this).

import os
import sys

project = 'pluginsd'
copyright = 'pluginsd developers'
author = 'pluginsd developers'

try:
    from pluginsd import version as _version

    release = _version.VERSION
except ImportError:  # building without pluginsd installed
    release = ''
version = release

# Our own small extensions (doc/source/_exts).
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_exts'))

extensions = [
    # `.. show-options::` for the configuration reference.
    'oslo_config.sphinxext',
    # Writes the sample configuration file at the start of every build.
    'oslo_config.sphinxconfiggen',
    # The API reference: sphinx-apidoc runs on every build.
    'sphinx.ext.autodoc',
    'sphinxcontrib.apidoc',
    # :pyname:`pluginsd.x.y` - a name that must exist (contributor guide).
    'pyname',
]

# sphinxcontrib.apidoc: one page per module under reference/api/ (generated,
# not in git). Migrations are scripts, not API.
apidoc_module_dir = '../../pluginsd'
apidoc_output_dir = 'reference/api'
apidoc_excluded_paths = ['db/migrations']
apidoc_separate_modules = True
apidoc_toc_file = False
apidoc_module_first = True
autodoc_default_options = {
    'members': True,
    'show-inheritance': True,
    # SQLAlchemy's declarative attributes carry SQLAlchemy's own docs.
    'exclude-members': 'metadata, registry',
}
# Only our own docstrings: inherited ones (SQLAlchemy's, ...) may use
# references that do not resolve here.
autodoc_inherit_docstrings = False

# oslo_config.sphinxconfiggen: the generator instructions (the same file
# tools/genconfig.sh uses) and where the sample goes, relative to this
# directory; ".conf.sample" is appended: _static/pluginsd.conf.sample.
config_generator_config_file = '../../etc/oslo-config-generator/pluginsd.conf'
sample_config_basename = '_static/pluginsd'

root_doc = 'index'
exclude_patterns = []
pygments_style = 'sphinx'

html_theme = 'alabaster'
html_static_path = ['_static']
html_theme_options = {
    'description': (
        'DevStack plugins, run as DevStack runs them, on many nodes'
    ),
}
