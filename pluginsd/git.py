"""The one place pluginsd runs git, and checks what it hands to git.

User values (URLs and refs from local.conf) never reach git as options:
every call puts them after ``--`` where git allows it, refs are checked
against git's own ref-name rules (``git check-ref-format``) and may not
start with ``-``, URLs starting with ``-`` are refused, and the transports
git may use are fixed (``GIT_ALLOW_PROTOCOL``): never ``ext::`` (runs a
command) or ``fd::``.

Plugin sources are compared on canonical URLs (:func:`canonical_url`):
scheme and host lower-case, default port and trailing dot dropped, path
split into segments; ``.``/``..`` segments, percent-encoded dots and
slashes, credentials and unknown schemes are refused. An allow-list entry
matches a URL when scheme, host and port are equal and the entry's path
segments are the first segments of the URL's (:func:`source_allowed`).
"""

import contextlib
import os
import re
import threading
import urllib.parse

from pluginsd import exception
from pluginsd import process

# Transports git may use for plugin code. ext:: and fd:: are not in it.
ALLOWED_PROTOCOLS = ('file', 'git', 'http', 'https', 'ssh')
DEFAULT_PORTS = {'http': 80, 'https': 443, 'git': 9418, 'ssh': 22}
_HOST = re.compile(
    r'^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$'
)
_IPV6 = re.compile(r'^\[[0-9a-f:.]+\]$')
# scp-like ssh syntax: [user@]host:path (no scheme, no slash before ':').
_SCP = re.compile(
    r'^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?P<path>.*)$'
)
_UNRESERVED = frozenset(
    'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_~-'
)


class GitInputError(exception.PluginsdException):
    """A URL or ref that pluginsd will not hand to git."""

    msg_fmt = '%(what)s %(value)r refused: %(reason)s'


def env():
    """The environment of every git call."""
    values = dict(os.environ)
    values['GIT_TERMINAL_PROMPT'] = '0'  # never wait for a password
    values['GIT_ALLOW_PROTOCOL'] = ':'.join(ALLOWED_PROTOCOLS)
    # Not the user's ~/.gitconfig or insteadOf rewrites: the URL checked is
    # the URL fetched.
    values['GIT_CONFIG_NOSYSTEM'] = '1'
    values['GIT_CONFIG_GLOBAL'] = os.devnull
    return values


_files = threading.local()
DEVSTACK_UMASK = 0o022  # what stack.sh sets: checkouts others may read


@contextlib.contextmanager
def public_files():
    """Checkouts made inside are world-readable, as DevStack's are.

    pluginsd's own processes run with umask 077 (state is private); plugin
    code in $DEST is read by the services plugins start, as other users.
    """
    _files.umask = DEVSTACK_UMASK
    try:
        yield
    finally:
        _files.umask = None


def new_dir_mode():
    """The mode a directory pluginsd makes for git should get."""
    umask = getattr(_files, 'umask', None)
    return None if umask is None else 0o777 & ~umask


def run(args, cwd=None, check=True):
    """Run ``git ARGS``; return the CompletedProcess (text output).

    ``args`` are built by pluginsd's own code, with user values placed
    after ``--`` or validated by :func:`check_ref` / :func:`check_url`.
    With ``check`` a failure raises :class:`GitError` naming the command.
    """
    # On a node the phase's deadline and cancel bound it (pluginsd.process).
    proc = process.run(
        ['git', *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env(),
        umask=getattr(_files, 'umask', None) or -1,
    )
    if check and proc.returncode:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else f'exit status {proc.returncode}'
        raise GitError(command=' '.join(['git', *args]), detail=detail)
    return proc


class GitError(exception.PluginsdException):
    msg_fmt = '"%(command)s" failed: %(detail)s'


# -- refs ---------------------------------------------------------------------


def check_ref(ref):
    """Raise GitInputError unless ``ref`` is a ref name or a commit id.

    The rules of ``git check-ref-format --allow-onelevel``, and no leading
    ``-`` (git would read it as an option).
    """

    def bad(reason):
        raise GitInputError(what='git ref', value=ref, reason=reason)

    if not isinstance(ref, str) or not ref:
        bad('empty')
    if ref.startswith('-'):
        bad('a ref may not start with "-"')
    if any(ord(c) < 0x20 or ord(c) == 0x7F or c in ' ~^:?*[\\' for c in ref):
        bad('contains a space, a control character or one of ~^:?*[\\')
    if '..' in ref or '@{' in ref or '//' in ref:
        bad('contains "..", "@{" or "//"')
    if ref == '@' or ref.endswith(('/', '.')) or ref.startswith('/'):
        bad('starts or ends with "/", ends with "." or is "@"')
    for part in ref.split('/'):
        if part.startswith('.') or part.endswith('.lock'):
            bad('a component starts with "." or ends with ".lock"')
    return ref


# -- URLs ---------------------------------------------------------------------


def _refuse(url, reason):
    raise GitInputError(
        what='plugin URL', value=exception.redact_url(url), reason=reason
    )


def _decode_path(url, path):
    """Decode percent-escapes of unreserved characters; refuse the rest."""
    out, i = [], 0
    while i < len(path):
        c = path[i]
        if c == '%':
            code = path[i + 1 : i + 3]
            if len(code) != 2 or not all(
                h in '0123456789abcdefABCDEF' for h in code
            ):
                _refuse(url, 'a malformed percent-escape')
            char = chr(int(code, 16))
            if char not in _UNRESERVED:
                # %2e, %2f, %5c and friends: git (or the server) would
                # decode them into the dots and slashes we check for.
                _refuse(
                    url, f'percent-encoded {char!r} in the path is not allowed'
                )
            out.append(char)
            i += 3
            continue
        if c == '\\' or ord(c) < 0x21 or ord(c) == 0x7F:
            _refuse(url, 'a backslash, space or control character in the path')
        out.append(c)
        i += 1
    return ''.join(out)


def _segments(url, path):
    segments = [s for s in _decode_path(url, path).split('/') if s]
    for s in segments:
        if s in ('.', '..'):
            _refuse(url, f'a "{s}" path segment is not allowed')
    return segments


def canonical_url(url):
    """``(scheme, host, port, user, [segment, ...])`` of a plugin URL.

    Raise GitInputError naming the problem for anything pluginsd will not
    fetch from. A local path is a ``file`` URL.
    """
    if not isinstance(url, str) or not url:
        _refuse(url, 'empty')
    if url.startswith('-'):
        _refuse(url, 'a URL may not start with "-" (git would read an option)')
    if '::' in url.split('/', 1)[0]:
        _refuse(url, 'git transports such as ext:: and fd:: are not allowed')
    if url.startswith('/'):
        return ('file', '', None, '', _segments(url, url))
    if '://' not in url:
        match = _SCP.match(url)
        if not match:
            _refuse(url, 'not an absolute path nor a URL with a known scheme')
        url_ = f'ssh://{match["user"] + "@" if match["user"] else ""}' + (
            f'{match["host"]}/{match["path"].lstrip("/")}'
        )
        return canonical_url(url_)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as e:
        _refuse(url, f'cannot be parsed: {e}')
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_PROTOCOLS:
        _refuse(
            url,
            f'unknown scheme {scheme!r} (allowed: '
            f'{", ".join(ALLOWED_PROTOCOLS)})',
        )
    if parts.query or parts.fragment or url.rstrip().endswith(('?', '#')):
        _refuse(url, 'a query or fragment is not allowed')
    netloc = parts.netloc
    user = ''
    if '@' in netloc:
        userinfo, _, _ = netloc.rpartition('@')
        if scheme != 'ssh' or ':' in userinfo or '@' in userinfo:
            _refuse(
                url,
                'credentials or "@" before the host are not allowed (use a '
                'credential helper, not the URL)',
            )
        user = userinfo
    host = (parts.hostname or '').lower().rstrip('.')
    if scheme == 'file':
        if host not in ('', 'localhost'):
            _refuse(url, 'a file URL must not name a host')
        return ('file', '', None, '', _segments(url, parts.path))
    if not host or not (_HOST.match(host) or _IPV6.match(f'[{host}]')):
        _refuse(url, f'invalid host name {parts.hostname!r}')
    if port == DEFAULT_PORTS.get(scheme):
        port = None
    return (scheme, host, port, user, _segments(url, parts.path))


def format_url(canonical):
    scheme, host, port, user, segments = canonical
    netloc = (f'{user}@' if user else '') + host + (f':{port}' if port else '')
    return f'{scheme}://{netloc}/' + '/'.join(segments)


def check_url(url):
    """Raise GitInputError unless ``url`` is a URL pluginsd fetches from."""
    canonical_url(url)
    return url


def source_allowed(url, allowed):
    """The allow-list entry that admits ``url``, or None.

    ``allowed`` holds URL prefixes (``https://opendev.org/openstack/``,
    ``/srv/plugins/``); both sides are canonical and compared on whole path
    segments, so ``/srv/plugins`` does not admit ``/srv/plugins-evil``.
    Raises GitInputError when ``url`` itself is refused.
    """
    scheme, host, port, user, segments = canonical_url(url)
    for entry in allowed:
        try:
            e_scheme, e_host, e_port, e_user, e_segments = canonical_url(entry)
        except GitInputError:
            continue  # a bad entry admits nothing (config check says so)
        if (e_scheme, e_host, e_port) != (scheme, host, port):
            continue
        if e_user and e_user != user:
            continue
        if segments[: len(e_segments)] == e_segments:
            return entry
    return None


# -- the git commands pluginsd runs -----------------------------------------


def clone_no_checkout(url, path):
    check_url(url)
    # --no-hardlinks: a local source's object files are not shared with the
    # clone (their owner and mode stay the source's, not ours).
    run(
        [
            'clone',
            '--quiet',
            '--no-checkout',
            '--no-hardlinks',
            '--',
            url,
            path,
        ]
    )


def fetch(cwd, remote, ref, depth=0, tag=False):
    """``git fetch`` of ``ref`` from ``remote`` (a remote name or a URL)."""
    check_ref(ref)
    if remote != 'origin':
        check_url(remote)  # a URL, or the path of a bundle we wrote
    options = ['--depth', str(depth)] if depth else []
    spec = ['tag', ref] if tag else [ref]
    run(['fetch', '--quiet', *options, '--', remote, *spec], cwd=cwd)


def fetch_commit(cwd, checkout, sha, ref):
    """Fetch commit ``sha`` alone (depth 1) from the local ``checkout``.

    Protocol v2 lets a fetch name a commit by its id; a light compression
    costs less CPU for a few more bytes.
    """
    check_ref(sha)
    check_ref(ref)
    url = 'file://' + os.path.abspath(checkout)
    check_url(url)
    run(
        [
            '-c',
            'protocol.version=2',
            '-c',
            'pack.compression=1',
            'fetch',
            '--quiet',
            '--no-tags',
            '--depth',
            '1',
            '--',
            url,
            f'{sha}:{ref}',
        ],
        cwd=cwd,
    )


def fetch_all(cwd):
    run(['fetch', '--quiet', '--', 'origin'], cwd=cwd)


def checkout(cwd, what=None, force=False, new_branch=None, track=None):
    """Check out ``what`` (a ref or SHA), or make ``new_branch`` there."""
    if what:
        check_ref(what)
    args = ['checkout', '--quiet']
    if force:
        args.append('-f')
    if new_branch:
        check_ref(new_branch)
        args += ['-b', new_branch]
    if track:
        check_ref(track)
        args += ['--track', track]
    elif what:
        args.append(what)
    # "--" ends the revision part: nothing after it is a path either.
    run([*args, '--'], cwd=cwd)


def detach(cwd, sha):
    check_ref(sha)
    run(['checkout', '--quiet', '--detach', sha, '--'], cwd=cwd)


def init(path, bare=False):
    run(['init', '--quiet', *(['--bare'] if bare else []), '--', path])


def set_remote(cwd, url, add=False):
    check_url(url)
    run(['remote', 'add' if add else 'set-url', '--', 'origin', url], cwd=cwd)


def delete_tag(cwd, tag):
    check_ref(tag)
    run(['tag', '-d', '--', tag], cwd=cwd)


def delete_branch(cwd, branch):
    check_ref(branch)
    run(['branch', '-D', '--', branch], cwd=cwd)


def has_ref(cwd, ref):
    return (
        run(
            ['show-ref', '--verify', '--quiet', '--', ref],
            cwd=cwd,
            check=False,
        ).returncode
        == 0
    )


def update_ref(cwd, ref, sha):
    check_ref(ref)
    check_ref(sha)
    return run(['update-ref', '--', ref, sha], cwd=cwd, check=False)


def list_refs(cwd, prefix):
    """The refs under ``prefix`` (e.g. ``refs/pluginsd/``)."""
    check_ref(prefix.rstrip('/'))
    out = run(['for-each-ref', '--format=%(refname)', '--', prefix], cwd=cwd)
    return out.stdout.split()


def delete_ref(cwd, ref):
    check_ref(ref)
    run(['update-ref', '-d', '--', ref], cwd=cwd)


def bundle_create(cwd, output, ref):
    check_ref(ref)
    return run(
        ['bundle', 'create', '--quiet', output, ref], cwd=cwd, check=False
    )


def rev_parse(cwd, what):
    check_ref(what)
    return run(
        ['rev-parse', '--verify', '--quiet', what], cwd=cwd
    ).stdout.strip()
