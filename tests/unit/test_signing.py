"""Identities and envelopes: keys, signatures, trust, replays, roles."""

import copy
import logging
import os
import stat
import time

import nacl.exceptions
import pytest

from pluginsd import exception
from pluginsd import keys
from pluginsd.daemon import trust
from pluginsd.db import api as db_api
from pluginsd.rpc import signing

PAYLOAD = {
    'run_id': 'r1',
    'phase': 'install',
    'targets': ['n1', 'n2'],
    'nested': {'list': [1, 2.5, None, True], 'text': 'é'},
}
DAEMON = keys.KeyPair.generate()
NODE = keys.KeyPair.generate()


class Marks:
    """A replay-mark store in memory; ``saved`` shows what was persisted."""

    def __init__(self, marks=None):
        self.saved = dict(marks or {})

    def load_marks(self):
        return dict(self.saved)

    def save_mark(self, fingerprint, seq):
        self.saved[fingerprint] = max(seq, self.saved.get(fingerprint, 0))


class TrustsDaemon:
    def identify(self, sender, verify_key, fingerprint, op):
        if fingerprint != DAEMON.fingerprint:
            raise exception.SignatureError(
                sender=sender, reason='untrusted key', key=fingerprint
            )
        return signing.Identity('daemon', 'daemon', '', fingerprint, None)


def verifier(marks=None, max_age=300):
    marks = marks if marks is not None else Marks()
    return signing.Verifier(
        TrustsDaemon(), signing.ReplayGuard(marks, max_age), max_age, 'test'
    )


def reason(err):
    return err.value.kwargs['reason']


class TestKeys:
    def test_files_are_private_and_round_trip(self, tmp_path):
        path = str(tmp_path / 'keys' / 'a.key')
        old = os.umask(0o022)  # whatever the umask
        try:
            pair = keys.KeyPair.load_or_create(path)
        finally:
            os.umask(old)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(path + '.pub').st_mode) == 0o600
        assert stat.S_IMODE(os.stat(tmp_path / 'keys').st_mode) == 0o700
        again = keys.KeyPair.load(path)
        assert again.fingerprint == pair.fingerprint
        assert keys.load_public(path + '.pub') == pair.verify_key
        assert pair.fingerprint.startswith('SHA256:')

    def test_a_readable_private_key_is_refused(self, tmp_path):
        path = str(tmp_path / 'a.key')
        keys.KeyPair.generate().save(path)
        os.chmod(path, 0o644)
        with pytest.raises(keys.KeyFileError) as err:
            keys.KeyPair.load(path)
        assert 'mode 644: a private key must be 0600' in str(err.value)

    def test_seal_opens_only_for_its_key(self):
        sealed = keys.seal(NODE.verify_key, b'ADMIN_PASSWORD=s3cret')
        assert b's3cret' not in sealed.encode()
        assert NODE.unseal(sealed) == b'ADMIN_PASSWORD=s3cret'
        with pytest.raises(nacl.exceptions.CryptoError):
            DAEMON.unseal(sealed)


class TestEnvelope:
    def test_round_trip(self):
        envelope = signing.Signer(DAEMON, 'daemon').sign(
            'run_phase', ['n1'], copy.deepcopy(PAYLOAD)
        )
        who, payload = verifier().open(envelope, 'run_phase', ('n1',))
        assert payload == PAYLOAD
        assert who.kind == 'daemon'

    def test_sequence_grows(self):
        signer = signing.Signer(DAEMON, 'daemon')
        seqs = [signer.sign('x', 't', {})['seq'] for _ in range(50)]
        assert seqs == sorted(set(seqs))

    @pytest.mark.parametrize(
        'field, value',
        [
            ('payload', {'run_id': 'r2'}),
            ('op', 'cancel_run'),
            ('target', ['n1', 'n3']),
            ('seq', 1),
            ('timestamp', 1.0),
            ('sender', 'operator'),
        ],
    )
    def test_any_altered_field_breaks_the_signature(self, field, value):
        envelope = signing.Signer(DAEMON, 'daemon').sign(
            'run_phase', ['n1'], PAYLOAD
        )
        envelope[field] = value
        with pytest.raises(exception.SignatureError) as err:
            verifier().open(envelope, 'run_phase', ('n1',))
        assert 'bad signature' in reason(err)

    def test_untrusted_key(self):
        envelope = signing.Signer(NODE, 'daemon').sign('run_phase', ['n1'], {})
        with pytest.raises(exception.SignatureError) as err:
            verifier().open(envelope, 'run_phase', ('n1',))
        assert reason(err) == 'untrusted key'

    def test_bound_to_operation_and_target(self):
        signer = signing.Signer(DAEMON, 'daemon')
        v = verifier()
        with pytest.raises(exception.SignatureError) as err:
            v.open(signer.sign('end_run', '*', {}), 'cancel_run', ('n1', '*'))
        assert reason(err) == "signed for 'end_run', not 'cancel_run'"
        with pytest.raises(exception.SignatureError) as err:
            v.open(signer.sign('run_phase', ['n2'], {}), 'run_phase', ('n1',))
        assert reason(err) == "signed for ['n2'], not for n1"

    @pytest.mark.parametrize(
        'envelope',
        [
            None,
            'text',
            {},
            {'signature': 'x'},
            {'signature': '!!', 'v': 1, 'sender': 'd', 'key': 'ed25519:x'},
        ],
    )
    def test_unsigned_or_malformed(self, envelope):
        with pytest.raises(exception.SignatureError) as err:
            verifier().open(envelope, 'run_phase', ('n1',))
        assert reason(err) in (
            'the message is not signed',
            'malformed envelope',
        )

    def test_stale_and_future(self, clock):
        signer = signing.Signer(DAEMON, 'daemon')
        old = signer.sign('x', 't', {})
        clock[0] += 301
        # Its own class: the sender may sign it again (rpc.call_until).
        with pytest.raises(exception.StaleMessage) as err:
            verifier().open(old, 'x', ('t',))
        assert reason(err) == 'stale: signed 301 s ago, limit 300 s'
        clock[0] -= 700
        with pytest.raises(exception.StaleMessage):
            verifier().open(old, 'x', ('t',))
        clock[0] += 399  # in time again: a replay is no StaleMessage
        v = verifier()
        v.open(old, 'x', ('t',))
        with pytest.raises(exception.SignatureError) as err:
            v.open(old, 'x', ('t',))
        assert not isinstance(err.value, exception.StaleMessage)


class TestReplay:
    def test_replay_while_running(self):
        envelope = signing.Signer(DAEMON, 'daemon').sign('x', 't', {})
        v = verifier()
        v.open(envelope, 'x', ('t',))
        with pytest.raises(exception.SignatureError) as err:
            v.open(envelope, 'x', ('t',))
        assert 'replayed message' in reason(err)

    def test_out_of_order_messages_each_pass_once(self):
        signer = signing.Signer(DAEMON, 'daemon')
        first, second = signer.sign('x', 't', 1), signer.sign('x', 't', 2)
        v = verifier()
        assert v.open(second, 'x', ('t',))[1] == 2
        assert v.open(first, 'x', ('t',))[1] == 1
        for envelope in (first, second):
            with pytest.raises(exception.SignatureError):
                v.open(envelope, 'x', ('t',))

    def test_replay_after_a_restart_of_the_receiver(self):
        marks = Marks()
        envelope = signing.Signer(DAEMON, 'daemon').sign('x', 't', {})
        verifier(marks).open(envelope, 'x', ('t',))
        assert marks.saved == {DAEMON.fingerprint: envelope['seq']}
        # A new receiver process: only the stored mark is left.
        with pytest.raises(exception.SignatureError) as err:
            verifier(marks).open(envelope, 'x', ('t',))
        assert 'not above the high-water mark' in reason(err)
        # ...and the sender's next message, even after its own restart.
        later = signing.Signer(DAEMON, 'daemon').sign('x', 't', {})
        verifier(marks).open(later, 'x', ('t',))

    def test_a_refused_message_leaves_no_mark(self):
        marks = Marks()
        envelope = signing.Signer(NODE, 'daemon').sign('x', 't', {})
        with pytest.raises(exception.SignatureError):
            verifier(marks).open(envelope, 'x', ('t',))
        assert marks.saved == {}

    def test_marks_in_the_database_survive(self, tmp_path):
        url = f'sqlite:///{tmp_path}/d.sqlite'
        db = db_api.Database(url)
        db.upgrade()
        envelope = signing.Signer(DAEMON, 'daemon').sign('x', 't', {})
        verifier(db).open(envelope, 'x', ('t',))
        db.engine.dispose()
        again = db_api.Database(url)
        with pytest.raises(exception.SignatureError):
            verifier(again).open(envelope, 'x', ('t',))

    def test_deferred_marks_are_stored_with_the_heartbeats(self, tmp_path):
        """A heartbeat's mark goes with its last_seen, in one transaction."""
        url = f'sqlite:///{tmp_path}/d.sqlite'
        db = db_api.Database(url)
        db.upgrade()
        db.upsert_node('n1', ['compute'], '1', None, None, None, 'up')
        guard = signing.ReplayGuard(db, 300)
        v = signing.Verifier(
            TrustsDaemon(), guard, 300, 'test', deferred=('heartbeat',)
        )
        signer = signing.Signer(DAEMON, 'daemon')
        beat, other = (
            signer.sign('heartbeat', 't', {}),
            signer.sign('x', 't', {}),
        )
        v.open(beat, 'heartbeat', ('t',))
        assert db.load_marks() == {}  # not yet: no write per heartbeat
        with pytest.raises(exception.SignatureError):  # still refused
            v.open(beat, 'heartbeat', ('t',))
        v.open(other, 'x', ('t',))  # any other op: stored before acting
        assert db.load_marks() == {DAEMON.fingerprint: other['seq']}
        later = signer.sign('heartbeat', 't', {})
        v.open(later, 'heartbeat', ('t',))
        marks = guard.take_deferred()
        assert marks == {DAEMON.fingerprint: later['seq']}
        assert guard.take_deferred() == {}
        guard.defer_again(marks)  # the database was away
        when = time.time() + 60
        db.touch_nodes({'n1': when}, guard.take_deferred())
        assert db.load_marks() == {DAEMON.fingerprint: later['seq']}
        assert [n['last_seen'] for n in db.list_nodes()] == [when]
        db.engine.dispose()
        again = db_api.Database(url)
        with pytest.raises(exception.SignatureError) as err:
            verifier(again).open(later, 'heartbeat', ('t',))
        assert 'not above the high-water mark' in reason(err)


class TestRejectLog:
    def test_bounded(self, caplog):
        log = signing.RejectLog(
            logging.getLogger('t'), per_sender=2, total=3, window=60
        )
        with caplog.at_level(logging.WARNING, logger='t'):
            for i in range(10):
                log('daemon', 'flooder', f'forged {i}')
            log('daemon', 'other', 'one')
            log('daemon', 'third', 'one')
        lines = [r.getMessage() for r in caplog.records]
        assert lines == [
            'daemon: rejected forged 0 from flooder',
            'daemon: rejected forged 1 from flooder',
            'daemon: rejected one from other',
        ]


@pytest.fixture
def db(tmp_path):
    d = db_api.Database(f'sqlite:///{tmp_path}/d.sqlite')
    d.upgrade()
    return d


class Conf:
    def __init__(self, accepted_dir, operator_keys=()):
        class Security:
            pass

        self.security = Security()
        self.security.accepted_keys_dir = accepted_dir
        self.security.operator_keys = list(operator_keys)


class TestDaemonKeyring:
    def test_new_node_is_pending_until_accepted(self, db, tmp_path):
        ring = trust.DaemonKeyring(Conf(str(tmp_path / 'acc')), db, DAEMON)
        with pytest.raises(exception.SignatureError) as err:
            ring.identify(
                'node:n1', NODE.verify_key, NODE.fingerprint, 'heartbeat'
            )
        assert reason(err) == (
            'the key of node n1 is pending, not accepted (pluginsctl node '
            'accept)'
        )
        assert [
            (k['host'], k['fingerprint'], k['state'])
            for k in db.list_node_keys()
        ] == [('n1', NODE.fingerprint, 'pending')]
        db.set_node_key_state('n1', NODE.fingerprint, 'accepted')
        who = ring.identify(
            'node:n1', NODE.verify_key, NODE.fingerprint, 'report_results'
        )
        assert (who.kind, who.name) == ('node', 'n1')

    def test_a_key_is_good_for_its_own_host_only(self, db, tmp_path):
        db.add_node_key('n1', NODE.fingerprint, NODE.public, 'accepted')
        ring = trust.DaemonKeyring(Conf(str(tmp_path / 'acc')), db, DAEMON)
        with pytest.raises(exception.SignatureError) as err:
            ring.identify(
                'node:n2', NODE.verify_key, NODE.fingerprint, 'report_results'
            )
        assert reason(err) == 'the key of node n1 signed for node n2'
        assert [k['host'] for k in db.list_node_keys()] == ['n1']

    def test_accepted_keys_read_once_a_second_not_per_message(
        self, db, tmp_path
    ):
        db.add_node_key('n1', NODE.fingerprint, NODE.public, 'accepted')
        ring = trust.DaemonKeyring(Conf(str(tmp_path / 'acc')), db, DAEMON)
        ring.reload()

        def identify(host):
            return ring.identify(
                f'node:{host}', NODE.verify_key, NODE.fingerprint, 'heartbeat'
            )

        def refused(host):
            with pytest.raises(exception.SignatureError) as err:
                identify(host)
            return reason(err)

        reads = []
        get = db.get_node_key
        db.get_node_key = lambda *args: reads.append(args) or get(*args)
        for _ in range(3):
            who = identify('n1')
            assert (who.kind, who.name) == ('node', 'n1')
        assert reads == []
        # Revoked by another daemon: refused from the next reload on.
        db.set_node_key_state('n1', NODE.fingerprint, 'rejected')
        ring.reload()
        assert refused('n1') == 'the key of node n1 is rejected, not accepted'
        # Never good for another host, reloaded or not.
        db.set_node_key_state('n1', NODE.fingerprint, 'accepted')
        ring.reload()
        assert refused('n2') == 'the key of node n1 signed for node n2'

    def test_preseeded_directory(self, db, tmp_path):
        acc = tmp_path / 'acc'
        acc.mkdir()
        (acc / 'n1.pub').write_text(NODE.public)
        ring = trust.DaemonKeyring(Conf(str(acc)), db, DAEMON)
        assert (
            ring.identify(
                'node:n1', NODE.verify_key, NODE.fingerprint, 'heartbeat'
            ).name
            == 'n1'
        )

    def test_operators_and_roles(self, db, tmp_path):
        admin, reader = keys.KeyPair.generate(), keys.KeyPair.generate()
        admin.save(str(tmp_path / 'alice.key'))
        reader.save(str(tmp_path / 'bob.key'))
        ring = trust.DaemonKeyring(
            Conf(
                str(tmp_path),
                [
                    f'admin:{tmp_path}/alice.key.pub',
                    f'reader:{tmp_path}/bob.key.pub',
                ],
            ),
            db,
            DAEMON,
        )
        alice = ring.identify(
            'operator', admin.verify_key, admin.fingerprint, 'x'
        )
        bob = ring.identify(
            'operator', reader.verify_key, reader.fingerprint, 'x'
        )
        assert (alice.name, alice.role, bob.name, bob.role) == (
            'alice',
            'admin',
            'bob',
            'reader',
        )
        trust.authorize(alice, 'cancel_run')
        trust.authorize(bob, 'get_run')
        with pytest.raises(exception.NotAuthorized) as err:
            trust.authorize(bob, 'cancel_run')
        assert str(err.value) == (
            'operator bob (role reader) may not call cancel_run (needs admin)'
        )
        with pytest.raises(exception.SignatureError):
            ring.identify('operator', NODE.verify_key, NODE.fingerprint, 'x')

    def test_bad_operator_entry(self, db, tmp_path):
        with pytest.raises(exception.ConfigError) as err:
            trust.DaemonKeyring(Conf(str(tmp_path), ['root:/x']), db, DAEMON)
        assert 'ROLE:PUBLIC_KEY_FILE' in str(err.value)


@pytest.mark.parametrize(
    'kind, op, allowed',
    [
        ('node', 'heartbeat', True),
        ('node', 'start_run', False),
        ('node', 'get_run', False),
        ('node', 'cancel_run', False),
        ('operator', 'heartbeat', False),
        ('operator', 'report_results', False),
        ('daemon', 'probe', True),
        ('node', 'probe', False),
        ('node', 'no_such_method', False),
    ],
)
def test_policy(kind, op, allowed):
    who = signing.Identity(
        kind, 'x', 'admin' if kind == 'operator' else '', 'f', None
    )
    if allowed:
        trust.authorize(who, op)
    else:
        with pytest.raises(exception.NotAuthorized):
            trust.authorize(who, op)


def test_agents_trust_two_daemon_keys_during_a_rotation():
    from pluginsd.agent import manager as agent_manager

    new = keys.KeyPair.generate()
    ring = agent_manager.AgentKeyring([DAEMON.verify_key, new.verify_key])
    v = signing.Verifier(ring, signing.ReplayGuard(Marks(), 300), 300, 'a')
    for pair in (DAEMON, new):
        envelope = signing.Signer(pair, 'daemon').sign('end_run', '*', {})
        assert v.open(envelope, 'end_run', ('*',))[0].kind == 'daemon'
    retired = agent_manager.AgentKeyring([new.verify_key])
    v = signing.Verifier(retired, signing.ReplayGuard(Marks(), 300), 300, 'a')
    old = signing.Signer(DAEMON, 'daemon').sign('end_run', '*', {})
    with pytest.raises(exception.SignatureError) as err:
        v.open(old, 'end_run', ('*',))
    assert 'not signed by a daemon key' in reason(err)


def test_every_rpc_method_has_a_policy():
    from pluginsd.agent import manager as agent_manager
    from pluginsd.daemon import manager as daemon_manager

    methods = {
        name
        for name, value in vars(daemon_manager.DaemonManager).items()
        if callable(value) and getattr(value, 'exposed', False)
    }
    assert methods == set(trust.POLICY)
    agent_methods = {
        name
        for name, value in vars(agent_manager.AgentManager).items()
        if callable(value) and getattr(value, 'exposed', False)
    }
    assert agent_methods == {
        'run_phase',
        'cancel_run',
        'end_run',
        'ack_results',
        'ping',
        'fetch_log',
    }


def refused(method, envelope):
    """The error an RPC method raised for its caller (wrapped by
    oslo.messaging as expected).
    """
    from oslo_messaging.rpc import dispatcher

    with pytest.raises(dispatcher.ExpectedException) as err:
        method({}, envelope)
    return err.value.exc_info[1]


class TestDaemonReplayMarks:
    """The daemon's own verifier: which marks wait for the next flush."""

    @pytest.fixture
    def daemon(self, tmp_path):
        from pluginsd import conf as pluginsd_conf
        from pluginsd import rpc
        from pluginsd.daemon import service

        admin = keys.KeyPair.generate()
        admin.save(str(tmp_path / 'admin.key'))
        conf = pluginsd_conf.new_conf()
        conf([], default_config_files=[])
        conf.set_override('state_path', str(tmp_path))
        conf.set_override(
            'connection', f'sqlite:///{tmp_path}/d.sqlite', group='database'
        )
        conf.set_override(
            'operator_keys', [f'admin:{tmp_path}/admin.key.pub'], 'security'
        )
        transport = rpc.get_transport(conf, url='fake://')
        daemon = service.DaemonService(
            conf, transport, keypair=DAEMON, upgrade_schema=True
        )
        daemon.db.add_node_key('n1', NODE.fingerprint, NODE.public, 'accepted')
        daemon.verifier.keyring.reload()
        yield daemon, signing.Signer(admin, 'operator')
        daemon.db.engine.dispose()
        transport.cleanup()
        conf.reset()

    def test_what_changes_nothing_is_stored_with_the_heartbeats(self, daemon):
        daemon, admin = daemon
        node = signing.Signer(NODE, 'node:n1')
        ask = node.sign('pending_work', 'daemon', {})
        assert daemon.manager.pending_work({}, ask) == []
        assert daemon.db.load_marks() == {}  # no write of its own
        # A replay: refused anyway.
        error = refused(daemon.manager.pending_work, ask)
        assert isinstance(error, exception.SignatureError)
        assert 'replayed message' in str(error)
        daemon.nodes.flush()
        assert daemon.db.load_marks() == {NODE.fingerprint: ask['seq']}

        # What changes something: its mark is stored before it is acted on
        # (here it fails: no such run, but the mark stays).
        cancel = admin.sign('cancel_run', 'daemon', {'run_id': 'nope'})
        error = refused(daemon.manager.cancel_run, cancel)
        assert isinstance(error, exception.RunNotFound)
        assert (
            daemon.db.load_marks()[admin.keypair.fingerprint]
            == (cancel['seq'])
        )

    def test_no_deferred_read_is_an_admin_operation(self):
        assert trust.READ_ONLY <= set(trust.POLICY)
        assert {trust.POLICY[op] for op in trust.READ_ONLY} == {
            'node',
            trust.READER,
        }
        assert 'plan' not in trust.READ_ONLY  # it sources localrc: code
