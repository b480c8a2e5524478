"""The Sphinx documentation builds cleanly: warnings are errors.

It runs the same command as a docs job would, in a fresh output directory.
The build also generates the sample configuration (oslo_config's
sphinxconfiggen) and the option reference (``show-options``), so a broken
option definition or help string fails here too.
"""

import os
import subprocess
import sys

import pytest

TOP = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
# OpenStack's layout: install, admin, user, contributor, reference.
PAGES = (
    'index',
    'install/index',
    'admin/index',
    'admin/operations',
    'admin/security',
    'user/index',
    'user/cli',
    'user/contract',
    'contributor/index',
    'contributor/architecture',
    'contributor/contributing',
    'contributor/extensions',
    'reference/index',
    'reference/configuration',
    'reference/api',
    # sphinxcontrib-apidoc: one page per module
    'reference/api/pluginsd.daemon.runs',
)


@pytest.mark.timeout(180)
def test_docs_build_without_warnings(tmp_path):
    out = tmp_path / 'html'
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'sphinx',
            '-W',
            '--keep-going',
            '-b',
            'html',
            os.path.join('doc', 'source'),
            str(out),
        ],
        cwd=TOP,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for page in PAGES:
        assert (out / f'{page}.html').is_file(), f'{page}.html was not built'
    # show-options rendered pluginsd's own options ...
    reference = (out / 'reference' / 'configuration.html').read_text()
    for option in (
        'allowed_sources',
        'operator_keys',
        'phase_timeout',
        'role_order',
        'plugin_source',
    ):
        assert option in reference, f'{option} missing from the reference'
    # ... and sphinxconfiggen wrote the sample the page includes and links.
    sample = out / '_static' / 'pluginsd.conf.sample'
    assert sample.is_file()
    assert '[oslo_messaging_rabbit]' in sample.read_text()


@pytest.mark.timeout(120)
def test_release_notes_build_without_warnings(tmp_path):
    """reno's notes (releasenotes/notes, read from git) build with -W."""
    out = tmp_path / 'releasenotes'
    proc = subprocess.run(
        [
            sys.executable,
            '-m',
            'sphinx',
            '-a',
            '-E',
            '-W',
            '--keep-going',
            '-b',
            'html',
            os.path.join('releasenotes', 'source'),
            str(out),
        ],
        cwd=TOP,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    page = (out / 'unreleased.html').read_text()
    # Notes were found (reno reads committed notes), in their sections.
    for section in ('New Features', 'Upgrade Notes', 'Bug Fixes'):
        assert section in page, f'{section} missing from the release notes'
