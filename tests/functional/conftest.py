"""Fixtures for functional tests."""

import os

import pytest

from tests.functional import postgres as postgres_mod
from tests.functional import rabbit as rabbit_mod

SPARE_VHOSTS = 16  # most functional tests want a vhost of their own


@pytest.fixture(scope='session')
def rabbit(tmp_path_factory):
    """One private RabbitMQ broker per session.

    A tests.functional.rabbit.RabbitBroker.

    Tests may restart() it, but must leave it running.
    """
    if not os.path.exists(rabbit_mod.SERVER):
        pytest.skip(
            f'{rabbit_mod.SERVER} is missing: install rabbitmq-server '
            '(Debian package) to run the broker tests'
        )
    broker = rabbit_mod.RabbitBroker(
        tmp_path_factory.mktemp('rabbit'), spare_vhosts=SPARE_VHOSTS
    )
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def rabbit_vhost(rabbit):
    """URL of a fresh vhost + user on the session broker, for tests that need
    their own exchanges and queues (e.g. other durability settings).
    """
    # Not deleted after the test: the broker is private to this session and
    # deleting costs two rabbitmqctl calls.
    yield rabbit.add_vhost()[2]


# PLUGINSD_TEST_DB=postgresql runs the functional suite against a private
# PostgreSQL server (one database per test) instead of SQLite. The URL goes
# through oslo.config's environment source ([database] connection), so every
# daemon of the test - in this process or not - uses it.
DATABASE_ENV = 'OS_DATABASE__CONNECTION'


@pytest.fixture(scope='session')
def postgres():
    if not postgres_mod.available():
        pytest.fail(
            'PLUGINSD_TEST_DB=postgresql but PostgreSQL is not installed'
        )
    server = postgres_mod.PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def database_url(request, monkeypatch):
    """The daemon database of this test: SQLite (default) or PostgreSQL."""
    if os.environ.get('PLUGINSD_TEST_DB') != 'postgresql':
        yield None
        return
    url = request.getfixturevalue('postgres').create_database()
    monkeypatch.setenv(DATABASE_ENV, url)
    yield url
