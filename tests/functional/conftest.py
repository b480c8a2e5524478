"""Fixtures for functional tests."""

import os

import pytest

from tests.functional import rabbit as rabbit_mod


@pytest.fixture(scope='session')
def rabbit(tmp_path_factory):
    """One private RabbitMQ broker (tests.functional.rabbit.RabbitBroker) per session.

    Tests may restart() it, but must leave it running.
    """
    if not os.path.exists(rabbit_mod.SERVER):
        pytest.skip(f'{rabbit_mod.SERVER} is missing: install rabbitmq-server '
                    '(Debian package) to run the broker tests')
    broker = rabbit_mod.RabbitBroker(tmp_path_factory.mktemp('rabbit'))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def rabbit_vhost(rabbit):
    """URL of a fresh vhost + user on the session broker, for tests that need
    their own exchanges and queues (e.g. other durability settings)."""
    vhost, user, url = rabbit.add_vhost()
    yield url
    if rabbit.running:  # a failed test may have left the broker down
        rabbit.ctl('delete_vhost', vhost)
        rabbit.ctl('delete_user', user)
