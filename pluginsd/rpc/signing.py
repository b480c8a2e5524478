"""HMAC-signed envelopes for everything that makes a node run something.

An envelope carries the payload, the sender, a timestamp and a random
nonce; the signature covers all four. A receiver rejects a missing or wrong
signature, a timestamp older than ``[security] max_message_age`` (or from
the future by as much), and a nonce it has already seen within that window.
"""

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time

from pluginsd import exception

LOG = logging.getLogger(__name__)


def _digest(key, sender, timestamp, nonce, payload):
    body = json.dumps(
        [sender, timestamp, nonce, payload],
        sort_keys=True,
        separators=(',', ':'),
    )
    return hmac.new(key.encode(), body.encode(), hashlib.sha256).hexdigest()


class Signer:
    def __init__(self, key, sender, max_age=300):
        self.key = key
        self.sender = sender
        self.max_age = max_age
        self._seen = {}
        self._lock = threading.Lock()

    def sign(self, payload):
        timestamp = time.time()
        nonce = secrets.token_hex(16)
        return {
            'sender': self.sender,
            'timestamp': timestamp,
            'nonce': nonce,
            'payload': payload,
            'signature': _digest(
                self.key, self.sender, timestamp, nonce, payload
            ),
        }

    def verify(self, envelope):
        """Return the payload of a valid envelope; raise SignatureError."""
        if not isinstance(envelope, dict) or 'signature' not in envelope:
            raise exception.SignatureError(
                sender='unknown', reason='the message is not signed'
            )
        sender = str(envelope.get('sender'))
        try:
            timestamp = float(envelope['timestamp'])
            nonce = str(envelope['nonce'])
            payload = envelope['payload']
        except (KeyError, TypeError, ValueError) as e:
            raise exception.SignatureError(
                sender=sender, reason='malformed envelope'
            ) from e
        expected = _digest(self.key, sender, timestamp, nonce, payload)
        if not hmac.compare_digest(
            expected.encode(), str(envelope['signature']).encode()
        ):
            raise exception.SignatureError(
                sender=sender, reason='bad signature (wrong key or altered)'
            )
        now = time.time()
        if abs(now - timestamp) > self.max_age:
            raise exception.SignatureError(
                sender=sender,
                reason=f'stale: signed {now - timestamp:.0f} s ago, limit '
                f'{self.max_age} s',
            )
        with self._lock:
            for old, seen_at in list(self._seen.items()):
                if now - seen_at > 2 * self.max_age:
                    del self._seen[old]
            if nonce in self._seen:
                raise exception.SignatureError(
                    sender=sender, reason=f'replayed message (nonce {nonce})'
                )
            self._seen[nonce] = now
        return payload


def signer_for(conf, sender):
    """A Signer with the key and message age of ``conf``."""
    return Signer(
        conf.security.shared_key, sender, conf.security.max_message_age
    )
