"""Log lines people can read: library noise dropped, events once."""

import logging

from pluginsd import service
from pluginsd.extensions import events
from pluginsd.extensions import log_events


def test_amqp_closing_channel_warning_is_dropped(caplog):
    service.prepare([], 'pluginsd-test', setup_logging=False)
    amqp = logging.getLogger('amqp')
    with caplog.at_level(logging.WARNING):
        amqp.warning(
            'Received method %s during closing channel %s. This method will '
            'be ignored',
            (60, 30),
            1,
        )
        amqp.warning('Socket closed unexpectedly')
    assert [r.getMessage() for r in caplog.records] == [
        'Socket closed unexpectedly'
    ]


def _result(status):
    return events.Result(
        run_id='r1',
        node='n1',
        plugin='p1',
        mode='stack',
        phase='install',
        status=status,
        exit_code=0 if status == 'ok' else 1,
        started_at=0.0,
        ended_at=1.0,
        log_path='',
        tail='',
    )


def test_logging_extension_keeps_results_that_went_well_at_debug(caplog):
    ext = log_events.LoggingExtension(None)
    with caplog.at_level(logging.DEBUG, logger=log_events.LOG.name):
        for status in ('ok', 'skipped', 'failed', 'timeout'):
            ext.on_plugin_result(_result(status))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, 'run r1: p1 install on n1: ok'),
        (logging.DEBUG, 'run r1: p1 install on n1: skipped'),
        (logging.INFO, 'run r1: p1 install on n1: failed'),
        (logging.INFO, 'run r1: p1 install on n1: timeout'),
    ]
