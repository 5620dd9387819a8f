"""The twin's directory, rendered: what OpenLDAP's slapd on the head node and SSSD on every node
host are configured with, and the LDIF of its tree, users and groups. Pure functions of
:class:`DirectorySettings` (no files, no processes; :mod:`hpctool.twin.directory_run` runs them).

A cluster with ``DirectoryService`` has a directory somewhere else (AWS Managed Microsoft AD) and
SSSD on its nodes with the ``sssd.conf`` ParallelCluster's cookbook writes. The twin has no AD, so
its head node runs one (OpenLDAP from Debian, over LDAPS only, with a certificate of the twin's
CA), with the section's names: the search base from ``DomainName``, the read-only user from
``DomainReadOnlyUser``. The nodes' ``sssd.conf`` is ParallelCluster's, point for point, except
where AD and OpenLDAP differ (``ldap_schema``, ``ldap_id_mapping``: AD users have SIDs that SSSD
maps to uids, ours carry ``uidNumber``) and where the twin's directory is (``ldap_uri``, the CA).

slapd's configuration is a ``cn=config`` tree (``slapd.d``) that ``slapadd -n0`` builds from the
LDIF :func:`render_slapd_config` renders, before slapd ever starts: ``cn=config`` is what Debian
ships and what slapd-config(5) documents (slapd.conf is deprecated), and building it offline
needs neither a running server nor a conversion step (``slaptest -f``), and leaves one source of
truth that the golden test pins.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hpctool.errors import ConfigError

DEFAULT_BASE_DN = "dc=twin,dc=hpctool"
# uids and gids of directory users and groups start here: clear of the image's system users and of
# the machine's own users (from 1000), which the twin gives every host through libnss-extrausers.
FIRST_ID = 20000
HOME = "/home"
SHELL = "/bin/bash"
LDAPS_PORT = 636
# Settings the twin writes itself: the directory is the head node's, whatever the section says.
TWIN_OWNED = ("id_provider", "ldap_schema", "ldap_id_mapping", "ldap_uri", "ldap_search_base",
              "ldap_default_bind_dn", "ldap_default_authtok", "ldap_tls_cacert",
              "ldap_auth_disable_tls_never_use_in_production")
FQDN_RE = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MEMBER_OF_RE = re.compile(r"^\(?\s*memberOf\s*=\s*cn=([^,()]+),[^()]*\)?$", re.IGNORECASE)


@dataclass(frozen=True)
class DirectorySettings:
    """What the twin's directory is: its names, and what SSSD on the nodes is told."""

    base_dn: str = DEFAULT_BASE_DN
    read_only_dn: str = f"cn=ReadOnlyUser,{DEFAULT_BASE_DN}"
    uri: str = f"ldaps://head:{LDAPS_PORT}"
    tls_reqcert: str = "hard"
    ca_cert: str = "/etc/hpctool/directory/ca.crt"  # where the nodes find the twin's CA
    access_filter: str | None = None  # SSSD's ldap_access_filter, on the user's own entry
    allow_groups: tuple[str, ...] = ()  # SSSD's simple access provider (a memberOf filter, translated)
    additional: Mapping[str, str] = field(default_factory=dict)

    @property
    def people_dn(self) -> str:
        return f"ou=People,{self.base_dn}"

    @property
    def groups_dn(self) -> str:
        return f"ou=Groups,{self.base_dn}"

    @property
    def admin_dn(self) -> str:
        """slapd's rootdn: only root on the head node, over ldapi://, is mapped to it."""
        return f"cn=admin,{self.base_dn}"

    def user_dn(self, name: str) -> str:
        return f"uid={name},{self.people_dn}"

    def group_dn(self, name: str) -> str:
        return f"cn={name},{self.groups_dn}"


# -- distinguished names ---------------------------------------------------------------------------
def split_dn(dn: str) -> list[str]:
    """The RDNs of ``dn``, in order, each stripped (a ``\\,`` stays inside its RDN)."""
    return [part.strip() for part in re.split(r"(?<!\\),", dn) if part.strip()]


def normal_dn(dn: str) -> str:
    """``dn`` with attribute names in lower case and no spaces around the separators, as
    slapd compares them (values of dc, ou and cn compare without case too)."""
    parts = []
    for rdn in split_dn(dn):
        attr, _, value = rdn.partition("=")
        parts.append(f"{attr.strip().lower()}={value.strip()}")
    return ",".join(parts)


def base_dn_of(domain_name: str) -> str:
    """ParallelCluster's search base from ``DomainName``: a domain (corp.example.com) becomes
    its DC parts; a DN is taken as it is."""
    name = domain_name.strip()
    if FQDN_RE.match(name):
        return ",".join(f"dc={label}" for label in name.split("."))
    return normal_dn(name)


def _under(dn: str, base: str) -> bool:
    return normal_dn(dn).lower().endswith("," + normal_dn(base).lower())


def settings_from_config(section: Mapping[str, Any] | None, *, uri: str = f"ldaps://head:{LDAPS_PORT}",
                         ca_cert: str = DirectorySettings.ca_cert) -> DirectorySettings:
    """The twin's directory for a cluster config's ``DirectoryService`` (None: the twin's own
    names). ``uri``: the head node's slapd; ``ca_cert``: where the nodes find the twin's CA when
    the section names no ``LdapTlsCaCert``. ``hpctool config validate`` has checked the section;
    what the twin cannot follow (a read-only user outside the domain) is a ConfigError here."""
    if not section:
        return DirectorySettings(uri=uri, ca_cert=ca_cert)
    base = base_dn_of(str(section.get("DomainName") or "twin.hpctool"))
    read_only = normal_dn(str(section.get("DomainReadOnlyUser") or f"cn=ReadOnlyUser,{base}"))
    if not _under(read_only, base):
        raise ConfigError(f"DomainReadOnlyUser {read_only} is not under the domain {base}: the twin's "
                          "directory holds only the domain's own tree",
                          "give a DN under DomainName (hpctool config validate warns about it too)")
    if split_dn(read_only)[0].split("=", 1)[0].lower() not in ("cn", "uid"):
        raise ConfigError(f"DomainReadOnlyUser {read_only} does not start with cn= or uid=",
                          "name the read-only user as cn=NAME,... (as AD does)")
    filter_ = section.get("LdapAccessFilter") or None
    groups: tuple[str, ...] = ()
    member_of = MEMBER_OF_RE.match(filter_) if filter_ else None
    if member_of:
        # AD's memberOf is computed from groups' member lists; the twin's groups are RFC 2307
        # posixGroups (memberUid), which have none. The same rule, "members of this group may log
        # in", is SSSD's simple access provider with the group's name.
        groups, filter_ = (member_of.group(1).strip(),), None
    extra = {str(k): _sssd_value(v) for k, v in (section.get("AdditionalSssdConfigs") or {}).items()
             if str(k) not in TWIN_OWNED}
    # The twin puts its CA where the config tells SSSD to find the domain's (the shared
    # directory_service folder of prod.yaml), so the path in sssd.conf is the cluster's.
    ca_path = str(section.get("LdapTlsCaCert") or ca_cert)
    return DirectorySettings(base_dn=base, read_only_dn=read_only, uri=uri,
                             tls_reqcert=str(section.get("LdapTlsReqCert") or "hard"), ca_cert=ca_path,
                             access_filter=filter_, allow_groups=groups, additional=extra)


def _sssd_value(value: object) -> str:
    return ("True" if value else "False") if isinstance(value, bool) else str(value)


# -- LDIF --------------------------------------------------------------------------------------------
def ldif_value(attr: str, value: str) -> str:
    """One ``attr: value`` line; base64 (``attr::``) when LDIF requires it (RFC 2849: a value
    that starts with a space, ':' or '<', ends with a space, or is not plain ASCII)."""
    unsafe = (not value.isascii() or any(c in value for c in "\r\n\0")
              or value[:1] in (" ", ":", "<") or value.endswith(" "))
    if unsafe:
        return f"{attr}:: {base64.b64encode(value.encode()).decode()}"
    return f"{attr}: {value}"


def ldif_entry(dn: str, attrs: Sequence[tuple[str, str]]) -> str:
    return "\n".join([ldif_value("dn", dn)] + [ldif_value(a, v) for a, v in attrs]) + "\n"


@dataclass(frozen=True)
class SlapdPaths:
    """Where slapd finds its files, as seen on the head node."""

    data_dir: str
    ca_cert: str
    server_cert: str
    server_key: str
    schema_dir: str = "/etc/ldap/schema"
    module_dir: str = "/usr/lib/ldap"


PEERCRED_ROOT = "gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth"
SCHEMAS = ("core", "cosine", "nis", "inetorgperson")


def render_slapd_config(settings: DirectorySettings, paths: SlapdPaths) -> str:
    """The ``cn=config`` LDIF for ``slapadd -n0``: the mdb database of the domain, TLS, ACLs.

    - Root on the head node, over ldapi:// (SASL EXTERNAL), is the rootdn: no admin password
      exists to leak; the tree and the config are managed only from the head node.
    - Passwords are hashed by slapd (argon2) when set with the password-modify operation.
    - ACLs: a userPassword is never read by anyone (only used to bind, and changed by its owner);
      the read-only user, and bound users, read the rest; anonymous clients see nothing but the
      root DSE (what TLS clients and SSSD ask first).
    """
    base, admin, ro = settings.base_dn, settings.admin_dn, settings.read_only_dn
    root_match = PEERCRED_ROOT.replace("+", r"\+")
    blocks = [
        ldif_entry("cn=config", [
            ("objectClass", "olcGlobal"), ("cn", "config"),
            ("olcTLSCACertificateFile", paths.ca_cert),
            ("olcTLSCertificateFile", paths.server_cert),
            ("olcTLSCertificateKeyFile", paths.server_key),
            ("olcTLSProtocolMin", "3.3"),  # TLS 1.2 and later
            ("olcAuthzRegexp", f"{{0}}{root_match} {admin}"),
            ("olcDisallows", "bind_anon"),
        ]),
        ldif_entry("cn=module{0},cn=config", [
            ("objectClass", "olcModuleList"), ("cn", "module{0}"), ("olcModulePath", paths.module_dir),
            ("olcModuleLoad", "{0}back_mdb"), ("olcModuleLoad", "{1}argon2"),
        ]),
        ldif_entry("cn=schema,cn=config", [("objectClass", "olcSchemaConfig"), ("cn", "schema")]),
        "".join(f"include: file://{paths.schema_dir}/{name}.ldif\n" for name in SCHEMAS),
        ldif_entry("olcDatabase={-1}frontend,cn=config", [
            ("objectClass", "olcDatabaseConfig"), ("objectClass", "olcFrontendConfig"),
            ("olcDatabase", "{-1}frontend"), ("olcPasswordHash", "{ARGON2}"),
            ("olcAccess", '{0}to dn.base="" by * read'),
            ("olcAccess", '{1}to dn.base="cn=subschema" by * read'),
        ]),
        ldif_entry("olcDatabase={0}config,cn=config", [
            ("objectClass", "olcDatabaseConfig"), ("olcDatabase", "{0}config"),
            ("olcAccess", f'{{0}}to * by dn.exact="{admin}" manage by * none'),
        ]),
        ldif_entry("olcDatabase={1}mdb,cn=config", [
            ("objectClass", "olcDatabaseConfig"), ("objectClass", "olcMdbConfig"),
            ("olcDatabase", "{1}mdb"), ("olcDbDirectory", paths.data_dir), ("olcSuffix", base),
            ("olcRootDN", admin), ("olcDbMaxSize", str(256 * 1024 * 1024)), ("olcLastMod", "TRUE"),
            ("olcDbIndex", "objectClass eq"), ("olcDbIndex", "uid,uidNumber,gidNumber,memberUid eq"),
            ("olcDbIndex", "cn eq,sub"), ("olcDbIndex", "entryCSN,entryUUID eq"),
            ("olcAccess", "{0}to attrs=userPassword by self =w by anonymous auth by * none"),
            ("olcAccess", f'{{1}}to * by dn.exact="{ro}" read by self read by users read by * none'),
        ]),
    ]
    return "\n".join(blocks)


def _rdn_entry(rdn: str, dn: str) -> str:
    attr, _, value = rdn.partition("=")
    attr = attr.lower()
    if attr == "dc":
        return ldif_entry(dn, [("objectClass", "dcObject"), ("objectClass", "organization"),
                               ("dc", value), ("o", value)])
    if attr == "ou":
        return ldif_entry(dn, [("objectClass", "organizationalUnit"), ("ou", value)])
    if attr in ("cn", "o"):
        classes = {"cn": "organizationalRole", "o": "organization"}
        return ldif_entry(dn, [("objectClass", classes[attr]), (attr, value)])
    raise ConfigError(f"the twin cannot make the directory entry {dn} ({attr}= is not dc, ou, o or cn)",
                      "name the read-only user under ou= or cn= entries of the domain")


def render_base_tree(settings: DirectorySettings) -> str:
    """The domain's entry, ou=People, ou=Groups, and the read-only user with the entries above it
    (ou=Users,ou=CORP for AD's layout). For ``slapadd -n1`` before slapd's first start; the
    read-only user's password is set afterwards (hashed by slapd, never in this LDIF)."""
    base_rdns = split_dn(settings.base_dn)
    dc = base_rdns[0].partition("=")[2]
    entries = [ldif_entry(settings.base_dn, [("objectClass", "dcObject"), ("objectClass", "organization"),
                                             ("dc", dc), ("o", dc)]),
               ldif_entry(settings.people_dn, [("objectClass", "organizationalUnit"), ("ou", "People")]),
               ldif_entry(settings.groups_dn, [("objectClass", "organizationalUnit"), ("ou", "Groups")])]
    made = {normal_dn(settings.base_dn).lower(), normal_dn(settings.people_dn).lower(),
            normal_dn(settings.groups_dn).lower()}
    ro = split_dn(settings.read_only_dn)
    between = ro[1:len(ro) - len(base_rdns)]
    for i in range(len(between) - 1, -1, -1):  # the topmost first
        dn = ",".join(between[i:] + base_rdns)
        if normal_dn(dn).lower() not in made:
            entries.append(_rdn_entry(between[i], dn))
            made.add(normal_dn(dn).lower())
    attr, _, value = ro[0].partition("=")
    structural = "organizationalRole" if attr.lower() == "cn" else "account"
    entries.append(ldif_entry(settings.read_only_dn, [
        ("objectClass", structural), ("objectClass", "simpleSecurityObject"), (attr.lower(), value),
        ("description", "SSSD binds as this user to look users and groups up (read only)"),
        # simpleSecurityObject needs a userPassword: a value no password hashes to, until it is set
        ("userPassword", "{ARGON2}unset"),
    ]))
    return "\n".join(entries)


@dataclass(frozen=True)
class DirectoryUser:
    name: str
    uid: int
    gid: int
    home: str = ""
    login_shell: str = SHELL

    @property
    def home_dir(self) -> str:
        return self.home or f"{HOME}/{self.name}"


def render_user(settings: DirectorySettings, user: DirectoryUser) -> str:
    """A user entry: inetOrgPerson (a person AD-like tools show), posixAccount (what NSS needs:
    uid, gid, home, shell), shadowAccount (password ageing fields SSSD reads)."""
    return ldif_entry(settings.user_dn(user.name), [
        ("objectClass", "inetOrgPerson"), ("objectClass", "posixAccount"), ("objectClass", "shadowAccount"),
        ("uid", user.name), ("cn", user.name), ("sn", user.name),
        ("uidNumber", str(user.uid)), ("gidNumber", str(user.gid)),
        ("homeDirectory", user.home_dir), ("loginShell", user.login_shell), ("gecos", user.name),
    ])


def render_group(settings: DirectorySettings, name: str, gid: int, members: Iterable[str] = ()) -> str:
    """A posixGroup (RFC 2307: members by name, ``memberUid``, which SSSD's rfc2307 schema reads)."""
    attrs = [("objectClass", "posixGroup"), ("cn", name), ("gidNumber", str(gid))]
    attrs += [("memberUid", member) for member in sorted(set(members))]
    return ldif_entry(settings.group_dn(name), attrs)


def render_member_change(settings: DirectorySettings, group: str, member: str, add: bool) -> str:
    """An ``ldapmodify`` change adding ``member`` to (or removing it from) a group."""
    op = "add" if add else "delete"
    return (f"{ldif_value('dn', settings.group_dn(group))}\nchangetype: modify\n{op}: memberUid\n"
            f"{ldif_value('memberUid', member)}\n-\n")


# -- SSSD and NSS ------------------------------------------------------------------------------------
def sssd_domain(settings: DirectorySettings, bind_password: str) -> dict[str, str]:
    """The ``[domain/default]`` settings: ParallelCluster's, with the twin's directory's
    differences (see the module's docstring)."""
    props = {
        "id_provider": "ldap",
        "ldap_schema": "rfc2307",  # ParallelCluster: AD
        "ldap_uri": settings.uri,
        "ldap_search_base": settings.base_dn,
        "ldap_default_bind_dn": settings.read_only_dn,
        "ldap_default_authtok": bind_password,
        "ldap_tls_reqcert": settings.tls_reqcert,
        "ldap_tls_cacert": settings.ca_cert,
        "cache_credentials": "True",
        "default_shell": SHELL,
        "fallback_homedir": f"{HOME}/%u",
        "ldap_id_mapping": "False",  # ParallelCluster: True (AD's SIDs); ours carry uidNumber
        "ldap_referrals": "False",
        "use_fully_qualified_names": "False",
    }
    if settings.access_filter:
        props.update(access_provider="ldap", ldap_access_filter=settings.access_filter)
    elif settings.allow_groups:
        props.update(access_provider="simple", simple_allow_groups=", ".join(settings.allow_groups))
    props.update(settings.additional)
    return props


def render_sssd_conf(settings: DirectorySettings, bind_password: str) -> str:
    """``/etc/sssd/sssd.conf`` (mode 0600: it holds the read-only user's password, as on the
    cluster). Sections, their order and the fixed settings as ParallelCluster writes them; the
    domain's settings sorted, as it sorts them."""
    lines = ["[domain/default]"]
    lines += [f"{key} = {value}" for key, value in sorted(sssd_domain(settings, bind_password).items())]
    lines += ["", "[domain/local]", "id_provider = files", "enumerate = True"]
    lines += ["", "[sssd]", "config_file_version = 2", "services = nss, pam, ssh", "domains = default, local",
              "full_name_format = %1$s", "", "[nss]", "filter_users = nobody,root", "filter_groups = nobody,root",
              "", "[pam]", "offline_credentials_expiration = 7"]
    return "\n".join(lines) + "\n"


def render_nsswitch(image_text: str) -> str:
    """The image's ``nsswitch.conf`` with ``sss`` last on the passwd, group and shadow lines:
    local users (the image's, the machine's through extrausers) first, then the directory's."""
    def add(match: re.Match[str]) -> str:
        sources = match.group(2).split()
        return f"{match.group(1)}{' '.join(s for s in sources if s != 'sss')} sss"

    return re.sub(r"^((?:passwd|group|shadow):\s+)(.*)$", add, image_text, flags=re.MULTILINE)
