"""The production deployment (docker-compose.yml, deploy/, Dockerfile) checked against the code.

`docker compose config` cannot run here: this machine has a docker client but neither the compose
plugin nor a Docker engine, and nothing in these tests starts a container. So this module parses
docker-compose.yml with PyYAML (anchors and ``<<`` merge keys resolve as compose resolves them),
applies compose's ``${VAR}`` interpolation itself (``${VAR:-default}``, ``${VAR:?error}``, ``$$``)
with dummy secrets, and checks the result against the code:

* the services are there (3 Kafka nodes, schema-registry, redis, topics-init, worker, prometheus);
* every ``CREDITSTREAM_*`` name in the deployment files is a real ``Settings`` field, and the
  workers' settings pass ``Settings.validate()``;
* the workers' ``broker_url`` lists exactly the brokers and the ports they advertise; the schema
  registry and Redis URLs name those services and ports;
* KRaft: unique node ids, one cluster id, the quorum voters name each controller once with its
  controller listener port; replication 3, min ISR 2, no automatic topic creation;
* topics-init runs ``creditstream topics`` with the workers' settings, and that command creates
  ``streams.topics.Topics(prefix).all()`` with 12 partitions, replication 3 and each topic's
  retention / compaction (run against a recording admin client, no broker);
* the topic table in docs/operations.md is that same list;
* Redis: AOF every second; the ACL user of ``redis_url`` may touch only ``<namespace>:*`` (every
  key ``sinks.keys.Keys`` builds is under it) and may run every Redis command the code sends
  (found by scanning the source: redis-py calls on Redis clients and pipelines, ``redis.call`` in
  the Lua scripts, ``register_script`` -> EVALSHA / SCRIPT LOAD|EXISTS); the default user is off;
* Prometheus scrapes the worker service on ``web_port`` at /metrics, which the API serves, and
  loads the alerting rules (``promtool check config`` with the files as mounted);
* no literal secret anywhere: passwords only as required ``${VAR:?...}`` interpolations.

Renaming a setting, a topic, a CLI command or a port, or sending a new Redis command, makes one of
these fail until the deployment files follow.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest

yaml = pytest.importorskip("yaml")

from creditstream import cli  # noqa: E402
from creditstream.settings import ENV_PREFIX, Settings, load  # noqa: E402
from sinks.keys import Keys  # noqa: E402
from streams import kafka  # noqa: E402
from streams.topics import CHECK_AUDIT, DEAD_LETTER_HEADROOM, DEAD_LETTERS, Topics  # noqa: E402
from tests.promtool import promtool  # noqa: E402
from tests.unit.test_metrics import series_in  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
SETTING_NAMES = {f.name for f in dataclasses.fields(Settings)} - {"extra"}

BROKERS = ("kafka-1", "kafka-2", "kafka-3")
SERVICES = {*BROKERS, "schema-registry", "redis", "topics-init", "worker", "prometheus"}
# What an operator puts in .env; dummy values for the tests.
DUMMY_ENV = {
    "KAFKA_CLUSTER_ID": "MkU3OEVBNTcwNTJENDM2Qk",
    "REDIS_CREDITSTREAM_PASSWORD": "0123456789abcdef0123456789abcdef",
    "REDIS_ADMIN_PASSWORD": "fedcba9876543210fedcba9876543210",
    "PSEUDONYM_KEY": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
}


# --- compose interpolation ----------------------------------------------------------------------
class InterpolationError(ValueError):
    pass


_VAR = re.compile(r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)")


def interpolate(value, env: dict[str, str]):
    """Compose's interpolation of every string in ``value`` (recursively)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        current = env.get(name)
        if op in (":-", "-"):
            unset = current is None or (op == ":-" and current == "")
            return arg if unset else current
        if op in (":?", "?"):
            if current is None or (op == ":?" and current == ""):
                raise InterpolationError(f"{name}: {arg}")
            return current
        return current or ""

    return _VAR.sub(sub, value)


def as_env(environment) -> dict[str, str]:
    """A service's ``environment`` (mapping or list form) as strings, the way compose passes them."""
    if environment is None:
        return {}
    if isinstance(environment, list):
        return dict(item.split("=", 1) for item in environment)
    out = {}
    for k, v in environment.items():
        out[k] = "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
    return out


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return interpolate(raw, DUMMY_ENV)


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def worker_env(services) -> dict[str, str]:
    return as_env(services["worker"]["environment"])


@pytest.fixture(scope="module")
def worker_settings(worker_env) -> Settings:
    # CREDITSTREAM_SETTINGS="" keeps a developer's ./creditstream.toml out of it.
    return load(env={**worker_env, "CREDITSTREAM_SETTINGS": ""})


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """``NAME://host:port,...`` -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, hostport = item.strip().partition("://")
        host, _, port = hostport.rpartition(":")
        out[name] = (host, int(port))
    return out


def broker_envs(services) -> dict[str, dict[str, str]]:
    return {name: as_env(svc["environment"]) for name, svc in services.items()
            if str(svc.get("image", "")).startswith(("apache/kafka", "bitnami/kafka"))}


def hostname(services, name: str) -> str:
    return services[name].get("hostname", name)


def redis_conf() -> dict[str, str]:
    conf = {}
    for line in (DEPLOY / "redis.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            conf[key.lower()] = value.strip()
    return conf


def acl_users() -> dict[str, list[str]]:
    users = {}
    for line in (DEPLOY / "redis.acl").read_text().splitlines():
        tokens = line.split()
        if tokens and tokens[0] == "user":
            users[tokens[1]] = tokens[2:]
    return users


def acl_allows(rules: list[str], command: str) -> bool:
    """Whether ACL rules (applied left to right) allow ``command`` (``name`` or ``name|sub``)."""
    allowed = False
    base = command.split("|")[0]
    for rule in rules:
        if rule in ("allcommands", "+@all"):
            allowed = True
        elif rule in ("nocommands", "-@all"):
            allowed = False
        elif rule in (f"+{command}", f"+{base}"):
            allowed = True
        elif rule in (f"-{command}", f"-{base}"):
            allowed = False
    return allowed


# --- services -------------------------------------------------------------------------------------
def test_the_services_are_there(services):
    assert SERVICES <= set(services), f"missing: {sorted(SERVICES - set(services))}"
    assert set(broker_envs(services)) == set(BROKERS)


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0] if isinstance(vol, str) else vol.get("source", "")
            if source and not source.startswith((".", "/")):
                assert source in declared, f"{name}: volume {source} is not declared"
            if source.startswith("."):
                # a file the operator creates (git-ignored: it holds secrets) has an example beside it
                example = (ROOT / source).with_name((ROOT / source).stem + ".example" + (ROOT / source).suffix)
                assert (ROOT / source).exists() or example.exists(), f"{name}: {source} does not exist"


def test_long_running_services_have_healthchecks_and_restart_policies(services):
    for name, svc in services.items():
        if name == "topics-init":
            assert svc.get("restart") == "no"
            continue
        assert svc.get("restart") in ("unless-stopped", "always"), name
        assert "healthcheck" in svc, f"{name} has no healthcheck"


def test_depends_on_wait_for_health_or_completion(services):
    for name, svc in services.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions (mapping form)"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown {dep}"
            assert spec.get("condition") in ("service_healthy", "service_completed_successfully",
                                             "service_started"), (name, dep)
    worker = services["worker"]["depends_on"]
    assert worker["topics-init"]["condition"] == "service_completed_successfully"
    assert worker["redis"]["condition"] == "service_healthy"
    assert worker["schema-registry"]["condition"] == "service_healthy"
    for broker in BROKERS:
        assert services["topics-init"]["depends_on"][broker]["condition"] == "service_healthy"
        assert services["schema-registry"]["depends_on"][broker]["condition"] == "service_healthy"


# --- settings -------------------------------------------------------------------------------------
def test_every_creditstream_variable_is_a_setting(raw, services):
    texts = {"docker-compose.yml": COMPOSE.read_text(), "Dockerfile": (ROOT / "Dockerfile").read_text(),
             "deploy/prometheus.yml": (DEPLOY / "prometheus.yml").read_text()}
    for where, text in texts.items():
        for var in set(re.findall(r"\bCREDITSTREAM_[A-Z0-9_]+", text)):
            name = var[len(ENV_PREFIX):].lower()
            assert name in SETTING_NAMES or var == "CREDITSTREAM_SETTINGS", \
                f"{where}: {var} is not a setting of creditstream/settings.py"
    for name, svc in services.items():
        for key in as_env(svc.get("environment")):
            if key.startswith(ENV_PREFIX):
                assert key[len(ENV_PREFIX):].lower() in SETTING_NAMES, f"{name}: {key} is not a setting"


def test_worker_settings_are_valid(worker_settings, services):
    # the API's token file is the operator's (deploy/api-tokens.toml, mounted): check with the example
    mounted = [v.split(":")[:2] for v in services["worker"]["volumes"]]
    assert ["./deploy/api-tokens.toml", worker_settings.api_tokens_file] in mounted
    s = worker_settings.replace(api_tokens_file=str(DEPLOY / "api-tokens.example.toml"))
    assert s.validate() == []
    assert s.broker_kind == "kafka"
    assert s.partitions == 12
    assert s.replication_factor == 3
    assert s.schema_registry != "local"
    assert s.log_format == "json"


def test_every_creditstream_service_gets_the_same_settings(services, worker_env):
    users = [name for name, svc in services.items() if str(svc.get("image", "")).startswith("creditstream")]
    assert set(users) == {"worker", "topics-init"}
    for name in users:
        assert as_env(services[name]["environment"]) == worker_env, name
        assert services[name].get("build") in (".", {"context": "."}), name


def test_worker_broker_url_lists_exactly_the_advertised_brokers(services, worker_settings):
    advertised = set()
    for name, env in broker_envs(services).items():
        adv = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
        host, port = adv[env["KAFKA_INTER_BROKER_LISTENER_NAME"]]
        assert host == hostname(services, name)
        advertised.add(f"{host}:{port}")
    assert len(worker_settings.bootstrap_servers) == len(set(worker_settings.bootstrap_servers))
    assert set(worker_settings.bootstrap_servers) == advertised


def test_schema_registry_url_points_at_the_registry(services, worker_settings):
    url = urlparse(worker_settings.schema_registry)
    env = as_env(services["schema-registry"]["environment"])
    listen = urlparse(env["SCHEMA_REGISTRY_LISTENERS"].split(",")[0])
    assert url.scheme == listen.scheme == "http"
    assert url.hostname == hostname(services, "schema-registry")
    assert url.port == listen.port
    store = {s.split("://")[-1] for s in env["SCHEMA_REGISTRY_KAFKASTORE_BOOTSTRAP_SERVERS"].split(",")}
    assert store == set(worker_settings.bootstrap_servers)
    assert int(env["SCHEMA_REGISTRY_KAFKASTORE_TOPIC_REPLICATION_FACTOR"]) == 3


def test_redis_url_points_at_redis_with_the_acl_user(raw, services, worker_settings):
    url = urlparse(worker_settings.redis_url)
    assert url.scheme in ("redis", "rediss")
    assert url.hostname == hostname(services, "redis")
    assert url.port == int(redis_conf()["port"])
    assert url.username == "creditstream"
    assert url.password == DUMMY_ENV["REDIS_CREDITSTREAM_PASSWORD"]
    users = acl_users()
    assert url.username in users and "on" in users[url.username]
    # The redis service hashes the same variable into the ACL file: the worker's password matches.
    raw_url = raw["services"]["worker"]["environment"]["CREDITSTREAM_REDIS_URL"]
    var = re.search(r"\$\{(\w+):\?", raw_url).group(1)
    assert var in raw["services"]["redis"]["environment"]
    script = " ".join(raw["services"]["redis"]["command"])
    placeholder = f"@{var}_SHA256@"
    assert placeholder in script and f"#{placeholder}" in users[url.username]


# --- Kafka (KRaft) --------------------------------------------------------------------------------
def test_kraft_node_ids_cluster_id_and_quorum(services):
    envs = broker_envs(services)
    ids = [int(env["KAFKA_NODE_ID"]) for env in envs.values()]
    assert len(ids) == len(set(ids)) == 3
    assert len({env["CLUSTER_ID"] for env in envs.values()}) == 1
    assert DUMMY_ENV["KAFKA_CLUSTER_ID"] == next(iter(envs.values()))["CLUSTER_ID"]
    voters_strings = {env["KAFKA_CONTROLLER_QUORUM_VOTERS"] for env in envs.values()}
    assert len(voters_strings) == 1, "every node must have the same quorum voters"
    voters = [v.strip() for v in voters_strings.pop().split(",")]
    controllers = {}
    for name, env in envs.items():
        roles = {r.strip() for r in env["KAFKA_PROCESS_ROLES"].split(",")}
        assert roles <= {"broker", "controller"} and roles
        if "controller" in roles:
            controller_listener = env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")[0]
            _, port = listeners(env["KAFKA_LISTENERS"])[controller_listener]
            controllers[int(env["KAFKA_NODE_ID"])] = f"{hostname(services, name)}:{port}"
    parsed = {}
    for voter in voters:
        node_id, _, hostport = voter.partition("@")
        assert int(node_id) not in parsed, f"voter {node_id} listed twice"
        parsed[int(node_id)] = hostport
    assert parsed == controllers
    assert len(controllers) % 2 == 1, "a quorum wants an odd number of controllers"


def test_kafka_listeners_are_consistent(services):
    for name, env in broker_envs(services).items():
        protocol_map = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
        own = listeners(env["KAFKA_LISTENERS"])
        assert set(own) <= set(protocol_map), name
        for controller in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","):
            assert controller in own, name
        roles = env["KAFKA_PROCESS_ROLES"]
        if "broker" in roles:
            advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
            inter = env["KAFKA_INTER_BROKER_LISTENER_NAME"]
            assert inter in own and inter in advertised, name
            for lname, (_, port) in advertised.items():
                assert own[lname][1] == port, f"{name}: {lname} advertises a port it does not listen on"
                assert lname not in env["KAFKA_CONTROLLER_LISTENER_NAMES"].split(",")
        if env.get("KAFKA_LOG_DIRS"):
            mounts = {v.split(":")[1] for v in services[name].get("volumes", [])}
            assert env["KAFKA_LOG_DIRS"] in mounts, f"{name}: the log dir is not on a volume"


def test_replication_and_durability(services, worker_settings):
    envs = broker_envs(services)
    for name, env in envs.items():
        assert int(env["KAFKA_DEFAULT_REPLICATION_FACTOR"]) == 3, name
        assert int(env["KAFKA_MIN_INSYNC_REPLICAS"]) == 2, name
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", name
        assert int(env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"]) == 3, name
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"]) == 3, name
        assert int(env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"]) == 2, name
        assert env.get("KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE", "false") == "false", name
    assert worker_settings.replication_factor == 3 <= len(envs)
    assert int(next(iter(envs.values()))["KAFKA_MIN_INSYNC_REPLICAS"]) < worker_settings.replication_factor


# --- topics ---------------------------------------------------------------------------------------
def _creditstream_argv(command) -> list[str]:
    """The ``creditstream ...`` argv of a service command (a list, or ``sh -c`` with a script)."""
    if isinstance(command, str):
        command = shlex.split(command)
    if command and command[0] == "creditstream":
        return command[1:]
    script = command[-1]
    for line in script.splitlines():
        words = shlex.split(line.split("&&")[0].split("||")[0])
        if words and words[0] == "creditstream":
            return words[1:]
    raise AssertionError(f"no creditstream command in {command!r}")


def test_topics_init_runs_creditstream_topics(services):
    argv = _creditstream_argv(services["topics-init"]["command"])
    args = cli.build_parser().parse_args(argv)
    assert args.func is cli.cmd_topics


class RecordingAdmin:
    """Stands in for the aiokafka admin client: records the topics ``ensure_topics`` creates."""

    def __init__(self, existing=()):
        self.existing = list(existing)
        self.created = []

    async def start(self):
        pass

    async def close(self):
        pass

    async def list_topics(self):
        return self.existing

    async def create_topics(self, new_topics):
        """Answers as the broker does: each topic's error code (0: created)."""
        from types import SimpleNamespace

        self.created.extend(new_topics)
        return SimpleNamespace(topic_errors=[(t.name, 0, None) for t in new_topics])


def test_topics_init_creates_every_topic_with_partitions_replication_and_retention(services, monkeypatch):
    settings = load(env={**as_env(services["topics-init"]["environment"]), "CREDITSTREAM_SETTINGS": ""})
    admin = RecordingAdmin()
    monkeypatch.setattr(kafka, "admin", lambda s: admin)
    created = asyncio.run(kafka.ensure_topics(settings))
    topics = Topics(settings.topic_prefix)
    assert created == topics.all()
    assert [t.name for t in admin.created] == topics.all()
    for new in admin.created:
        spec = topics.spec_of(new.name)
        assert new.num_partitions == 12
        assert new.replication_factor == 3
        isr = {"min.insync.replicas": "2"}  # replication 3: acks=all survives one broker down
        if spec is DEAD_LETTERS:  # a department message at the broker's limit fits with the reason headers
            isr["max.message.bytes"] = str(settings.max_message_bytes + DEAD_LETTER_HEADROOM)
        if spec.compacted:
            assert new.topic_configs == {"cleanup.policy": "compact", **isr}
        elif spec is DEAD_LETTERS or spec is CHECK_AUDIT:  # kept dead_letter_retention_days (personal data)
            # and check_audit_retention_days (one record per subject checked: it grows with the checks)
            days = settings.dead_letter_retention_days if spec is DEAD_LETTERS else settings.check_audit_retention_days
            assert days > 0
            assert new.topic_configs == {"retention.ms": str(round(days * 86_400_000)), **isr}
        else:
            assert new.topic_configs == {"retention.ms": str(spec.retention_ms), **isr}


def test_operations_guide_lists_the_topics(worker_settings):
    """docs/operations.md has a table of the topics; it must be the code's list (a renamed topic
    fails here until the guide follows)."""
    text = (ROOT / "docs" / "operations.md").read_text()
    rows = re.findall(r"^\|\s*`([^`]+)`\s*\|\s*(compacted|delete)\s*\|", text, flags=re.M)
    topics = Topics(worker_settings.topic_prefix)
    assert [name for name, _ in rows] == topics.all()
    for name, policy in rows:
        assert (policy == "compacted") == topics.spec_of(name).compacted, name


def test_workers(services, worker_settings):
    worker = services["worker"]
    assert worker["command"] == ["creditstream", "worker", "--web"]
    args = cli.build_parser().parse_args(worker["command"][1:])
    assert args.func is cli.cmd_worker and args.web
    replicas = int(worker["deploy"]["replicas"])
    assert 2 <= replicas <= worker_settings.partitions, "more workers than partitions would idle"
    assert "container_name" not in worker and "ports" not in worker, "fixed names/ports break --scale"
    assert str(worker_settings.web_port) in [str(p) for p in worker.get("expose", [])]
    health = " ".join(worker["healthcheck"]["test"])
    assert f":{worker_settings.web_port}/health" in health


# --- Prometheus -----------------------------------------------------------------------------------
def _seconds(duration: str) -> float:
    """A compose duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|h|m|s)", str(duration))
    assert parts and "".join(n + u for n, u in parts) == str(duration), duration
    return sum(float(n) * units[u] for n, u in parts)


def test_the_workers_grace_period_outlasts_their_stop(services):
    """SIGTERM, then SIGKILL at the end of ``stop_grace_period`` (compose's default 10 s): a worker
    stops within ``STOP_WITHIN_S`` (tests/reliability/test_graceful_stop.py), and one killed first
    would leave its consumer groups only when their session timeout expires. The grace period
    leaves a margin of at least 3 times that, as Kubernetes' default 30 s does."""
    from creditstream.app import STOP_WITHIN_S

    grace = services["worker"].get("stop_grace_period")
    assert grace is not None, "the worker needs a stop_grace_period (compose's default is 10 s)"
    assert _seconds(grace) >= 3 * STOP_WITHIN_S, grace
    assert _seconds("1m30s") == 90 and _seconds("500ms") == 0.5


def test_prometheus_scrapes_the_workers_metrics(services, worker_settings):
    prom = services["prometheus"]
    assert any(v.startswith("./deploy/prometheus.yml:/etc/prometheus/prometheus.yml") for v in prom["volumes"])
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = set()
    for job in config["scrape_configs"]:
        if job.get("metrics_path", "/metrics") != "/metrics":
            continue
        for sd in job.get("dns_sd_configs", []):
            targets |= {f"{n}:{sd['port']}" for n in sd["names"]}
        for sc in job.get("static_configs", []):
            targets |= set(sc["targets"])
    assert f"worker:{worker_settings.web_port}" in targets
    api = (ROOT / "creditstream" / "api.py").read_text()
    assert '"/metrics"' in api and '"/health"' in api, "the worker's web server must serve /metrics and /health"


def memory_limit(service: dict) -> int:
    """A service's ``deploy.resources.limits.memory``, in bytes (compose's units)."""
    limit = str(service["deploy"]["resources"]["limits"]["memory"]).lower()
    number, unit = re.fullmatch(r"([0-9.]+)\s*([bkmg]?)b?", limit).groups()
    return int(float(number) * 1024 ** " kmg".index(unit or " "))


def test_compose_memory_limit_units(services):
    assert [memory_limit(services["worker"])] == [1024 ** 3]  # "1g"


def test_the_memory_alert_fires_before_the_worker_reaches_its_limit(services):
    """Above its limit the kernel kills a worker: an alert at 2e9 bytes under a 1 GiB limit never fired."""
    groups = yaml.safe_load((DEPLOY / "prometheus-rules.yml").read_text())["groups"]
    (rule,) = [r for g in groups for r in g["rules"] if r.get("alert") == "CreditstreamWorkerMemoryHigh"]
    series, _, threshold = rule["expr"].partition(" > ")
    assert series_in(series) == {"process_resident_memory_bytes"}
    factors = threshold.split("*")
    assert all(re.fullmatch(r"\s*[0-9.e]+\s*", f) for f in factors), threshold
    value = 1.0
    for f in factors:
        value *= float(f)
    limit = memory_limit(services["worker"])
    assert 0.5 * limit <= value < limit, (value, limit)


def prometheus_mounts(services) -> dict[str, Path]:
    """The prometheus service's bind mounts: its path -> the file of this checkout."""
    mounts = {}
    for volume in services["prometheus"]["volumes"]:
        source, _, rest = volume.partition(":")
        if source.startswith("./"):
            mounts[rest.split(":")[0]] = ROOT / source[2:]
    return mounts


def test_prometheus_loads_the_alerting_rules(services):
    """The compose Prometheus evaluates deploy/prometheus-rules.yml: before, its configuration named
    no rule file, and the alerts of docs/operations.md ran nowhere."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    mounts = prometheus_mounts(services)
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus.yml"
    loaded = [mounts.get(path) for path in config.get("rule_files", [])]
    assert loaded == [DEPLOY / "prometheus-rules.yml"], config.get("rule_files")


def test_promtool_checks_the_prometheus_configuration_as_mounted(services, tmp_path):
    """``promtool check config`` on deploy/prometheus.yml, with every file it names where
    docker-compose.yml mounts it (the token is the operator's: a stand-in here); it checks the rule
    files it loads too."""
    tool = promtool()
    text = (DEPLOY / "prometheus.yml").read_text()
    for path, source in prometheus_mounts(services).items():
        here = tmp_path / path.lstrip("/")
        here.parent.mkdir(parents=True, exist_ok=True)
        if source.exists():
            here.write_bytes(source.read_bytes())
        else:  # deploy/api-metrics.token: made by the operator (deploy/api-metrics.example.token)
            assert (source.with_name(source.name.replace(".token", ".example.token"))).exists(), source
            here.write_text("stand-in-token\n")
    config = tmp_path / "etc" / "prometheus" / "prometheus.yml"
    config.write_text(text.replace("/etc/prometheus/", f"{tmp_path}/etc/prometheus/"))
    done = subprocess.run([tool, "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 1 rule files found" in done.stdout + done.stderr, done.stdout + done.stderr


# --- Redis ----------------------------------------------------------------------------------------
def test_redis_persistence_and_acl_file(raw, services):
    conf = redis_conf()
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] == "everysec"
    assert conf.get("maxmemory-policy", "noeviction") == "noeviction"
    redis = services["redis"]
    assert re.match(r"redis:7(\.|-|$)", redis["image"])
    mounts = dict(v.split(":")[:2] for v in redis["volumes"])
    script = "\n".join(redis["command"])
    conf_path = mounts["./deploy/redis.conf"]
    assert f"redis-server {conf_path}" in script
    template = mounts["./deploy/redis.acl"]
    assert f"{template} > {conf['aclfile']}" in script, "the rendered ACL file is the one redis.conf loads"
    assert mounts["redis-data"] == conf["dir"]


def test_redis_acl_users():
    users = acl_users()
    default = users["default"]
    assert "off" in default and "nopass" not in default
    rules = users["creditstream"]
    keys = [r for r in rules if r.startswith("~") or r.startswith("%")]
    assert keys == ["~cs:*"]
    assert "allkeys" not in rules and "+@all" not in rules and "allcommands" not in rules
    assert rules.index("-@all") < min(i for i, r in enumerate(rules) if r.startswith("+"))
    for dangerous in ("flushall", "flushdb", "keys", "config", "eval", "script|flush", "shutdown", "debug",
                      "acl", "module", "function", "del"):
        assert not acl_allows(rules, dangerous), dangerous


def test_acl_key_pattern_is_the_namespace_and_covers_every_key(worker_settings):
    rules = acl_users()["creditstream"]
    assert f"~{worker_settings.namespace}:*" in rules
    keys = Keys(worker_settings.namespace, "replay-1", worker_settings.pseudonym_key)
    built = []
    for name in dir(Keys):
        if name.startswith("_") or name in ("namespace", "generation", "pseudonym_key", "storage_id"):
            continue
        attr = getattr(Keys, name)
        if isinstance(attr, property):
            built.append(getattr(keys, name))
        elif callable(attr):
            built.append(attr(keys, "x"))
    built = [key for key in built if isinstance(key, str)]
    assert len(built) >= 8
    for key in built:
        assert key.startswith(f"{worker_settings.namespace}:"), key


# The code's Redis commands, found by scanning the source (heuristic, documented in the docstring).
SOURCE_DIRS = ("agents", "sinks", "ops", "streams", "creditstream")
# Redis clients are called ``redis`` / ``self.redis`` / ``self._redis``, pipelines ``pipe``.
RECEIVER = r"(?:self\.)?_?(?:redis|pipe|tx)"
NOT_COMMANDS = {"pipeline", "register_script", "aclose", "close", "execute", "from_url", "initialize", "reset",
                "lock", "pubsub", "monitor", "transaction", "client", "connection_pool", "get_encoder",
                "execute_command", "parse_response", "set_response_callback", "load_external_module"}
SCAN_ITER = {"scan_iter": "scan", "sscan_iter": "sscan", "hscan_iter": "hscan", "zscan_iter": "zscan"}


def redis_commands_in_code() -> dict[str, set[str]]:
    import redis.asyncio

    methods = {n for n in dir(redis.asyncio.Redis) if not n.startswith("_")} - NOT_COMMANDS
    found: dict[str, set[str]] = {}

    def add(cmd: str, where: str) -> None:
        found.setdefault(cmd.lower(), set()).add(where)

    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "stack.py":  # the embedded stack's own redis-server (SHUTDOWN etc.)
                continue
            text = path.read_text()
            where = str(path.relative_to(ROOT))
            for m in re.finditer(rf"\b{RECEIVER}\.([a-z_]+)\(", text):
                name = m.group(1)
                if name in SCAN_ITER:
                    add(SCAN_ITER[name], where)
                elif name in methods:
                    add(name, where)
            for m in re.finditer(r"redis\.(?:p?call)\(\s*['\"]([A-Za-z]+)['\"]", text):
                add(m.group(1), where)
            if "register_script(" in text:
                for cmd in ("evalsha", "script|load", "script|exists"):
                    add(cmd, where)
            if re.search(r"\.pipeline\(\s*(?:transaction\s*=\s*True)?\s*\)", text) or "transaction=True" in text:
                for cmd in ("multi", "exec"):
                    add(cmd, where)
    return found


def test_the_acl_user_may_run_every_redis_command_the_code_sends():
    found = redis_commands_in_code()
    # Sanity: the scan sees the worker's hot path.
    assert {"mset", "hget", "evalsha", "multi", "exec", "zadd"} <= set(found), sorted(found)
    rules = acl_users()["creditstream"]
    missing = {cmd: sorted(where) for cmd, where in found.items() if not acl_allows(rules, cmd)}
    assert not missing, f"deploy/redis.acl must allow these commands for the creditstream user: {missing}"
    for always in ("ping", "hello", "auth"):  # redis-py's health checks and login
        assert acl_allows(rules, always), always


def handshake_commands(client) -> list[str]:
    """The commands redis-py sends on each new connection of ``client`` (``on_connect``), beyond the
    login (HELLO / AUTH): CLIENT SETNAME, CLIENT SETINFO (the library's name and version, unless
    disabled), CLIENT MAINT_NOTIFICATIONS (RESP3, unless disabled), SELECT."""
    pool = client.connection_pool
    conn = pool.connection_class(**pool.connection_kwargs)
    sent = []
    if getattr(conn, "client_name", None):
        sent.append("client|setname")
    info = getattr(conn, "driver_info", None)
    if (info is not None and (info.formatted_name or info.lib_version)) or getattr(conn, "lib_name", None) \
            or getattr(conn, "lib_version", None):
        sent.append("client|setinfo")
    maint = getattr(conn, "maint_notifications_config", None)
    if maint is not None and maint.enabled and conn.protocol in (3, "3"):
        sent.append("client|maint_notifications")
    if getattr(conn, "db", 0):
        sent.append("select")
    return sent


def test_the_clients_connect_with_commands_the_acl_allows(worker_settings):
    """Seen against Redis with deploy/redis.acl (tests/integration/test_redis_acl_e2e.py): redis-py
    sends CLIENT SETINFO and CLIENT MAINT_NOTIFICATIONS on every connect, which the ACL refuses
    (NOPERM; an ACL LOG entry each time, ignored by redis-py). The code never names them, so the scan
    above did not see them. Every client the code builds (each ``from_url`` passes
    ``connections.NO_CLIENT_COMMANDS``)."""
    from creditstream.connections import api_redis_client, redis_client

    rules = acl_users()["creditstream"]
    for make in (redis_client, api_redis_client):
        sent = handshake_commands(make(worker_settings.replace(redis_url="redis://u:p@127.0.0.1:6379/1")))
        refused = [cmd for cmd in sent if not acl_allows(rules, cmd)]
        assert refused == [], f"{make.__name__}: redis-py sends {refused} on connect, which deploy/redis.acl refuses"
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "stack.py":
                continue
            for m in re.finditer(r"\bfrom_url\((?:[^()]|\([^()]*\))*\)", path.read_text()):
                assert "NO_CLIENT_COMMANDS" in m.group(0), f"{path.relative_to(ROOT)}: {m.group(0)[:80]}"


# --- secrets --------------------------------------------------------------------------------------
SECRET_KEY = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|CREDENTIAL", re.I)
REQUIRED_VAR = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:\?[^}]*\}$")


def _strings(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value


def test_no_literal_secrets(raw):
    for name, svc in raw["services"].items():
        env = svc.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in items:
            if SECRET_KEY.search(key) and not key.endswith("_FILE"):  # a path to a secret file is no secret
                assert REQUIRED_VAR.match(str(value)), f"{name}.{key}: a secret must be ${{VAR:?...}}"
    for path, value in _strings(raw):
        for m in re.finditer(r"[a-z]+://([^/@\s:]*):([^@\s]*)@", value):
            assert REQUIRED_VAR.match(m.group(2)), f"{path}: password in a URL must be ${{VAR:?...}}"
        assert "requirepass" not in value and "--pass " not in value and " -a " not in value, path
    assert not re.search(r"(?m)\s>\S", (DEPLOY / "redis.acl").read_text()), "plain-text ACL password"
    assert not re.search(r"#[0-9a-f]{64}", (DEPLOY / "redis.acl").read_text()), "fixed password hash"
    assert not re.search(r"password|passwd|secret", (DEPLOY / "prometheus.yml").read_text(), re.I)
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert not re.search(r"(?im)^\s*(ENV|ARG)\b.*(PASSWORD|SECRET|TOKEN)", dockerfile)


def test_secrets_are_required():
    raw_text = yaml.safe_load(COMPOSE.read_text())
    for var in DUMMY_ENV:
        env = {k: v for k, v in DUMMY_ENV.items() if k != var}
        with pytest.raises(InterpolationError, match=var):
            interpolate(raw_text, env)


def test_secrets_stay_out_of_the_image():
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert {".env", "creditstream.toml", ".run", ".venv", ".git"} <= ignored


# --- the image ------------------------------------------------------------------------------------
def test_dockerfile(worker_settings):
    text = (ROOT / "Dockerfile").read_text()
    froms = re.findall(r"(?m)^FROM\s+(\S+)", text)
    assert froms and all(f == "python:3.11-slim" for f in froms)
    # the package, then the rules core compiled in site-packages and checked current (ops/build_core.py)
    assert re.search(r"(?m)^RUN\s+pip install '\.\[compile\]' && cd / && python -m ops.build_core "
                     r"&& python -m ops.build_core --check\s*$", text)
    assert re.search(rf"(?m)^EXPOSE\s+{worker_settings.web_port}\s*$", text)
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert users and users[-1] not in ("root", "0")
    cmd = re.search(r"(?m)^CMD\s+(\[.*\])\s*$", text).group(1)
    assert ast.literal_eval(cmd) == ["creditstream", "worker", "--web"]


def test_production_runs_the_apache_kafka_the_tests_run(services):
    """docker-compose.yml's Kafka image is the version the embedded cluster of the test suite runs
    (deploy/kafka/pom.xml): what is tested is what is deployed."""
    from ops.kafka_cluster import KAFKA_VERSION

    images = {services[name]["image"] for name in ("kafka-1", "kafka-2", "kafka-3")}
    assert images == {f"apache/kafka:{KAFKA_VERSION}"}


def test_operations_guide_names_the_ingest_agent_for_every_topic_it_reads(worker_settings):
    """Seen: the table said `feedback` was read by nobody ("kept for downstream") and the guide spoke
    of the ingest group's five topics, while the ingest agent reads six (feedback too) and
    `creditstream positions` lists them under it."""
    from streams.topics import INGEST_SOURCES

    text = (ROOT / "docs" / "operations.md").read_text()
    read_by = {name: cells[-1].strip() for name, *cells in
               re.findall(r"^\|\s*`([^`]+)`\s*\|([^|]*)\|([^|]*)\|([^|]*)\|([^|]*)\|\s*$", text, flags=re.M)}
    topics = Topics(worker_settings.topic_prefix)
    for spec in INGEST_SOURCES:
        assert "ingest agent" in read_by[topics.name(spec)], (spec, read_by[topics.name(spec)])
    assert f"{len(INGEST_SOURCES)} × 12 partitions" in text


def test_every_service_rotates_its_log(services):
    """Docker's json-file driver keeps a container's log forever unless told otherwise: a soak run
    measured a worker's log growing some 40 MB a day with no bound."""
    for name, svc in services.items():
        logging = svc.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] and int(logging["options"]["max-file"]) >= 2, name
