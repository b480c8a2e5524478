"""pluginsd.report: the HTML picture of a run, from hand-made run views."""

import html.parser
import re

from pluginsd import report

T0 = 1_700_000_000.0


def result(
    node,
    plugin,
    phase,
    status='ok',
    start=0.0,
    end=1.0,
    code=None,
    tail='',
    message='',
    attempt=1,
):
    if code is None:
        code = {'ok': 0, 'failed': 1, 'killed': -9}.get(status)
    return {
        'id': 0,
        'run_id': 'r',
        'node': node,
        'plugin': plugin,
        'mode': 'stack',
        'phase': phase,
        'attempt': attempt,
        'status': status,
        'exit_code': code,
        'started_at': None if start is None else T0 + start,
        'ended_at': None if end is None else T0 + end,
        'log_path': f'/logs/{phase}/{plugin or "node"}.log' if plugin else '',
        'tail': tail,
        'message': message,
    }


def view(
    results,
    error='',
    state='failed',
    stages=(('ctl',), ('cpu-1',)),
    roles=None,
    plans=None,
):
    return {
        'id': '0123abcd-run',
        'mode': 'stack',
        'state': state,
        'created_at': T0 - 2,
        'updated_at': T0 + 30,
        'local_conf_path': '/home/stack/local.conf',
        'stages': [list(s) for s in stages],
        'node_roles': roles or {'ctl': 'controller', 'cpu-1': 'compute'},
        'attempt': 1,
        'error': error,
        'plans': plans
        if plans is not None
        else {
            'controller': {
                'order': ['keystone', 'nova'],
                'plugins': [],
                'reasons': [],
            },
            'compute': {'order': ['nova'], 'plugins': [], 'reasons': []},
        },
        'results': results,
    }


def two_node_results():
    return [
        result('ctl', 'keystone', 'pre-install', start=0, end=2),
        result('ctl', 'nova', 'pre-install', start=2, end=2.00001),  # no-op
        result('ctl', '', 'pre-install', start=0, end=2.1),
        result('cpu-1', 'nova', 'pre-install', start=2.2, end=3),
        result(
            'cpu-1',
            'hypervisor-fake',
            'pre-install',
            status='skipped',
            start=3,
            end=3,
            message='no devstack/plugin.sh',
        ),
        result('cpu-1', '', 'pre-install', start=2.2, end=3.1),
        result('ctl', 'keystone', 'install', start=4, end=9),
        result(
            'ctl',
            'nova',
            'install',
            status='failed',
            start=9,
            end=12,
            tail='building nova\nerror: <script>alert("x")</script> & more',
            message='exit status 1',
        ),
        result(
            'ctl',
            '',
            'install',
            status='failed',
            start=4,
            end=12,
            tail='building nova\nerror: <script>alert("x")</script> & more',
            message=(
                'node ctl: plugin nova failed in stack install: exit status 1'
            ),
        ),
    ]


def bars(page):
    return re.findall(r'<div class="bar"[^>]*>', page)


def attr(tag, name):
    return html.unescape(re.search(rf'{name}="([^"]*)"', tag).group(1))


class _Collector(html.parser.HTMLParser):
    """Text of the page outside <style> and <script>, and the script bodies."""

    def __init__(self):
        super().__init__()
        self.stack, self.text, self.scripts = [], [], []

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack and self.stack[-1] == 'script':
            self.scripts.append(data)
        elif not self.stack or self.stack[-1] != 'style':
            self.text.append(data)


def parse(page):
    collector = _Collector()
    collector.feed(page)
    return collector


def test_one_bar_per_plugin_result_and_none_for_node_results():
    results = two_node_results()
    page = report.render(view(results))
    assert (
        page.count('class="bar"')
        == len([r for r in results if r['plugin']])
        == 6
    )
    assert len(bars(page)) == 6


def test_bars_carry_status_and_the_status_has_its_colour():
    page = report.render(view(two_node_results()))
    statuses = [attr(b, 'data-status') for b in bars(page)]
    # Rows: ctl (keystone, nova), then cpu-1 (nova, then hypervisor-fake,
    # which is in no plan); within a row, in time order.
    assert statuses == ['ok', 'ok', 'ok', 'failed', 'ok', 'skipped']
    css = re.search(r'<style>(.*)</style>', page, re.S).group(1)
    for status, colour in {
        'ok': '#2e9e44',
        'failed': '#d93025',
        'timeout': '#f08c00',
        'cancelled': '#8d8d8d',
        'killed': '#8d8d8d',
        'skipped': '#dcdcdc',
    }.items():
        assert re.search(
            rf'\.bar\[data-status={status}\][^{{]*{{ background: '
            rf'{colour}; }}',
            css,
        ), status


def test_rows_follow_stage_order_then_plan_order_then_other_names():
    page = report.render(view(two_node_results()))
    rows = re.findall(
        r'class="row plugin[^"]*" data-node="([^"]*)" '
        r'data-plugin="([^"]*)"',
        page,
    )
    assert rows == [
        ('ctl', 'keystone'),
        ('ctl', 'nova'),
        ('cpu-1', 'nova'),
        ('cpu-1', 'hypervisor-fake'),
    ]


def test_bars_are_placed_on_one_time_axis_with_a_minimum_width():
    page = report.render(view(two_node_results()))
    geometry = [
        re.search(r'left:([\d.]+)%;width:([\d.]+)%', b).groups()
        for b in bars(page)
    ]
    left = [float(a) for a, _ in geometry]
    width = [float(b) for _, b in geometry]
    # The axis runs from the first start (T0) to the last end (T0 + 12);
    # bars: keystone pre-install, install; nova pre-install, install; ...
    assert left[0] == 0.0 and abs(width[0] - 100 * 2 / 12) < 0.01
    assert abs(left[1] - 100 * 4 / 12) < 0.01
    assert abs(left[3] + width[3] - 100.0) < 0.01  # nova install
    assert width[2] < 0.001  # the no-op plugin...
    assert 'min-width: 5px' in page  # ...is still drawn


def test_tooltip_names_plugin_phase_node_status_code_and_duration():
    page = report.render(view(two_node_results()))
    failed = next(b for b in bars(page) if 'data-status="failed"' in b)
    title = attr(failed, 'title')
    assert title.splitlines()[:3] == [
        'nova \u00b7 install \u00b7 ctl',
        'status: failed \u00b7 exit code: 1',
        'duration: 3.00 s',
    ]


def test_phase_boundaries_are_marked_and_labelled_per_group():
    page = report.render(view(two_node_results()))
    groups = re.findall(
        r'<details class="group" open data-role="(\w+)">(.*?)</details>\n'
        r'(?=<details class="group"|</div>)',
        page,
        re.S,
    )
    assert [g[0] for g in groups] == ['controller', 'compute']
    ran = {
        'controller': ['pre-install', 'install'],
        'compute': ['pre-install'],
    }
    for role, body in groups:
        bands = re.findall(
            r'<div class="phase[^"]*" style="left:([\d.]+)%;width:([\d.]+)%"',
            body,
        )
        labels = re.findall(
            r'<span class="plabel[^"]*" data-left="([\d.]+)"[^>]*>([^<]*)<',
            body,
        )
        # One label per band, at its start.
        assert [float(b[0]) for b in bands] == [float(a) for a, _ in labels]
        assert [t for _, t in labels] == ran[role]
    controller = re.findall(r'data-left="([\d.]+)"', groups[0][1])
    assert float(controller[0]) == 0.0
    assert abs(float(controller[1]) - 100 * 4 / 12) < 0.01


def test_header_names_run_mode_state_duration_and_local_conf():
    page = report.render(view(two_node_results()))
    text = ' '.join(parse(page).text)
    for expected in (
        '0123abcd-run',
        'stack',
        'failed',
        '32.00 s',
        '/home/stack/local.conf',
    ):
        assert expected in text


def test_failures_list_every_non_ok_result_with_its_tail():
    results = two_node_results()
    results.append(
        result(
            'cpu-1',
            'nova',
            'install',
            status='timeout',
            start=12,
            end=40,
            code=None,
            tail='waiting...',
            message='deadline passed',
        )
    )
    page = report.render(view(results, error='node ctl: plugin nova failed'))
    failures = page.split('<h2>Failures</h2>')[1]
    headings = re.findall(r'<h3>([^<]*)</h3>', failures)
    assert headings == [
        'Run error',
        'cpu-1 \u00b7 hypervisor-fake \u00b7 stack pre-install '
        '\u2014 skipped, exit code -',
        'ctl \u00b7 nova \u00b7 stack install \u2014 failed, exit code 1',
        'ctl \u00b7 (node) \u00b7 stack install \u2014 failed, exit code 1',
        'cpu-1 \u00b7 nova \u00b7 stack install \u2014 timeout, exit code -',
    ]
    assert (
        'deadline passed' in failures and '<pre>waiting...</pre>' in failures
    )
    assert '/logs/install/nova.log' in failures


def test_untrusted_output_is_escaped():
    results = two_node_results()
    results[7]['message'] = '<img src=x onerror=alert(1)>'
    page = report.render(
        view(
            results,
            error='plugin <b>nova</b> failed\n'
            '--- output tail ---\n<script>x</script>',
        )
    )
    assert (
        '<script>alert' not in page
        and '<img' not in page
        and '<b>nova' not in page
    )
    assert (
        '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more' in page
    )
    assert '&lt;img src=x onerror=alert(1)&gt;' in page
    # The only script is the report's own.
    assert page.count('<script>') == 1
    collected = parse(page)
    assert (
        len(collected.scripts) == 1
        and 'data-visible-bars' in collected.scripts[0]
    )
    assert '<script>alert("x")</script>' in ''.join(collected.text)


def test_hostile_names_are_escaped_in_attributes():
    results = [result('n"1', 'p"><script>x</script>', 'install')]
    page = report.render(view(results, stages=[['n"1']], roles={}, plans={}))
    assert '<script>x' not in page
    [bar] = bars(page)
    assert attr(bar, 'title').startswith(
        'p"><script>x</script> \u00b7 install \u00b7 n"1'
    )


def test_empty_run_renders():
    page = report.render(
        view(
            [],
            error='planning failed: no such repo',
            stages=(),
            roles={},
            plans={},
        )
    )
    assert page.startswith('<!DOCTYPE html>') and page.rstrip().endswith(
        '</html>'
    )
    assert 'class="bar"' not in page
    assert 'No results' in page and 'planning failed: no such repo' in page


def test_a_nearly_empty_view_renders():
    page = report.render(
        {'id': 'x', 'mode': 'stack', 'state': 'planning', 'results': []}
    )
    assert 'planning' in page and 'class="bar"' not in page


def test_retried_phase_gets_a_bar_per_attempt():
    results = [
        result('ctl', 'nova', 'install', status='failed', start=0, end=1),
        result('ctl', 'nova', 'install', start=5, end=6, attempt=2),
    ]
    page = report.render(view(results, stages=[['ctl']]))
    assert [attr(b, 'data-status') for b in bars(page)] == ['failed', 'ok']
    assert 'install (attempt 2)' in page
    assert 'attempt 2' in attr(bars(page)[1], 'title')


def test_result_without_times_is_still_drawn():
    results = [
        result('ctl', 'nova', 'pre-install', start=0, end=1),
        result(
            'ctl',
            'keystone',
            'pre-install',
            status='killed',
            start=None,
            end=None,
        ),
    ]
    page = report.render(view(results, stages=[['ctl']]))
    assert len(bars(page)) == 2


def test_self_contained():
    page = report.render(view(two_node_results()))
    assert not re.search(
        r'<(link|img|iframe)\b|\bsrc=|url\(|@import|https?://', page
    )
