"""Ed25519 identities: key files, fingerprints, sealing to a public key.

Every party has its own key pair: the daemon, each agent, each operator.
Nothing here is new cryptography: signatures are libsodium's Ed25519
(PyNaCl), and a secret for one node is sealed to that node's key with
libsodium's sealed box (its Ed25519 key converted to X25519, the
conversion libsodium provides for exactly this).

A private key file holds ``ed25519-private:<base64 seed>`` (mode 0600);
its public key is beside it, ``<file>.pub``, as ``ed25519:<base64>``.
"""

import base64
import hashlib
import os

import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.signing

from pluginsd import exception

PRIVATE_PREFIX = 'ed25519-private:'
PUBLIC_PREFIX = 'ed25519:'


class KeyFileError(exception.PluginsdException):
    msg_fmt = '%(path)s: %(reason)s'


def private_write(path, text):
    """Write ``text`` to ``path`` with mode 0600 (its directory 0700)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, 'w') as f:
        os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode
        f.write(text)


def encode_public(verify_key):
    return PUBLIC_PREFIX + base64.b64encode(bytes(verify_key)).decode()


def decode_public(text, where='public key'):
    text = text.strip()
    if not text.startswith(PUBLIC_PREFIX):
        raise KeyFileError(path=where, reason=f'not an {PUBLIC_PREFIX} key')
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
        return nacl.signing.VerifyKey(raw)
    except (ValueError, nacl.exceptions.CryptoError) as e:
        raise KeyFileError(path=where, reason=f'bad public key: {e}') from None


def fingerprint(verify_key):
    """``SHA256:<base64>`` of the raw public key, as ssh-keygen shows it."""
    digest = hashlib.sha256(bytes(verify_key)).digest()
    return 'SHA256:' + base64.b64encode(digest).decode().rstrip('=')


class KeyPair:
    def __init__(self, signing_key):
        self.signing_key = signing_key
        self.verify_key = signing_key.verify_key
        self.public = encode_public(self.verify_key)
        self.fingerprint = fingerprint(self.verify_key)

    @classmethod
    def generate(cls):
        return cls(nacl.signing.SigningKey.generate())

    def save(self, path):
        seed = base64.b64encode(bytes(self.signing_key)).decode()
        private_write(path, f'{PRIVATE_PREFIX}{seed}\n')
        private_write(path + '.pub', self.public + '\n')

    @classmethod
    def load(cls, path):
        try:
            with open(path) as f:
                text = f.read().strip()
        except OSError as e:
            raise KeyFileError(path=path, reason=e.strerror) from None
        mode = os.stat(path).st_mode & 0o777
        if mode & 0o077:
            raise KeyFileError(
                path=path,
                reason=f'mode {mode:o}: a private key must be 0600',
            )
        if not text.startswith(PRIVATE_PREFIX):
            raise KeyFileError(path=path, reason='not a pluginsd private key')
        try:
            seed = base64.b64decode(text[len(PRIVATE_PREFIX) :], validate=True)
            return cls(nacl.signing.SigningKey(seed))
        except (ValueError, nacl.exceptions.CryptoError) as e:
            raise KeyFileError(path=path, reason=f'bad key: {e}') from None

    @classmethod
    def load_or_create(cls, path):
        """The key at ``path``; made (0600) on first use."""
        if not os.path.exists(path):
            pair = cls.generate()
            pair.save(path)
            return pair
        return cls.load(path)

    def sign(self, data):
        return self.signing_key.sign(data).signature

    def unseal(self, sealed):
        """Open a box sealed to this key (see :func:`seal`)."""
        secret = nacl.bindings.crypto_sign_ed25519_sk_to_curve25519(
            bytes(self.signing_key) + bytes(self.verify_key)
        )
        box = nacl.public.SealedBox(nacl.public.PrivateKey(secret))
        return box.decrypt(base64.b64decode(sealed))


def load_public(path):
    try:
        with open(path) as f:
            return decode_public(f.read(), path)
    except OSError as e:
        raise KeyFileError(path=path, reason=e.strerror) from None


def verify(verify_key, data, signature):
    """True if ``signature`` is ``verify_key``'s signature of ``data``."""
    try:
        verify_key.verify(data, signature)
        return True
    except (nacl.exceptions.BadSignatureError, ValueError, TypeError):
        return False


def seal(verify_key, data):
    """Encrypt ``data`` so that only the holder of ``verify_key`` reads it."""
    public = nacl.bindings.crypto_sign_ed25519_pk_to_curve25519(
        bytes(verify_key)
    )
    box = nacl.public.SealedBox(nacl.public.PublicKey(public))
    return base64.b64encode(box.encrypt(data)).decode()
