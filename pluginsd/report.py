"""A self-contained HTML picture of one run: header, commits, timeline,
attempts and failures.

``render(view)`` takes the dict of the daemon's ``get_run`` and returns one
HTML page with no external resources: inline CSS and a little inline JS,
which stacks the phase labels of a group in lanes so that none covers
another (and re-does it when a group opens or the window changes), and
records in ``body[data-visible-bars]`` how many bars have a size.

The timeline shares one time axis. Nodes are grouped by role (in stage
order), each group and each node collapsible (``<details>``); at more than
ten nodes, a node whose results are all ok starts collapsed. A group's
phases are shaded bands, one per attempt and phase, labelled above its
nodes. Each plugin result is a bar; results an earlier attempt had before
a retry replaced them are drawn striped and faded. A node's whole-phase
results (plugin ``''``) are summed up in the node's heading row. Everything
that comes from the run is HTML-escaped: plugin output is untrusted.
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
.legend { margin: 4px 0 10px; color: #57606a; font-size: 12px; }
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
.groupbody { position: relative; }
.phases { position: absolute; top: 0; bottom: 0;
          left: calc(var(--label) + 1px); right: var(--pad);
          pointer-events: none; }
.phase { position: absolute; top: 0; bottom: 0;
         border-left: 1px dashed #6e7781;
         background: rgba(9, 105, 218, .04); }
.phase.odd { background: rgba(9, 105, 218, .09); }
.phase.last { border-right: 1px dashed #6e7781; }
.row.plabels { min-height: 20px; border-top: 1px solid #d0d7de; }
.row.plabels > .label { color: #57606a; font-size: 12px; }
.plabel { position: absolute; top: 2px; font-size: 11px; font-weight: 600;
          line-height: 14px; padding: 0 3px; white-space: nowrap;
          color: #24292f; background: rgba(255, 255, 255, .85);
          border-left: 2px solid #6e7781; z-index: 3; }
.plabel.bad { color: #d93025; border-left-color: #d93025; }
details > summary { list-style: none; cursor: pointer; }
details > summary::-webkit-details-marker { display: none; }
details > summary > .label::before { content: '\\25b8  '; color: #57606a; }
details[open] > summary > .label::before { content: '\\25be  '; }
.row.grouphead { background: #eaeef2; border-top: 2px solid #afb8c1; }
.row.grouphead > .label { padding-left: 6px; font-weight: 700;
                          background: #eaeef2; }
.row.grouphead > .track { padding: 3px 8px; font-size: 12px;
                          color: #57606a; white-space: nowrap;
                          overflow: hidden; }
.bar.earlier { opacity: .55; z-index: 0;
               background-image: repeating-linear-gradient(45deg,
                 rgba(255, 255, 255, .6) 0 3px, transparent 3px 6px); }
table.commits { border-collapse: collapse; font-size: 12px; }
table.commits th, table.commits td { border: 1px solid #d0d7de;
                                     padding: 2px 8px; text-align: left; }
table.commits td.sha { font-family: ui-monospace, monospace; }
.legend dl { display: grid; grid-template-columns: max-content 1fr;
             gap: 2px 10px; margin: 0; }
.legend dt { white-space: nowrap; }
.legend dd { margin: 0; }
.legend i.earlier { background-image: repeating-linear-gradient(45deg,
                      rgba(255, 255, 255, .6) 0 3px, transparent 3px 6px);
                    background-color: #d93025; opacity: .55; }
.legend i.band { background: rgba(9, 105, 218, .09);
                 border-left: 1px dashed #6e7781; }
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

# Phase labels of a group are stacked in lanes so that none covers another
# (their width depends on the font and the window, known only here); the
# count of bars laid out with a size is a check for tests.
JS = """
(function () {
  function layout(track) {
    var box = track.getBoundingClientRect();
    var labels = Array.prototype.slice.call(
      track.querySelectorAll('.plabel'));
    labels.forEach(function (l) {
      l.style.left = l.getAttribute('data-left') + '%';
    });
    labels.sort(function (a, b) {
      return a.getBoundingClientRect().left - b.getBoundingClientRect().left;
    });
    var lanes = [];
    labels.forEach(function (l) {
      var r = l.getBoundingClientRect();
      if (r.right > box.right && box.width > r.width) {
        l.style.left = (box.width - r.width) + 'px';  // keep it inside
        r = l.getBoundingClientRect();
      }
      var lane = 0;
      while (lanes[lane] !== undefined && lanes[lane] + 4 > r.left) {
        lane++;
      }
      l.style.top = (2 + lane * 16) + 'px';
      lanes[lane] = r.right;
    });
    track.parentNode.style.height = (4 + Math.max(1, lanes.length) * 16) +
      'px';
  }
  function layoutAll() {
    document.querySelectorAll('.plabels .track').forEach(layout);
  }
  layoutAll();
  document.querySelectorAll('details').forEach(function (d) {
    d.addEventListener('toggle', layoutAll);
  });
  window.addEventListener('resize', layoutAll);
  var n = 0;
  document.querySelectorAll('.bar').forEach(function (b) {
    var r = b.getBoundingClientRect();
    if (r.width > 0 && r.height > 0) { n++; }
  });
  document.body.setAttribute('data-visible-bars', String(n));
})();
"""

STATUS_MEANING = {
    results_mod.OK: 'ok: finished with exit status 0',
    results_mod.FAILED: 'failed: a non-zero exit status',
    results_mod.TIMEOUT: 'timeout: killed at the phase deadline',
    results_mod.CANCELLED: 'cancelled: the run was cancelled',
    results_mod.KILLED: 'killed: its agent stopped or was lost',
    results_mod.SKIPPED: 'skipped: the plugin has no plugin.sh',
}
# Above this many nodes, a node whose results are all ok starts collapsed.
OPEN_NODES = 10


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
    """A 1, 2 or 5 x 10^k step (whole minutes above a few minutes) giving
    about ``wanted`` ticks over ``span``.
    """
    raw = span / wanted
    if raw > 30:  # whole minutes (or hours) read better than 1.66667 min
        for step in (60, 120, 300, 600, 900, 1800, 3600, 7200):
            if raw <= step:
                return step
        return 3600 * math.ceil(raw / 3600)
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


def _phases(results):
    """Phase bands of some results, in time order.

    [(label, start, end, whether anything failed)], one per attempt and
    phase; the attempt is named only when there was more than one.
    """
    bands = {}
    for r in results:
        start, end = span_of(r)
        if start is None:
            continue
        key = (r.get('attempt') or 1, r['phase'])
        lo, hi, bad = bands.get(key, (start, end, False))
        bad = bad or r['status'] not in (results_mod.OK, results_mod.SKIPPED)
        bands[key] = (min(lo, start), max(hi, end), bad)
    attempts = {a for a, _ in bands}
    out = []
    for key in sorted(bands, key=lambda k: (bands[k][0], k[0])):
        attempt, phase = key
        label = phase if len(attempts) <= 1 else f'{phase} (attempt {attempt})'
        out.append((label, *bands[key]))
    return out


def role_name(role):
    if role == '*':
        return 'default'
    return role or 'no role'


def _groups(view, all_results):
    """[(role, [(host, [plugin names])])]: nodes by role, roles and nodes in
    stage order, plugins in plan order, then other names (a hypervisor).
    """
    hosts = [h for stage in (view.get('stages') or []) for h in stage]
    for r in all_results:
        if r['node'] not in hosts:
            hosts.append(r['node'])
    roles = view.get('node_roles') or {}
    plans = view.get('plans') or {}
    groups = {}
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
        groups.setdefault(role, []).append((host, order))
    return list(groups.items())


def _bar(result, axis, earlier=False):
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
    if (result.get('attempt') or 1) > 1 or earlier:
        lines.append(
            f'attempt {result.get("attempt") or 1}'
            + (' (replaced by a retry)' if earlier else '')
        )
    if result.get('message'):
        lines.append(result['message'])
    cls = 'bar earlier' if earlier else 'bar'
    return (
        f'<div class="{cls}" data-status="{esc(result["status"])}" '
        f'data-phase="{esc(result["phase"])}" '
        f'style="left:{left:.3f}%;width:{width:.3f}%" '
        f'title="{esc(chr(10).join(lines))}"></div>'
    )


def _legend():
    marks = [
        (f'<i data-status="{s}"></i>', STATUS_MEANING[s])
        for s in STATUS_COLOURS
    ]
    marks += [
        (
            '<i class="earlier"></i>',
            'striped and faded: a result of an earlier attempt, replaced '
            'by a retry',
        ),
        (
            '<i class="band"></i>',
            'shaded band, labelled above a group: a phase on that group of '
            "nodes, from its first result to its last; '(attempt N)' after "
            'a retry; a red label: something failed in it',
        ),
        ('\u2506', 'dashed line: where a phase begins (and the last ends)'),
        ('\u25be \u25b8', 'open or close a role or a node'),
        (
            '(default)',
            'nodes of no role with a local.conf of its own: they run the '
            "default local.conf (role '*')",
        ),
        ('grey name', 'a plugin of the plan with no result: it never ran'),
        (
            'thin bar',
            'a plugin that took almost no time (drawn at least 5 px wide); '
            'hover a bar for its status, exit code and duration',
        ),
    ]
    items = ''.join(
        f'<dt>{mark}</dt><dd>{esc(text)}</dd>' for mark, text in marks
    )
    return f'<div class="legend"><dl>{items}</dl></div>'


def _earlier_results(view):
    return [
        dict(r, attempt=r.get('attempt') or a.get('attempt'))
        for a in view.get('attempts') or []
        for r in a.get('results') or []
    ]


def _timeline(view, all_results):
    earlier = _earlier_results(view)
    everything = all_results + earlier
    plugin_results = [r for r in all_results if r['plugin']]
    out = ['<h2>Timeline</h2>', _legend()]
    if not everything:
        out.append('<p class="muted">No results: nothing ran on any node.</p>')
        return out
    axis = _Axis(everything)
    groups = _groups(view, everything)
    nodes = sum(len(hosts) for _, hosts in groups)
    out.append(
        f'<p class="muted">Time from {esc(fmt_time(axis.t0))} '
        f'({esc(fmt_duration(axis.t1 - axis.t0))} from the first '
        f'result to the last); {nodes} nodes, {len(plugin_results)} plugin '
        'results.</p>'
    )
    out.append('<div class="timeline">')
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
    for role, hosts in groups:
        out += _group(role, hosts, everything, earlier, axis, nodes)
    out.append('</div>')
    return out


def _group(role, hosts, everything, earlier, axis, nodes):
    names = {h for h, _ in hosts}
    mine = [r for r in everything if r['node'] in names]
    current = [r for r in mine if not any(r is e for e in earlier)]
    failed = sorted(
        {
            r['node']
            for r in current
            if r['status'] not in (results_mod.OK, results_mod.SKIPPED)
        }
    )
    summary = f'{len(hosts)} node{"s" if len(hosts) != 1 else ""}'
    if failed:
        summary += f', failed on {", ".join(failed)}'
    out = [
        f'<details class="group" open data-role="{esc(role)}">'
        f'<summary class="row grouphead"><div class="label">'
        f'{esc(role_name(role))}</div><div class="track">{esc(summary)}'
        '</div></summary><div class="groupbody">',
        '<div class="phases">',
    ]
    phases = _phases(mine)
    labels = []
    for i, (label, lo, hi, bad) in enumerate(phases):
        left, width = axis.pct(lo), axis.pct(hi) - axis.pct(lo)
        classes = (
            'phase'
            + (' odd' if i % 2 else '')
            + (' last' if i == len(phases) - 1 else '')
            + (' bad' if bad else '')
        )
        out.append(
            f'<div class="{classes}" style="left:{left:.3f}%;'
            f'width:{width:.3f}%"></div>'
        )
        tip = f'{label}: {fmt_duration(hi - lo)}' + (
            ' (failed)' if bad else ''
        )
        labels.append(
            f'<span class="plabel{" bad" if bad else ""}" '
            f'data-left="{left:.3f}" style="left:{left:.3f}%" '
            f'title="{esc(tip)}">{esc(label)}</span>'
        )
    out.append('</div>')
    out.append(
        '<div class="row plabels"><div class="label">phases</div>'
        f'<div class="track">{"".join(labels)}</div></div>'
    )
    for host, plugins in hosts:
        out += _node(host, plugins, mine, earlier, axis, nodes)
    out.append('</div></details>')
    return out


def _node(host, plugins, mine, earlier, axis, nodes):
    ours = [r for r in mine if r['node'] == host]
    old = [r for r in ours if any(r is e for e in earlier)]
    now = [r for r in ours if not any(r is e for e in earlier)]
    node_results = [r for r in now if not r['plugin']]
    summary = ' \u00b7 '.join(
        f'<span class="nodestat" data-status="{esc(r["status"])}">'
        f'{esc(r["phase"])} <b>{esc(status_text(r))}</b></span>'
        for r in node_results
    )
    trouble = any(r['status'] != results_mod.OK for r in ours)
    is_open = ' open' if nodes <= OPEN_NODES or trouble else ''
    out = [
        f'<details class="node"{is_open} data-node="{esc(host)}">'
        f'<summary class="row node"><div class="label" title="{esc(host)}">'
        f'{esc(host)}</div><div class="track">{summary}</div></summary>'
    ]
    for plugin in plugins:
        bars = ''.join(
            _bar(r, axis, earlier=True) for r in old if r['plugin'] == plugin
        ) + ''.join(_bar(r, axis) for r in now if r['plugin'] == plugin)
        norun = '' if bars else ' norun'
        out.append(
            f'<div class="row plugin{norun}" data-node="{esc(host)}" '
            f'data-plugin="{esc(plugin)}"><div class="label" '
            f'title="{esc(plugin)} on {esc(host)}">{esc(plugin)}</div>'
            f'<div class="track">{bars}</div></div>'
        )
    out.append('</details>')
    return out


def _commits(view):
    """What ran where: per role, each plugin's URL, ref and commit."""
    commits = view.get('commits')
    if commits is None:  # a view from before get_run listed them
        commits = [
            {
                'role': role,
                'plugin': p.get('name'),
                'url': p.get('url'),
                'ref': p.get('ref'),
                'commit': p.get('sha'),
            }
            for role, plan in sorted((view.get('plans') or {}).items())
            for p in plan.get('plugins') or []
        ]
    if not commits:
        return []
    rows = ''.join(
        f'<tr><td>{esc(role_name(c["role"]))}</td><td>{esc(c["plugin"])}</td>'
        f'<td>{esc(c["url"])}</td><td>{esc(c["ref"])}</td>'
        f'<td class="sha" title="{esc(c["commit"])}">'
        f'{esc((c["commit"] or "")[:12])}</td></tr>'
        for c in commits
    )
    table = (
        '<table class="commits"><tr><th>Role</th><th>Plugin</th><th>URL</th>'
        f'<th>Ref</th><th>Commit</th></tr>{rows}</table>'
    )
    roles = len({c['role'] for c in commits})
    is_open = ' open' if len(commits) <= 20 else ''  # a long list: on demand
    return [
        '<h2>What ran where</h2>',
        f'<details class="commits"{is_open}><summary>{len(commits)} plugin '
        f'commit{"s" if len(commits) != 1 else ""} pinned by this run, '
        f'for {roles} role{"s" if roles != 1 else ""}</summary>{table}'
        '</details>',
    ]


def _failure(r, tails):
    what = r['plugin'] or '(node)'
    code = '-' if r.get('exit_code') is None else r['exit_code']
    out = [
        f'<div class="failure" data-status="{esc(r["status"])}" '
        f'data-attempt="{esc(r.get("attempt") or 1)}">'
        f'<h3>{esc(r["node"])} \u00b7 {esc(what)} \u00b7 '
        f'{esc(r["mode"])} {esc(r["phase"])} \u2014 {esc(r["status"])}, '
        f'exit code {esc(code)}</h3>'
    ]
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
        out.append(f'<p class="log">output: as {esc(tails[key])} above</p>')
    elif tail:
        tails[key] = what
        out.append(f'<pre>{esc(tail)}</pre>')
    out.append('</div>')
    return out


def _run_error(error, bad):
    for tail in {r['tail'] for r in bad if r.get('tail')}:
        # The daemon's error repeats the tail of each failed node.
        error = error.replace(
            f'--- output tail ---\n{tail}', '(output tail: below)'
        )
    return error


def _failures(view, all_results):
    out = ['<h2>Failures</h2>']
    bad = [r for r in all_results if r['status'] != results_mod.OK]
    attempts = view.get('attempts') or []
    if not view.get('error') and not bad and not attempts:
        out.append('<p class="muted">None.</p>')
        return out
    if attempts:
        out.append(f'<h3>Attempt {esc(view.get("attempt"))} (this one)</h3>')
    if not view.get('error') and not bad:
        out.append('<p class="muted">None.</p>')
    if view.get('error'):
        out.append(
            '<div class="failure" data-status="failed"><h3>Run error</h3>'
            f'<pre>{esc(_run_error(view["error"], bad))}</pre></div>'
        )
    tails = {}
    for r in bad:
        out += _failure(r, tails)
    for a in reversed(attempts):  # the one just before this first
        number = a.get('attempt') or '?'
        ended = fmt_time(a.get('ended_at'))
        out.append(
            f'<h3>Attempt {esc(number)}: {esc(a.get("state"))} '
            f'{esc(ended)}, then retried</h3>'
        )
        old_bad = [
            dict(r, attempt=r.get('attempt') or number)
            for r in a.get('results') or []
            if r['status'] != results_mod.OK
        ]
        if a.get('error'):
            out.append(
                f'<div class="failure" data-status="failed" '
                f'data-attempt="{esc(number)}"><h3>Run error</h3>'
                f'<pre>{esc(_run_error(a["error"], old_bad))}</pre></div>'
            )
        for r in old_bad:
            out += _failure(r, tails)
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
        facts.append(
            (
                'Stages',
                ' \u2192 '.join(
                    f'{len(s)} node{"s" if len(s) != 1 else ""}'
                    for s in stages
                )
                if sum(len(s) for s in stages) > OPEN_NODES
                else ' \u2192 '.join(', '.join(s) for s in stages),
            )
        )
    dl = ''.join(
        f'<div><dt>{esc(k)}</dt><dd>{esc(v)}</dd></div>' for k, v in facts
    )
    body = [
        f'<h1>pluginsd run <code>{esc(run_id)}</code> '
        f'<span class="state" data-state="{esc(state)}">'
        f'{esc(state)}</span></h1>',
        f'<dl class="facts">{dl}</dl>',
    ]
    body += _commits(view)
    body += _timeline(view, all_results)
    body += _failures(view, all_results)
    body.append(
        f'<p class="muted">Written by pluginsctl run report at '
        f'{esc(fmt_time(time.time()))}.</p>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<title>pluginsd run {esc(run_id[:8])} \u2014 {esc(state)}</title>\n'
        f'<style>{CSS}</style>\n</head>\n<body>\n'
        + '\n'.join(body)
        + f'\n<script>{JS}</script>\n</body>\n</html>\n'
    )
