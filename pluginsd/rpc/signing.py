"""The envelope of every RPC message: who sent it, for what, signed.

Every RPC method takes one argument, ``envelope``, and nothing else::

    {'v': 1, 'sender': 'node:cmp1', 'key': 'ed25519:...', 'seq': 17...,
     'op': 'report_results', 'target': 'daemon', 'timestamp': 1.7e9,
     'payload': {...}, 'signature': '<base64 Ed25519>'}

The signature covers every field. A receiver (:class:`Verifier`) checks,
in this order: the signature with the enclosed public key; that the key is
one it trusts for that sender (its *keyring*: the daemon knows each node's
accepted key and each operator's key and role, an agent knows the daemon's
key); that the message was signed for this operation and this target; that
it is fresh (``[security] max_message_age``); and that it is not a replay.

Replays: ``seq`` grows with every message of a sender (nanosecond clock,
never reused, even across the sender's restarts). The receiver keeps, per
sender key, the highest ``seq`` it accepted (its *high-water mark*), in
the daemon's database or the agent's journal, written before the message
is acted upon. After a restart it accepts only what is above the stored
mark; while running it also remembers the ``seq`` values it accepted
recently, so messages that overtake each other on the bus still pass once.

The payload inside the envelope (plain JSON primitives) is the RPC API's.
"""

import base64
import collections
import hashlib
import json
import logging
import threading
import time

from pluginsd import exception
from pluginsd import keys

LOG = logging.getLogger(__name__)
VERSION = 1
SIGNED_FIELDS = (
    'v',
    'sender',
    'key',
    'seq',
    'op',
    'target',
    'timestamp',
    'payload',
)


def canonical_json(value):
    return json.dumps(value, sort_keys=True, separators=(',', ':')).encode()


def digest(data):
    """What a phase event carries instead of a secret: its SHA-256."""
    return 'sha256:' + hashlib.sha256(data).hexdigest()


def _canonical(envelope):
    return json.dumps(
        [envelope[f] for f in SIGNED_FIELDS],
        sort_keys=True,
        separators=(',', ':'),
        ensure_ascii=False,
    ).encode()


class Identity(
    collections.namedtuple('Identity', 'kind name role fingerprint key')
):
    """Who signed a message, as the receiver's keyring knows them.

    ``kind`` is daemon, node or operator; ``name`` the host or operator
    name; ``role`` an operator's reader/admin ('' otherwise); ``key`` the
    VerifyKey (a node's secrets are sealed to it).
    """

    def __str__(self):
        return f'{self.kind} {self.name} ({self.fingerprint})'


class Signer:
    def __init__(self, keypair, sender):
        self.keypair = keypair
        self.sender = sender
        self._last = 0
        self._lock = threading.Lock()

    def _next_seq(self):
        with self._lock:
            self._last = max(self._last + 1, time.time_ns())
            return self._last

    def sign(self, op, target, payload):
        envelope = {
            'v': VERSION,
            'sender': self.sender,
            'key': self.keypair.public,
            'seq': self._next_seq(),
            'op': op,
            'target': target,
            'timestamp': time.time(),
            'payload': payload,
        }
        envelope['signature'] = base64.b64encode(
            self.keypair.sign(_canonical(envelope))
        ).decode()
        return envelope


class RejectLog:
    """Rejected messages, logged with why and by whom, at a bounded rate.

    At most ``per_sender`` lines per sender and ``total`` lines in all per
    ``window`` seconds: a flood of forged messages cannot fill the disk.
    What was left out is counted and said once the window ends.
    """

    def __init__(self, logger, per_sender=5, total=50, window=60.0):
        self.logger = logger
        self.per_sender, self.total, self.window = per_sender, total, window
        self._start = time.monotonic()
        self._counts = collections.Counter()
        self._suppressed = self._logged = 0
        self._lock = threading.Lock()

    def __call__(self, where, sender, reason):
        with self._lock:
            now = time.monotonic()
            if now - self._start > self.window:
                if self._suppressed:
                    self.logger.warning(
                        '%d more rejected messages were not logged in the '
                        'last %.0f s',
                        self._suppressed,
                        self.window,
                    )
                self._start, self._suppressed, self._logged = now, 0, 0
                self._counts.clear()
            self._counts[sender] += 1
            if (
                self._counts[sender] > self.per_sender
                or self._logged >= self.total
            ):
                self._suppressed += 1
                return
            self._logged += 1
        self.logger.warning(
            '%s: rejected %s from %s', where, reason, str(sender)[:200]
        )


class ReplayGuard:
    """Per-sender-key high-water marks; see the module docstring.

    ``store`` has ``load_marks() -> {fingerprint: seq}`` and
    ``save_mark(fingerprint, seq)`` (persisted before this returns).

    A mark checked with ``deferred=True`` is not written by ``check``: the
    caller stores it, from :meth:`take_deferred`, in the same transaction
    as the message's effect (the daemon's heartbeats: once a second).
    """

    def __init__(self, store, max_age):
        self.store = store
        self.max_age = max_age
        self._floor = dict(store.load_marks())  # as stored before we started
        self._high = dict(self._floor)
        self._recent = collections.defaultdict(dict)  # fp -> {seq: seen at}
        self._deferred = {}  # fp -> seq, bounded by the number of keys
        self._lock = threading.Lock()

    def check(self, fingerprint, seq, deferred=False):
        """Raise a reason string (ValueError) for a replay; else record."""
        with self._lock:
            floor = self._floor.get(fingerprint, 0)
            if seq <= floor:
                raise ValueError(
                    f'replayed message: sequence {seq} is not above the '
                    f'high-water mark {floor} stored for this key'
                )
            recent = self._recent[fingerprint]
            now = time.monotonic()
            # Older than that, a message is stale anyway (its timestamp).
            for old in [
                s for s, at in recent.items() if now - at > 2 * self.max_age
            ]:
                del recent[old]
            if seq in recent:
                raise ValueError(f'replayed message: sequence {seq} seen')
            recent[seq] = now
            newer = seq > self._high.get(fingerprint, 0)
            if newer:
                self._high[fingerprint] = seq
                if deferred:
                    self._deferred[fingerprint] = seq
                    return
        # Stored before the message is acted on, but outside the lock:
        # messages of other senders need not wait for this write (the
        # store keeps the greater of two marks written at once).
        if newer:
            self.store.save_mark(fingerprint, seq)

    def take_deferred(self):
        """The deferred marks to store now ({fingerprint: seq})."""
        with self._lock:
            marks, self._deferred = self._deferred, {}
        return marks

    def defer_again(self, marks):
        """Marks that could not be stored: taken again next time."""
        with self._lock:
            for fingerprint, seq in marks.items():
                if seq > self._deferred.get(fingerprint, 0):
                    self._deferred[fingerprint] = seq

    def forget(self, fingerprint):
        with self._lock:
            for table in (
                self._floor,
                self._high,
                self._recent,
                self._deferred,
            ):
                table.pop(fingerprint, None)


class Verifier:
    """Opens envelopes for one receiver.

    ``keyring.identify(sender, verify_key, fingerprint, op)`` returns the
    sender's :class:`Identity` or raises SignatureError (an unknown key, a
    key of another host, a pending node, ...).
    """

    def __init__(self, keyring, replay_guard, max_age, where, deferred=()):
        self.keyring = keyring
        self.replays = replay_guard
        self.max_age = max_age
        self.where = where
        # Operations whose replay marks the receiver stores itself, with
        # their effect (ReplayGuard.take_deferred).
        self.deferred = frozenset(deferred)
        self.reject_log = RejectLog(LOG)

    @staticmethod
    def addressed_elsewhere(envelope, targets):
        """True if ``envelope`` says it is for others than ``targets``.

        Read before any check: a fanout reaches every agent, and one for
        other nodes is dropped quietly and cheaply. Believing a forged
        target only makes the receiver drop the message; an envelope
        without a readable target goes through every check (and is
        logged when refused).
        """
        target = envelope.get('target') if isinstance(envelope, dict) else None
        if isinstance(target, str):
            target = [target]
        if not isinstance(target, list):
            return False
        return not set(map(str, target)) & set(targets)

    def open(self, envelope, op, targets):
        """Return (Identity, payload); raise SignatureError, logged."""
        sender = 'unknown'
        if isinstance(envelope, dict):
            sender = str(envelope.get('sender', 'unknown'))
        try:
            return self._open(envelope, op, targets, sender)
        except exception.SignatureError as e:
            error = e
        # Logged outside the except block: one line, no traceback.
        self.reject_log(
            self.where,
            f'{sender} (key {error.kwargs.get("key", "?")})',
            f'{op}: {error.kwargs["reason"]}',
        )
        raise error

    def _open(self, envelope, op, targets, sender):
        def refuse(reason, key='?', error=exception.SignatureError):
            raise error(sender=sender, reason=reason, key=key)

        if not isinstance(envelope, dict) or 'signature' not in envelope:
            refuse('the message is not signed')
        try:
            fields = {f: envelope[f] for f in SIGNED_FIELDS}
            signature = base64.b64decode(envelope['signature'], validate=True)
            seq = int(fields['seq'])
            timestamp = float(fields['timestamp'])
            verify_key = keys.decode_public(str(fields['key']))
        except (KeyError, TypeError, ValueError, exception.PluginsdException):
            refuse('malformed envelope')
        fingerprint = keys.fingerprint(verify_key)
        if fields['v'] != VERSION:
            refuse(f'envelope version {fields["v"]!r}', fingerprint)
        if not keys.verify(verify_key, _canonical(fields), signature):
            refuse(
                'bad signature (altered, or not made with this key)',
                fingerprint,
            )
        identity = self.keyring.identify(sender, verify_key, fingerprint, op)
        if fields['op'] != op:
            refuse(f'signed for {fields["op"]!r}, not {op!r}', fingerprint)
        target = fields['target']
        wanted = target if isinstance(target, list) else [target]
        if not set(map(str, wanted)) & set(targets):
            refuse(
                f'signed for {target!r}, not for {", ".join(sorted(targets))}',
                fingerprint,
            )
        age = time.time() - timestamp
        if abs(age) > self.max_age:
            refuse(
                f'stale: signed {age:.0f} s ago, limit {self.max_age} s',
                fingerprint,
                exception.StaleMessage,
            )
        try:
            self.replays.check(fingerprint, seq, deferred=op in self.deferred)
        except ValueError as e:
            refuse(str(e), fingerprint)
        return identity, fields['payload']
