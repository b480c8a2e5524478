"""The committed sample configuration matches the option definitions."""

import difflib
import logging
import os
import re

from oslo_config import generator
import oslo_messaging
import oslo_messaging.opts
import pytest

import pluginsd.conf

TOP = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)
GENERATOR_CONF = os.path.join(
    TOP, 'etc', 'oslo-config-generator', 'pluginsd.conf'
)
SAMPLE = os.path.join(TOP, 'etc', 'pluginsd', 'pluginsd.conf.sample')


def _control_exchange_default():
    for _group, opts in oslo_messaging.opts.list_opts():
        for opt in opts:
            if opt.name == 'control_exchange':
                return opt.default
    raise AssertionError('oslo.messaging has no control_exchange option')


# What a fresh oslo-config-generator process (tools/genconfig.sh) sees.
# pluginsd.rpc.get_transport() changes this library default for the whole
# process, so the sample would depend on which tests ran before this one.
LIBRARY_CONTROL_EXCHANGE = _control_exchange_default()


@pytest.fixture
def library_defaults():
    before = _control_exchange_default()
    oslo_messaging.set_transport_defaults(
        control_exchange=LIBRARY_CONTROL_EXCHANGE
    )
    yield
    oslo_messaging.set_transport_defaults(control_exchange=before)


def test_sample_config_is_up_to_date(tmp_path, library_defaults):
    fresh = tmp_path / 'pluginsd.conf.sample'
    generator.main(
        ['--config-file', GENERATOR_CONF, '--output-file', str(fresh)]
    )
    with open(SAMPLE) as f:
        committed = f.read()
    generated = fresh.read_text()
    diff = ''.join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            generated.splitlines(keepends=True),
            'etc/pluginsd/pluginsd.conf.sample (committed)',
            '(generated)',
            n=1,
        )
    )
    assert generated == committed, (
        'etc/pluginsd/pluginsd.conf.sample is stale: run tools/genconfig.sh '
        'and commit the result.\n' + diff
    )


def test_sample_lists_pluginsd_groups(tmp_path):
    with open(SAMPLE) as f:
        sample = f.read()
    for header in (
        '[DEFAULT]',
        '[agent]',
        '[daemon]',
        '[database]',
        '[runner]',
        '[security]',
        '[upgrade_levels]',
    ):
        assert f'\n{header}\n' in '\n' + sample, header
    # The host default depends on the machine: the sample shows a placeholder.
    assert '\n#host = <hostname>\n' in sample


def test_sample_shows_pluginsd_control_exchange():
    with open(SAMPLE) as f:
        sample = f.read()
    assert '\n#control_exchange = pluginsd\n' in sample


def _opt(conf, name, group):
    return conf._get_opt_info(name, group)['opt']


def test_secret_options():
    conf = pluginsd.conf.new_conf()
    assert _opt(conf, 'connection', 'database').secret is True
    assert _opt(conf, 'max_message_age', 'security').secret is False
    assert _opt(conf, 'state_path', None).secret is False


def test_secret_options_are_masked_in_logs(caplog):
    conf = pluginsd.conf.new_conf()
    conf([], default_config_files=[])
    conf.set_override(
        'connection', 'mysql+pymysql://u:pw-s3cret@db/pd', group='database'
    )
    logger = logging.getLogger('test_sample_config')
    with caplog.at_level(logging.INFO, logger='test_sample_config'):
        conf.log_opt_values(logger, logging.INFO)
    text = '\n'.join(r.getMessage() for r in caplog.records)
    assert re.search(r'^database\.connection += \*\*\*\*$', text, re.M)
    assert 'pw-s3cret' not in text
    conf.reset()
