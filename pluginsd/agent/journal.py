"""The agent's outbox: every result is written here before it is sent.

A result stays in the journal, unacknowledged, until the daemon says it has
stored it; the agent re-sends what is unacknowledged, so neither a broker
restart nor a daemon restart loses a result. Each resend of a result waits
twice as long as the one before (up to RESEND_BACKOFF times the interval):
a daemon too loaded to acknowledge in time is not buried under resends.
Nor is the first resend earlier than the daemon has been taking to
acknowledge (:class:`AckDelay`).
"""

import json
import os
import sqlite3
import threading
import time

from pluginsd import results

# The longest wait between two sends of a result, in resend intervals.
RESEND_BACKOFF = 8
# When a result that has been sent ``sends`` times is due again: the
# interval (the parameter), doubled per send after the first.
_DUE_AT = f'sent_at + ? * min(1 << max(sends - 1, 0), {RESEND_BACKOFF})'


class AckDelay:
    """How long the daemon takes to acknowledge a result, smoothed as TCP
    smooths its round trips (RFC 6298): the resend interval is the
    configured one, or the mean delay plus four deviations if that is
    longer, up to RESEND_BACKOFF times the configured one.

    Measured at 500 nodes on two cores: the daemon acknowledged in 5-20 s,
    so most results went two or three times, each copy more work for the
    daemon that was slow already.
    """

    def __init__(self):
        self.mean = None
        self.deviation = 0.0

    def add(self, delay):
        if self.mean is None:
            self.mean, self.deviation = delay, delay / 2
        else:
            self.deviation = 0.75 * self.deviation + 0.25 * abs(
                self.mean - delay
            )
            self.mean = 0.875 * self.mean + 0.125 * delay

    def resend_after(self, configured):
        if self.mean is None:
            return configured
        wait = self.mean + 4 * self.deviation
        return min(max(configured, wait), configured * RESEND_BACKOFF)


class Journal:
    def __init__(self, path):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None
        )
        self._db.execute('PRAGMA journal_mode=WAL')
        self._db.execute('PRAGMA synchronous=NORMAL')
        self._db.execute(
            'CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, '
            'run_id TEXT, mode TEXT, phase TEXT, plugin TEXT, '
            'attempt INTEGER, payload TEXT, acked INTEGER DEFAULT 0, '
            'sent_at REAL DEFAULT 0, sends INTEGER DEFAULT 0)'
        )
        columns = {
            row[1] for row in self._db.execute('PRAGMA table_info(results)')
        }
        if 'sends' not in columns:  # a journal of an older agent
            self._db.execute(
                'ALTER TABLE results ADD COLUMN sends INTEGER DEFAULT 0'
            )
        # The highest message sequence accepted from each daemon key: a
        # message captured from the bus is refused after any restart.
        self._db.execute(
            'CREATE TABLE IF NOT EXISTS replay_marks '
            '(fingerprint TEXT PRIMARY KEY, seq INTEGER)'
        )
        self._lock = threading.Lock()
        self.ack_delay = AckDelay()

    key = staticmethod(results.ack_key)

    def resend_after(self, configured):
        """Seconds before a result sent once is due again (what due() and
        next_resend() wait, given the configured interval).
        """
        with self._lock:
            return self.ack_delay.resend_after(configured)

    def add(self, result):
        with self._lock:
            self._db.execute(
                'INSERT OR REPLACE INTO results (key, run_id, mode, phase, '
                'plugin, attempt, payload) VALUES (?, ?, ?, ?, ?, ?, ?)',
                (
                    self.key(result),
                    result['run_id'],
                    result['mode'],
                    result['phase'],
                    result['plugin'],
                    result['attempt'],
                    json.dumps(result),
                ),
            )

    def due(self, resend_after, limit=200):
        """Unacknowledged results never sent, or due again: ``resend_after``
        seconds after the first send (longer while the daemon takes longer
        to acknowledge: :class:`AckDelay`), then twice as long each time.
        """
        with self._lock:
            rows = self._db.execute(
                'SELECT key, payload FROM results '
                f'WHERE acked = 0 AND {_DUE_AT} < ? ORDER BY rowid LIMIT ?',
                (
                    self.ack_delay.resend_after(resend_after),
                    time.time(),
                    limit,
                ),
            ).fetchall()
        return [(key, json.loads(payload)) for key, payload in rows]

    def next_resend(self, resend_after):
        """Seconds until ``due()`` has something (0: now), or None when
        every result is acknowledged.
        """
        with self._lock:
            (first,) = self._db.execute(
                f'SELECT MIN({_DUE_AT}) FROM results WHERE acked = 0',
                (self.ack_delay.resend_after(resend_after),),
            ).fetchone()
        if first is None:
            return None
        return max(0.0, first - time.time())

    def mark_sent(self, keys):
        now = time.time()
        with self._lock:
            self._db.executemany(
                'UPDATE results SET sent_at = ?, sends = sends + 1 '
                'WHERE key = ?',
                [(now, k) for k in keys],
            )

    def ack(self, keys):
        now = time.time()
        with self._lock:
            # Only results sent once tell the delay: the ack of a resent
            # one may answer any of its copies.
            for key in keys:
                row = self._db.execute(
                    'SELECT sent_at FROM results '
                    'WHERE key = ? AND acked = 0 AND sends = 1',
                    (key,),
                ).fetchone()
                if row is not None:
                    self.ack_delay.add(max(0.0, now - row[0]))
            self._db.executemany(
                'UPDATE results SET acked = 1 WHERE key = ?',
                [(k,) for k in keys],
            )

    def purge(self, before):
        """Drop acknowledged results sent before ``before``; how many."""
        with self._lock:
            return self._db.execute(
                'DELETE FROM results WHERE acked = 1 AND sent_at < ?',
                (before,),
            ).rowcount

    def unacked_count(self):
        with self._lock:
            return self._db.execute(
                'SELECT count(*) FROM results WHERE acked = 0'
            ).fetchone()[0]

    def phase_done(self, run_id, mode, phase, attempt):
        """Whether the node finished that phase (its summary exists)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM results WHERE run_id = ? AND mode = ? "
                "AND phase = ? AND attempt = ? AND plugin = ''",
                (run_id, mode, phase, attempt),
            ).fetchone()
        return row is not None

    def resend_phase(self, run_id, mode, phase, attempt):
        with self._lock:
            self._db.execute(
                'UPDATE results SET acked = 0, sent_at = 0, sends = 0 '
                'WHERE run_id = ? AND mode = ? AND phase = ? AND attempt = ?',
                (run_id, mode, phase, attempt),
            )

    def load_marks(self):
        with self._lock:
            return dict(
                self._db.execute('SELECT fingerprint, seq FROM replay_marks')
            )

    def save_mark(self, fingerprint, seq):
        with self._lock:
            self._db.execute(
                'INSERT INTO replay_marks (fingerprint, seq) VALUES (?, ?) '
                'ON CONFLICT (fingerprint) DO UPDATE SET seq = excluded.seq '
                'WHERE excluded.seq > replay_marks.seq',
                (fingerprint, seq),
            )

    def close(self):
        self._db.close()
