"""Which nodes are up, as far as this daemon can tell.

A node's last heartbeat is in the database: any daemon sharing it may have
received the heartbeat. Silence only counts while *this* daemon was
connected to the broker. The daemon knows that from its own probe, a cast
to itself every second: while no probe comes back it is the one cut off and
declares no node lost; when probes come back after a gap, every node gets
a fresh ``agent_down_time`` from that moment. A node that stops cleanly
says so (state ``stopped``) and new runs leave it out at once.
"""

import logging
import threading
import time

LOG = logging.getLogger(__name__)

# Probes go out every second: this long without one back means the daemon
# has lost the broker.
PROBE_GAP = 3.0

UP, STOPPED, LOST = 'up', 'stopped', 'lost'


class NodeTracker:
    def __init__(self, conf, db, events, replays=None):
        self.conf = conf
        self.db = db
        self.events = events
        # The replay guard whose heartbeat marks flush() stores (see
        # signing.ReplayGuard.take_deferred).
        self.replays = replays
        self._lock = threading.Lock()
        self._last_probe = None
        # Until the first probe comes back, nobody is declared lost: a
        # restarted daemon gives every node a full grace period.
        self._connected_since = None
        # Called when a node registers or comes back (runs waiting for
        # nodes to plan with need not wait for their next tick).
        self.on_node_up = None
        # What each node said last ({host: (fields, when)}) and, for beats
        # that said nothing new, when they came ({host: time}): stored in
        # one transaction by flush() instead of one write per heartbeat.
        # Both bounded by the number of nodes.
        self._said, self._seen = {}, {}
        self._host_locks = {}  # {host: Lock}, see heartbeat()

    # -- this daemon's own link ---------------------------------------------

    def probe_received(self, now=None):
        now = time.time() if now is None else now
        with self._lock:
            if self._last_probe is None or now - self._last_probe > PROBE_GAP:
                if self._last_probe is not None:
                    # The probe shares the heartbeats' queue: late, it
                    # means the broker was away or that queue was backed
                    # up; either way the heartbeats seen are stale.
                    LOG.warning(
                        'No probe came back for %.0f s (the broker was '
                        'away, or heartbeats were queued): every node '
                        'gets a fresh grace period',
                        now - self._last_probe,
                    )
                self._connected_since = now
            self._last_probe = now

    def connected(self, now=None):
        now = time.time() if now is None else now
        with self._lock:
            return (
                self._last_probe is not None
                and now - self._last_probe <= PROBE_GAP
            )

    # -- heartbeats ----------------------------------------------------------

    def heartbeat(self, beat):
        said = (
            tuple(beat.roles),
            beat.version,
            beat.activity,
            beat.state,
            None
            if beat.allowed_sources is None
            else tuple(beat.allowed_sources),
            beat.devstack_dir,
        )
        with self._lock:
            host_lock = self._host_locks.setdefault(
                beat.host, threading.Lock()
            )
        # One beat of a host at a time, from the comparison to the write:
        # two workers may hold two beats of one host (a restarted agent's
        # "stopped" and its first "up"), and the write that lands last
        # must be the one ``_said`` remembers, or the node stays
        # "stopped" in the database while its beats look like nothing new.
        with host_lock:
            if self._unchanged(beat.host, said, beat.state):
                return
            try:
                node, before = self.db.upsert_node(
                    beat.host,
                    beat.roles,
                    beat.version,
                    beat.activity,
                    beat.allowed_sources,
                    beat.devstack_dir,
                    beat.state,
                )
            except Exception:
                with self._lock:  # not stored: the next beat is news again
                    self._said.pop(beat.host, None)
                raise
        if before is None:
            LOG.info(
                'Node %s registered (roles %s)',
                node['host'],
                ','.join(node['roles']),
            )
            self.events.node_register(node)
        elif beat.state == STOPPED:
            LOG.info('Node %s stopped cleanly', node['host'])
            self.events.node_update(node)
            return
        elif self.state_of(before) != UP:
            LOG.info('Node %s is back', node['host'])
            self.events.node_update(node)
        else:
            return
        if self.on_node_up is not None:
            self.on_node_up()

    def _unchanged(self, host, said, state):
        """Note the beat; True if it says nothing new and need not be
        written now (flush() stores when it came).
        """
        now = time.time()
        with self._lock:
            last = self._said.get(host)
            self._said[host] = (said, now)
            # Too recent for the node to have been judged lost: its
            # return would be news.
            if (
                state == UP
                and last is not None
                and last[0] == said
                and now - last[1] < self.conf.daemon.agent_down_time / 2
            ):
                self._seen[host] = now
                return True
            self._seen.pop(host, None)
            return False

    def forget(self, host):
        """A deleted node: its next heartbeat registers it again."""
        with self._lock:
            self._said.pop(host, None)
            self._seen.pop(host, None)
            self._host_locks.pop(host, None)

    def flush(self):
        """Store when the heartbeats that said nothing new came, and the
        replay marks of every heartbeat since the last flush.
        """
        with self._lock:
            seen, self._seen = self._seen, {}
        marks = self.replays.take_deferred() if self.replays else {}
        if not seen and not marks:
            return
        try:
            gone = self.db.touch_nodes(seen, marks)
        except Exception:
            with self._lock:  # the database is away: keep them for later
                for host, when in seen.items():
                    self._seen.setdefault(host, when)
            if marks:
                self.replays.defer_again(marks)
            raise
        for host in gone:  # deleted meanwhile (another daemon, say)
            self.forget(host)

    # -- judgement -----------------------------------------------------------

    def silent_for(self, node, now=None):
        """Seconds of silence that count: only while this daemon listened."""
        now = time.time() if now is None else now
        with self._lock:
            since = self._connected_since
        if since is None:
            return 0.0
        return max(0.0, now - max(node['last_seen'], since))

    def state_of(self, node, now=None):
        if node.get('state') == STOPPED:
            return STOPPED
        if not self.connected(now):
            return UP  # we are the ones cut off: nobody is judged
        if self.silent_for(node, now) > self.conf.daemon.agent_down_time:
            return LOST
        return UP

    def states(self):
        """{host: (state, node row)} of every known node."""
        self.flush()
        now = time.time()
        return {
            n['host']: (self.state_of(n, now), n) for n in self.db.list_nodes()
        }

    def unwell(self):
        """{host: (state, node row)} of the nodes lost or stopped.

        What the node watch reads every second: only the nodes silent for
        ``agent_down_time`` come out of the database, not every node.
        """
        self.flush()
        now = time.time()
        silent = self.db.list_nodes(
            silent_before=now - self.conf.daemon.agent_down_time
        )
        judged = ((self.state_of(n, now), n) for n in silent)
        return {n['host']: (state, n) for state, n in judged if state != UP}

    def alive(self):
        """{host: roles} of the nodes a new run may use."""
        return {
            host: node['roles']
            for host, (state, node) in self.states().items()
            if state == UP
        }
