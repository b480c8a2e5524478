"""Log lines people can read: library noise dropped, events once."""

import logging

from pluginsd import service


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
