"""Following a run: results printed as they arrive, until it ends."""

from pluginsd.cmd.cli import common


def follow(cmd, run_id, quiet=False):
    """Print results as they arrive until the run ends; return its view."""
    out = cmd.app.stderr
    seen, cursor = -1, 0
    while True:
        view = cmd.call('wait_run', run_id, seen, 20, cursor)
        seen, cursor = view['version'], view['last_result_id']
        if not quiet:
            for r in view['results']:
                what = r['plugin'] or '(node)'
                print(
                    f'  {r["node"]:<16} {r["phase"]:<12} {what:<24} '
                    f'{common.cell(r)}',
                    file=out,
                )
            out.flush()
        if view['state'] in common.FINAL_STATES:
            return cmd.call('get_run', run_id)
