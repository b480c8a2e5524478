"""pluginsd.agent.manager.AgentManager: what an agent does when asked.

A real journal (SQLite) and real signatures; the node runner is a fake
that records what it is asked and reports results as the real one does.
"""

import logging
import os
import threading

import fixtures
import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import keys
from pluginsd import results
from pluginsd.agent import journal as journal_mod
from pluginsd.agent import manager as manager_mod
from pluginsd.rpc import signing
from tests import base

DAEMON = keys.KeyPair.generate()
NO_LOCALCONF = signing.canonical_json({})


class FakeRunner:
    """Records calls; run_phase reports one plugin result and a summary."""

    def __init__(self, status=results.OK):
        self.status = status
        self.parts = []
        self.cancelled = []
        self.ended = []
        self.ran = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.running = False

    def run_phase(self, part, report):
        self.running = True
        self.parts.append(part)
        self.release.wait(10)
        args = (part['run_id'], 'n1')
        report(
            results.Result(
                *args,
                'alpha',
                part['mode'],
                part['phase'],
                self.status,
                0 if self.status == 'ok' else 1,
            )
        )
        summary = results.Result(
            *args, results.NODE, part['mode'], part['phase'], self.status, 0
        )
        summary.message = 'node n1: boom' if self.status != 'ok' else ''
        report(summary)
        self.running = False
        self.ran.set()
        return summary

    def is_cancelled(self, run_id, attempt):
        return (run_id, attempt) in self.cancelled

    def cancel(self, run_id, attempt):
        self.cancelled.append((run_id, attempt))

    def end_run(self, run_id):
        self.ended.append(run_id)

    def busy(self):
        return self.running


def phase_event(targets=('n1',), phase='install', attempt=1, run_id='r1'):
    return {
        'run_id': run_id,
        'mode': 'stack',
        'phase': phase,
        'attempt': attempt,
        'deadline': 60,
        'targets': {host: 'controller' for host in targets},
        # Only a digest: the node fetches its local.conf, sealed to it.
        'parts': {
            'controller': {
                'plugins': [],
                'localconf_digest': signing.digest(NO_LOCALCONF),
            }
        },
    }


class TestAgentManager(base.TestCase):
    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.journal = journal_mod.Journal(os.path.join(self.tmp, 'j.sqlite'))
        self.addCleanup(self.journal.close)
        self.runner = FakeRunner()
        self.daemon = signing.Signer(DAEMON, 'daemon')
        self.wakeups = []
        verifier = signing.Verifier(
            manager_mod.AgentKeyring([DAEMON.verify_key]),
            signing.ReplayGuard(self.journal, 300),
            300,
            'agent n1',
        )
        self.manager = manager_mod.AgentManager(
            'n1',
            ['controller'],
            self.runner,
            self.journal,
            verifier,
            lambda: self.wakeups.append(1),
            os.path.join(self.tmp, 'logs'),
            lambda run_id: NO_LOCALCONF,
        )
        self.addCleanup(self.manager.stop)

    def signed(self, event):
        """A phase event as the daemon signs it: for its target hosts."""
        return self.daemon.sign('run_phase', sorted(event['targets']), event)

    def control(self, op, payload, target='*'):
        return self.daemon.sign(op, target, payload)

    def fetch_log(self, run_id, phase, plugin, offset=0):
        request = dict(
            run_id=run_id, phase=phase, plugin=plugin, offset=offset
        )
        return self.manager.fetch_log(
            {}, self.control('fetch_log', request, 'n1')
        )

    def wait_journaled(self):
        """The results journaled, once there are some (up to 5 s)."""
        for _ in range(100):
            due = [r for _, r in self.journal.due(0)]
            if due:
                return due
            self.runner.ran.wait(0.05)
        self.fail('nothing was journaled')

    def run_and_wait(self, event):
        self.manager.run_phase({}, self.signed(event))
        self.assertTrue(self.runner.ran.wait(10), 'the phase never ran')

    def test_a_phase_for_this_node_runs_and_its_results_are_journaled(self):
        self.run_and_wait(phase_event(targets=('n1', 'n2')))
        [part] = self.runner.parts
        self.assertEqual(
            (part['run_id'], part['mode'], part['phase'], part['attempt']),
            ('r1', 'stack', 'install', 1),
        )
        # The deadline counts from when the agent took the phase.
        self.assertTrue(55 < part['deadline'] <= 60, part['deadline'])
        self.assertEqual(part['plugins'], [])  # this role's part
        due = [r for _, r in self.journal.due(0)]
        self.assertEqual(
            [(r['plugin'], r['status'], r['attempt']) for r in due],
            [('alpha', 'ok', 1), ('', 'ok', 1)],
        )
        self.assertEqual(len(self.wakeups), 2)  # the outbox woke per result
        self.assertEqual(self.manager.activity, 'idle')

    def test_a_local_conf_call_that_times_out_is_tried_again(self):
        self.useFixture(fixtures.MockPatch('pluginsd.rpc.RETRY_WAIT_FIRST', 0))
        calls = []

        def fetch(run_id):
            calls.append(run_id)
            if len(calls) < 3:
                raise messaging.MessagingTimeout('no reply')
            return NO_LOCALCONF

        self.manager.fetch_localconf = fetch
        self.run_and_wait(phase_event())
        self.assertEqual(calls, ['r1', 'r1', 'r1'])
        due = [r for _, r in self.journal.due(0)]
        self.assertEqual([r['status'] for r in due], ['ok', 'ok'])

    def test_no_local_conf_by_the_deadline_is_a_timeout_result(self):
        self.useFixture(fixtures.MockPatch('pluginsd.rpc.RETRY_WAIT_FIRST', 0))

        def fetch(run_id):
            raise messaging.MessagingTimeout('no reply')

        self.manager.fetch_localconf = fetch
        event = dict(phase_event(), deadline=1)
        self.assertTrue(self.manager.accept(self.signed(event)))
        [summary] = self.wait_journaled()
        self.assertEqual(
            (summary['plugin'], summary['status'], summary['phase']),
            ('', 'timeout', 'install'),
        )
        self.assertEqual(
            summary['message'],
            'node n1: stack install got no local.conf from the daemon: '
            'MessagingTimeout: no reply',
        )
        self.assertEqual(self.runner.parts, [])  # nothing ran

    def test_a_cancel_ends_the_local_conf_retries(self):
        self.useFixture(fixtures.MockPatch('pluginsd.rpc.RETRY_WAIT_FIRST', 0))
        calls = []

        def fetch(run_id):
            calls.append(run_id)
            self.runner.cancel(run_id, 1)
            raise messaging.MessagingTimeout('no reply')

        self.manager.fetch_localconf = fetch
        self.assertTrue(self.manager.accept(self.signed(phase_event())))
        [summary] = self.wait_journaled()
        self.assertEqual(summary['status'], 'cancelled')
        self.assertIn('was cancelled', summary['message'])
        self.assertEqual(calls, ['r1'])  # not tried again
        self.assertEqual(self.runner.parts, [])

    def test_a_refused_local_conf_call_fails_the_phase_in_one_line(self):
        def fetch(run_id):
            raise exception.NotAuthorized(
                'node:n1 may not call get_localconf (needs node)\n'
                'Traceback (most recent call last):\n  File "x.py"\n'
            )

        self.manager.fetch_localconf = fetch
        self.assertTrue(self.manager.accept(self.signed(phase_event())))
        [summary] = self.wait_journaled()
        self.assertEqual(summary['status'], 'failed')
        self.assertEqual(
            summary['message'],
            'node n1: stack install got no local.conf from the daemon: '
            'NotAuthorized: node:n1 may not call get_localconf (needs node)',
        )

    def test_a_phase_for_other_nodes_is_ignored(self):
        logged = self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.assertFalse(
            self.manager.accept(self.signed(phase_event(targets=('n2',))))
        )
        self.assertFalse(self.runner.ran.wait(0.2))
        self.assertEqual(self.runner.parts, [])
        # Normal traffic of a fanout (a republish to other nodes): quiet.
        self.assertEqual(logged.output, '')
        self.assertTrue(self.manager.accept(self.signed(phase_event())))
        # Without a readable target the message is checked, and refused
        # with a log line.
        unaddressed = self.signed(phase_event())
        del unaddressed['target']
        self.assertFalse(self.manager.accept(unaddressed))
        self.assertIn('rejected run_phase: malformed envelope', logged.output)

    def test_a_phase_event_signed_with_another_key_runs_nothing(self):
        forged = signing.Signer(keys.KeyPair.generate(), 'daemon').sign(
            'run_phase', ['n1'], phase_event()
        )
        self.assertFalse(self.manager.accept(forged))
        tampered = self.signed(phase_event())
        tampered['payload']['phase'] = 'extra'
        self.assertFalse(self.manager.accept(tampered))
        self.assertFalse(self.runner.ran.wait(0.2))

    def test_the_same_phase_is_queued_once(self):
        self.runner.release.clear()  # hold the first run
        event = phase_event()
        self.assertTrue(self.manager.accept(self.signed(event)))
        self.assertFalse(self.manager.accept(self.signed(event)))
        self.runner.release.set()
        self.assertTrue(self.runner.ran.wait(10))
        self.assertEqual(len(self.runner.parts), 1)

    def test_a_finished_phase_is_answered_from_the_journal(self):
        self.run_and_wait(phase_event())
        self.journal.ack([k for k, _ in self.journal.due(0)])
        self.runner.ran.clear()
        self.assertFalse(self.manager.accept(self.signed(phase_event())))
        # Not run again: its results are due to be sent again instead.
        self.assertEqual(len(self.runner.parts), 1)
        self.assertEqual(len(self.journal.due(0)), 2)

    def test_a_failed_phase_still_journals_its_results(self):
        self.runner.status = results.FAILED
        self.run_and_wait(phase_event())
        statuses = [r['status'] for _, r in self.journal.due(0)]
        self.assertEqual(statuses, ['failed', 'failed'])

    def test_a_cancelled_attempt_is_dropped_before_it_runs(self):
        self.runner.cancelled.append(('r1', 1))
        self.assertTrue(self.manager.accept(self.signed(phase_event())))
        self.assertFalse(self.runner.ran.wait(0.3))
        self.assertEqual(self.runner.parts, [])

    def test_cancel_and_end_run_need_their_own_signed_operation(self):
        cancel = {'run_id': 'r1', 'attempt': 2}
        self.manager.cancel_run({}, self.control('cancel_run', cancel))
        self.assertEqual(self.runner.cancelled, [('r1', 2)])
        # A signature for one operation is not one for another.
        self.manager.end_run({}, self.control('cancel_run', cancel))
        self.assertEqual(self.runner.ended, [])
        self.manager.end_run({}, self.control('end_run', {'run_id': 'r1'}))
        self.assertEqual(self.runner.ended, ['r1'])
        forged = signing.Signer(keys.KeyPair.generate(), 'daemon').sign(
            'cancel_run', '*', {'run_id': 'r9', 'attempt': 1}
        )
        self.manager.cancel_run({}, forged)
        self.assertEqual(self.runner.cancelled, [('r1', 2)])

    def test_acks_for_this_node_are_applied_and_others_ignored(self):
        self.run_and_wait(phase_event())
        acked = [k for k, _ in self.journal.due(0)]
        ack = {'acks': {'n2': acked}}
        self.manager.ack_results({}, self.control('ack_results', ack))
        self.assertEqual(self.journal.unacked_count(), 2)
        ack['acks'] = {'n1': acked[:1]}
        self.manager.ack_results({}, self.control('ack_results', ack))
        self.assertEqual(self.journal.unacked_count(), 1)

    def test_acks_carried_by_a_phase_event_or_end_run_are_applied(self):
        self.run_and_wait(phase_event())
        alpha, summary = sorted(k for k, _ in self.journal.due(0))
        # Packed as the daemon packs them; another node's part is ignored.
        packed, _ = results.pack_acks({'n1': [alpha], 'n2': ['r1|n2|x']})
        packed['r1|stack|install|1']['n2'] = ['alpha', '']
        forged = signing.Signer(keys.KeyPair.generate(), 'daemon').sign(
            'end_run', '*', {'run_id': 'r1', 'acks': packed}
        )
        self.manager.end_run({}, forged)
        self.assertEqual(self.journal.unacked_count(), 2)
        self.runner.ran.clear()
        self.run_and_wait(dict(phase_event(phase='post-config'), acks=packed))
        # install's alpha acknowledged; its summary and post-config's two
        # results are not.
        self.assertEqual(self.journal.unacked_count(), 3)
        self.assertNotIn(alpha, [k for k, _ in self.journal.due(0)])
        packed, _ = results.pack_acks({'n1': [summary]})
        self.manager.end_run(
            {}, self.control('end_run', {'run_id': 'r1', 'acks': packed})
        )
        self.assertEqual(self.journal.unacked_count(), 2)
        self.assertEqual(self.runner.ended, ['r1'])

    def test_a_direct_ack_counts_only_if_signed_for_this_node(self):
        self.run_and_wait(phase_event())
        acked = [k for k, _ in self.journal.due(0)]
        ack = {'acks': {'n1': acked[:1]}}
        # Signed for another node: its payload cannot ack ours.
        self.manager.ack_results({}, self.control('ack_results', ack, 'n2'))
        self.assertEqual(self.journal.unacked_count(), 2)
        self.manager.ack_results({}, self.control('ack_results', ack, 'n1'))
        self.assertEqual(self.journal.unacked_count(), 1)

    def test_ping_says_who_and_what(self):
        self.assertEqual(
            self.manager.ping({}, self.control('ping', {}, 'n1')),
            {'host': 'n1', 'roles': ['controller'], 'activity': 'idle'},
        )

    def test_fetch_log_reads_only_inside_the_log_dir(self):
        log_dir = os.path.join(self.tmp, 'logs')
        os.makedirs(os.path.join(log_dir, 'r1', 'install'))
        with open(
            os.path.join(log_dir, 'r1', 'install', 'alpha.log'), 'w'
        ) as f:
            f.write('line one\nline two\n')
        chunk = self.fetch_log('r1', 'install', 'alpha', offset=5)
        self.assertEqual(chunk['data'], 'one\nline two\n')
        self.assertEqual(chunk['offset'], 18)
        self.assertFalse(chunk['running'])
        for run_id, phase, plugin in (
            ('..', 'install', 'alpha'),
            ('r1', 'install', '../../../etc/passwd'),
            ('r1', '.', 'alpha'),
        ):
            chunk = self.fetch_log(run_id, phase, plugin)
            self.assertFalse(chunk['exists'], (run_id, phase, plugin))
            self.assertEqual(chunk['data'], '')

    def test_the_session_log_is_the_empty_plugin_name(self):
        log_dir = os.path.join(self.tmp, 'logs')
        os.makedirs(os.path.join(log_dir, 'r1'))
        with open(
            os.path.join(log_dir, 'r1', 'session-install.log'), 'w'
        ) as f:
            f.write('sourcing localrc\n')
        chunk = self.fetch_log('r1', 'install', '')
        self.assertEqual(chunk['data'], 'sourcing localrc\n')
