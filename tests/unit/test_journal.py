"""pluginsd.agent.journal: the agent's durable outbox."""

import json
import os
import sqlite3

import pytest

from pluginsd.agent.journal import Journal


def result(
    plugin='alpha',
    phase='install',
    attempt=1,
    run_id='run-1',
    node='n1',
    mode='stack',
    status='ok',
):
    return {
        'run_id': run_id,
        'node': node,
        'plugin': plugin,
        'mode': mode,
        'phase': phase,
        'attempt': attempt,
        'status': status,
    }


@pytest.fixture
def path(tmp_path):
    return str(tmp_path / 'sub' / 'journal.sqlite')


@pytest.fixture
def journal(path):
    j = Journal(path)
    yield j
    j.close()


class TestJournal:
    def test_key(self):
        assert Journal.key(result()) == 'run-1|n1|alpha|stack|install|1'
        assert Journal.key(result(plugin='', attempt=3)) == (
            'run-1|n1||stack|install|3'
        )

    def test_empty(self, journal):
        assert journal.due(0) == []
        assert journal.unacked_count() == 0

    def test_add_and_due(self, journal, clock):
        a, b = result('alpha'), result('beta')
        journal.add(a)
        journal.add(b)
        assert journal.unacked_count() == 2
        assert journal.due(5) == [(Journal.key(a), a), (Journal.key(b), b)]

    def test_due_limit(self, journal, clock):
        for name in ('a', 'b', 'c'):
            journal.add(result(name))
        assert [k for k, _ in journal.due(5, limit=2)] == [
            'run-1|n1|a|stack|install|1',
            'run-1|n1|b|stack|install|1',
        ]

    def test_resend_interval(self, journal, clock):
        r = result()
        key = Journal.key(r)
        journal.add(r)
        journal.mark_sent([key])
        assert journal.due(5) == []
        clock[0] += 4.9
        assert journal.due(5) == []
        clock[0] += 0.2
        assert journal.due(5) == [(key, r)]
        journal.mark_sent([key])
        assert journal.due(5) == []
        assert journal.unacked_count() == 1

    def test_each_resend_waits_twice_as_long_up_to_the_backoff(
        self, journal, clock
    ):
        r = result()
        key = Journal.key(r)
        journal.add(r)
        for wait in (5, 10, 20, 40, 40, 40):
            journal.mark_sent([key])
            assert journal.next_resend(5) == pytest.approx(wait)
            clock[0] += wait - 0.1
            assert journal.due(5) == []
            clock[0] += 0.2
            assert journal.due(5) == [(key, r)]

    def test_a_phase_sent_again_on_request_goes_at_once(self, journal, clock):
        r = result()
        journal.add(r)
        for _ in range(4):
            journal.mark_sent([Journal.key(r)])
        journal.resend_phase('run-1', 'stack', 'install', 1)
        assert journal.due(5) == [(Journal.key(r), r)]
        journal.mark_sent([Journal.key(r)])
        clock[0] += 5.1  # the backoff starts over
        assert journal.due(5) == [(Journal.key(r), r)]

    def test_a_journal_of_an_older_agent_is_upgraded(self, path, clock):
        os.makedirs(os.path.dirname(path))
        old = sqlite3.connect(path)
        old.execute(
            'CREATE TABLE results (key TEXT PRIMARY KEY, run_id TEXT, '
            'mode TEXT, phase TEXT, plugin TEXT, attempt INTEGER, '
            'payload TEXT, acked INTEGER DEFAULT 0, sent_at REAL DEFAULT 0)'
        )
        r = result()
        old.execute(
            "INSERT INTO results VALUES (?, 'run-1', 'stack', 'install', "
            "'alpha', 1, ?, 0, 0)",
            (Journal.key(r), json.dumps(r)),
        )
        old.commit()
        old.close()
        journal = Journal(path)
        try:
            assert journal.due(5) == [(Journal.key(r), r)]
            journal.mark_sent([Journal.key(r)])
            assert journal.due(5) == []
        finally:
            journal.close()

    def test_ack(self, journal, clock):
        a, b = result('alpha'), result('beta')
        journal.add(a)
        journal.add(b)
        journal.mark_sent([Journal.key(a), Journal.key(b)])
        journal.ack([Journal.key(a)])
        assert journal.unacked_count() == 1
        clock[0] += 100
        assert journal.due(5) == [(Journal.key(b), b)]
        journal.ack([Journal.key(b), 'unknown|key'])
        assert journal.unacked_count() == 0
        assert journal.due(5) == []

    def test_next_resend_says_how_long_the_outbox_may_sleep(
        self, journal, clock
    ):
        assert journal.next_resend(5) is None  # nothing to send: no timer
        a, b = result('alpha'), result('beta')
        journal.add(a)
        assert journal.next_resend(5) == 0  # never sent: now
        journal.mark_sent([Journal.key(a)])
        clock[0] += 2
        assert journal.next_resend(5) == pytest.approx(3)
        journal.add(b)
        assert journal.next_resend(5) == 0
        journal.mark_sent([Journal.key(b)])
        assert journal.next_resend(5) == pytest.approx(3)  # the oldest
        clock[0] += 10
        assert journal.next_resend(5) == 0  # overdue: now, not negative
        journal.ack([Journal.key(a), Journal.key(b)])
        assert journal.next_resend(5) is None

    def test_add_same_key_replaces(self, journal, clock):
        journal.add(result(status='running'))
        journal.add(result(status='ok'))
        assert journal.unacked_count() == 1
        assert journal.due(5) == [(Journal.key(result()), result(status='ok'))]

    def test_phase_done(self, journal):
        assert not journal.phase_done('run-1', 'stack', 'install', 1)
        journal.add(result('alpha'))
        assert not journal.phase_done('run-1', 'stack', 'install', 1)
        journal.add(result(''))  # the node's whole-phase summary
        assert journal.phase_done('run-1', 'stack', 'install', 1)
        assert not journal.phase_done('run-1', 'stack', 'install', 2)
        assert not journal.phase_done('run-1', 'stack', 'extra', 1)
        assert not journal.phase_done('run-1', 'unstack', 'install', 1)
        assert not journal.phase_done('run-2', 'stack', 'install', 1)

    def test_resend_phase(self, journal, clock):
        in_phase = [result('alpha'), result('')]
        other_phase = result('alpha', phase='extra')
        other_attempt = result('alpha', attempt=2)
        everything = in_phase + [other_phase, other_attempt]
        for r in everything:
            journal.add(r)
        keys = [Journal.key(r) for r in everything]
        journal.mark_sent(keys)
        journal.ack(keys)
        assert journal.unacked_count() == 0
        journal.resend_phase('run-1', 'stack', 'install', 1)
        assert journal.unacked_count() == 2
        # Due at once, whatever the resend interval.
        assert journal.due(3600) == [(Journal.key(r), r) for r in in_phase]

    def test_survives_reopen(self, path, clock):
        j = Journal(path)
        a, b, c = result('a'), result('b'), result('')
        for r in (a, b, c):
            j.add(r)
        j.ack([Journal.key(a)])
        j.mark_sent([Journal.key(b)])
        j.close()

        j2 = Journal(path)
        try:
            assert j2.unacked_count() == 2
            assert j2.due(5) == [(Journal.key(c), c)]
            clock[0] += 10
            assert j2.due(5) == [(Journal.key(b), b), (Journal.key(c), c)]
            assert j2.phase_done('run-1', 'stack', 'install', 1)
        finally:
            j2.close()

    def test_survives_without_close(self, path, clock):
        # An agent killed without closing its journal loses nothing.
        j = Journal(path)
        j.add(result('a'))
        j2 = Journal(path)
        try:
            assert j2.due(5) == [(Journal.key(result('a')), result('a'))]
        finally:
            j2.close()
            j.close()


class TestAckDelay:
    def test_resends_wait_as_long_as_the_daemon_takes_to_ack(
        self, journal, clock
    ):
        assert journal.resend_after(5) == 5  # nothing measured yet
        for i in range(20):  # the daemon acknowledges after 12 s
            r = result(plugin=f'p{i}')
            journal.add(r)
            journal.mark_sent([Journal.key(r)])
            clock[0] += 12
            journal.ack([Journal.key(r)])
        assert journal.resend_after(5) == pytest.approx(12, abs=0.5)
        r = result(plugin='late')
        journal.add(r)
        journal.mark_sent([Journal.key(r)])
        wait = journal.resend_after(5)
        clock[0] += wait - 0.1
        assert journal.due(wait) == []
        clock[0] += 0.2
        assert journal.due(wait) == [(Journal.key(r), r)]

    def test_at_least_the_configured_interval_and_at_most_the_backoff(
        self, journal, clock
    ):
        r = result()
        journal.add(r)
        journal.mark_sent([Journal.key(r)])
        clock[0] += 0.01
        journal.ack([Journal.key(r)])
        assert journal.resend_after(5) == 5
        r = result(plugin='slow')
        journal.add(r)
        journal.mark_sent([Journal.key(r)])
        clock[0] += 1000  # the daemon was away
        journal.ack([Journal.key(r)])
        assert journal.resend_after(5) == 40

    def test_a_resent_result_tells_nothing(self, journal, clock):
        r = result()
        journal.add(r)
        journal.mark_sent([Journal.key(r)])
        clock[0] += 30
        journal.mark_sent([Journal.key(r)])  # resent: which copy is acked?
        clock[0] += 1
        journal.ack([Journal.key(r)])
        assert journal.resend_after(5) == 5
        assert journal.ack_delay.mean is None

    def test_due_and_next_resend_wait_the_learned_delay_themselves(
        self, journal, clock
    ):
        for i in range(20):  # the daemon acknowledges after 12 s
            r = result(plugin=f'p{i}')
            journal.add(r)
            journal.mark_sent([Journal.key(r)])
            clock[0] += 12
            journal.ack([Journal.key(r)])
        r = result(plugin='late')
        journal.add(r)
        journal.mark_sent([Journal.key(r)])
        wait = journal.resend_after(5)
        assert journal.next_resend(5) == pytest.approx(wait)
        clock[0] += wait - 0.1
        assert journal.due(5) == []  # not after the configured 5 s
        clock[0] += 0.2
        assert journal.due(5) == [(Journal.key(r), r)]
