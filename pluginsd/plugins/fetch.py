"""Fetch plugin repositories the way DevStack's git_clone does.

Rules (docs: plugin contract, section 2): an absent checkout is cloned and
``ref`` fetched and checked out (detached); a present one is reused as it
is unless RECLONE; ``refs/*`` refs are always fetched again; ERROR_ON_CLONE
and OFFLINE forbid cloning. Unlike DevStack, a fresh clone is made in a
temporary directory and renamed into place only once it is complete, so a
failed clone never leaves a directory a later run would take for a checkout.
"""

import dataclasses
import os
import shutil
import subprocess
import tempfile

from pluginsd import exception


@dataclasses.dataclass
class FetchOptions:
    reclone: bool = False
    error_on_clone: bool = False
    offline: bool = False
    git_depth: int = 0


def _git(args, cwd=None, plugin=None):
    proc = subprocess.run(
        ['git', *args], cwd=cwd, capture_output=True, text=True, env=_git_env()
    )
    if proc.returncode:
        lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else f'exit status {proc.returncode}'
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=plugin.ref,
            reason=f'"git {" ".join(args)}" failed: {detail}',
        )
    return proc.stdout.strip()


def _git_env():
    env = dict(os.environ)
    env.setdefault('GIT_TERMINAL_PROMPT', '0')  # never wait for a password
    return env


def head(path):
    """The commit checked out at ``path``, or None (read without forking git)."""
    git_dir = os.path.join(path, '.git')
    try:
        with open(os.path.join(git_dir, 'HEAD')) as f:
            value = f.read().strip()
        if not value.startswith('ref: '):
            return value
        ref = value[5:]
        try:
            with open(os.path.join(git_dir, ref)) as f:
                return f.read().strip()
        except FileNotFoundError:
            with open(os.path.join(git_dir, 'packed-refs')) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 2 and parts[1] == ref:
                        return parts[0]
    except OSError:
        pass
    return None


def fetch(plugin, target, options):
    """Make ``target`` a checkout of ``plugin`` and return its commit SHA.

    ``plugin`` has ``name``, ``url`` and ``ref``.
    """
    if os.path.isdir(os.path.join(target, '.git')):
        _update(plugin, target, options)
    elif os.path.exists(target) and os.listdir(target):
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=plugin.ref,
            reason=f'{target} exists but is not a git checkout',
        )
    else:
        _clone(plugin, target, options)
    if not os.path.isdir(os.path.join(target, 'devstack')):
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=plugin.ref,
            reason=f'{target} has no devstack/ folder: not a DevStack plugin',
        )
    return head(target)


def _clone(plugin, target, options):
    if options.error_on_clone:
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=plugin.ref,
            reason=f'{target} does not exist and cloning is forbidden by '
            'ERROR_ON_CLONE (a gate job must list the project as '
            'required)',
        )
    if options.offline:
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=plugin.ref,
            reason=f'{target} does not exist and OFFLINE forbids cloning',
        )
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(
        prefix=f'.{plugin.name}.', suffix='.clone', dir=parent
    )
    try:
        _git(
            ['clone', '--quiet', '--no-checkout', plugin.url, tmp],
            plugin=plugin,
        )
        depth = (
            ['--depth', str(options.git_depth)] if options.git_depth else []
        )
        _git(
            ['fetch', '--quiet', *depth, 'origin', plugin.ref],
            cwd=tmp,
            plugin=plugin,
        )
        _git(['checkout', '--quiet', 'FETCH_HEAD'], cwd=tmp, plugin=plugin)
        if not os.path.isdir(os.path.join(tmp, 'devstack')):
            raise exception.FetchError(
                plugin=plugin.name,
                url=plugin.url,
                ref=plugin.ref,
                reason='the repository has no devstack/ folder at '
                f'{plugin.ref}: not a DevStack plugin',
            )
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _update(plugin, target, options):
    if plugin.ref.startswith('refs') and not options.offline:
        _git(
            ['fetch', '--quiet', 'origin', plugin.ref],
            cwd=target,
            plugin=plugin,
        )
        _git(['checkout', '--quiet', 'FETCH_HEAD'], cwd=target, plugin=plugin)
        return
    if not options.reclone or options.offline:
        return  # DevStack leaves an existing checkout alone
    ref = plugin.ref
    _git(
        ['remote', 'set-url', 'origin', plugin.url], cwd=target, plugin=plugin
    )
    _git(['fetch', '--quiet', 'origin'], cwd=target, plugin=plugin)
    for dirpath, _, files in os.walk(target):
        for name in files:
            if name.endswith('.pyc'):
                os.unlink(os.path.join(dirpath, name))
    if _has_ref(target, f'refs/tags/{ref}'):
        _git(['tag', '-d', ref], cwd=target, plugin=plugin)
        _git(
            ['fetch', '--quiet', 'origin', 'tag', ref],
            cwd=target,
            plugin=plugin,
        )
        _git(['checkout', '--quiet', '-f', ref], cwd=target, plugin=plugin)
    elif _has_ref(target, f'refs/heads/{ref}'):
        _git(
            ['checkout', '--quiet', '-f', f'origin/{ref}'],
            cwd=target,
            plugin=plugin,
        )
        _git(['branch', '-D', ref], cwd=target, plugin=plugin)
        _git(['checkout', '--quiet', '-b', ref], cwd=target, plugin=plugin)
    elif _has_ref(target, f'refs/remotes/origin/{ref}'):
        _git(
            [
                'checkout',
                '--quiet',
                '-f',
                '-b',
                ref,
                '--track',
                f'origin/{ref}',
            ],
            cwd=target,
            plugin=plugin,
        )
    else:
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=ref,
            reason=f'RECLONE: {ref} is neither a branch nor a tag',
        )


def _has_ref(path, ref):
    return (
        subprocess.run(
            ['git', 'show-ref', '--verify', '--quiet', ref], cwd=path
        ).returncode
        == 0
    )


def ensure_checkout(plugin, target, sha, source, ref=None):
    """On a node: make ``target`` a checkout of exactly ``sha``.

    ``source`` is where the commit can be fetched from (the plugin's URL, or
    a git bundle the daemon sent) and ``ref`` what to fetch there (the SHA
    itself by default). An existing checkout at ``sha`` is left alone.
    """
    ref = ref or sha
    if os.path.isdir(os.path.join(target, '.git')):
        if head(target) == sha:
            return
        _git(['fetch', '--quiet', source, ref], cwd=target, plugin=plugin)
        _git(
            ['checkout', '--quiet', '--detach', sha], cwd=target, plugin=plugin
        )
        return
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(
        prefix=f'.{plugin.name}.', suffix='.clone', dir=parent
    )
    try:
        _git(['init', '--quiet', tmp], plugin=plugin)
        _git(['remote', 'add', 'origin', plugin.url], cwd=tmp, plugin=plugin)
        _git(['fetch', '--quiet', source, ref], cwd=tmp, plugin=plugin)
        _git(['checkout', '--quiet', '--detach', sha], cwd=tmp, plugin=plugin)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def bundle(path, sha, output):
    """Write a git bundle of commit ``sha`` of the checkout at ``path``.

    Returns the ref to fetch from it. A bundle carries refs, not bare
    commits, so the commit gets a ref of its own first.
    """
    ref = f'refs/pluginsd/{sha}'
    if subprocess.run(
        ['git', 'update-ref', ref, sha], cwd=path, capture_output=True
    ).returncode:
        raise exception.PluginsdException(f'{path} has no commit {sha}')
    proc = subprocess.run(
        ['git', 'bundle', 'create', '--quiet', output, ref],
        cwd=path,
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        raise exception.PluginsdException(
            f'git bundle of {path} at {sha} failed: {proc.stderr.strip()}'
        )
    return ref
