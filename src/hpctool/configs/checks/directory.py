"""The check of ``DirectoryService``: cluster users from Active Directory through SSSD, offline.

ParallelCluster's own checks of the section (``DomainAddrValidator``, ``LdapTlsReqCertValidator``,
``PasswordSecretArnValidator``, ...) only warn, and only with ``--deep``; a directory reached over
plain LDAP sends every user's password across the network in clear text, so here ``ldap://`` is an
error unless the config opts out the way SSSD itself asks for (its
``ldap_auth_disable_tls_never_use_in_production``, which ``directory.allow_plain_ldap`` renders).
A cluster without the section gets no finding: a single-user cluster is a choice.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from hpctool.configs.checks.registry import Config, Issue, check
from hpctool.configs.checks.secret_arn import example_arn, secret_arn_issues
from hpctool.configs.findings import ERROR, INFO, WARNING, NotChecked

DS = "DirectoryService"
OPT_OUT = "ldap_auth_disable_tls_never_use_in_production"  # SSSD's own name for "LDAP without TLS"
REQ_CERT = ("hard", "demand", "try", "allow", "never")  # ParallelCluster's schema; default hard
VERIFYING = ("hard", "demand")
WEAK = {
    "never": (WARNING, "SSSD does not even ask for the domain controllers' certificate"),
    "allow": (WARNING, "SSSD goes on with a certificate that fails verification"),
    "try": (INFO, "SSSD ends the session on a bad certificate but goes on without one"),
}
# ParallelCluster's DomainNameValidator: a name (corp.example.com) or a DN of DC parts.
FQDN_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
DC_DN_RE = re.compile(r"^(DC|dc)=[A-Za-z0-9_-]+(,(DC|dc)=[A-Za-z0-9_-]+)*$")
RDN_RE = re.compile(r"^\s*(?P<attr>[A-Za-z][A-Za-z0-9-]*|\d+(\.\d+)+)\s*=\s*(?P<value>.+?)\s*$")
HOST_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
ADMINS = {"admin", "administrator"}
# SSSD settings that ParallelCluster already writes from a field of the section.
FIELD_OF = {"ldap_uri": "DomainAddr", "ldap_default_bind_dn": "DomainReadOnlyUser", "ldap_tls_cacert": "LdapTlsCaCert",
            "ldap_tls_reqcert": "LdapTlsReqCert", "ldap_access_filter": "LdapAccessFilter"}
READ_ONLY_EXAMPLE = "cn=ReadOnlyUser,ou=Users,ou=CORP,dc=corp,dc=example,dc=com"


@check("directory")
def directory(config: Config) -> Iterator[Issue | NotChecked]:
    section = config.get(DS)
    if section is None:
        return
    if not isinstance(section, dict):
        yield Issue(ERROR, DS, "DirectoryService is not a mapping", "give DomainName, DomainAddr, PasswordSecretArn "
                    "and DomainReadOnlyUser (docs/directory.md)")
        return
    sssd = section.get("AdditionalSssdConfigs")
    sssd = sssd if isinstance(sssd, dict) else {}
    domain = yield from _domain_name(section.get("DomainName"))
    yield from _domain_addr(section, str(sssd.get(OPT_OUT, "false")).lower() == "true")
    yield from _password(section.get("PasswordSecretArn"), config.region)
    yield from _read_only_user(section.get("DomainReadOnlyUser"), domain)
    yield from _ca_cert(section)
    yield from _ssh_keys(section.get("GenerateSshKeysForUsers", True))
    yield from _access(section, sssd)
    yield from _sssd(section)
    yield NotChecked("hpctool:directory", "that the domain controllers answer at DomainAddr from the cluster's "
                     "subnets (LDAPS port 636 open to head and compute nodes), that the secret holds the read-only "
                     "user's password as plain text and that the user can read the directory: needs your account")


def _domain_name(name: object) -> Iterator[Issue]:
    """Yields the issues; returns the domain's DC parts (lower case), or None."""
    path = f"{DS}.DomainName"
    if not isinstance(name, str) or not name.strip():
        yield Issue(ERROR, path, "DirectoryService.DomainName is missing",
                    "give the AD domain, e.g. corp.example.com (directory.domain_name)")
        return None
    if FQDN_RE.match(name):
        return [part.lower() for part in name.split(".")]
    if DC_DN_RE.match(name):
        return [part.split("=", 1)[1].lower() for part in name.split(",")]
    yield Issue(ERROR, path, f"DomainName {name!r} is neither a domain name nor a DN of DC= parts "
                "(ParallelCluster's rule)", "e.g. corp.example.com or DC=corp,DC=example,DC=com")
    return None


def _uris(addr: str) -> list[str]:
    return [part.strip() for part in addr.split(",")]


def _domain_addr(section: dict, opted_out: bool) -> Iterator[Issue]:
    path = f"{DS}.DomainAddr"
    addr = section.get("DomainAddr")
    if not isinstance(addr, str) or not addr.strip():
        yield Issue(ERROR, path, "DirectoryService.DomainAddr is missing", "give the domain controllers as "
                    "ldaps://HOST, comma-separated (directory.domain_addr)")
        return
    req_cert = section.get("LdapTlsReqCert", "hard")
    plain = False
    for uri in _uris(addr):
        if not uri:
            yield Issue(ERROR, path, f"DomainAddr {addr!r} has an empty entry", "separate the URIs with single commas")
            continue
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if not scheme:
            yield Issue(INFO, path, f"{uri!r} has no scheme: ParallelCluster reads it as ldaps://{uri}",
                        f"write ldaps://{uri} to say so")
        elif scheme == "ldap":
            plain = True
            if opted_out:
                yield Issue(WARNING, path, f"{uri!r} is plain LDAP: user passwords cross the network in clear text "
                            f"(allowed by AdditionalSssdConfigs.{OPT_OUT})", "use ldaps:// outside a throw-away "
                            "test directory (docs/directory.md: LDAPS with AWS Managed Microsoft AD)")
            else:
                yield Issue(ERROR, path, f"{uri!r} is plain LDAP: user passwords would cross the network in clear "
                            "text", "use ldaps://HOST (the name the LDAPS certificate is issued to); only for a "
                            "test directory, opt out with directory.allow_plain_ldap: true")
            continue
        elif scheme != "ldaps":
            yield Issue(ERROR, path, f"{uri!r}: {scheme}:// is not an LDAP scheme", "give ldaps://HOST[:PORT]")
            continue
        yield from _uri_host(path, uri if scheme else f"ldaps://{uri}", req_cert)
    if opted_out and not plain:
        yield Issue(WARNING, f"{DS}.AdditionalSssdConfigs.{OPT_OUT}", f"{OPT_OUT} is set though no domain "
                    "controller is ldap://: it only lets SSSD authenticate without TLS",
                    "remove it (directory.allow_plain_ldap: false)")


def _uri_host(path: str, uri: str, req_cert: object) -> Iterator[Issue]:
    try:
        parts = urlsplit(uri)
        host, port = parts.hostname, parts.port
    except ValueError:
        yield Issue(ERROR, path, f"{uri!r}: the port is not a number from 1 to 65535", "give ldaps://HOST or "
                    "ldaps://HOST:636")
        return
    if parts.path not in ("", "/") or parts.query or parts.username or not host or not _is_host(host):
        yield Issue(ERROR, path, f"{uri!r} is not ldaps://HOST[:PORT]", "give the domain controller's name or "
                    "address only, e.g. ldaps://ldap.corp.example.com")
        return
    if port == 389:
        yield Issue(WARNING, path, f"{uri!r}: 389 is LDAP's clear-text port; LDAPS answers on 636",
                    f"drop the port (636 is the default) or give {parts.scheme}://{host}:636")
    if req_cert in VERIFYING and _is_ip(host):
        yield Issue(WARNING, path, f"{uri!r} is an IP address but LdapTlsReqCert {req_cert} verifies the "
                    "certificate, which names a host: logins fail unless it lists the address",
                    "give the DNS name the certificate is issued to (e.g. the load balancer's Route 53 name)")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def _is_host(host: str) -> bool:
    if _is_ip(host):
        return True
    labels = host.rstrip(".").split(".")
    return len(host) <= 253 and all(HOST_LABEL_RE.match(label) for label in labels) and not labels[-1].isdigit()


def _password(arn: object, region: str | None) -> Iterator[Issue]:
    if isinstance(arn, str) and region == "us-isob-east-1" and re.match(r"^arn:[^:]+:ssm:[^:]*:\d{12}:parameter/.", arn):
        return  # ParallelCluster reads an SSM parameter there, for compatibility
    yield from secret_arn_issues(
        f"{DS}.PasswordSecretArn", "DirectoryService.PasswordSecretArn", arn, region,
        missing_hint=f"give the ARN of the secret holding the read-only user's password ({example_arn(region)}; "
                     "directory.password_secret_arn)",
        region_hint="the head node reads the secret in the cluster's region: create it there, or replicate it "
                    "and give the replica's ARN")


def _dn(text: str) -> list[tuple[str, str]] | None:
    """The RDNs of a DN (attribute lower case), or None when ``text`` is not one."""
    parts = re.split(r"(?<!\\),", text)
    rdns = [RDN_RE.match(part) for part in parts]
    if not all(rdns):
        return None
    return [(m["attr"].lower(), m["value"]) for m in rdns if m]


def _read_only_user(user: object, domain: list[str] | None) -> Iterator[Issue]:
    path = f"{DS}.DomainReadOnlyUser"
    if not isinstance(user, str) or not user.strip():
        yield Issue(ERROR, path, "DirectoryService.DomainReadOnlyUser is missing: SSSD needs a user to bind as to "
                    "look users up", f"give the read-only user's DN, e.g. {READ_ONLY_EXAMPLE}")
        return
    rdns = _dn(user)
    if rdns is None:
        kind = "a user principal name" if "@" in user else "a user name"
        yield Issue(ERROR, path, f"DomainReadOnlyUser {user!r} is {kind}, not a DN: SSSD binds with it as "
                    "ldap_default_bind_dn", f"give the user's DN, e.g. {READ_ONLY_EXAMPLE}")
        return
    first_attr, first_value = rdns[0]
    if first_attr in ("cn", "uid") and first_value.lower() in ADMINS:
        yield Issue(WARNING, path, f"DomainReadOnlyUser {user!r} is the directory's administrator: its password "
                    "would sit in a secret every head node reads", "create a user that can only read the directory "
                    "(docs/directory.md) and bind as it")
    components = [value.lower() for attr, value in rdns if attr == "dc"]
    if domain and components and components != domain:
        yield Issue(WARNING, path, f"DomainReadOnlyUser {user!r} is in {'.'.join(components)}, DomainName is "
                    f"{'.'.join(domain)}", "give the read-only user of the cluster's domain")


def _ca_cert(section: dict) -> Iterator[Issue | NotChecked]:
    path = f"{DS}.LdapTlsCaCert"
    ca = section.get("LdapTlsCaCert")
    req_cert = section.get("LdapTlsReqCert", "hard")
    if req_cert not in REQ_CERT:
        yield Issue(ERROR, f"{DS}.LdapTlsReqCert", f"LdapTlsReqCert {req_cert!r} is not one of "
                    f"{', '.join(REQ_CERT)}", "keep hard (the default): the certificate must verify")
        return
    addr = section.get("DomainAddr")
    tls = isinstance(addr, str) and any(not uri.lower().startswith("ldap://") for uri in _uris(addr) if uri)
    if req_cert in WEAK and tls:
        level, what = WEAK[req_cert]
        unused = "; LdapTlsCaCert is then of little use" if ca else ""
        yield Issue(level, f"{DS}.LdapTlsReqCert", f"LdapTlsReqCert {req_cert}: {what}, so anyone on the path can "
                    f"pose as the domain controller and read the passwords users log in with{unused}",
                    "set hard (directory.ldap_tls_req_cert) and give the CA bundle in LdapTlsCaCert")
    if ca is None:
        if req_cert in VERIFYING and tls:
            yield Issue(INFO, path, "no LdapTlsCaCert: SSSD verifies the domain controllers' certificate with the "
                        "OS's trust store, which lacks a private CA's certificate (then every login fails)",
                        "give the CA bundle's path on the nodes (directory.ldap_tls_ca_cert), unless a public CA "
                        "issued the certificate")
        return
    if not isinstance(ca, str) or not ca.startswith("/"):
        yield Issue(ERROR, path, f"LdapTlsCaCert {ca!r} is not an absolute path", "give the path of the PEM CA "
                    "bundle on every node, e.g. /opt/parallelcluster/shared/directory_service/domain-ca.crt")
        return
    yield NotChecked("hpctool:directory", f"that the CA bundle {ca} is on every node: ParallelCluster does not put "
                     "it there (a custom AMI or a bootstrap step does; docs/directory.md)")


def _ssh_keys(generate: object) -> Iterator[Issue]:
    path = f"{DS}.GenerateSshKeysForUsers"
    if not isinstance(generate, bool):
        yield Issue(ERROR, path, f"GenerateSshKeysForUsers {generate!r} is not true or false",
                    "true (the default) or false")
    elif not generate:  # true, the default, makes a key at each user's first head-node login
        yield Issue(INFO, path, "GenerateSshKeysForUsers is false: users reach compute nodes only with keys of their "
                    "own in ~/.ssh/authorized_keys (password logins to compute nodes are disabled)",
                    "keep it true unless users' keys are put in place some other way")


def _access(section: dict, sssd: dict) -> Iterator[Issue]:
    path = f"{DS}.LdapAccessFilter"
    access_filter = section.get("LdapAccessFilter")
    if access_filter is None:
        if "access_provider" not in sssd:
            yield Issue(INFO, path, "no LdapAccessFilter: every user of the directory can log in to the cluster",
                        "limit it to a group, e.g. memberOf=cn=hpc-users,ou=Users,ou=CORP,dc=corp,dc=example,dc=com "
                        "(directory.ldap_access_filter)")
        return
    if not isinstance(access_filter, str) or not access_filter.strip():
        yield Issue(ERROR, path, "LdapAccessFilter is empty", "give an LDAP filter, or leave the key out")
    elif not _balanced(access_filter):
        yield Issue(ERROR, path, f"LdapAccessFilter {access_filter!r} has unbalanced parentheses",
                    "e.g. (memberOf=cn=hpc-users,ou=Users,ou=CORP,dc=corp,dc=example,dc=com)")
    if "access_provider" in sssd and sssd["access_provider"] != "ldap":
        yield Issue(ERROR, f"{DS}.AdditionalSssdConfigs.access_provider", f"access_provider "
                    f"{sssd['access_provider']!r} with LdapAccessFilter: ParallelCluster sets it to ldap for the "
                    "filter", "drop access_provider from AdditionalSssdConfigs, or drop LdapAccessFilter")


def _balanced(text: str) -> bool:
    depth = 0
    for char in text.replace(r"\(", "").replace(r"\)", ""):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _sssd(section: dict) -> Iterator[Issue]:
    path = f"{DS}.AdditionalSssdConfigs"
    sssd = section.get("AdditionalSssdConfigs")
    if sssd is None:
        return
    if not isinstance(sssd, dict):
        yield Issue(ERROR, path, "AdditionalSssdConfigs is not a mapping", "give SSSD settings as name: value")
        return
    for name, value in sssd.items():
        where = f"{path}.{name}"
        if isinstance(value, (dict, list)) or value is None:
            yield Issue(ERROR, where, f"{name} is not a single value", "SSSD settings are text, numbers or booleans")
        elif name == "id_provider" and value != "ldap":
            yield Issue(ERROR, where, f"id_provider {value!r}: ParallelCluster keeps it ldap", "drop id_provider")
        elif name == "ldap_default_authtok":
            yield Issue(ERROR, where, "the read-only user's password is in the config in clear text",
                        "remove it: ParallelCluster reads the password from PasswordSecretArn")
        elif name in FIELD_OF:
            yield Issue(WARNING, where, f"{name} overrides what ParallelCluster writes from {FIELD_OF[name]}",
                        f"set {FIELD_OF[name]} instead and drop {name}")
