# Sphinx configuration of the pluginsd documentation.
#
# Build: python -m sphinx -W --keep-going -b html doc/source doc/build/html
# (tests/functional/test_docs.py does exactly this).

project = 'pluginsd'
copyright = 'pluginsd developers'
author = 'pluginsd developers'

try:
    from pluginsd import version as _version

    release = _version.VERSION
except ImportError:  # building without pluginsd installed
    release = ''
version = release

extensions = [
    # `.. show-options::` for the configuration reference.
    'oslo_config.sphinxext',
    # Writes the sample configuration file at the start of every build.
    'oslo_config.sphinxconfiggen',
]

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
