"""pluginsctl's progress lines, from hand-made wait_run views."""

import io

from pluginsd.cmd.cli import progress

HOSTS = [f'cmp-{i:02d}' for i in range(1, 6)]


class Out(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self.tty = tty

    def isatty(self):
        return self.tty


def node_result(host, phase, status='ok', plugin='', code=0):
    return {
        'node': host,
        'plugin': plugin,
        'mode': 'stack',
        'phase': phase,
        'status': status,
        'exit_code': code,
        'attempt': 1,
        'started_at': 1.0,
        'ended_at': 2.0,
    }


def view(phase_index, results, state='running'):
    return {
        'id': 'r',
        'mode': 'stack',
        'state': state,
        'attempt': 1,
        'stages': [HOSTS],
        'stage_index': 0,
        'phase_index': phase_index,
        'results': results,
    }


def feed(tty):
    out = Out(tty)
    printer = progress.Printer(out, view(0, []), tty)
    printer.update(view(0, []))
    printer.update(view(0, [node_result(h, 'pre-install') for h in HOSTS[:3]]))
    printer.update(view(1, [node_result(h, 'pre-install') for h in HOSTS[3:]]))
    bad = node_result('cmp-04', 'install', 'failed', 'nova', 3)
    printer.update(
        view(
            1,
            [node_result(h, 'install') for h in HOSTS if h != 'cmp-04']
            + [bad, dict(bad, plugin='')],
            state='failed',
        )
    )
    printer.close()
    return out.getvalue()


def test_many_nodes_in_a_pipe_one_line_per_phase_and_failures_in_full():
    lines = [ln.split(' ', 1)[1] for ln in feed(tty=False).splitlines()]
    assert (
        lines[0]
        == 'stage 1/1: 5 nodes (cmp-01, cmp-02, cmp-03, cmp-04 and 1 more)'
    )
    assert lines[1].startswith('pre-install: 5/5 ok (')
    assert 'cmp-04: plugin nova FAILED (3) in stack install' in lines
    assert 'cmp-04: the phase FAILED (3) in stack install' in lines
    assert lines[-1].startswith('install: 4/5 ok, 1 failed: cmp-04 (')
    assert '\r' not in feed(tty=False)


def test_on_a_terminal_the_line_of_counts_is_rewritten_in_place():
    text = feed(tty=True)
    assert '\r\x1b[K' in text
    # What stays on screen once the rewrites are applied.
    screen = [ln.rsplit('\r\x1b[K', 1)[-1] for ln in text.split('\n')]
    final = [ln.split(' ', 1)[1] for ln in screen if ln]
    assert final[1].startswith('pre-install: 5/5 ok (')
    assert final[-1].startswith('install: 4/5 ok, 1 failed: cmp-04 (')
    assert sum(1 for ln in final if ln.startswith('pre-install')) == 1
