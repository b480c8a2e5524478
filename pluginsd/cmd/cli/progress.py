"""Following a run: progress on stderr until it ends.

A run on a few nodes prints one line per result under a header per stage
and phase. Beyond that, each stage and phase is one line of counts ("install:
47/50 ok, 2 running, 1 failed: cmp-07"), rewritten in place on a terminal and
printed when the phase ends in a pipe. Failures are always printed in full,
each on its own line. Every header carries the wall-clock time.
"""

import time

from cliff import lister

from pluginsd import exception
from pluginsd import results
from pluginsd.cmd.cli import client
from pluginsd.cmd.cli import common

FEW_NODES = 3  # up to this many nodes, one line per result
WAIT = 10  # seconds the daemon may hold a wait_run call
PATIENCE = 600  # seconds without an answer before a follower gives up
PIPE_EVERY = 60  # in a pipe, a line of counts at least this often
NAMES_SHOWN = 5  # failed hosts named on a line of counts


def clock(epoch=None):
    return time.strftime('%H:%M:%S', time.localtime(epoch))


class Printer:
    """Turns the results of one attempt into progress lines."""

    def __init__(self, out, view, tty):
        self.out = out
        self.tty = tty
        self.attempt = view['attempt']
        self.mode = view['mode']
        self.phases = results.MODE_PHASES[self.mode]
        self.stages = view['stages']
        self.few = len(common.hosts_of(view)) <= FEW_NODES
        self.done = {}  # (stage, phase) -> {host: status of the node}
        self.started = {}  # (stage, phase) -> epoch it was first shown
        self.current = None  # (stage, phase) being shown
        self.finished = set()  # (stage, phase) whose last line is out
        self.open_line = False  # a line of counts not ended by a newline
        self.last_print = 0

    def write(self, line):
        if self.open_line:  # erase the line of counts; counts() redraws it
            self.out.write('\r\x1b[K')
            self.open_line = False
        self.out.write(line + '\n')
        self.out.flush()
        self.last_print = time.monotonic()

    def stage_of(self, host):
        for index, hosts in enumerate(self.stages):
            if host in hosts:
                return index
        return None

    def update(self, view):
        """Take a view from wait_run: its new results and where it is."""
        if not self.stages and view['stages']:
            self.stages = view['stages']
            self.few = len(common.hosts_of(view)) <= FEW_NODES
        for r in view['results']:
            if r['attempt'] == self.attempt:
                self.result(r)
        if view['state'] == 'running' and self.stages:
            self.enter((view['stage_index'], self.phases[view['phase_index']]))
        elif self.current:
            self.counts(self.current, final=view['state'] != 'planning')

    def enter(self, key, when=None):
        """Show the stage and phase ``key`` from now on (headers first)."""
        if key != self.current:
            if self.current:
                self.counts(self.current, final=True)
            if self.current is None or self.current[0] != key[0]:
                hosts = self.stages[key[0]]
                plural = 's' if len(hosts) != 1 else ''
                self.write(
                    f'{clock()} stage {key[0] + 1}/{len(self.stages)}: '
                    f'{len(hosts)} node{plural} ({_short_list(hosts)})'
                )
            self.current = key
            self.started.setdefault(key, when or time.time())
            if self.few:
                self.write(f'{clock(self.started[key])} {self.mode} {key[1]}')
        self.counts(key)

    def result(self, r):
        key = (self.stage_of(r['node']), r['phase'])
        if key[0] is None:  # not a node of this run's stages
            return
        if key != self.current and key not in self.finished:
            self.enter(key, r.get('started_at'))
        if not r['plugin']:  # the node finished the phase
            self.done.setdefault(key, {})[r['node']] = r['status']
        failed = r['status'] not in (results.OK, results.SKIPPED)
        if self.few:
            if r['plugin'] or failed:
                what = r['plugin'] or '(node)'
                self.write(
                    f'  {r["node"]:<16} {r["phase"]:<12} {what:<24} '
                    f'{common.cell(r)}'
                )
        elif failed:  # failures in full, whatever the number of nodes
            what = f'plugin {r["plugin"]}' if r['plugin'] else 'the phase'
            self.write(
                f'{clock(r.get("ended_at"))} {r["node"]}: {what} '
                f'{common.cell(r)} in {r["mode"]} {r["phase"]}'
            )

    def counts(self, key, final=False):
        """The line of counts of a stage and phase (many nodes only)."""
        if self.few or key in self.finished:
            return
        hosts = self.stages[key[0]]
        done = self.done.get(key, {})
        ok = sum(1 for s in done.values() if s == results.OK)
        failed = sorted(h for h, s in done.items() if s != results.OK)
        running = len([h for h in hosts if h not in done])
        parts = [f'{ok}/{len(hosts)} ok']
        if running:
            parts.append(f'{running} running')
        if failed:
            more = len(failed) - NAMES_SHOWN
            parts.append(
                f'{len(failed)} failed: {", ".join(failed[:NAMES_SHOWN])}'
                + (f' and {more} more' if more > 0 else '')
            )
        started = self.started.get(key, time.time())
        line = f'{clock(started)} {key[1]}: ' + ', '.join(parts)
        if final or not running:
            self.finished.add(key)
            self.write(line + f' ({time.time() - started:.0f} s)')
        elif self.tty:  # rewritten in place
            self.out.write('\r\x1b[K' + line)
            self.out.flush()
            self.open_line = True
        elif time.monotonic() - self.last_print > PIPE_EVERY:
            self.write(line)

    def close(self):
        if self.open_line:
            self.out.write('\n')
            self.open_line = False


def _short_list(hosts, shown=4):
    more = len(hosts) - shown
    return ', '.join(hosts[:shown]) + (f' and {more} more' if more > 0 else '')


def patient_call(cmd, method, *args, **kwargs):
    """Call the daemon until it answers: a follower outlives a restart."""
    silent_since = None
    while True:
        try:
            answer = cmd.call(method, *args, **kwargs)
        except (client.DaemonTimeout, client.BrokerUnreachable) as e:
            now = time.monotonic()
            if silent_since is None:
                silent_since = now
                cmd.app.stderr.write(
                    f'{clock()} {e}; waiting for it (the run goes on)\n'
                )
            if now - silent_since > PATIENCE:
                raise exception.PluginsdException(
                    f'no answer from the daemon for {PATIENCE} s; the run '
                    'may still be going on: pluginsctl run show'
                ) from None
            time.sleep(1)
            continue
        if silent_since is not None:
            cmd.app.stderr.write(f'{clock()} the daemon answers again\n')
        return answer, silent_since is not None


def follow(cmd, run_id, quiet=False):
    """Print progress until the run ends; return its full view."""
    out = cmd.app.stderr
    tty = out.isatty() if hasattr(out, 'isatty') else False
    seen, cursor, printer = -1, 0, None
    while True:
        view, reconnected = patient_call(
            cmd,
            'wait_run',
            run_id,
            seen,
            WAIT,
            cursor,
            call_timeout=WAIT + cmd.app.answer_timeout(),
        )
        # A restarted daemon counts versions from scratch.
        seen = -1 if reconnected else view['version']
        cursor = view['last_result_id']
        if printer is None:
            printer = Printer(out, view, tty)
        if not quiet:
            printer.update(view)
        if view['state'] in common.FINAL_STATES:
            printer.close()
            return patient_call(cmd, 'get_run', run_id)[0]


class FollowingLister(common.DaemonCommand, lister.Lister):
    """A command that starts or resumes a run, follows it and ends with its
    table; its exit status says whether the run completed.
    """

    def add_no_wait(self, parser):
        parser.add_argument(
            '--no-wait',
            action='store_true',
            help='print the run id and return at once',
        )

    def follow_to_table(self, args, run_id):
        if args.no_wait:
            # Exactly the id, whatever the format: RUN=$(pluginsctl ...).
            print(run_id, file=self.app.stdout)
            return [], []
        quiet = self.app.options.verbose_level == 0
        view = follow(self, run_id, quiet=quiet)
        self.failed = view['state'] != 'completed'
        outcome = f'run {view["id"]} {view["state"]}'
        print(
            outcome + (f': {view["error"]}' if view['error'] else ''),
            file=self.app.stderr,
        )
        if common.machine(args):
            return common.result_rows(view)
        return common.matrix(view)

    def produce_output(self, parsed_args, column_names, data):
        if parsed_args.no_wait:
            return 0
        return super().produce_output(parsed_args, column_names, data)

    def run(self, parsed_args):
        self.failed = False
        status = super().run(parsed_args)
        return common.EXIT_FAILED if self.failed and not status else status
