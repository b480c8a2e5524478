"""Server side of the agent RPC API: what an agent does when asked."""

import json
import logging
import os
import queue
import threading
import time

import oslo_messaging as messaging

from pluginsd import exception
from pluginsd import keys
from pluginsd import masking
from pluginsd import objects
from pluginsd import results
from pluginsd import rpc
from pluginsd.agent import rpcapi
from pluginsd.rpc import signing

LOG = logging.getLogger(__name__)


class AgentKeyring:
    """An agent trusts one party: the daemon, by its public key(s)."""

    def __init__(self, daemon_keys):
        self.fingerprints = {keys.fingerprint(k) for k in daemon_keys}

    def identify(self, sender, verify_key, fingerprint, op):
        if sender != 'daemon' or fingerprint not in self.fingerprints:
            raise exception.SignatureError(
                sender=sender,
                reason='not signed by a daemon key in [security] '
                'daemon_public_keys',
                key=fingerprint,
            )
        return signing.Identity('daemon', 'daemon', '', fingerprint, None)


class AgentManager:
    target = messaging.Target(version=rpc.AGENT_API_VERSION)

    def __init__(
        self,
        host,
        roles,
        runner,
        journal,
        verifier,
        outbox_wakeup,
        log_dir,
        fetch_localconf,
    ):
        self.host = host
        self.roles = roles
        self.runner = runner
        self.journal = journal
        self.verifier = verifier
        self.wake_outbox = outbox_wakeup
        self.log_dir = log_dir
        # run_id -> the local.conf of this node's role, fetched sealed
        self.fetch_localconf = fetch_localconf
        self._localconfs = {}
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

    def _open(self, envelope, op, fanout=False):
        """The payload of a daemon message for this node, or None (logged)."""
        targets = (self.host, rpcapi.EVERY_AGENT) if fanout else (self.host,)
        if self.verifier.addressed_elsewhere(envelope, targets):
            return None  # a phase event for other nodes: not an attack
        try:
            _, payload = self.verifier.open(envelope, op, targets)
        except exception.SignatureError:
            return None
        return payload if isinstance(payload, dict) else None

    @rpc.expose
    def run_phase(self, ctxt, envelope):
        self.accept(envelope)

    @rpc.expose
    def cancel_run(self, ctxt, envelope):
        request = self._open(envelope, 'cancel_run', fanout=True)
        if request:
            LOG.info('%s: cancelling run %s', self.host, request['run_id'])
            self.runner.cancel(request['run_id'], request['attempt'])

    @rpc.expose
    def end_run(self, ctxt, envelope):
        """The run is over (e.g. another node failed): drop its session."""
        request = self._open(envelope, 'end_run', fanout=True)
        if request:
            self._take_acks(request.get('acks'))
            self.runner.end_run(request['run_id'])
            with self._lock:
                self._localconfs.pop(request['run_id'], None)

    @rpc.expose
    def ack_results(self, ctxt, envelope):
        request = self._open(envelope, 'ack_results', fanout=True)
        keys_ = request and request['acks'].get(self.host)
        if keys_:
            self.journal.ack(keys_)

    def _take_acks(self, packed):
        """Acknowledgements that rode on a fanout: this node's part."""
        keys_ = results.unpack_acks(packed, self.host)
        if keys_:
            self.journal.ack(keys_)

    @rpc.expose
    def ping(self, ctxt, envelope):
        if self._open(envelope, 'ping') is None:
            raise exception.SignatureError(
                sender='?', reason='ping refused (see the agent log)'
            )
        return {
            'host': self.host,
            'roles': self.roles,
            'activity': self.activity,
        }

    @rpc.expose
    def fetch_log(self, ctxt, envelope):
        request = self._open(envelope, 'fetch_log')
        if request is None:
            raise exception.SignatureError(
                sender='?', reason='log request refused (see the agent log)'
            )
        chunk = read_log(self.log_dir, **request)
        if chunk['exists']:
            chunk['running'] = self.runner.busy()
        return chunk

    # -- work --------------------------------------------------------------

    def accept(self, envelope):
        """Check a phase event and queue it if it is for this node."""
        event = self._open(envelope, 'run_phase')
        if event is None:
            return False
        try:
            event = objects.PhaseEvent.from_wire(event).to_dict()
        except (objects.InvalidObject, TypeError) as e:
            LOG.warning('%s: phase event rejected: %s', self.host, e)
            return False
        self._take_acks(event.pop('acks'))
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

    def _localconf(self, event, digest, deadline):
        """This node's local.conf for the run, fetched once, digest-checked."""
        run_id = event['run_id']
        with self._lock:
            cached = self._localconfs.get(run_id)
        if cached and cached[0] == digest:
            return cached[1]

        def cancelled():
            if self.stopping or self.runner.is_cancelled(
                run_id, event['attempt']
            ):
                raise exception.PluginsdException(
                    f'run {run_id} was cancelled (or the agent stops) '
                    'while its local.conf was fetched'
                )

        data = rpc.call_until(
            lambda: self.fetch_localconf(run_id),
            lambda: deadline - time.monotonic(),
            f'{self.host}: fetching the local.conf of run {run_id}',
            stop=cancelled,
        )
        if signing.digest(data) != digest:
            raise exception.PluginsdException(
                f'the local.conf sent for run {run_id} does not match the '
                'digest the daemon signed'
            )
        localconf = json.loads(data)
        with self._lock:
            self._localconfs[run_id] = (digest, localconf)
        return localconf

    def _run(self, event):
        # The phase's deadline counts from here: fetching local.conf is
        # part of the phase.
        started = time.time()
        deadline = time.monotonic() + event['deadline']
        secrets = set()

        def report(result):
            data = result.to_dict()
            data['attempt'] = event['attempt']
            for field in ('tail', 'message'):
                data[field] = masking.mask(data.get(field), secrets)
            self.journal.add(data)
            self.wake_outbox()

        role_key = event['targets'][self.host]
        part = dict(event['parts'][role_key])
        try:
            part['localconf'] = self._localconf(
                event, part.pop('localconf_digest'), deadline
            )
        except (
            exception.PluginsdException,
            messaging.MessagingException,
        ) as e:
            # Said to the daemon, which would otherwise wait for the phase.
            if self.runner.is_cancelled(event['run_id'], event['attempt']):
                status = results.CANCELLED
            elif isinstance(e, messaging.MessagingTimeout):
                status = results.TIMEOUT
            else:
                status = results.FAILED
            summary = results.Result(
                event['run_id'],
                self.host,
                results.NODE,
                event['mode'],
                event['phase'],
                status,
                None,
                started,
                time.time(),
                message=f'node {self.host}: {event["mode"]} '
                f'{event["phase"]} got no local.conf from the daemon: '
                f'{_error_name(e)}: {exception.without_traceback(e)}',
            )
            LOG.warning('%s', summary.message)
            report(summary)
            return
        secrets.update(
            masking.secret_values(part['localconf'].get('localrc', ''))
        )
        part.update(
            run_id=event['run_id'],
            mode=event['mode'],
            phase=event['phase'],
            deadline=max(deadline - time.monotonic(), 0),
            attempt=event['attempt'],
        )
        self.activity = (
            f'{event["mode"]} {event["phase"]} of run {event["run_id"]}'
        )
        LOG.info('%s: running %s', self.host, self.activity)
        try:
            summary = self.runner.run_phase(part, report)
        finally:
            self.activity = 'idle'
        if summary.status != results.OK:
            LOG.warning(
                '%s: %s', self.host, masking.mask(summary.message, secrets)
            )

    def stop(self):
        """Let the worker finish what it runs, then end it."""
        self._work.put(None)
        self._worker.join(timeout=30)


def _error_name(error):
    """SignatureError, not SignatureError_Remote: where it came from is said
    around it.
    """
    return type(error).__name__.removesuffix('_Remote')


def _secrets_of(log_dir, run_id):
    """Secret values of a run's localrc: the copy the runner sourced."""
    try:
        with open(os.path.join(log_dir, run_id, 'localrc')) as f:
            return masking.secret_values(f.read())
    except OSError:
        return set()


def read_log(log_dir, run_id, phase, plugin, offset=0):
    """Up to 1 MiB of a plugin's log (``plugin`` '': the session log).

    Values of secret-looking localrc variables are masked: what leaves the
    node never shows them.
    """
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
        'data': masking.mask(
            data.decode(errors='replace'), _secrets_of(log_dir, run_id)
        ),
        'offset': offset + len(data),
    }
