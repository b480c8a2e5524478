"""pluginsctl report: a real run, the real CLI, the page in a real browser.

A two-plugin stack runs on the all-in-one harness; beta fails in install.
The report is written by `pluginsctl report` in its own process, then
opened in headless Chromium, which dumps the DOM after the page's inline
script has counted the bars it laid out, and takes a screenshot.
"""

import os
import re
import subprocess
import sys
import tempfile

import pytest

from tests import gitrepos
from tests.functional import aio

CTL = os.path.join(os.path.dirname(sys.executable), 'pluginsctl')
CHROMIUM = '/usr/bin/chromium'
HOSTILE = "<script>document.body.setAttribute('data-pwned', '1')</script>"


def chromium(tmp_path, *args):
    if not os.path.exists(CHROMIUM):
        if os.environ.get('CI'):
            pytest.fail(
                f'{CHROMIUM} is missing: tools/install-deps.sh '
                '--for-tests installs it'
            )
        pytest.skip(
            f'{CHROMIUM} is missing: install chromium (Debian package)'
        )
    profile = tempfile.mkdtemp(prefix='chromium-profile-', dir=tmp_path)
    cmd = [
        CHROMIUM,
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        f'--user-data-dir={profile}',
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture
def failed_run(tmp_path, monkeypatch):
    """(state dir, run view) of a stack where beta fails in install."""
    monkeypatch.setenv('TEST_TRACE', str(tmp_path / 'trace'))
    alpha = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'alpha'),
        gitrepos.tracing_plugin('alpha', plugin='sleep 0.2'),
    )
    beta = gitrepos.make_repo(
        str(tmp_path / 'repos' / 'beta'),
        gitrepos.tracing_plugin(
            'beta',
            plugin=f'if [[ $2 == install ]]; then echo "{HOSTILE}"; '
            'echo "beta: out of widgets" >&2; exit 3; fi',
        ),
    )
    state = tmp_path / 'state'
    harness = aio.AllInOne(state)
    try:
        view = harness.run(
            'stack',
            f'[[local|localrc]]\nenable_plugin alpha {alpha}\n'
            f'enable_plugin beta {beta}\n',
        )
    finally:
        harness.close()
    assert view['state'] == 'failed'
    assert (
        'plugin beta failed in stack install: exit status 3' in view['error']
    )
    return state, view


def test_report_of_a_failed_stack_in_a_browser(tmp_path, failed_run):
    state, view = failed_run
    plugin_results = [
        (r['plugin'], r['phase'], r['status'])
        for r in view['results']
        if r['plugin']
    ]
    # pre-install: alpha and beta; install: alpha ok, then beta fails; the
    # run stops there.
    assert sorted(plugin_results) == [
        ('alpha', 'install', 'ok'),
        ('alpha', 'pre-install', 'ok'),
        ('beta', 'install', 'failed'),
        ('beta', 'pre-install', 'ok'),
    ]

    out = tmp_path / 'out'
    out.mkdir()
    page = out / 'run.html'
    proc = subprocess.run(
        [
            CTL,
            '--all-in-one',
            '--state-dir',
            str(state),
            'run',
            'report',
            view['id'][:8],
            '--output',
            str(page),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f'run {view["id"]}: report written to {page}' in proc.stderr

    source = page.read_text()
    assert source.count('class="bar"') == 4
    assert HOSTILE not in source
    assert '&lt;script&gt;document.body.setAttribute(' in source

    dom = chromium(tmp_path, '--dump-dom', f'file://{page}')
    # The page's script ran, and laid out every bar with a size: the no-op
    # pre-install of beta (a few microseconds) too.
    assert re.search(r'<body[^>]*\bdata-visible-bars="4"', dom), dom[:2000]
    bars = re.findall(
        r'<div class="bar" data-status="(\w+)" data-phase="([\w-]+)"', dom
    )
    assert bars == [
        ('ok', 'pre-install'),
        ('ok', 'install'),  # alpha
        ('ok', 'pre-install'),
        ('failed', 'install'),
    ]  # beta
    # The plugin's output is text, not markup: its script never ran.
    assert 'data-pwned="1"' not in dom
    assert dom.count('<script') == 1
    assert 'beta: out of widgets' in dom

    png = out / 'run.png'
    chromium(
        tmp_path,
        f'--screenshot={png}',
        '--window-size=1400,900',
        f'file://{page}',
    )
    assert png.is_file() and png.stat().st_size > 5 * 1024
