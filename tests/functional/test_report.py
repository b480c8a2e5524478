"""pluginsctl report: a real run, the real CLI, the page in a real browser.

A two-plugin stack runs on the all-in-one harness; beta fails in install.
The report is written by `pluginsctl report` in its own process, then
opened in headless Chromium, which dumps the DOM after the page's inline
script has counted the bars it laid out, and takes a screenshot.
"""

import html
import json
import os
import re
import subprocess
import sys
import tempfile

import pytest

from pluginsd import report
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


# Written into the page by the test (not by the report): measures every
# label the browser laid out and stores the result in body[data-measure].
MEASURE = """
<script>
(function () {
  function box(e) {
    var r = e.getBoundingClientRect();
    return {l: r.left, r: r.right, t: r.top, b: r.bottom, text: e.textContent};
  }
  var labels = [];
  document.querySelectorAll('.plabel, .tick span').forEach(function (e) {
    var b = box(e);
    if (b.r > b.l && b.b > b.t) { labels.push(b); }
  });
  var overlaps = [];
  for (var i = 0; i < labels.length; i++) {
    for (var j = i + 1; j < labels.length; j++) {
      var a = labels[i], c = labels[j];
      if (a.l < c.r && c.l < a.r && a.t < c.b && c.t < a.b) {
        overlaps.push([a.text, c.text]);
      }
    }
  }
  var tl = document.querySelector('.timeline').getBoundingClientRect();
  var groups = [];
  document.querySelectorAll('details.group').forEach(function (g) {
    var shown = [];
    g.querySelectorAll('.plabel').forEach(function (e) {
      var b = box(e);
      var inside = b.l >= tl.left - 0.5 && b.r <= tl.right + 0.5;
      if (b.r > b.l && inside) { shown.push(e.textContent); }
    });
    groups.push({role: g.getAttribute('data-role'),
                 bands: g.querySelectorAll('.phase').length,
                 shown: shown});
  });
  document.body.setAttribute('data-measure', JSON.stringify(
    {labels: labels.length, overlaps: overlaps, groups: groups}));
})();
</script>
"""

PHASES = ['pre-install', 'install', 'post-config', 'extra', 'test-config']


def big_retried_view():
    """50 nodes x 20 plugins with a retry.

    cmp-07's p-05 fails install in attempt 1; a retry of the failed node
    completes the run in attempt 2.
    """
    import hashlib

    t0 = 1_800_000_000.0
    plugins = [f'p-{i:02d}' for i in range(1, 21)]
    computes = [f'cmp-{i:02d}' for i in range(1, 50)]
    roles = {'ctl-01': 'controller', **{h: 'compute' for h in computes}}
    durations = {'pre-install': 0.05, 'install': 3.0, 'post-config': 1.0,
                 'extra': 2.0, 'test-config': 0.02}  # fmt: skip

    def results_of(host, phase, start, attempt, fail=None):
        out, t = [], start
        for p in plugins:
            took = durations[phase] * (1 + (hash((host, p)) % 5) / 10)
            bad = p == fail
            out.append(
                {
                    'id': 0, 'run_id': 'big', 'node': host, 'plugin': p,
                    'mode': 'stack', 'phase': phase, 'attempt': attempt,
                    'status': 'failed' if bad else 'ok',
                    'exit_code': 3 if bad else 0,
                    'started_at': t, 'ended_at': t + took,
                    'log_path': f'/logs/{phase}/{p}.log',
                    'tail': 'fatal: out of widgets' if bad else '',
                    'message': 'exit status 3' if bad else '',
                }
            )  # fmt: skip
            t += took
            if bad:
                break
        out.append(dict(out[-1], plugin='', started_at=start, ended_at=t))
        return out, t

    current, old = [], []
    t = t0
    for phase in PHASES:  # stage 1: the controller
        rs, t = results_of('ctl-01', phase, t, 1)
        current += rs
    stage2 = t
    for phase in PHASES[:2]:  # stage 2, attempt 1: install fails on cmp-07
        end = stage2
        for h in computes:
            fail = 'p-05' if (h, phase) == ('cmp-07', 'install') else None
            rs, e = results_of(h, phase, stage2, 1, fail)
            (old if (h, phase) == ('cmp-07', 'install') else current).extend(
                rs
            )
            end = max(end, e)
        stage2 = end
    retry = stage2 + 30
    rs, t = results_of('cmp-07', 'install', retry, 2)
    current += rs
    for phase in PHASES[2:]:
        end = t
        for h in computes:
            rs, e = results_of(h, phase, t, 2)
            current += rs
            end = max(end, e)
        t = end
    sha = {p: hashlib.sha1(p.encode()).hexdigest() for p in plugins}
    return {
        'id': 'b16b16b1-0000-4000-8000-000000000050',
        'mode': 'stack',
        'state': 'completed',
        'created_at': t0 - 5,
        'updated_at': t + 1,
        'local_conf_path': '/home/stack/local.conf',
        'stages': [['ctl-01'], computes],
        'node_roles': roles,
        'attempt': 2,
        'error': '',
        'plans': {
            r: {'order': plugins, 'plugins': [], 'reasons': []}
            for r in ('controller', 'compute')
        },
        'commits': [
            {
                'role': r,
                'plugin': p,
                'url': f'https://git.example/{p}',
                'ref': 'master',
                'commit': sha[p],
            }
            for r in ('compute', 'controller')
            for p in plugins
        ],  # fmt: skip
        'attempts': [
            {
                'attempt': 1,
                'state': 'failed',
                'ended_at': stage2,
                'error': 'node cmp-07: plugin p-05 failed in stack install: '
                'exit status 3\n--- output tail ---\nfatal: out of widgets',
                'results': old,
            }
        ],
        'results': current,
    }


def test_report_of_50_nodes_20_plugins_with_a_retry(tmp_path):
    view = big_retried_view()
    page = tmp_path / 'big.html'
    page.write_text(
        report.render(view).replace('</body>', MEASURE + '</body>')
    )
    dom = chromium(
        tmp_path, '--window-size=1400,900', '--dump-dom', f'file://{page}'
    )
    found = re.search(r'<body[^>]*\bdata-measure="([^"]*)"', dom)
    assert found, dom[:3000]
    measure = json.loads(html.unescape(found.group(1)))
    # No label covers another.
    assert measure['overlaps'] == []
    assert measure['labels'] > 10
    # Every stage (a role here) has one shown label per phase band: the
    # controller's 5 phases; the computes' 5 phases, pre-install and
    # install in attempt 1 and install to test-config in attempt 2.
    groups = {g['role']: g for g in measure['groups']}
    assert groups['controller']['shown'] == PHASES
    assert groups['controller']['bands'] == 5
    assert groups['compute']['shown'] == [
        'pre-install (attempt 1)',
        'install (attempt 1)',
        'install (attempt 2)',
        'post-config (attempt 2)',
        'extra (attempt 2)',
        'test-config (attempt 2)',
    ]
    assert groups['compute']['bands'] == 6
    # Attempt 1's failure is listed after the retry, with its output.
    failures = dom[dom.index('<h2>Failures</h2>') :]
    assert 'Attempt 1: failed' in failures
    first = re.search(
        r'<div class="failure" data-status="failed" data-attempt="1"><h3>'
        r'cmp-07 · p-05 · stack install — failed, exit code 3</h3>',
        failures,
    )
    assert first, failures[:3000]
    assert 'fatal: out of widgets' in failures
    # The replaced results are drawn, marked as an earlier attempt.
    assert dom.count('class="bar earlier"') == 5  # p-01..p-05 of cmp-07
    # Commits: every plugin of both roles, with its commit.
    for c in view['commits']:
        assert f'title="{c["commit"]}">{c["commit"][:12]}<' in dom
    # Grouped by role, collapsible; at 50 nodes the nodes that only
    # succeeded start closed, the one that failed (in attempt 1) open.
    assert dom.count('<details class="group" open') == 2
    assert re.search(
        r'<details class="node" open="?"? data-node="cmp-07"', dom
    )
    assert '<details class="node" data-node="cmp-08">' in dom
    for mark in ('striped and faded', 'shaded band', 'dashed line',
                 "role '*'", 'never ran', 'at least 5 px'):  # fmt: skip
        assert mark in dom, mark
