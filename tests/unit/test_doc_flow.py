"""The contributor guide names functions that exist.

doc/source/contributor/architecture.rst walks one run through the code with
``:pyname:`dotted.name``` references. The docs build checks them too (the
``pyname`` extension, doc/source/_exts); this test says so in seconds,
without Sphinx, with the same resolver.
"""

import importlib.util
import os
import re

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
DOC = os.path.join(TOP, 'doc', 'source')
GUIDE = os.path.join(DOC, 'contributor', 'architecture.rst')


def _pyname():
    path = os.path.join(DOC, '_exts', 'pyname.py')
    spec = importlib.util.spec_from_file_location('pyname', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flow_names():
    with open(GUIDE, encoding='utf-8') as f:
        text = f.read()
    start = text.index('The flow of one run\n')
    end = text.index('\nStages and barriers\n', start)
    # A role's text may wrap onto the next line.
    names = re.findall(r':pyname:`([^`]+)`', text[start:end])
    return [re.sub(r'\s+', '', n) for n in names]


def test_the_flow_section_names_functions():
    names = _flow_names()
    # Every step of the run is covered: CLI, daemon, planning, agents,
    # the bash session, results.
    assert len(names) >= 20, names
    for prefix in (
        'pluginsd.cmd.cli.',
        'pluginsd.daemon.runs.',
        'pluginsd.plugins.plan.',
        'pluginsd.agent.manager.',
        'pluginsd.runner.node.',
        'pluginsd.runner.shell.',
        'pluginsd.db.api.',
    ):
        assert any(n.startswith(prefix) for n in names), prefix


@pytest.mark.parametrize('name', _flow_names())
def test_named_function_exists(name):
    obj = _pyname().resolve(name)
    assert callable(obj), f'{name} is not a function or class'


@pytest.mark.parametrize(
    'name, missing',
    [
        ('pluginsd.daemon.runs.RunManager.no_such', "no 'no_such'"),
        ('pluginsd.no_such_module.f', "pluginsd has no 'no_such_module'"),
        ('no_such_package.f', "no module 'no_such_package'"),
    ],
)
def test_a_renamed_function_is_reported(name, missing):
    with pytest.raises(LookupError) as e:
        _pyname().resolve(name)
    assert missing in str(e.value)
