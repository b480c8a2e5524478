"""A self-contained HTML picture of one run: header, timeline, failures.

``render(view)`` takes the dict of the daemon's ``get_run`` and returns one
HTML page with no external resources: inline CSS and a few lines of inline
JS (which only records, in ``body[data-visible-bars]``, how many bars the
browser laid out with a non-zero size).

The timeline has one row per node x plugin (nodes in stage order, plugins
in plan order, then any other names found in the results, such as
``hypervisor-fake``) and one bar per plugin result, placed on a time axis
shared by every row; phases are shaded bands with a dashed line where each
begins. A node's whole-phase results (plugin ``''``) are not bars: they are
summed up in the node's heading row. Everything that comes from the run is
HTML-escaped: plugin output is untrusted.
"""

import html
import math
import time

from pluginsd import results as results_mod

STATUS_COLOURS = {
    results_mod.OK: '#2e9e44',
    results_mod.FAILED: '#d93025',
    results_mod.TIMEOUT: '#f08c00',
    results_mod.CANCELLED: '#8d8d8d',
    results_mod.KILLED: '#8d8d8d',
    results_mod.SKIPPED: '#dcdcdc',
}

CSS = """
:root { --label: 230px; --pad: 16px; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
             sans-serif;
       color: #1f2328; margin: 0; padding: 20px 28px 40px; background: #fff; }
h1 { font-size: 20px; margin: 0 0 10px; }
h1 code { font-size: 18px; }
h2 { font-size: 16px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de;
     padding-bottom: 4px; }
h3 { font-size: 14px; margin: 0 0 4px; }
code, pre { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, monospace; }
.state { display: inline-block; padding: 1px 10px; border-radius: 10px;
         font-size: 13px; color: #fff; background: #57606a;
         vertical-align: middle; }
.state[data-state=completed] { background: #2e9e44; }
.state[data-state=failed] { background: #d93025; }
.state[data-state=cancelled] { background: #8d8d8d; }
.state[data-state=running],
.state[data-state=planning] { background: #0969da; }
dl.facts { display: flex; flex-wrap: wrap; gap: 8px 32px; margin: 0; }
dl.facts dt { color: #57606a; font-size: 12px; }
dl.facts dd { margin: 0; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 4px 0 10px;
          color: #57606a; font-size: 12px; }
.legend i { display: inline-block; width: 14px; height: 10px;
            vertical-align: -1px; margin-right: 4px; border-radius: 2px; }
.muted { color: #57606a; }
.timeline { position: relative; border: 1px solid #d0d7de; border-radius: 6px;
            overflow: hidden; min-width: 700px; }
.row { display: flex; position: relative; min-height: 24px; }
.row > .label { width: var(--label); flex: none; padding: 3px 8px 3px 22px;
                white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
                border-right: 1px solid #d0d7de; background: #fff; }
.row > .track { position: relative; flex: 1; margin-right: var(--pad); }
.row.plugin:hover { background: rgba(9, 105, 218, .06); }
.row.plugin:hover > .label { background: #eef4fc; }
.row.axis { height: 40px; border-bottom: 1px solid #d0d7de;
            pointer-events: none; }
.row.axis > .label { color: #57606a; font-size: 12px; padding-top: 20px; }
.row.node { border-top: 1px solid #d0d7de;
            background: rgba(246, 248, 250, .75); }
.row.node > .label { padding-left: 8px; font-weight: 600;
                     background: #f6f8fa; }
.row.node > .track { padding: 3px 8px; font-size: 12px; color: #57606a;
                     white-space: nowrap; overflow: hidden; }
.nodestat b { font-weight: 600; }
.nodestat[data-status=failed] b,
.nodestat[data-status=timeout] b { color: #d93025; }
.row.plugin.norun > .label { color: #8c959f; }
.tick { position: absolute; bottom: 0; height: 6px;
        border-left: 1px solid #8c959f; }
.tick span { position: absolute; bottom: 6px; left: 3px; font-size: 11px;
             color: #57606a; white-space: nowrap; }
.tick.end span { left: auto; right: 3px; }
.phases { position: absolute; top: 0; bottom: 0; left: var(--label);
          right: var(--pad); pointer-events: none; }
.phase { position: absolute; top: 0; bottom: 0;
         border-left: 1px dashed #6e7781;
         background: rgba(9, 105, 218, .04); }
.phase.odd { background: rgba(9, 105, 218, .09); }
.phase.last { border-right: 1px dashed #6e7781; }
.phase.bad span { color: #d93025; }
.phase span { position: absolute; top: 2px; left: 4px; right: 0;
              font-size: 11px; font-weight: 600; color: #24292f;
              white-space: nowrap; overflow: hidden;
              text-overflow: ellipsis; pointer-events: auto; }
.bar { position: absolute; top: 5px; height: 14px; min-width: 5px;
       border-radius: 2px; background: #8d8d8d; cursor: default; z-index: 1; }
.bar:hover { outline: 2px solid #1f2328; z-index: 2; }
.failure { border: 1px solid #d0d7de; border-left: 4px solid #d93025;
           border-radius: 4px; padding: 8px 12px; margin: 10px 0; }
.failure .msg { margin: 2px 0; }
.failure .log { margin: 2px 0; font-size: 12px; color: #57606a; }
pre { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 4px;
      padding: 8px 10px; margin: 6px 0 0; font-size: 12px; overflow-x: auto;
      white-space: pre-wrap; word-break: break-all; max-height: 420px; }
"""

for _status, _colour in STATUS_COLOURS.items():
    CSS += (
        f'.bar[data-status={_status}], .legend i[data-status={_status}] '
        f'{{ background: {_colour}; }}\n'
        f'.failure[data-status={_status}] '
        f'{{ border-left-color: {_colour}; }}\n'
    )
CSS += (
    '.bar[data-status=skipped], .legend i[data-status=skipped] '
    '{ box-shadow: inset 0 0 0 1px #afb8c1; }\n'
)

# Counts the bars the browser laid out with a size (a zero-width bar would
# be invisible): a check for tests and a debugging aid, nothing the page
# needs to be read.
JS = """
(function () {
  var n = 0;
  document.querySelectorAll('.bar').forEach(function (b) {
    var r = b.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) { n++; }
  });
  document.body.setAttribute('data-visible-bars', String(n));
})();
"""


def esc(value):
    return html.escape('' if value is None else str(value), quote=True)


def fmt_duration(seconds):
    if seconds is None:
        return '?'
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f'{seconds * 1000:.0f} ms'
    if seconds < 60:
        return f'{seconds:.2f} s'
    if seconds < 3600:
        return f'{int(seconds // 60)} min {int(seconds % 60):02d} s'
    return f'{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min'


def fmt_time(epoch):
    if not epoch:
        return ''
    return time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(epoch))


def span_of(result):
    """(start, end) of a result, either end standing in for a missing one."""
    start = result.get('started_at')
    end = result.get('ended_at')
    start = end if start is None else start
    end = start if end is None else end
    return start, end


def nice_step(span, wanted=8):
    """A 1, 2 or 5 x 10^k step giving about ``wanted`` ticks over ``span``."""
    raw = span / wanted
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def fmt_offset(seconds, step):
    if step >= 60 and seconds >= 60:
        return f'+{seconds / 60:g} min'
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f'+{seconds:.{decimals}f} s'


def status_text(result):
    text = result['status']
    if (
        result.get('exit_code') is not None
        and result['status'] != results_mod.OK
    ):
        text += f' ({result["exit_code"]})'
    return text


class _Axis:
    def __init__(self, results):
        times = [t for r in results for t in span_of(r) if t is not None]
        self.t0 = min(times) if times else 0.0
        self.t1 = max(times) if times else 0.0
        self.span = (self.t1 - self.t0) or 1.0

    def pct(self, t):
        return 100.0 * (t - self.t0) / self.span


def _phases(view, all_results):
    """Phase bands in time order.

    [(label, start, end, whether anything failed)]
    """
    known = list(results_mod.MODE_PHASES.get(view.get('mode'), ()))
    bands = {}
    for r in all_results:
        start, end = span_of(r)
        if start is None:
            continue
        key = (r.get('attempt') or 1, r['phase'])
        lo, hi, bad = bands.get(key, (start, end, False))
        bad = bad or r['status'] not in (results_mod.OK, results_mod.SKIPPED)
        bands[key] = (min(lo, start), max(hi, end), bad)
    attempts = {a for a, _ in bands}

    def order(key):
        attempt, phase = key
        return (
            bands[key][0],
            attempt,
            known.index(phase) if phase in known else len(known),
        )

    out = []
    for key in sorted(bands, key=order):
        attempt, phase = key
        label = phase if len(attempts) <= 1 else f'{phase} (attempt {attempt})'
        lo, hi, bad = bands[key]
        out.append((label, lo, hi, bad))
    return out


def _rows(view, all_results):
    """[(host, role, [plugin names])].

    Nodes in stage order, plugins in plan order.
    """
    hosts = [h for stage in (view.get('stages') or []) for h in stage]
    for r in all_results:
        if r['node'] not in hosts:
            hosts.append(r['node'])
    roles = view.get('node_roles') or {}
    plans = view.get('plans') or {}
    rows = []
    for host in hosts:
        role = roles.get(host)
        order = list((plans.get(role) or {}).get('order') or [])
        order += sorted(
            {
                r['plugin']
                for r in all_results
                if r['node'] == host
                and r['plugin']
                and r['plugin'] not in order
            }
        )
        rows.append((host, role, order))
    return rows


def _bar(result, axis):
    start, end = span_of(result)
    if start is None:
        start = end = axis.t0
    left = axis.pct(start)
    width = max(0.0, axis.pct(end) - left)
    lines = [
        f'{result["plugin"]} \u00b7 {result["phase"]} \u00b7 {result["node"]}',
        f'status: {result["status"]} \u00b7 exit code: '
        f'{"-" if result.get("exit_code") is None else result["exit_code"]}',
        f'duration: {fmt_duration(end - start)}',
    ]
    if (result.get('attempt') or 1) > 1:
        lines.append(f'attempt {result["attempt"]}')
    if result.get('message'):
        lines.append(result['message'])
    return (
        f'<div class="bar" data-status="{esc(result["status"])}" '
        f'data-phase="{esc(result["phase"])}" '
        f'style="left:{left:.3f}%;width:{width:.3f}%" '
        f'title="{esc(chr(10).join(lines))}"></div>'
    )


def _timeline(view, all_results):
    plugin_results = [r for r in all_results if r['plugin']]
    out = ['<h2>Timeline</h2>']
    legend = ''.join(
        f'<span><i data-status="{s}"></i>{s}</span>' for s in STATUS_COLOURS
    )
    out.append(
        f'<div class="legend">{legend}'
        f'<span>\u2506 phase boundary</span>'
        f'<span>hover a bar for details</span></div>'
    )
    if not all_results:
        out.append('<p class="muted">No results: nothing ran on any node.</p>')
        return out
    axis = _Axis(all_results)
    out.append(
        f'<p class="muted">Time from {esc(fmt_time(axis.t0))} '
        f'({esc(fmt_duration(axis.t1 - axis.t0))} from the first '
        f'result to the last); {len(plugin_results)} plugin results.</p>'
    )
    out.append('<div class="timeline">')

    out.append('<div class="phases">')
    phases = _phases(view, all_results)
    for i, (label, lo, hi, bad) in enumerate(phases):
        left, width = axis.pct(lo), axis.pct(hi) - axis.pct(lo)
        classes = (
            'phase'
            + (' odd' if i % 2 else '')
            + (' last' if i == len(phases) - 1 else '')
            + (' bad' if bad else '')
        )
        tip = f'{label}: {fmt_duration(hi - lo)}' + (
            ' (failed)' if bad else ''
        )
        out.append(
            f'<div class="{classes}" style="left:{left:.3f}%;'
            f'width:{width:.3f}%"><span title="{esc(tip)}">'
            f'{esc(label)}</span></div>'
        )
    out.append('</div>')

    step = nice_step(axis.span)
    ticks = []
    k = 0
    while k * step <= axis.span + 1e-9:
        left = axis.pct(axis.t0 + k * step)
        end = ' end' if left > 95 else ''  # its label inside the track
        ticks.append(
            f'<div class="tick{end}" style="left:{left:.3f}%">'
            f'<span>{esc(fmt_offset(k * step, step))}</span></div>'
        )
        k += 1
    out.append(
        '<div class="row axis"><div class="label">node / plugin</div>'
        f'<div class="track">{"".join(ticks)}</div></div>'
    )

    for host, role, plugins in _rows(view, all_results):
        node_results = [
            r for r in all_results if r['node'] == host and not r['plugin']
        ]
        summary = ' \u00b7 '.join(
            f'<span class="nodestat" data-status="{esc(r["status"])}">'
            f'{esc(r["phase"])} <b>{esc(status_text(r))}</b></span>'
            for r in node_results
        )
        role_text = (
            f' <span class="muted">({esc(role)})</span>' if role else ''
        )
        out.append(
            f'<div class="row node"><div class="label" title="{esc(host)}">'
            f'{esc(host)}{role_text}</div>'
            f'<div class="track">{summary}</div></div>'
        )
        for plugin in plugins:
            mine = [
                r
                for r in plugin_results
                if r['node'] == host and r['plugin'] == plugin
            ]
            bars = ''.join(_bar(r, axis) for r in mine)
            norun = '' if mine else ' norun'
            out.append(
                f'<div class="row plugin{norun}" data-node="{esc(host)}" '
                f'data-plugin="{esc(plugin)}"><div class="label" '
                f'title="{esc(plugin)} on {esc(host)}">{esc(plugin)}</div>'
                f'<div class="track">{bars}</div></div>'
            )
    out.append('</div>')
    return out


def _failures(view, all_results):
    out = ['<h2>Failures</h2>']
    bad = [r for r in all_results if r['status'] != results_mod.OK]
    if not view.get('error') and not bad:
        out.append('<p class="muted">None.</p>')
        return out
    if view.get('error'):
        error = view['error']
        for tail in {r['tail'] for r in bad if r.get('tail')}:
            # The daemon's error repeats the tail of each failed node.
            error = error.replace(
                f'--- output tail ---\n{tail}', '(output tail: below)'
            )
        out.append(
            '<div class="failure" data-status="failed"><h3>Run error</h3>'
            f'<pre>{esc(error)}</pre></div>'
        )
    tails = {}
    for r in bad:
        what = r['plugin'] or '(node)'
        code = '-' if r.get('exit_code') is None else r['exit_code']
        out.append(
            f'<div class="failure" data-status="{esc(r["status"])}">'
            f'<h3>{esc(r["node"])} \u00b7 {esc(what)} \u00b7 '
            f'{esc(r["mode"])} {esc(r["phase"])} \u2014 {esc(r["status"])}, '
            f'exit code {esc(code)}</h3>'
        )
        if (r.get('attempt') or 1) > 1:
            out.append(f'<p class="log">attempt {esc(r["attempt"])}</p>')
        if r.get('message'):
            out.append(f'<p class="msg">{esc(r["message"])}</p>')
        if r.get('log_path'):
            out.append(
                f'<p class="log">log: <code>{esc(r["log_path"])}</code></p>'
            )
        tail = r.get('tail') or ''
        key = (r['node'], r['phase'], r.get('attempt'), tail)
        if tail and key in tails:
            # A node's result repeats the output of the plugin that failed it.
            out.append(
                f'<p class="log">output: as {esc(tails[key])} above</p>'
            )
        elif tail:
            tails[key] = what
            out.append(f'<pre>{esc(tail)}</pre>')
        out.append('</div>')
    return out


def render(view):
    all_results = list(view.get('results') or [])
    created, updated = view.get('created_at'), view.get('updated_at')
    duration = fmt_duration(updated - created) if created and updated else '?'
    state = view.get('state') or '?'
    run_id = view.get('id') or '?'
    facts = [
        ('Mode', view.get('mode')),
        ('Duration', duration),
        ('Created', fmt_time(created)),
        ('Updated', fmt_time(updated)),
        ('local.conf', view.get('local_conf_path')),
        ('Attempt', view.get('attempt')),
    ]
    stages = view.get('stages') or []
    if stages:
        facts.append(('Stages', ' \u2192 '.join(', '.join(s) for s in stages)))
    dl = ''.join(
        f'<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>' for k, v in facts
    )
    body = [
        f'<h1>pluginsd run <code>{esc(run_id)}</code> '
        f'<span class="state" data-state="{esc(state)}">'
        f'{esc(state)}</span></h1>',
        f'<dl class="facts">{dl}</dl>',
    ]
    body += _timeline(view, all_results)
    body += _failures(view, all_results)
    body.append(
        f'<p class="muted">Written by pluginsctl report at '
        f'{esc(fmt_time(time.time()))}.</p>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>pluginsd run {esc(run_id[:8])} \u2014 {esc(state)}</title>\n'
        f'<style>{CSS}</style>\n</head>\n<body>\n'
        + '\n'.join(body)
        + f'\n<script>{JS}</script>\n</body>\n</html>\n'
    )
