"""The twin's directory, rendered without root or daemons: slapd's cn=config, the base tree, user
and group entries, sssd.conf and nsswitch.conf against golden files; the settings taken from a
config's DirectoryService (prod.yaml's); names the directory accepts; the twin's CA and the head
node's certificate. tests/test_directory_ldap.py runs all of it for real."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from hpctool.configs.render import VALUES_DIR, render_values
from hpctool.errors import ConfigError, SetupError, TwinError, UsageError
from hpctool.twin.directory import (
    DirectorySettings,
    DirectoryUser,
    SlapdPaths,
    base_dn_of,
    ldif_value,
    normal_dn,
    render_base_tree,
    render_group,
    render_member_change,
    render_nsswitch,
    render_slapd_config,
    render_sssd_conf,
    render_user,
    settings_from_config,
    split_dn,
)
from hpctool.twin.directory_run import DirectoryFolder, DirectoryServer
from hpctool.twin.directory_users import parse_ldif
from hpctool.twin.tls import TlsFiles, ensure_tls, make_ca, make_server_cert, server_cert_current
from hpctool.twin.usernames import (
    MAX_LENGTH,
    local_ids,
    local_names,
    validate_group_name,
    validate_user_name,
)
from support.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden" / "twin" / "directory"
PASSWORD = "not-a-real-password"
PATHS = SlapdPaths(data_dir="/var/lib/hpctool/directory/data", ca_cert="/var/lib/hpctool/directory/tls/ca.crt",
                   server_cert="/var/lib/hpctool/directory/tls/server.crt",
                   server_key="/var/lib/hpctool/directory/tls/server.key")
# The node image's nsswitch.conf as hpctool.twin.image leaves it (libnss-sss's postinst added sss
# to the other lines; the image points passwd, group and shadow at extrausers).
IMAGE_NSSWITCH = """\
# /etc/nsswitch.conf
passwd: files extrausers
group: files extrausers
shadow: files extrausers
gshadow:        files

hosts:          files dns
services:       db files sss
netgroup:       nis sss
automount:  sss
"""


def prod_directory() -> dict:
    values = yaml.safe_load((VALUES_DIR / "prod.yaml").read_text())
    return yaml.safe_load(render_values(values, "prod.yaml"))["DirectoryService"]


# -- golden files -------------------------------------------------------------------------------------
def test_slapd_config_matches_golden():
    text = render_slapd_config(DirectorySettings(), PATHS)
    assert_golden(text, GOLDEN / "slapd-config.ldif")
    assert "ldap://" not in text and PASSWORD not in text


def test_base_tree_matches_golden_for_the_twin_and_for_prod():
    assert_golden(render_base_tree(DirectorySettings()), GOLDEN / "base-twin.ldif")
    prod = render_base_tree(settings_from_config(prod_directory()))
    assert_golden(prod, GOLDEN / "base-prod.ldif")
    dns = [e["dn"][0] for e in parse_ldif(prod)]
    # AD's layout for the read-only user: every entry above it is made, the topmost first
    assert dns.index("ou=CORP,dc=corp,dc=example,dc=com") < dns.index("ou=Users,ou=CORP,dc=corp,dc=example,dc=com")
    assert dns[-1] == "cn=ReadOnlyUser,ou=Users,ou=CORP,dc=corp,dc=example,dc=com"


def test_sssd_conf_matches_golden_for_the_twin_and_for_prod():
    twin = render_sssd_conf(DirectorySettings(), PASSWORD)
    assert_golden(twin, GOLDEN / "sssd.conf")
    prod = render_sssd_conf(settings_from_config(prod_directory(), uri="ldaps://head:636"), PASSWORD)
    assert_golden(prod, GOLDEN / "sssd-prod.conf")
    lines = prod.splitlines()
    assert "ldap_uri = ldaps://head:636" in lines  # the twin's head, not the config's controller
    assert "ldap_tls_cacert = /opt/parallelcluster/shared/directory_service/domain-ca.crt" in lines
    assert "simple_allow_groups = hpc-users" in lines and "access_provider = simple" in lines
    assert not any(line.startswith("ldap_access_filter") for line in lines)
    domain = lines[1:lines.index("")]
    assert domain == sorted(domain)  # sorted, as ParallelCluster's template writes them


def test_user_group_and_membership_ldif_match_golden():
    settings = DirectorySettings()
    text = "\n".join([render_user(settings, DirectoryUser("alice", 20000, 20001)),
                      render_group(settings, "lab", 20001, ["bob", "alice", "alice"]),
                      render_member_change(settings, "lab", "carol", add=True),
                      render_member_change(settings, "lab", "bob", add=False)])
    assert_golden(text, GOLDEN / "entries.ldif")


def test_nsswitch_puts_sss_after_local_users_once():
    text = render_nsswitch(IMAGE_NSSWITCH)
    assert_golden(text, GOLDEN / "nsswitch.conf")
    assert "passwd: files extrausers sss" in text.splitlines()
    assert render_nsswitch(text) == text  # rendering again changes nothing
    assert "gshadow:        files" in text.splitlines()


# -- settings from a config ---------------------------------------------------------------------------
def test_settings_follow_the_config_names():
    settings = settings_from_config(prod_directory())
    assert settings.base_dn == "dc=corp,dc=example,dc=com"
    assert settings.read_only_dn == "cn=ReadOnlyUser,ou=Users,ou=CORP,dc=corp,dc=example,dc=com"
    assert settings.allow_groups == ("hpc-users",) and settings.access_filter is None
    assert settings_from_config(None) == DirectorySettings()


def test_domain_names_and_dns():
    assert base_dn_of("corp.example.com") == "dc=corp,dc=example,dc=com"
    assert base_dn_of("DC=corp, DC=example,DC=com") == "dc=corp,dc=example,dc=com"
    assert split_dn(r"cn=Doe\, Jane,ou=Users") == [r"cn=Doe\, Jane", "ou=Users"]
    assert normal_dn("CN=Ro , OU=Users") == "cn=Ro,ou=Users"


def test_other_access_filters_stay_and_the_twin_keeps_its_own_sssd_settings():
    section = {"DomainName": "corp.example.com", "DomainReadOnlyUser": "cn=ro,dc=corp,dc=example,dc=com",
               "LdapAccessFilter": "(loginShell=/bin/bash)",
               "AdditionalSssdConfigs": {"ldap_uri": "ldaps://elsewhere", "debug_level": "0x1F0",
                                         "ldap_auth_disable_tls_never_use_in_production": True,
                                         "enumerate": True}}
    settings = settings_from_config(section)
    conf = render_sssd_conf(settings, PASSWORD).splitlines()
    assert "ldap_access_filter = (loginShell=/bin/bash)" in conf and "access_provider = ldap" in conf
    assert "debug_level = 0x1F0" in conf and "enumerate = True" in conf
    assert "ldap_uri = ldaps://head:636" in conf and not any("elsewhere" in line for line in conf)
    assert not any(line.startswith("ldap_auth_disable_tls") for line in conf)


@pytest.mark.parametrize("user, words", [
    ("cn=ro,dc=other,dc=org", "not under the domain"),
    ("uid=ro", "not under the domain"),
    ("o=ro,dc=corp,dc=example,dc=com", "does not start with cn= or uid="),
])
def test_a_read_only_user_the_twin_cannot_make_is_a_config_error(user, words):
    with pytest.raises(ConfigError, match=words):
        settings_from_config({"DomainName": "corp.example.com", "DomainReadOnlyUser": user})


def test_entries_between_the_domain_and_the_read_only_user_must_be_ou_or_cn():
    settings = DirectorySettings(base_dn="dc=a,dc=b", read_only_dn="cn=ro,l=Paris,dc=a,dc=b")
    with pytest.raises(ConfigError, match="l= is not"):
        render_base_tree(settings)


# -- LDIF ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, encoded", [
    ("plain", False), (" leading space", True), ("trailing ", True), (":colon", True), ("<angle", True),
    ("Zoë", True), ("two\nlines", True),
])
def test_ldif_values_are_base64_where_ldif_requires_it(value, encoded):
    line = ldif_value("cn", value)
    assert line.startswith("cn:: ") is encoded
    assert parse_ldif(f"dn: cn=x\n{line}\n")[0]["cn"] == [value]


def test_parse_ldif_reads_folded_lines_comments_and_several_entries():
    text = "# search result\ndn: uid=alice,ou=People,dc=twin,\n dc=hpctool\nuid: alice\n\ndn: cn=lab\nmemberUid: a\nmemberUid: b\n"
    entries = parse_ldif(text)
    assert entries == [{"dn": ["uid=alice,ou=People,dc=twin,dc=hpctool"], "uid": ["alice"]},
                       {"dn": ["cn=lab"], "memberuid": ["a", "b"]}]


# -- names --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["alice", "a", "j-doe", "j_doe", "user42", "a" * MAX_LENGTH])
def test_good_user_names_pass(name):
    assert validate_user_name(name) == name
    assert validate_group_name(name) == name


@pytest.mark.parametrize("name, words, hint", [
    ("", "missing", "alice"),
    ("Alice", "not a valid name", "lower case (alice)"),
    ("42", "not a valid name", "start with a lower-case letter"),
    ("-x", "not a valid name", "start with a lower-case letter"),
    ("jane.doe", "not a valid name", "'.'"),
    ("a,b", "not a valid name", "','"),
    ("a=b", "not a valid name", "'='"),
    ("bob$", "not a valid name", "'$'"),
    ("zoë", "not a valid name", "'ë'"),
    ("a" * (MAX_LENGTH + 1), "33 characters long", "at most 32"),
    ("root", "reserved", "another name"),
    ("slurm", "reserved", "another name"),
    ("munge", "reserved", "another name"),
])
def test_bad_user_names_are_refused_with_a_hint(name, words, hint):
    with pytest.raises(UsageError) as error:
        validate_user_name(name)
    assert words in error.value.message and hint in error.value.hint, (error.value.message, error.value.hint)


def test_local_and_existing_names_are_refused():
    passwd = "root:x:0:0:root:/root:/bin/bash\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\n"
    with pytest.raises(UsageError, match="reserved"):
        validate_user_name("messagebus", reserved=local_names(passwd))
    with pytest.raises(UsageError, match="already exists"):
        validate_user_name("alice", taken=["alice"])
    with pytest.raises(UsageError, match="group 'lab' already exists"):
        validate_group_name("lab", taken=["lab"])
    assert local_names(passwd) == {"root", "messagebus"}
    assert local_ids(passwd + "# a comment\nbroken line\njdoe:x:20000:20000::/home/jdoe:/bin/sh\n") == {0, 100, 20000}


# -- certificates -------------------------------------------------------------------------------------
def test_the_server_certificate_is_issued_by_the_ca_for_the_head(tmp_path):
    ca_key, ca_cert = make_ca()
    key, cert_pem = make_server_cert(ca_key, ca_cert, ["head", "head.twin"], ["10.200.0.10"])
    ca = x509.load_pem_x509_certificate(ca_cert.encode())
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert alt.get_values_for_type(x509.DNSName) == ["head", "head.twin"]
    assert [str(a) for a in alt.get_values_for_type(x509.IPAddress)] == ["10.200.0.10"]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) > datetime.timedelta(days=800)
    assert "PRIVATE KEY" in key and "ENCRYPTED" not in key


def test_ensure_tls_makes_the_ca_once_keys_0600_and_reissues_for_new_names(tmp_path):
    files = TlsFiles(tmp_path / "tls")
    owner = (os.getuid(), os.getgid())
    assert ensure_tls(files, ["head"], ["10.0.0.10"], key_owner=owner) is True
    for key in (files.ca_key, files.server_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600
    ca_before, server_before = files.ca_cert.read_text(), files.server_cert.read_text()
    assert ensure_tls(files, ["head"], ["10.0.0.10"]) is False  # current: nothing written
    assert server_cert_current(files, ["head"], ["10.0.0.10"])
    assert not server_cert_current(files, ["head"], ["10.0.0.11"])
    assert ensure_tls(files, ["head"], ["10.0.0.11"]) is True  # a new address: a new certificate
    assert files.ca_cert.read_text() == ca_before and files.server_cert.read_text() != server_before
    other = TlsFiles(tmp_path / "other")
    ensure_tls(other, ["head"], ["10.0.0.11"])
    files.ca_cert.write_text(other.ca_cert.read_text())  # the CA changed under the certificate
    assert not server_cert_current(files, ["head"], ["10.0.0.11"])


# -- the server's folder, before anything runs ---------------------------------------------------------
def never_on_head(argv: list[str]) -> list[str]:
    raise AssertionError(f"nothing may run on the head: {argv}")


def test_a_folder_made_for_another_domain_is_refused_before_anything_runs(tmp_path):
    folder = DirectoryFolder(tmp_path / "directory")
    folder.root.mkdir()
    (folder.root / "base-dn").write_text("dc=corp,dc=example,dc=com\n")
    server = DirectoryServer(folder, DirectorySettings(), never_on_head, (os.getuid(), os.getgid()))
    with pytest.raises(TwinError, match="holds dc=corp,dc=example,dc=com, not dc=twin,dc=hpctool") as error:
        server.prepare(["head"], ["10.0.0.10"])
    assert "down --purge" in error.value.hint
    assert stat.S_IMODE(folder.socket.parent.stat().st_mode) == 0o700


def test_a_socket_path_too_long_for_ldapi_is_refused(tmp_path):
    folder = DirectoryFolder(tmp_path / ("d" * 120))
    server = DirectoryServer(folder, DirectorySettings(), never_on_head, (os.getuid(), os.getgid()))
    with pytest.raises(SetupError, match="longer than 107 bytes"):
        server.prepare(["head"])
    assert folder.ldapi_uri.startswith("ldapi://%2F") and "/" not in folder.ldapi_uri[len("ldapi://"):]
