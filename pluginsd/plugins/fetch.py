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
import tempfile

from pluginsd import exception
from pluginsd import git


@dataclasses.dataclass
class FetchOptions:
    reclone: bool = False
    error_on_clone: bool = False
    offline: bool = False
    git_depth: int = 0


def _git(step, plugin):
    """Run ``step()`` (a pluginsd.git call); name the plugin on failure."""
    try:
        return step()
    except git.GitError as e:
        raise exception.FetchError(
            plugin=plugin.name, url=plugin.url, ref=plugin.ref, reason=str(e)
        ) from None


def check_plugin(plugin):
    """Refuse a URL or ref git could read as an option (before any git)."""
    try:
        git.check_url(plugin.url)
        git.check_ref(plugin.ref)
    except git.GitInputError as e:
        raise exception.FetchError(
            plugin=plugin.name, url=plugin.url, ref=plugin.ref, reason=str(e)
        ) from None


def head(path):
    """The commit checked out at ``path``, or None (read without git)."""
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


def fetch(plugin, target, options, dry_run_dir=None):
    """Make ``target`` a checkout of ``plugin`` and return its commit SHA.

    ``plugin`` has ``name``, ``url`` and ``ref``. With ``dry_run_dir`` the
    commit is found as a real fetch would find it, but ``target`` is left
    as it is: a checkout that would be reused is read in place, anything
    that would be cloned or updated is cloned into ``dry_run_dir``.
    Returns (SHA, the checkout it is in) then.
    """
    check_plugin(plugin)
    if dry_run_dir is not None:
        return _dry_run(plugin, target, options, dry_run_dir)
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
    return _checked(plugin, target)


def _dry_run(plugin, target, options, scratch):
    exists = os.path.isdir(os.path.join(target, '.git'))
    if exists and not _updates(plugin, options):
        return _checked(plugin, target), target
    if exists:
        # The real fetch updates the checkout it has: no clone, so
        # ERROR_ON_CLONE has nothing to forbid.
        options = dataclasses.replace(options, error_on_clone=False)
    elif os.path.exists(target) and os.listdir(target):
        return fetch(plugin, target, options)  # the same error, no change
    return fetch(plugin, scratch, options), scratch


def _updates(plugin, options):
    """Whether fetching into an existing checkout changes it (_update)."""
    if plugin.ref.startswith('refs') and not options.offline:
        return True
    return options.reclone and not options.offline


def _checked(plugin, target):
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
    if git.new_dir_mode() is not None:
        os.chmod(tmp, git.new_dir_mode())  # mkdtemp makes it 0700
    try:
        _git(lambda: git.clone_no_checkout(plugin.url, tmp), plugin)
        _git(
            lambda: git.fetch(tmp, 'origin', plugin.ref, options.git_depth),
            plugin,
        )
        _git(lambda: git.checkout(tmp, 'FETCH_HEAD'), plugin)
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
    # _updates() says what this does without doing it (dry runs).
    if plugin.ref.startswith('refs') and not options.offline:
        _git(lambda: git.fetch(target, 'origin', plugin.ref), plugin)
        _git(lambda: git.checkout(target, 'FETCH_HEAD'), plugin)
        return
    if not options.reclone or options.offline:
        return  # DevStack leaves an existing checkout alone
    ref = plugin.ref
    _git(lambda: git.set_remote(target, plugin.url), plugin)
    _git(lambda: git.fetch_all(target), plugin)
    for dirpath, _, files in os.walk(target):
        for name in files:
            if name.endswith('.pyc'):
                os.unlink(os.path.join(dirpath, name))
    if git.has_ref(target, f'refs/tags/{ref}'):
        _git(lambda: git.delete_tag(target, ref), plugin)
        _git(lambda: git.fetch(target, 'origin', ref, tag=True), plugin)
        _git(lambda: git.checkout(target, ref, force=True), plugin)
    elif git.has_ref(target, f'refs/heads/{ref}'):
        _git(lambda: git.checkout(target, f'origin/{ref}', force=True), plugin)
        _git(lambda: git.delete_branch(target, ref), plugin)
        _git(lambda: git.checkout(target, new_branch=ref), plugin)
    elif git.has_ref(target, f'refs/remotes/origin/{ref}'):
        _git(
            lambda: git.checkout(
                target, force=True, new_branch=ref, track=f'origin/{ref}'
            ),
            plugin,
        )
    else:
        raise exception.FetchError(
            plugin=plugin.name,
            url=plugin.url,
            ref=ref,
            reason=f'RECLONE: {ref} is neither a branch nor a tag',
        )


def ensure_checkout(plugin, target, sha, source, ref=None, shallow=False):
    """On a node: make ``target`` a checkout of exactly ``sha``.

    ``source`` is where the commit can be fetched from (the plugin's URL, or
    a git bundle the daemon built) and ``ref`` what to fetch there (the SHA
    itself by default). ``shallow``: the source holds ``sha`` without its
    history (a bundle from :func:`commit_bundle`). An existing checkout at
    ``sha`` is left alone.
    """
    with git.public_files():  # $DEST, read by the services plugins start
        _ensure_checkout(plugin, target, sha, source, ref or sha, shallow)


def _ensure_checkout(plugin, target, sha, source, ref, shallow):
    check_plugin(plugin)
    if os.path.isdir(os.path.join(target, '.git')):
        if head(target) == sha:
            return
        if shallow:
            _mark_shallow(target, sha)
        _git(lambda: git.fetch(target, source, ref), plugin)
        _git(lambda: git.detach(target, sha), plugin)
        return
    parent = os.path.dirname(os.path.abspath(target))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(
        prefix=f'.{plugin.name}.', suffix='.clone', dir=parent
    )
    if git.new_dir_mode() is not None:
        os.chmod(tmp, git.new_dir_mode())  # mkdtemp makes it 0700
    try:
        _git(lambda: git.init(tmp), plugin)
        _git(lambda: git.set_remote(tmp, plugin.url, add=True), plugin)
        if shallow:
            _mark_shallow(tmp, sha)
        _git(lambda: git.fetch(tmp, source, ref), plugin)
        _git(lambda: git.detach(tmp, sha), plugin)
        os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _mark_shallow(path, sha):
    # git keeps the commits whose parents a repository lacks in
    # .git/shallow (what `git clone --depth 1` writes); without the entry
    # git refuses a commit that comes without its parents.
    git.check_ref(sha)
    with open(os.path.join(path, '.git', 'shallow'), 'a') as f:
        f.write(sha + '\n')


def commit_bundle(path, sha, output, plugin):
    """Write a git bundle of commit ``sha`` alone, from the checkout ``path``.

    The bundle holds the commit, its tree and its blobs, not its history:
    what a node needs to check the commit out (as ``--depth 1``). Returns
    the ref to fetch from it: a bundle carries refs, not bare commits.
    """
    ref = f'refs/pluginsd/{sha}'
    output = os.path.abspath(output)
    with tempfile.TemporaryDirectory(
        prefix='.bundle-', dir=os.path.dirname(output)
    ) as tmp:
        _git(lambda: git.init(tmp, bare=True), plugin)
        _git(lambda: git.fetch_commit(tmp, path, sha, ref), plugin)
        proc = git.bundle_create(tmp, output, ref)
        if proc.returncode:
            raise exception.FetchError(
                plugin=plugin.name,
                url=plugin.url,
                ref=plugin.ref,
                reason=f'git bundle of {sha} failed: {proc.stderr.strip()}',
            )
    return ref
