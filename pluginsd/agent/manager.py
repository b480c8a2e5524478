"""Server side of the agent RPC API: what an agent does when asked."""

import logging
import os
import queue
import threading

import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import results
from pluginsd import rpc

LOG = logging.getLogger(__name__)


class AgentManager:
    target = messaging.Target(version='1.0')

    def __init__(
        self, host, roles, runner, journal, signer, outbox_wakeup, log_dir
    ):
        self.host = host
        self.roles = roles
        self.runner = runner
        self.journal = journal
        self.signer = signer
        self.wake_outbox = outbox_wakeup
        self.log_dir = log_dir
        self.activity = 'idle'
        self.stopping = False
        self._work = queue.Queue()
        self._queued = set()
        self._lock = threading.Lock()
        self._worker = threading.Thread(
            target=self._work_loop, daemon=True, name=f'agent-worker-{host}'
        )
        self._worker.start()

    # -- RPC ---------------------------------------------------------------

    @rpc.expose
    def run_phase(self, ctxt, envelope):
        self.accept(envelope)

    def _verified(self, envelope, op):
        try:
            payload = self.signer.verify(envelope)
        except exception.SignatureError as e:
            LOG.warning('%s: %s rejected: %s', self.host, op, e)
            return None
        if payload.get('op') != op:
            LOG.warning(
                '%s: %s rejected: signed for %r',
                self.host,
                op,
                payload.get('op'),
            )
            return None
        return payload

    @rpc.expose
    def cancel_run(self, ctxt, envelope):
        request = self._verified(envelope, 'cancel_run')
        if request:
            LOG.info('%s: cancelling run %s', self.host, request['run_id'])
            self.runner.cancel(request['run_id'], request['attempt'])

    @rpc.expose
    def end_run(self, ctxt, envelope):
        """The run is over (e.g. another node failed): drop its session."""
        request = self._verified(envelope, 'end_run')
        if request:
            self.runner.end_run(request['run_id'])

    @rpc.expose
    def ack_results(self, ctxt, envelope):
        request = self._verified(envelope, 'ack_results')
        keys = request and request['acks'].get(self.host)
        if keys:
            self.journal.ack(keys)

    @rpc.expose
    def ping(self, ctxt):
        return {
            'host': self.host,
            'roles': self.roles,
            'activity': self.activity,
        }

    @rpc.expose
    def fetch_log(self, ctxt, run_id, phase, plugin, offset=0):
        chunk = read_log(self.log_dir, run_id, phase, plugin, offset)
        if chunk['exists']:
            chunk['running'] = self.runner.busy()
        return chunk

    # -- work --------------------------------------------------------------

    def accept(self, envelope):
        """Check a phase event and queue it if it is for this node."""
        try:
            event = self.signer.verify(envelope)
        except exception.SignatureError as e:
            LOG.warning('%s: phase event rejected: %s', self.host, e)
            return False
        if self.host not in event['targets'] or self.stopping:
            return False
        key = (
            event['run_id'],
            event['mode'],
            event['phase'],
            event['attempt'],
        )
        with self._lock:
            if key in self._queued:
                return False
            if self.journal.phase_done(*key):
                LOG.info(
                    '%s: %s %s of run %s already done; re-sending results',
                    self.host,
                    *key[1:3],
                    key[0],
                )
                self.journal.resend_phase(*key)
                self.wake_outbox()
                return False
            self._queued.add(key)
        self._work.put((key, event))
        return True

    def _work_loop(self):
        while True:
            item = self._work.get()
            if item is None:
                return
            key, event = item
            if self.stopping or self.runner.is_cancelled(
                event['run_id'], event['attempt']
            ):
                LOG.info(
                    '%s: %s of run %s dropped (cancelled or stopping)',
                    self.host,
                    event['phase'],
                    event['run_id'],
                )
                with self._lock:
                    self._queued.discard(key)
                continue
            try:
                self._run(event)
            except Exception:
                LOG.exception(
                    '%s: phase %s of run %s crashed',
                    self.host,
                    event['phase'],
                    event['run_id'],
                )
            finally:
                with self._lock:
                    self._queued.discard(key)

    def _run(self, event):
        role_key = event['targets'][self.host]
        part = dict(event['parts'][role_key])
        part.update(
            run_id=event['run_id'],
            mode=event['mode'],
            phase=event['phase'],
            deadline=event['deadline'],
            attempt=event['attempt'],
        )
        self.activity = (
            f'{event["mode"]} {event["phase"]} of run {event["run_id"]}'
        )
        LOG.info('%s: running %s', self.host, self.activity)

        def report(result):
            data = result.to_dict()
            data['attempt'] = event['attempt']
            self.journal.add(data)
            self.wake_outbox()

        try:
            summary = self.runner.run_phase(part, report)
        finally:
            self.activity = 'idle'
        if summary.status != results.OK:
            LOG.warning('%s: %s', self.host, summary.message)

    def stop(self):
        """Let the worker finish what it runs, then end it."""
        self._work.put(None)
        self._worker.join(timeout=30)


def read_log(log_dir, run_id, phase, plugin, offset=0):
    """Up to 1 MiB of a plugin's log (``plugin`` '': the session log)."""
    for part in (run_id, phase, plugin):
        # Names, not paths: nothing outside log_dir can be read.
        if '/' in part or part.startswith('.'):
            return {'path': '', 'exists': False, 'data': '', 'offset': offset}
    path = os.path.join(log_dir, run_id, phase, f'{plugin}.log')
    if plugin == '':
        path = os.path.join(log_dir, run_id, f'session-{phase}.log')
    try:
        with open(path, 'rb') as f:
            f.seek(offset)
            data = f.read(1 << 20)
    except OSError:
        return {'path': path, 'exists': False, 'data': '', 'offset': offset}
    return {
        'path': path,
        'exists': True,
        'data': data.decode(errors='replace'),
        'offset': offset + len(data),
    }
