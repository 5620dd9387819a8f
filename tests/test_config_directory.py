"""The directory service: the `directory` values render ParallelCluster's DirectoryService, and the
directory check reads it value by value (tables of good and bad values, each with the finding's level
and text); the rendered configs pass ParallelCluster's schema, and --deep its own validators."""

from __future__ import annotations

import copy

import pytest
import yaml

from hpctool.configs.checks.registry import Config
from hpctool.configs.checks.run import run_check
from hpctool.configs.render import VALUES_DIR, apply_overrides, render, render_values
from hpctool.configs.schema import config_region, schema_findings
from hpctool.configs.validate import validate_config, validate_configs
from hpctool.errors import ConfigError

DS = "DirectoryService"
READ_ONLY = "cn=ReadOnlyUser,ou=Users,ou=CORP,dc=corp,dc=example,dc=com"
GOOD = {
    "DomainName": "corp.example.com",
    "DomainAddr": "ldaps://ldap.corp.example.com",
    "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ro-AbCdEf",
    "DomainReadOnlyUser": READ_ONLY,
    "LdapTlsCaCert": "/opt/parallelcluster/shared/directory_service/domain-ca.crt",
    "LdapTlsReqCert": "hard",
    "LdapAccessFilter": "memberOf=cn=hpc-users,ou=Users,ou=CORP,dc=corp,dc=example,dc=com",
}
ON = ["directory.domain_name=corp.example.com", "directory.domain_addr=ldaps://ldap.corp.example.com",
      "directory.password_secret_arn=arn:aws:secretsmanager:us-east-1:123456789012:secret:ro-AbCdEf",
      f"directory.read_only_user={READ_ONLY}"]


def values(name: str = "dev", *overrides: str) -> dict:
    return apply_overrides(yaml.safe_load((VALUES_DIR / f"{name}.yaml").read_text()), list(overrides))


def rendered(name: str = "dev", *overrides: str) -> dict:
    return yaml.safe_load(render_values(values(name, *overrides), f"{name}.yaml"))


def findings(section: object, region: str = "us-east-1") -> list[tuple[str, str, str]]:
    found, _ = run_check("directory", Config({"Region": region, DS: section}, None))
    return [(str(f.level), f.path.removeprefix(DS), f.message) for f in found]


# -- rendering ------------------------------------------------------------------------------------
def test_without_directory_values_there_is_no_section() -> None:
    assert DS not in rendered("dev")
    assert DS not in yaml.safe_load(render(VALUES_DIR / "dev.yaml"))


def test_the_values_render_every_field() -> None:
    config = rendered("dev", *ON, "directory.ldap_tls_ca_cert=/etc/pki/ca.pem", "directory.ldap_tls_req_cert=demand",
                      "directory.ldap_access_filter=(memberOf=cn=hpc,dc=corp,dc=example,dc=com)",
                      "directory.generate_ssh_keys_for_users=false",
                      "directory.additional_sssd_configs={debug_level: '0x1F0', cache_credentials: false}")
    assert config[DS] == {
        "DomainName": "corp.example.com", "DomainAddr": "ldaps://ldap.corp.example.com",
        "PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:ro-AbCdEf",
        "DomainReadOnlyUser": READ_ONLY, "LdapTlsCaCert": "/etc/pki/ca.pem", "LdapTlsReqCert": "demand",
        "LdapAccessFilter": "(memberOf=cn=hpc,dc=corp,dc=example,dc=com)", "GenerateSshKeysForUsers": False,
        "AdditionalSssdConfigs": {"debug_level": "0x1F0", "cache_credentials": False}}


def test_empty_optional_values_leave_their_fields_out_and_defaults_are_explicit() -> None:
    section = rendered("dev", *ON)[DS]
    assert set(section) == {"DomainName", "DomainAddr", "PasswordSecretArn", "DomainReadOnlyUser",
                            "LdapTlsReqCert", "GenerateSshKeysForUsers"}
    assert (section["LdapTlsReqCert"], section["GenerateSshKeysForUsers"]) == ("hard", True)


def test_allow_plain_ldap_renders_sssds_own_opt_out_next_to_the_other_settings() -> None:
    config = rendered("dev", *ON, "directory.domain_addr=ldap://10.0.0.5", "directory.allow_plain_ldap=true",
                      "directory.additional_sssd_configs.debug_level=9")
    assert config[DS]["AdditionalSssdConfigs"] == {"debug_level": 9,
                                                   "ldap_auth_disable_tls_never_use_in_production": True}


def test_prod_enables_the_directory_and_dev_does_not() -> None:
    prod = rendered("prod")[DS]
    assert prod["DomainAddr"].startswith("ldaps://") and prod["LdapTlsReqCert"] == "hard"
    assert prod["LdapTlsCaCert"].startswith("/") and prod["DomainReadOnlyUser"].startswith("cn=ReadOnlyUser,")
    assert ":us-east-1:" in prod["PasswordSecretArn"] and "LdapAccessFilter" in prod
    assert "AdditionalSssdConfigs" not in prod


BAD_VALUES = [
    (["directory.additional_sssd_configs={ldap_search_base: [a, b]}"],
     r"`directory\.additional_sssd_configs\.ldap_search_base` is a list; each value .* must be a single value"),
    (["directory.additional_sssd_configs={debug_level: null}"], r"debug_level` is nothing"),
    (["directory.additional_sssd_configs=[debug_level]"], r"`directory\.additional_sssd_configs` must be map, not list"),
    (["directory.generate_ssh_keys_for_users=maybe"], r"`directory\.generate_ssh_keys_for_users` must be bool"),
    (["directory.domain_addr=[ldaps://a, ldaps://b]"], r"`directory\.domain_addr` must be str, not list"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES, ids=[o[0].split("=")[0] for o, _ in BAD_VALUES])
def test_bad_values_are_errors_that_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        render_values(values("dev", *ON, *overrides), "dev.yaml")
    assert "dev.yaml" in error.value.message and error.value.hint


def test_an_unknown_directory_value_names_the_known_ones() -> None:
    with pytest.raises(ConfigError) as error:
        render_values({**values("dev"), "directory": {"domain": "corp.example.com"}}, "dev.yaml")
    assert "directory.domain" in error.value.message and "domain_name" in error.value.hint
    with pytest.raises(ConfigError, match="unknown value `directory.domain`"):
        apply_overrides(values("dev"), ["directory.domain=corp.example.com"])


# -- ParallelCluster's schema and validators ------------------------------------------------------
@pytest.mark.parametrize("config", [rendered("prod"), rendered("dev", *ON)], ids=["prod", "dev-with-directory"])
def test_the_renderings_pass_parallelclusters_schema_and_validate(config: dict) -> None:
    schema, _ = schema_findings(copy.deepcopy(config), config_region(config, None))
    assert [f for f in schema if f.level == "error"] == []
    report = validate_config(copy.deepcopy(config), "rendered")
    assert report.valid, report.errors
    assert [f for f in report.findings if f.check == "hpctool:directory" and f.level != "info"] == []


def test_deep_runs_parallelclusters_directory_validators_and_agrees() -> None:
    plain = rendered("dev", *ON, "directory.domain_addr=ldap://ldap.corp.example.com",
                     "directory.allow_plain_ldap=true")
    prod, plain_report = validate_configs([(rendered("prod"), "prod"), (plain, "plain")], deep=True)
    assert prod.valid and not prod.incomplete, prod.errors
    assert {"pcluster:DomainAddrValidator", "pcluster:DomainNameValidator",
            "pcluster:LdapTlsReqCertValidator"} <= set(prod.checks_run)
    assert not [f for f in prod.findings if f.path.startswith(DS)]
    # the secret is looked up in the account: not checked, never a pass
    assert "pcluster:PasswordSecretArnValidator" in {n.check for n in prod.not_checked}
    # plain LDAP with the opt-out: ParallelCluster warns (on the section) as hpctool does (on DomainAddr)
    warned = {(f.check, f.path) for f in plain_report.warnings if f.path.startswith(DS)}
    assert warned == {("hpctool:directory", f"{DS}.DomainAddr"), ("pcluster:DomainAddrValidator", DS)}


def test_an_hpctool_error_replaces_the_schemas_generic_one_unless_suppressed() -> None:
    config = rendered("dev", *ON, "directory.ldap_tls_req_cert=always")
    report = validate_config(copy.deepcopy(config), "bad")
    at = [f for f in report.errors if f.path == f"{DS}.LdapTlsReqCert"]
    assert [f.check for f in at] == ["hpctool:directory"] and "hard, demand, try, allow, never" in at[0].message
    suppressed = validate_config(copy.deepcopy(config), "bad", suppress=["directory"])
    assert [f.check for f in suppressed.errors if f.path == f"{DS}.LdapTlsReqCert"] == ["schema"]


# -- the directory check ---------------------------------------------------------------------------
def test_the_good_section_has_no_finding_and_says_what_it_could_not_check() -> None:
    found, not_checked = run_check("directory", Config({"Region": "us-east-1", DS: dict(GOOD)}, None))
    assert found == []
    reasons = [n.reason for n in not_checked]
    assert len(reasons) == 2 and any("port 636" in r for r in reasons)
    assert any(GOOD["LdapTlsCaCert"] in r and "ParallelCluster does not put it there" in r for r in reasons)


def test_no_section_no_finding_and_a_section_that_is_no_mapping_is_an_error() -> None:
    found, not_checked = run_check("directory", Config({"Region": "us-east-1"}, None))
    assert (found, not_checked) == ([], [])
    assert findings("corp.example.com") == [("error", "", "DirectoryService is not a mapping")]


GOOD_VALUES = [
    ("DomainName", "DC=corp,DC=example,DC=com"),
    ("DomainAddr", "ldaps://dc1.corp.example.com,ldaps://dc2.corp.example.com:636"),
    ("DomainAddr", "LDAPS://ldap.corp.example.com/"),
    ("DomainReadOnlyUser", "CN=ReadOnlyUser,OU=Users,OU=CORP,DC=corp,DC=example,DC=com"),
    ("DomainReadOnlyUser", r"cn=Read\, Only,ou=Users,dc=corp,dc=example,dc=com"),
    ("DomainReadOnlyUser", "uid=reader,ou=people"),
    ("LdapTlsReqCert", "demand"),
    ("GenerateSshKeysForUsers", True),
    ("LdapAccessFilter", "(&(objectClass=user)(memberOf=cn=hpc,dc=corp,dc=example,dc=com))"),
    ("AdditionalSssdConfigs", {"debug_level": "0x1F0", "cache_credentials": False, "id_provider": "ldap"}),
    ("AdditionalSssdConfigs", {"ldap_search_base": "OU=Users,OU=CORP,DC=corp,DC=example,DC=com"}),
]


@pytest.mark.parametrize(("key", "value"), GOOD_VALUES, ids=[f"{k}={v!r}"[:40] for k, v in GOOD_VALUES])
def test_good_values(key: str, value: object) -> None:
    assert findings({**GOOD, key: value}) == []


OPT_OUT = {"ldap_auth_disable_tls_never_use_in_production": True}
# (changes to GOOD, keys to remove, level, path end, text in the message)
BAD_VALUES_TABLE = [
    ({}, ["DomainName"], "error", ".DomainName", "DomainName is missing"),
    ({"DomainName": "corp example"}, [], "error", ".DomainName", "neither a domain name nor a DN"),
    ({"DomainName": "OU=corp,DC=example"}, [], "error", ".DomainName", "neither a domain name nor a DN"),
    ({"DomainName": "corp"}, [], "warning", ".DomainReadOnlyUser", "is in corp.example.com, DomainName is corp"),
    ({}, ["DomainAddr"], "error", ".DomainAddr", "DomainAddr is missing"),
    ({"DomainAddr": "ldap://ldap.corp.example.com"}, [], "error", ".DomainAddr",
     "is plain LDAP: user passwords would cross the network in clear text"),
    ({"DomainAddr": "ldaps://dc1.corp.example.com,ldap://10.0.0.5"}, [], "error", ".DomainAddr",
     "'ldap://10.0.0.5' is plain LDAP"),
    ({"DomainAddr": "ldap://ldap.corp.example.com", "AdditionalSssdConfigs": OPT_OUT}, [], "warning", ".DomainAddr",
     "allowed by AdditionalSssdConfigs.ldap_auth_disable_tls_never_use_in_production"),
    ({"DomainAddr": "ldap://ldap.corp.example.com", "AdditionalSssdConfigs": {
        "ldap_auth_disable_tls_never_use_in_production": "True"}}, [], "warning", ".DomainAddr", "is plain LDAP"),
    ({"AdditionalSssdConfigs": OPT_OUT}, [], "warning",
     ".AdditionalSssdConfigs.ldap_auth_disable_tls_never_use_in_production", "no domain controller is ldap://"),
    ({"DomainAddr": "ldap.corp.example.com"}, [], "info", ".DomainAddr", "reads it as ldaps://ldap.corp.example.com"),
    ({"DomainAddr": "https://ldap.corp.example.com"}, [], "error", ".DomainAddr", "https:// is not an LDAP scheme"),
    ({"DomainAddr": "ldaps://ldap.corp.example.com,"}, [], "error", ".DomainAddr", "has an empty entry"),
    ({"DomainAddr": "ldaps://ldap.corp.example.com:ldaps"}, [], "error", ".DomainAddr", "port is not a number"),
    ({"DomainAddr": "ldaps://ldap.corp.example.com:99999"}, [], "error", ".DomainAddr", "port is not a number"),
    ({"DomainAddr": "ldaps://ldap.corp.example.com/dc=corp"}, [], "error", ".DomainAddr",
     "is not ldaps://HOST[:PORT]"),
    ({"DomainAddr": "ldaps://-bad-.example.com"}, [], "error", ".DomainAddr", "is not ldaps://HOST[:PORT]"),
    ({"DomainAddr": "ldaps://ldap.corp.example.com:389"}, [], "warning", ".DomainAddr", "389 is LDAP's clear-text port"),
    ({"DomainAddr": "ldaps://10.0.0.5"}, [], "warning", ".DomainAddr", "is an IP address but LdapTlsReqCert hard"),
    ({"PasswordSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ro"}, [], "error",
     ".PasswordSecretArn", "is in eu-west-1, the cluster in us-east-1"),
    ({}, ["PasswordSecretArn"], "error", ".PasswordSecretArn", "DirectoryService.PasswordSecretArn is missing"),
    ({"PasswordSecretArn": "ReadOnlyPassword"}, [], "error", ".PasswordSecretArn", "is not an ARN"),
    ({"PasswordSecretArn": "arn:aws:ssm:us-east-1:123456789012:parameter/ro"}, [], "error", ".PasswordSecretArn",
     "is not a Secrets Manager secret"),
    ({"PasswordSecretArn": "arn:aws:secretsmanager:us-east-1:1234:secret:ro"}, [], "error", ".PasswordSecretArn",
     "account '1234' is not 12 digits"),
    ({}, ["DomainReadOnlyUser"], "error", ".DomainReadOnlyUser", "DomainReadOnlyUser is missing: SSSD needs a user"),
    ({"DomainReadOnlyUser": "ReadOnlyUser@corp.example.com"}, [], "error", ".DomainReadOnlyUser",
     "is a user principal name, not a DN"),
    ({"DomainReadOnlyUser": "ReadOnlyUser"}, [], "error", ".DomainReadOnlyUser", "is a user name, not a DN"),
    ({"DomainReadOnlyUser": "cn=Admin,ou=Users,ou=CORP,dc=corp,dc=example,dc=com"}, [], "warning",
     ".DomainReadOnlyUser", "is the directory's administrator"),
    ({"DomainReadOnlyUser": "cn=ReadOnlyUser,ou=Users,dc=lab,dc=example,dc=com"}, [], "warning",
     ".DomainReadOnlyUser", "is in lab.example.com, DomainName is corp.example.com"),
    ({"LdapTlsReqCert": "never"}, [], "warning", ".LdapTlsReqCert",
     "never: SSSD does not even ask for the domain controllers' certificate"),
    ({"LdapTlsReqCert": "allow"}, [], "warning", ".LdapTlsReqCert", "goes on with a certificate that fails"),
    ({"LdapTlsReqCert": "try"}, [], "info", ".LdapTlsReqCert", "goes on without one"),
    ({"LdapTlsReqCert": "HARD"}, [], "error", ".LdapTlsReqCert", "is not one of hard, demand, try, allow, never"),
    ({}, ["LdapTlsCaCert"], "info", ".LdapTlsCaCert", "no LdapTlsCaCert: SSSD verifies"),
    ({"LdapTlsCaCert": "certs/ca.pem"}, [], "error", ".LdapTlsCaCert", "is not an absolute path"),
    ({"GenerateSshKeysForUsers": False}, [], "info", ".GenerateSshKeysForUsers",
     "users reach compute nodes only with keys of their own"),
    ({"GenerateSshKeysForUsers": "yes"}, [], "error", ".GenerateSshKeysForUsers", "is not true or false"),
    ({}, ["LdapAccessFilter"], "info", ".LdapAccessFilter", "every user of the directory can log in"),
    ({"LdapAccessFilter": "(memberOf=cn=hpc"}, [], "error", ".LdapAccessFilter", "unbalanced parentheses"),
    ({"LdapAccessFilter": ""}, [], "error", ".LdapAccessFilter", "LdapAccessFilter is empty"),
    ({"AdditionalSssdConfigs": {"access_provider": "simple"}}, [], "error", ".AdditionalSssdConfigs.access_provider",
     "ParallelCluster sets it to ldap for the filter"),
    ({"AdditionalSssdConfigs": {"id_provider": "ad"}}, [], "error", ".AdditionalSssdConfigs.id_provider",
     "ParallelCluster keeps it ldap"),
    ({"AdditionalSssdConfigs": {"ldap_default_authtok": "s3cret"}}, [], "error",
     ".AdditionalSssdConfigs.ldap_default_authtok", "password is in the config in clear text"),
    ({"AdditionalSssdConfigs": {"ldap_tls_reqcert": "never"}}, [], "warning",
     ".AdditionalSssdConfigs.ldap_tls_reqcert", "overrides what ParallelCluster writes from LdapTlsReqCert"),
    ({"AdditionalSssdConfigs": {"ldap_search_base": ["a", "b"]}}, [], "error",
     ".AdditionalSssdConfigs.ldap_search_base", "is not a single value"),
    ({"AdditionalSssdConfigs": "debug_level=9"}, [], "error", ".AdditionalSssdConfigs", "is not a mapping"),
]


@pytest.mark.parametrize(("changes", "removed", "level", "path", "text"), BAD_VALUES_TABLE,
                         ids=[f"{c or r}"[:48] for c, r, *_ in BAD_VALUES_TABLE])
def test_bad_values(changes: dict, removed: list[str], level: str, path: str, text: str) -> None:
    section = {**GOOD, **changes}
    for key in removed:
        del section[key]
    found = findings(section)
    assert [(lvl, where) for lvl, where, _ in found] == [(level, path)], found
    assert text in found[0][2], found[0][2]


def test_every_finding_has_a_hint() -> None:
    section = {**GOOD, "DomainAddr": "ldap://10.0.0.5", "LdapTlsReqCert": "never", "DomainReadOnlyUser": "x",
               "GenerateSshKeysForUsers": False}
    found, _ = run_check("directory", Config({"Region": "us-east-1", DS: section}, None))
    assert len(found) >= 3 and all(f.hint and f.check == "hpctool:directory" for f in found)


def test_weak_certificate_checks_are_not_asked_of_plain_ldap_and_name_an_unused_ca() -> None:
    plain = {**GOOD, "DomainAddr": "ldap://10.0.0.5", "LdapTlsReqCert": "never", "AdditionalSssdConfigs": OPT_OUT}
    assert [where for _, where, _ in findings(plain)] == [".DomainAddr"]
    never = findings({**GOOD, "LdapTlsReqCert": "never"})
    assert "LdapTlsCaCert is then of little use" in never[0][2]


def test_the_secret_follows_the_clusters_region_and_ssm_is_allowed_where_parallelcluster_reads_it() -> None:
    eu = {**GOOD, "PasswordSecretArn": "arn:aws:secretsmanager:eu-west-2:123456789012:secret:ro"}
    assert findings(eu, region="eu-west-2") == []
    ssm = {**GOOD, "PasswordSecretArn": "arn:aws-iso-b:ssm:us-isob-east-1:123456789012:parameter/ro"}
    assert findings(ssm, region="us-isob-east-1") == []
    assert [lvl for lvl, _, _ in findings(ssm, region="us-east-1")] == ["error"]
