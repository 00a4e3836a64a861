"""Settings (creditstream/settings.py): where they come from, what validate() catches, what masked()
hides, and what reaches the Kafka clients.

Precedence, lowest first: defaults < the embedded stack's ``<run_dir>/stack.json`` < a TOML file
(``CREDITSTREAM_SETTINGS`` or ``./creditstream.toml``) < ``CREDITSTREAM_*`` environment variables
< keyword overrides of ``load()``.

SASL and TLS are tested as plumbing only: the settings reach aiokafka's clients (producer,
consumer, admin) and an SSL context is really built from PEM files made here (a self-signed CA
and a client certificate, with the ``cryptography`` package when installed, else the ``openssl``
command; the TLS tests skip when neither is there). No broker is contacted: SASL cannot be
exercised on the local broker (docs/broker.md: `tansu user create` fails against an
authenticating Tansu and SCRAM logins from aiokafka fail), and it has no TLS listener.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from creditstream import cli
from creditstream.settings import Settings, SettingsError, load, mask_secret


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory (no ./creditstream.toml) with a run dir inside it."""
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("CREDITSTREAM_"):
            monkeypatch.delenv(key)
    (tmp_path / "run").mkdir()
    return tmp_path


def write_stack(run_dir: Path, **values) -> None:
    (run_dir / "stack.json").write_text(json.dumps({"settings": values}))


def base_env(workdir: Path, **extra: str) -> dict[str, str]:
    return {"CREDITSTREAM_RUN_DIR": str(workdir / "run"), **extra}


# --- precedence -----------------------------------------------------------------------------------
def test_defaults_when_nothing_is_set(workdir):
    s = load(env=base_env(workdir))
    assert s == Settings(run_dir=str(workdir / "run"))
    assert s.broker_url == "127.0.0.1:9092" and s.partitions == 4 and s.web_port == 6066


def test_stack_file_overrides_defaults(workdir):
    write_stack(workdir / "run", broker_url="127.0.0.1:40001", broker_kind="tansu",
                redis_url="redis://127.0.0.1:40002/0")
    s = load(env=base_env(workdir))
    assert (s.broker_url, s.broker_kind, s.redis_url) == ("127.0.0.1:40001", "tansu", "redis://127.0.0.1:40002/0")
    assert s.partitions == Settings.partitions


def test_toml_file_overrides_stack_file(workdir):
    write_stack(workdir / "run", broker_url="127.0.0.1:40001", redis_url="redis://127.0.0.1:40002/0")
    toml = workdir / "prod.toml"
    toml.write_text('[creditstream]\nbroker_url = "kafka-1:9092,kafka-2:9092"\npartitions = 12\n')
    s = load(env=base_env(workdir, CREDITSTREAM_SETTINGS=str(toml)))
    assert s.broker_url == "kafka-1:9092,kafka-2:9092"
    assert s.partitions == 12
    assert s.redis_url == "redis://127.0.0.1:40002/0"  # not in the TOML file: the stack's


def test_environment_overrides_toml_file(workdir):
    toml = workdir / "prod.toml"
    toml.write_text('broker_url = "from-toml:9092"\npartitions = 12\n')  # top-level keys work too
    s = load(env=base_env(workdir, CREDITSTREAM_SETTINGS=str(toml), CREDITSTREAM_BROKER_URL="from-env:9092"))
    assert s.broker_url == "from-env:9092"
    assert s.partitions == 12


def test_keyword_overrides_beat_everything(workdir):
    s = load(env=base_env(workdir, CREDITSTREAM_WEB_PORT="7000"), web_port=7100)
    assert s.web_port == 7100


def test_creditstream_toml_in_the_working_directory_is_read(workdir):
    (workdir / "creditstream.toml").write_text('[creditstream]\nnamespace = "prod"\n')
    assert load(env=base_env(workdir)).namespace == "prod"
    # CREDITSTREAM_SETTINGS="" switches the file off.
    assert load(env=base_env(workdir, CREDITSTREAM_SETTINGS="")).namespace == "cs"


def test_environment_values_are_coerced_to_the_field_types(workdir):
    s = load(env=base_env(workdir, CREDITSTREAM_PARTITIONS="12", CREDITSTREAM_TIMER_INTERVAL_S="0.5",
                          CREDITSTREAM_MAX_BATCH="100"))
    assert (s.partitions, s.timer_interval_s, s.max_batch) == (12, 0.5, 100)
    assert isinstance(s.partitions, int) and isinstance(s.timer_interval_s, float)


def test_unknown_environment_variables_are_ignored(workdir):
    s = load(env=base_env(workdir, CREDITSTREAM_NO_SUCH_SETTING="x", OTHER="y"))
    assert s == Settings(run_dir=str(workdir / "run"))


@pytest.mark.parametrize("env, message", [
    ({"CREDITSTREAM_PARTITIONS": "twelve"}, "partitions"),
    ({"CREDITSTREAM_TIMER_INTERVAL_S": "soon"}, "timer_interval_s"),
])
def test_a_malformed_number_is_a_settings_error(workdir, env, message):
    with pytest.raises(SettingsError, match=message):
        load(env=base_env(workdir, **env))


def test_settings_file_errors(workdir):
    with pytest.raises(SettingsError, match="does not exist"):
        load(env=base_env(workdir, CREDITSTREAM_SETTINGS=str(workdir / "missing.toml")))
    bad = workdir / "bad.toml"
    bad.write_text("broker_url = \n")
    with pytest.raises(SettingsError, match="bad.toml"):
        load(env=base_env(workdir, CREDITSTREAM_SETTINGS=str(bad)))
    unknown = workdir / "unknown.toml"
    unknown.write_text('[creditstream]\nbroker = "kafka:9092"\n')
    with pytest.raises(SettingsError, match="unknown setting 'broker'"):
        load(env=base_env(workdir, CREDITSTREAM_SETTINGS=str(unknown)))


def test_a_broken_stack_file_is_ignored(workdir):
    (workdir / "run" / "stack.json").write_text("{not json")
    assert load(env=base_env(workdir)).broker_url == Settings.broker_url


# --- validate() ---------------------------------------------------------------------------------
PRODUCTION = Settings(
    broker_url="kafka-1:9092,kafka-2:9092,kafka-3:9092",
    redis_url="rediss://creditstream:s3cret@redis.example:6380/0",
    schema_registry="https://registry.example:8081",
    partitions=12,
    replication_factor=3,
    security_protocol="SASL_SSL",
    sasl_mechanism="SCRAM-SHA-512",
    sasl_username="creditstream",
    sasl_password="sasl-s3cret",
    pseudonym_key="pseudonym-s3cret-0123456789abcdef0123456789",
)
KEYED = Settings(pseudonym_key="0123456789abcdef" * 4)


def test_valid_settings_have_no_problems():
    assert KEYED.validate() == []
    # every level the logging set-up takes, as it takes them (config check and the logs agree)
    assert KEYED.replace(log_level="fatal", libraries_log_level="Warn").validate() == []
    assert PRODUCTION.validate() == []
    assert KEYED.replace(broker_url="kafka://a:1, PLAINTEXT://b:2").validate() == []


def test_the_pseudonym_key_is_required_and_long_enough():
    """Without it no natural person can be stored (the workers refuse to start): a problem, not a
    warning; a short one is guessable."""
    [problem] = Settings().validate()
    assert problem.startswith("pseudonym_key: not set")
    assert KEYED.replace(pseudonym_key="short").validate() == [
        "pseudonym_key: at least 32 characters (openssl rand -hex 32)"]


@pytest.mark.parametrize("changes, problem", [
    ({"broker_url": ""}, "broker_url: no bootstrap server given"),
    ({"broker_url": " , "}, "broker_url: no bootstrap server given"),
    ({"broker_url": "kafka-1"}, "broker_url: 'kafka-1' is not host:port"),
    ({"broker_url": "kafka-1:9092,kafka-2:port"}, "broker_url: 'kafka-2:port' is not host:port"),
    ({"broker_url": ":9092"}, "broker_url: ':9092' is not host:port"),
    ({"broker_kind": "redpanda"}, "broker_kind"),
    ({"redis_url": "127.0.0.1:6379"}, "redis_url"),
    ({"schema_registry": "registry:8081"}, "schema_registry"),
    ({"schema_registry": ""}, "schema_registry"),
    ({"partitions": 0}, "partitions"),
    ({"replication_factor": 0}, "replication_factor"),
    ({"security_protocol": "TLS"}, "security_protocol"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": ""}, "sasl_mechanism: required"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": ""}, "sasl_mechanism: required"),
    ({"sasl_mechanism": "GSSAPI"}, "sasl_mechanism: 'GSSAPI'"),
    ({"ssl_cafile": "/no/such/ca.pem"}, "ssl_cafile: /no/such/ca.pem does not exist"),
    ({"ssl_certfile": "/no/such/cert.pem"}, "ssl_certfile"),
    ({"ssl_keyfile": "/no/such/key.pem"}, "ssl_keyfile"),
    ({"rules_file": "/no/such/rules.toml"}, "rules_file"),
    ({"calendar_file": "/no/such/calendar.toml"}, "calendar_file"),
    ({"max_batch": 0}, "max_batch"),
    ({"log_end_patience_s": -1}, "log_end_patience_s"),
    ({"log_format": "xml"}, "log_format"),
    ({"log_level": "verbose"}, "log_level: 'verbose' is not one of DEBUG"),
    ({"libraries_log_level": "TRACE"}, "libraries_log_level: 'TRACE' is not one of DEBUG"),
    ({"event_loop": "tokio"}, "event_loop: 'tokio' is not uvloop or asyncio"),
    ({"pseudonym_key": ""}, "pseudonym_key: not set"),
])
def test_validate_catches_each_problem(changes, problem):
    problems = PRODUCTION.replace(**changes).validate()
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems


def test_validate_reports_every_problem_at_once():
    s = Settings(broker_url="nope", redis_url="http://x", partitions=0, security_protocol="SASL_SSL")
    fields = {p.split(":")[0] for p in s.validate()}
    assert fields == {"broker_url", "redis_url", "partitions", "sasl_mechanism", "pseudonym_key"}


# --- masked() -------------------------------------------------------------------------------------
def test_masked_hides_the_redis_password_and_keeps_the_user():
    m = PRODUCTION.masked()
    assert m["redis_url"] == "rediss://creditstream:***@redis.example:6380/0"
    assert m["sasl_password"] == "***"
    assert m["sasl_username"] == "creditstream"
    assert m["pseudonym_key"] == "***"
    dumped = json.dumps(m)
    assert "s3cret" not in dumped
    assert "extra" not in m
    assert set(m) == {f for f in Settings.__dataclass_fields__} - {"extra"}


@pytest.mark.parametrize("url, masked", [
    ("redis://:onlypass@redis:6379/0", "redis://***@redis:6379/0"),
    ("redis://user:p@ss:w0rd@redis:6379/0", "redis://user:***@redis:6379/0"),
    ("redis://redis:6379/0", "redis://redis:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
])
def test_mask_secret_redis_urls(url, masked):
    assert mask_secret("redis_url", url) == masked


def test_masked_hides_the_ssl_password_and_leaves_empty_secrets_empty():
    m = Settings(ssl_password="keypass").masked()
    assert m["ssl_password"] == "***"
    assert m["sasl_password"] == ""


def test_config_check_prints_no_secret(workdir, monkeypatch, capsys):
    monkeypatch.setenv("CREDITSTREAM_RUN_DIR", str(workdir / "run"))
    monkeypatch.setenv("CREDITSTREAM_REDIS_URL", "redis://creditstream:hunter2hunter2@redis:6379/0")
    monkeypatch.setenv("CREDITSTREAM_SASL_PASSWORD", "saslhunter2")
    monkeypatch.setenv("CREDITSTREAM_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("CREDITSTREAM_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("CREDITSTREAM_PSEUDONYM_KEY", "hunter2" * 6)
    assert cli.main(["config", "check"]) == cli.EXIT_OK
    out, err = capsys.readouterr()
    assert "hunter2" not in out + err
    assert json.loads(out)["pseudonym_key"] == "***"
    assert json.loads(out)["redis_url"] == "redis://creditstream:***@redis:6379/0"
    assert "settings OK" in err


def test_config_check_fails_on_a_problem(workdir, monkeypatch, capsys):
    monkeypatch.setenv("CREDITSTREAM_RUN_DIR", str(workdir / "run"))
    monkeypatch.setenv("CREDITSTREAM_SECURITY_PROTOCOL", "SASL_SSL")
    assert cli.main(["config", "check"]) == cli.EXIT_NOT_FOUND
    assert "sasl_mechanism: required" in capsys.readouterr().err


# --- kafka_client_kwargs(): SASL / TLS plumbing -----------------------------------------------------
def test_plaintext_kwargs():
    kw = Settings(broker_url="kafka://a:1, PLAINTEXT://b:2,c:3").kafka_client_kwargs()
    assert kw == {"bootstrap_servers": ["a:1", "b:2", "c:3"], "security_protocol": "PLAINTEXT",
                  "metadata_max_age_ms": 30_000}


def test_every_listener_scheme_is_taken_off_the_bootstrap_servers():
    """A broker_url copied from a listener list (``SASL_PLAINTEXT://host:9092``): before, only the
    SASL_PLAINTEXT scheme was left on, and the client looked up the host ``SASL_PLAINTEXT://host``."""
    s = Settings(broker_url="SASL_SSL://a:1,SASL_PLAINTEXT://b:2,SSL://c:3,PLAINTEXT://d:4")
    assert s.bootstrap_servers == ["a:1", "b:2", "c:3", "d:4"]
    assert s.replace(pseudonym_key="k" * 32).validate() == []


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_settings_are_passed_through(mechanism):
    s = Settings(security_protocol="SASL_PLAINTEXT", sasl_mechanism=mechanism, sasl_username="cs",
                 sasl_password="pw")
    kw = s.kafka_client_kwargs()
    assert kw["security_protocol"] == "SASL_PLAINTEXT"
    assert (kw["sasl_mechanism"], kw["sasl_plain_username"], kw["sasl_plain_password"]) == (mechanism, "cs", "pw")
    assert "ssl_context" not in kw


async def test_every_kafka_client_gets_the_sasl_settings():
    """aiokafka accepts the settings (it checks mechanism and protocol when a client is built);
    nothing connects."""
    from streams import kafka

    s = Settings(broker_url="kafka-1:9092", security_protocol="SASL_PLAINTEXT", sasl_mechanism="SCRAM-SHA-512",
                 sasl_username="cs", sasl_password="pw")
    producer = kafka.producer(s)
    consumer = kafka.consumer(s, "t", group_id="g")
    admin = kafka.admin(s)
    try:
        for client in (producer.client, consumer._client, admin._client):
            assert client._security_protocol == "SASL_PLAINTEXT"
            assert client._sasl_mechanism == "SCRAM-SHA-512"
            assert (client._sasl_plain_username, client._sasl_plain_password) == ("cs", "pw")
    finally:
        await producer.stop()
        await consumer.stop()
        await admin.close()


def test_ssl_with_a_missing_file_fails_loudly(tmp_path):
    s = KEYED.replace(security_protocol="SSL", ssl_cafile=str(tmp_path / "missing-ca.pem"))
    assert s.validate() == [f"ssl_cafile: {tmp_path / 'missing-ca.pem'} does not exist"]
    with pytest.raises(FileNotFoundError):
        s.kafka_client_kwargs()


# --- PEM files for the TLS tests -----------------------------------------------------------------------
KEY_PASSWORD = "key-pass-0123"


def _pem_with_cryptography(out: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "creditstream test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "creditstream client")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
            .sign(ca_key, hashes.SHA256()))
    (out / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (out / "client.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (out / "client.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode())))


def _pem_with_openssl(out: Path) -> None:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=out, check=True, capture_output=True, timeout=60)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=creditstream test CA")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "plain.key", "-out", "client.csr", "-subj", "/CN=creditstream client")
    run("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "client.pem", "-days", "30")
    run("pkcs8", "-topk8", "-in", "plain.key", "-out", "client.key", "-passout", f"pass:{KEY_PASSWORD}")


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pem")
    try:
        _pem_with_cryptography(out)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor openssl is installed: no PEM files to test TLS")
        _pem_with_openssl(out)
    return out


def tls_settings(pem: Path, **changes) -> Settings:
    base = Settings(security_protocol="SSL", ssl_cafile=str(pem / "ca.pem"), ssl_certfile=str(pem / "client.pem"),
                    ssl_keyfile=str(pem / "client.key"), ssl_password=KEY_PASSWORD, pseudonym_key=KEYED.pseudonym_key)
    return base.replace(**changes)


def test_ssl_context_is_built_from_the_files(pem_files):
    s = tls_settings(pem_files)
    assert s.validate() == []
    kw = s.kafka_client_kwargs()
    ctx = kw["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    subjects = [dict(x[0] for x in c["subject"]) for c in ctx.get_ca_certs()]
    assert {"commonName": "creditstream test CA"} in subjects
    assert kw["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in kw


def test_sasl_ssl_passes_both(pem_files):
    s = tls_settings(pem_files, security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-256",
                     sasl_username="cs", sasl_password="pw")
    kw = s.kafka_client_kwargs()
    assert isinstance(kw["ssl_context"], ssl.SSLContext)
    assert kw["sasl_mechanism"] == "SCRAM-SHA-256" and kw["sasl_plain_password"] == "pw"


def test_ca_only_is_enough_for_server_authentication(pem_files):
    s = Settings(security_protocol="SSL", ssl_cafile=str(pem_files / "ca.pem"))
    assert isinstance(s.kafka_client_kwargs()["ssl_context"], ssl.SSLContext)


def test_a_wrong_key_password_fails(pem_files):
    with pytest.raises(ssl.SSLError):
        tls_settings(pem_files, ssl_password="wrong").kafka_client_kwargs()


def test_plaintext_ignores_the_ssl_files(pem_files):
    s = tls_settings(pem_files, security_protocol="PLAINTEXT")
    assert "ssl_context" not in s.kafka_client_kwargs()


async def test_kafka_clients_take_the_ssl_context(pem_files):
    from streams import kafka

    s = tls_settings(pem_files, broker_url="kafka-1:9093")
    producer = kafka.producer(s)
    admin = kafka.admin(s)
    try:
        for client in (producer.client, admin._client):
            assert client._security_protocol == "SSL"
            assert isinstance(client._ssl_context, ssl.SSLContext)
    finally:
        await producer.stop()
        await admin.close()


def test_the_worker_app_starts_no_kafka_client_of_its_own():
    """Faust hosts the worker (lifecycle, signals, web server) but opens no Kafka connection: no
    consumer group of its own that rebalances with every worker (it logged "Heartbeat session
    expired" at error level every few seconds with two workers), no producer, no leader topic."""
    from creditstream.app import create_faust_app

    with socket.socket() as probe:  # a free port: the default one may be a running worker's
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_faust_app(Settings(replication_factor=3, broker_kind="kafka", web_port=port), web=True)
    services = list(app.on_init_dependencies())
    assert app.consumer not in services and app.producer not in services and app.topics not in services
    assert app._leader_assignor not in services
    assert app.web in services  # --web still serves the API
    plain = create_faust_app(Settings())
    assert not any(s in list(plain.on_init_dependencies()) for s in (plain.consumer, plain.producer))


def test_config_check_warns_when_redis_has_no_password():
    bare = Settings(redis_url="redis://10.0.0.5:6379/0").warnings()
    assert len(bare) == 1 and bare[0].startswith("redis_url has no password")
    assert Settings(redis_url="redis://cs:s3cret@10.0.0.5:6379/0").warnings() == []
    assert Settings(redis_url="rediss://:s3cret@10.0.0.5:6380/0").warnings() == []
    assert Settings(redis_url="unix:///run/redis.sock").warnings() == []


def test_validate_loads_the_rules_and_calendar_files_as_a_worker_would(tmp_path):
    # config check said nothing of a calendar or rules file the worker then refused to load at start
    calendar = tmp_path / "calendar.toml"
    calendar.write_text('[holidays]\n2027 = ["2027-01-01", "2027-05-01", "2027-05-02"]\n', encoding="utf-8")
    rules = tmp_path / "rules.toml"
    rules.write_text('version = ""\n', encoding="utf-8")
    problems = PRODUCTION.replace(calendar_file=str(calendar), rules_file=str(rules)).validate()
    assert [p.split(":")[0] for p in problems] == ["rules_file", "calendar_file"], problems
    assert "2027-10-01" in problems[1]
    calendar.write_text('[holidays]\n2027 = ["2027-01-01", "2027-05-01", "2027-05-02", "2027-10-01", "2027-10-02",'
                        ' "2027-10-03"]\n', encoding="utf-8")
    assert PRODUCTION.replace(calendar_file=str(calendar)).validate() == []


def test_a_misspelt_variable_is_named_with_the_setting_it_may_mean():
    from creditstream.settings import unknown_variables

    said = unknown_variables({"CREDITSTREAM_RULE_FILE": "/x", "CREDITSTREAM_RULES_FILE": "/y", "CREDITSTREAM_SETTINGS": "a",
                              "CREDITSTREAM_TEST_BROKER": "kafka", "CREDITSTREAM_PURE_PYTHON": "1", "OTHER": "1"})
    assert said == ["environment variable CREDITSTREAM_RULE_FILE names no setting: it is ignored "
                    "(did you mean CREDITSTREAM_RULES_FILE?)"]


def test_a_port_out_of_range_and_a_directory_for_a_file_are_problems(tmp_path):
    problems = Settings(web_port=99999, rules_file=str(tmp_path)).validate()
    assert "web_port: 99999 is not a TCP port (1 to 65535)" in problems
    assert f"rules_file: {tmp_path} is a directory, not a file" in problems
