"""pluginsd.rpc.signing: HMAC envelopes."""

import copy

import pytest

from pluginsd import exception
from pluginsd.rpc import signing

PAYLOAD = {
    'run_id': 'r1',
    'phase': 'install',
    'targets': ['n1', 'n2'],
    'nested': {'list': [1, 2.5, None, True], 'text': 'é'},
}


def _reason(err):
    return err.value.kwargs['reason']


class TestSigner:
    def test_round_trip(self):
        daemon = signing.Signer('key', 'daemon')
        agent = signing.Signer('key', 'agent-1')
        envelope = daemon.sign(copy.deepcopy(PAYLOAD))
        assert envelope['sender'] == 'daemon'
        assert envelope['payload'] == PAYLOAD
        assert len(envelope['nonce']) == 32
        assert len(envelope['signature']) == 64
        assert agent.verify(envelope) == PAYLOAD

    def test_nonces_differ(self):
        s = signing.Signer('key', 'daemon')
        assert s.sign(1)['nonce'] != s.sign(1)['nonce']

    def test_wrong_key(self):
        envelope = signing.Signer('key-a', 'daemon').sign(PAYLOAD)
        with pytest.raises(exception.SignatureError) as err:
            signing.Signer('key-b', 'agent').verify(envelope)
        assert str(err.value) == (
            'rejected message from daemon: bad signature (wrong key or '
            'altered)'
        )

    @pytest.mark.parametrize(
        'field, value',
        [
            ('payload', dict(PAYLOAD, targets=['n1', 'n2', 'evil'])),
            ('sender', 'someone-else'),
            ('nonce', '0' * 32),
            ('timestamp', 'SHIFT'),
            ('signature', '0' * 64),
        ],
    )
    def test_tampered(self, field, value):
        s = signing.Signer('key', 'daemon')
        envelope = s.sign(copy.deepcopy(PAYLOAD))
        envelope[field] = (
            envelope['timestamp'] + 1 if value == 'SHIFT' else value
        )
        with pytest.raises(exception.SignatureError) as err:
            s.verify(envelope)
        assert _reason(err) == 'bad signature (wrong key or altered)'

    @pytest.mark.parametrize(
        'envelope',
        [
            None,
            'text',
            ['a'],
            {},
            {'sender': 'x', 'payload': 1},
        ],
    )
    def test_unsigned(self, envelope):
        with pytest.raises(exception.SignatureError) as err:
            signing.Signer('key', 'agent').verify(envelope)
        assert str(err.value) == (
            'rejected message from unknown: the message is not signed'
        )

    @pytest.mark.parametrize(
        'drop, change',
        [
            ('timestamp', None),
            ('nonce', None),
            ('payload', None),
            (None, ('timestamp', 'yesterday')),
            (None, ('timestamp', None)),
        ],
    )
    def test_malformed(self, drop, change):
        s = signing.Signer('key', 'daemon')
        envelope = s.sign(PAYLOAD)
        if drop:
            del envelope[drop]
        else:
            envelope[change[0]] = change[1]
        with pytest.raises(exception.SignatureError) as err:
            s.verify(envelope)
        assert str(err.value) == (
            'rejected message from daemon: malformed envelope'
        )

    def test_non_ascii_signature_is_rejected_not_crashing(self):
        s = signing.Signer('key', 'daemon')
        envelope = s.sign(PAYLOAD)
        envelope['signature'] = 'é' * 64
        with pytest.raises(exception.SignatureError) as err:
            s.verify(envelope)
        assert _reason(err) == 'bad signature (wrong key or altered)'

    def test_stale(self, clock):
        s = signing.Signer('key', 'daemon', max_age=300)
        envelope = s.sign(PAYLOAD)
        clock[0] += 301
        with pytest.raises(exception.SignatureError) as err:
            s.verify(envelope)
        assert str(err.value) == (
            'rejected message from daemon: stale: signed 301 s ago, limit '
            '300 s'
        )

    def test_at_the_age_limit_accepted(self, clock):
        s = signing.Signer('key', 'daemon', max_age=300)
        envelope = s.sign(PAYLOAD)
        clock[0] += 300
        assert s.verify(envelope) == PAYLOAD

    def test_from_the_future_rejected(self, clock):
        s = signing.Signer('key', 'daemon', max_age=60)
        envelope = s.sign(PAYLOAD)
        clock[0] -= 61
        with pytest.raises(exception.SignatureError) as err:
            s.verify(envelope)
        assert _reason(err).startswith('stale: ')
        assert _reason(err).endswith('limit 60 s')

    def test_replay(self):
        sender = signing.Signer('key', 'daemon')
        receiver = signing.Signer('key', 'agent')
        envelope = sender.sign(PAYLOAD)
        assert receiver.verify(copy.deepcopy(envelope)) == PAYLOAD
        with pytest.raises(exception.SignatureError) as err:
            receiver.verify(envelope)
        assert str(err.value) == (
            f'rejected message from daemon: replayed message (nonce '
            f'{envelope["nonce"]})'
        )
        # A fresh envelope with the same payload is fine.
        assert receiver.verify(sender.sign(PAYLOAD)) == PAYLOAD

    def test_replay_cache_is_per_receiver(self):
        envelope = signing.Signer('key', 'daemon').sign(PAYLOAD)
        assert signing.Signer('key', 'a1').verify(envelope) == PAYLOAD
        assert signing.Signer('key', 'a2').verify(envelope) == PAYLOAD

    def test_replay_after_expiry_is_stale_not_accepted(self, clock):
        sender = signing.Signer('key', 'daemon', max_age=10)
        receiver = signing.Signer('key', 'agent', max_age=10)
        envelope = sender.sign(PAYLOAD)
        assert receiver.verify(envelope) == PAYLOAD
        clock[0] += 25  # the nonce is pruned from the replay cache ...
        receiver.verify(sender.sign('other'))
        assert envelope['nonce'] not in receiver._seen
        with pytest.raises(exception.SignatureError) as err:
            receiver.verify(envelope)  # ... yet the message is refused
        assert _reason(err) == 'stale: signed 25 s ago, limit 10 s'

    def test_rejected_message_does_not_burn_nonce(self):
        s = signing.Signer('key', 'daemon')
        envelope = s.sign(PAYLOAD)
        bad = dict(envelope, signature='0' * 64)
        with pytest.raises(exception.SignatureError):
            s.verify(bad)
        assert s.verify(envelope) == PAYLOAD
