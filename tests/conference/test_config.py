"""conference/config.py: defaults < TOML file < HOINGHI_* environment < CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from conference.config import Config, load_config
from conference.errors import InvalidInput


def write_toml(tmp_path: Path, text: str, name: str = "hoinghi.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- defaults --------------------------------------------------------------------


def test_defaults_without_any_source() -> None:
    config = load_config()
    assert config == Config()
    assert config.host == "127.0.0.1"
    assert config.port == 8080
    assert config.data_dir == Path("var")
    assert config.database_url == ""
    assert config.public_url == ""
    assert config.tls_cert is None
    assert config.tls_key is None
    assert config.self_signed is False
    assert config.lobby_minutes == 30
    assert config.grace_minutes == 60
    assert config.api_token_seconds == 900
    assert config.session_seconds == 12 * 3600
    assert config.max_body_bytes == 1024 * 1024
    assert config.issuer == "hoinghi"
    assert config.log_level == "INFO"
    assert config.config_file is None


def test_load_config_does_not_read_the_process_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOINGHI_PORT", "9999")
    assert load_config().port == 8080
    assert load_config(environ={}).port == 8080


def test_environment_variables_without_the_prefix_are_ignored() -> None:
    config = load_config(environ={"PORT": "9999", "HOST": "0.0.0.0", "HOINGHI_NOPE": "1"})  # noqa: S104
    assert config == Config()


# --- precedence, one layer against the one below ------------------------------------


def test_toml_file_overrides_defaults(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9001\nissuer = "hoinghi-qb"\n')
    config = load_config(config_file=path)
    assert config.port == 9001
    assert config.issuer == "hoinghi-qb"
    assert config.host == "127.0.0.1"  # not in the file: default
    assert config.config_file == path


def test_environment_overrides_toml_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9001\nhost = "10.0.0.1"\n')
    config = load_config(environ={"HOINGHI_PORT": "9002"}, config_file=path)
    assert config.port == 9002
    assert config.host == "10.0.0.1"  # not in the environment: file


def test_cli_overrides_environment(tmp_path: Path) -> None:
    config = load_config(
        cli={"port": 9003},
        environ={"HOINGHI_PORT": "9002", "HOINGHI_HOST": "10.0.0.2"},
    )
    assert config.port == 9003
    assert config.host == "10.0.0.2"  # not on the command line: environment


def test_cli_overrides_toml_file_when_environment_is_silent(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9001\nlobby_minutes = 15\n")
    config = load_config(cli={"port": 9003}, environ={}, config_file=path)
    assert config.port == 9003
    assert config.lobby_minutes == 15


def test_all_four_layers_together(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        'port = 9001\nhost = "10.0.0.1"\nissuer = "from-file"\nlobby_minutes = 10\n',
    )
    config = load_config(
        cli={"port": 9003},
        environ={"HOINGHI_PORT": "9002", "HOINGHI_HOST": "10.0.0.2"},
        config_file=path,
    )
    assert config.port == 9003  # cli
    assert config.host == "10.0.0.2"  # env
    assert config.issuer == "from-file"  # file
    assert config.lobby_minutes == 10  # file
    assert config.grace_minutes == 60  # default


def test_cli_none_means_not_given() -> None:
    config = load_config(
        cli={"port": None, "host": None, "self_signed": None},
        environ={"HOINGHI_PORT": "9002", "HOINGHI_SELF_SIGNED": "true"},
    )
    assert config.port == 9002
    assert config.host == "127.0.0.1"
    assert config.self_signed is True


def test_cli_keys_that_are_not_settings_are_ignored() -> None:
    """The CLI passes its whole argparse namespace (command, username, ...)."""
    config = load_config(cli={"command": "serve", "username": "thuky", "port": 9010})
    assert config.port == 9010


# --- the TOML file -----------------------------------------------------------------


def test_toml_with_a_hoinghi_table(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        '[hoinghi]\nport = 9100\ndata_dir = "/srv/hoinghi"\nself_signed = true\n\n'
        "[other-tool]\nport = 1\n",
    )
    config = load_config(config_file=path)
    assert config.port == 9100
    assert config.data_dir == Path("/srv/hoinghi")
    assert config.self_signed is True


def test_toml_without_a_table_uses_top_level_keys(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'port = 9200\npublic_url = "https://hop.quangbinh.gov.vn"\n')
    config = load_config(config_file=path)
    assert config.port == 9200
    assert config.public_url == "https://hop.quangbinh.gov.vn"


def test_toml_keys_may_be_written_with_dashes(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'data-dir = "/srv/hn"\nlobby-minutes = 5\n')
    config = load_config(config_file=path)
    assert config.data_dir == Path("/srv/hn")
    assert config.lobby_minutes == 5


def test_toml_keeps_vietnamese_text(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'issuer = "Hội nghị Quảng Bình"\n')
    assert load_config(config_file=path).issuer == "Hội nghị Quảng Bình"


def test_unknown_toml_key_is_invalid_input_naming_it(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9000\nprot = 9001\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "prot"
    assert "prot" in info.value.message


def test_unknown_key_inside_the_hoinghi_table_is_invalid_input(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "[hoinghi]\nsecret_key = 'x'\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "secret_key"


def test_config_file_key_in_a_toml_file_is_refused(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'config_file = "/etc/other.toml"\n')
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "config_file"


def test_missing_toml_file_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=tmp_path / "absent.toml")
    assert info.value.field == "config_file"


def test_toml_syntax_error_is_invalid_input(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = = 9000\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "config_file"


def test_config_file_named_by_environment(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = 9300\n")
    config = load_config(environ={"HOINGHI_CONFIG": str(path)})
    assert config.port == 9300
    assert config.config_file == path


def test_config_file_named_on_the_cli_wins_over_the_environment(tmp_path: Path) -> None:
    from_cli = write_toml(tmp_path, "port = 9401\n", "cli.toml")
    from_env = write_toml(tmp_path, "port = 9402\n", "env.toml")
    from_arg = write_toml(tmp_path, "port = 9403\n", "arg.toml")
    config = load_config(
        cli={"config_file": from_cli},
        environ={"HOINGHI_CONFIG": str(from_env)},
        config_file=from_arg,
    )
    assert config.port == 9401
    assert config.config_file == from_cli
    assert load_config(environ={"HOINGHI_CONFIG": str(from_env)}, config_file=from_arg).port == (
        9402
    )


def test_toml_bool_for_an_int_field_is_invalid_input(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "port = true\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "port"


def test_toml_float_for_an_int_field_is_invalid_input(tmp_path: Path) -> None:
    """A float is a value of the wrong type; it must not be silently truncated."""
    path = write_toml(tmp_path, "port = 8080.7\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "port"


def test_toml_number_for_a_path_field_is_invalid_input(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "data_dir = 5\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "data_dir"


def test_toml_number_for_a_text_field_is_invalid_input(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "issuer = 5\n")
    with pytest.raises(InvalidInput) as info:
        load_config(config_file=path)
    assert info.value.field == "issuer"


# --- environment values --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HOINGHI_PORT", "eighty"),
        ("HOINGHI_PORT", "80.5"),
        ("HOINGHI_LOBBY_MINUTES", "ba mươi"),
        ("HOINGHI_MAX_BODY_BYTES", "1MB"),
    ],
)
def test_bad_int_in_environment_is_invalid_input_naming_the_field(name: str, value: str) -> None:
    field = name.removeprefix("HOINGHI_").lower()
    with pytest.raises(InvalidInput) as info:
        load_config(environ={name: value})
    assert info.value.field == field
    assert field in info.value.message
    assert info.value.code == "invalid_field"


def test_int_in_environment_is_parsed() -> None:
    config = load_config(environ={"HOINGHI_PORT": "9500", "HOINGHI_GRACE_MINUTES": "0"})
    assert config.port == 9500
    assert config.grace_minutes == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        (" Yes ", True),
        ("on", True),
        ("false", False),
        ("0", False),
        ("no", False),
        ("off", False),
        ("", False),
    ],
)
def test_bool_parsing_from_environment(value: str, expected: bool) -> None:
    config = load_config(environ={"HOINGHI_SELF_SIGNED": value})
    assert config.self_signed is expected


@pytest.mark.parametrize("value", ["maybe", "2", "có", "truee"])
def test_unrecognised_bool_is_invalid_input(value: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(environ={"HOINGHI_SELF_SIGNED": value})
    assert info.value.field == "self_signed"


def test_bool_from_environment_overrides_a_true_in_the_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "self_signed = true\n")
    assert load_config(config_file=path).self_signed is True
    assert load_config(environ={"HOINGHI_SELF_SIGNED": "0"}, config_file=path).self_signed is False


def test_path_fields_from_environment_are_paths(tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    config = load_config(
        environ={
            "HOINGHI_DATA_DIR": str(tmp_path / "dữ liệu"),
            "HOINGHI_TLS_CERT": str(cert),
            "HOINGHI_TLS_KEY": str(key),
        }
    )
    assert config.data_dir == tmp_path / "dữ liệu"
    assert isinstance(config.data_dir, Path)
    assert config.tls_cert == cert
    assert isinstance(config.tls_cert, Path)
    assert config.tls_key == key


def test_path_fields_from_cli_strings_are_paths(tmp_path: Path) -> None:
    config = load_config(cli={"data_dir": str(tmp_path)})
    assert config.data_dir == tmp_path
    assert isinstance(config.data_dir, Path)


def test_path_objects_from_the_cli_are_accepted(tmp_path: Path) -> None:
    """argparse gives ``Path`` objects for --data-dir, --config, --tls-cert and --tls-key."""
    toml = write_toml(tmp_path, "port = 9600\n")
    config = load_config(
        cli={
            "data_dir": tmp_path / "data",
            "config_file": toml,
            "tls_cert": tmp_path / "c.pem",
            "tls_key": tmp_path / "k.pem",
        }
    )
    assert config.data_dir == tmp_path / "data"
    assert config.config_file == toml
    assert config.port == 9600
    assert config.tls_cert == tmp_path / "c.pem"
    assert config.tls_key == tmp_path / "k.pem"


def test_empty_optional_path_in_environment_means_none(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'tls_cert = "/a.pem"\ntls_key = "/b.pem"\n')
    assert load_config(config_file=path).tls_cert == Path("/a.pem")
    config = load_config(environ={"HOINGHI_TLS_CERT": "", "HOINGHI_TLS_KEY": ""}, config_file=path)
    assert config.tls_cert is None
    assert config.tls_key is None


def _load_or_refusal(environ: dict[str, str]) -> tuple[Config | None, InvalidInput | None]:
    try:
        return load_config(environ=environ), None
    except InvalidInput as e:
        return None, e


def test_empty_data_dir_in_environment_never_yields_a_non_path() -> None:
    """``data_dir`` is not optional: an empty value must be refused or fall back, not be None."""
    config, refusal = _load_or_refusal({"HOINGHI_DATA_DIR": ""})
    if refusal is not None:
        assert refusal.field == "data_dir"
    else:
        assert config is not None
        assert isinstance(config.data_dir, Path)
        assert config.effective_database_url.startswith("sqlite+aiosqlite:///")


# --- derived values ---------------------------------------------------------------


def test_effective_database_url_defaults_to_sqlite_under_data_dir(tmp_path: Path) -> None:
    config = load_config(cli={"data_dir": tmp_path / "data"})
    assert config.effective_database_url == (
        f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'hoinghi.db').resolve()}"
    )


def test_effective_database_url_of_a_relative_data_dir_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    url = load_config().effective_database_url
    assert url == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'var' / 'hoinghi.db'}"


def test_explicit_database_url_is_used_as_given() -> None:
    url = "postgresql://hoinghi@db.internal/hoinghi"
    config = load_config(environ={"HOINGHI_DATABASE_URL": url})
    assert config.effective_database_url == url


def test_effective_public_url_defaults_to_http_host_and_port() -> None:
    assert load_config().effective_public_url == "http://127.0.0.1:8080"
    assert load_config(cli={"port": 9000}).effective_public_url == "http://127.0.0.1:9000"


def test_effective_public_url_uses_https_when_self_signed() -> None:
    config = load_config(cli={"self_signed": True, "port": 8443})
    assert config.tls_enabled
    assert config.effective_public_url == "https://127.0.0.1:8443"


def test_effective_public_url_uses_https_with_cert_and_key() -> None:
    config = load_config(cli={"tls_cert": "/c.pem", "tls_key": "/k.pem"})
    assert config.effective_public_url == "https://127.0.0.1:8080"


def test_effective_public_url_brackets_ipv6() -> None:
    config = load_config(cli={"host": "::1", "port": 8443, "self_signed": True})
    assert config.effective_public_url == "https://[::1]:8443"
    config = load_config(cli={"host": "fd00::10"})
    assert config.effective_public_url == "http://[fd00::10]:8080"


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])  # noqa: S104
def test_effective_public_url_of_a_wildcard_host_is_localhost(host: str) -> None:
    config = load_config(cli={"host": host})
    assert config.effective_public_url == "http://localhost:8080"


def test_explicit_public_url_is_used_without_trailing_slash() -> None:
    config = load_config(cli={"public_url": "https://hop.quangbinh.gov.vn/", "port": 1})
    assert config.effective_public_url == "https://hop.quangbinh.gov.vn"


# --- validate() ------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, -1, 65536, 100000])
def test_port_out_of_range_is_invalid_input(port: int) -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(cli={"port": port})
    assert info.value.field == "port"
    with pytest.raises(InvalidInput):
        Config(port=port).validate()


@pytest.mark.parametrize("port", [1, 443, 65535])
def test_port_at_the_edges_of_the_range_is_accepted(port: int) -> None:
    assert load_config(cli={"port": port}).port == port


def test_tls_cert_without_tls_key_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(cli={"tls_cert": "/etc/hoinghi/cert.pem"})
    assert info.value.field == "tls_cert"


def test_tls_key_without_tls_cert_is_invalid_input() -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(environ={"HOINGHI_TLS_KEY": "/etc/hoinghi/key.pem"})
    assert info.value.field == "tls_cert"


@pytest.mark.parametrize("name", ["lobby_minutes", "grace_minutes"])
def test_negative_minutes_are_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(cli={name: -1})
    assert info.value.field == name


@pytest.mark.parametrize("name", ["api_token_seconds", "session_seconds", "max_body_bytes"])
def test_non_positive_durations_and_sizes_are_invalid_input(name: str) -> None:
    with pytest.raises(InvalidInput) as info:
        load_config(environ={f"HOINGHI_{name.upper()}": "0"})
    assert info.value.field == name
